// Unit tests of the typed decode paths of the bus (docs/architecture.md, "The hot path"):
// decode(..., BodyForm::raw), MsgpackWriter, ModelMetadata::from_msgpack / to_msgpack and
// core::show_reply_msgpack. Each is checked against the JSON path it replaces: the same
// bytes, the same accepted values, the same errors, hostile input included.
#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include <msgpack.hpp>
#include <nlohmann/json.hpp>

#include "modelzoo/bus/message.h"
#include "msgpack_build.h"
#include "modelzoo/bus/model.h"
#include "modelzoo/core/resolver.h"

namespace {

namespace bus = modelzoo::bus;
namespace core = modelzoo::core;
using bus::BodyForm;
using bus::Message;
using bus::MessageType;
using nlohmann::json;
using modelzoo::testing::Packer;

// a + b, appended (GCC 12 misreports "lit" + std::string under -Wrestrict at -O3, PR105651).
std::string cat(std::string a, const std::string& b) {
  a += b;
  return a;
}

// Hostile shapes are written with msgpack-c's packer (msgpack_build.h).
using modelzoo::testing::packed;
using modelzoo::testing::str;

// The outcome of decoding `bytes`: "ok" or the ProtocolError's text.
std::string outcome(const std::string& bytes, BodyForm form, Message* out = nullptr) {
  try {
    Message m = bus::decode(bytes.data(), bytes.size(), form);
    if (out) *out = std::move(m);
    return "ok";
  } catch (const bus::ProtocolError& e) {
    return e.what();
  }
}

// An envelope {type: reply, id: 5, body: <body written by f>} with body in place `at` of 3.
std::string reply_with_body(const std::function<void(Packer&)>& body, int at = 2) {
  return packed([&](Packer& pk) {
    pk.pack_map(3);
    for (int i = 0; i < 3; ++i) {
      if (i == at) {
        str(pk, "body");
        body(pk);
      } else if (i == (at + 1) % 3) {
        str(pk, "type");
        str(pk, "reply");
      } else {
        str(pk, "id");
        pk.pack_uint64(5);
      }
    }
  });
}

// ------------------------------------------------------------------ BodyForm::raw
TEST(RawBody, KeepsTheBodyBytesVerbatimWhereverTheBodyIs) {
  auto body = [](Packer& pk) {
    pk.pack_map(2);
    str(pk, "z");
    pk.pack_array(2);
    pk.pack_float(1.5f);  // float32: re-encoding would make it float64
    pk.pack_nil();
    str(pk, "a");
    pk.pack_bin(2);
    pk.pack_bin_body("\x01\x02", 2);
  };
  const std::string body_bytes = packed(body);
  for (int at = 0; at < 3; ++at) {
    Message m;
    ASSERT_EQ(outcome(reply_with_body(body, at), BodyForm::raw, &m), "ok") << at;
    EXPECT_EQ(m.raw_body, body_bytes) << at;
    EXPECT_TRUE(m.body.empty());
    EXPECT_EQ(m.id, 5u);
    Message j;
    ASSERT_EQ(outcome(reply_with_body(body, at), BodyForm::json, &j), "ok");
    EXPECT_TRUE(j.raw_body.empty());
    bus::materialize_body(m);
    EXPECT_TRUE(m.raw_body.empty());
    EXPECT_EQ(m.body, j.body);
  }
}

TEST(RawBody, IsForwardedWithoutReencoding) {
  const std::string bytes = reply_with_body([](Packer& pk) {
    pk.pack_map(1);
    str(pk, "f");
    pk.pack_float(0.25f);
  });
  Message m;
  ASSERT_EQ(outcome(bytes, BodyForm::raw, &m), "ok");
  const std::string again = bus::encode_envelope(m);
  Message back;
  ASSERT_EQ(outcome(again, BodyForm::raw, &back), "ok");
  EXPECT_EQ(back.raw_body, m.raw_body);  // still float32: the bytes went through untouched
  EXPECT_EQ(static_cast<unsigned char>(back.raw_body[2 + 1]), 0xcau);
}

TEST(RawBody, AbsentBodyIsAnEmptyMap) {
  const std::string bytes = packed([](Packer& pk) {
    pk.pack_map(1);
    str(pk, "type");
    str(pk, "heartbeat");
  });
  Message m;
  ASSERT_EQ(outcome(bytes, BodyForm::raw, &m), "ok");
  EXPECT_EQ(m.raw_body, "\x80");
  bus::materialize_body(m);
  EXPECT_EQ(m.body, json::object());
}

// Hostile bodies are refused in raw form with exactly the error of the JSON form.
TEST(RawBody, RefusesWhatTheJsonFormRefusesWithTheSameError) {
  std::vector<std::function<void(Packer&)>> bodies = {
      [](Packer& pk) { pk.pack_array(0); },  // not a map
      [](Packer& pk) { pk.pack_map(1); str(pk, "s"); str(pk, "\xff\xfe"); },
      [](Packer& pk) { pk.pack_map(1); str(pk, "\xc0\x80"); pk.pack_nil(); },
      [](Packer& pk) { pk.pack_map(1); pk.pack_uint8(1); pk.pack_nil(); },
      [](Packer& pk) { pk.pack_map(2); str(pk, "k"); pk.pack_nil(); str(pk, "k"); pk.pack_true(); },
      [](Packer& pk) { pk.pack_map(1); str(pk, "e"); pk.pack_ext(1, 7); pk.pack_ext_body("x", 1); },
      [](Packer& pk) {  // nesting past the limit
        pk.pack_map(1);
        str(pk, "n");
        for (int i = 0; i < 40; ++i) pk.pack_array(1);
        pk.pack_nil();
      },
  };
  for (std::size_t i = 0; i < bodies.size(); ++i) {
    const std::string bytes = reply_with_body(bodies[i]);
    const std::string as_json = outcome(bytes, BodyForm::json);
    EXPECT_NE(as_json, "ok") << i;
    EXPECT_EQ(outcome(bytes, BodyForm::raw), as_json) << i;
  }
  // Trailing bytes and truncation, in both forms.
  std::string good = reply_with_body([](Packer& pk) { pk.pack_map(0); });
  EXPECT_EQ(outcome(good + "\xc0", BodyForm::raw), "trailing bytes after the msgpack value");
  for (std::size_t n = 1; n < good.size(); ++n)
    EXPECT_EQ(outcome(good.substr(0, n), BodyForm::raw), outcome(good.substr(0, n), BodyForm::json)) << n;
}

// Every prefix and every one-byte change of a real envelope decodes the same way in both forms.
TEST(RawBody, AgreesWithTheJsonFormOnMutatedEnvelopes) {
  bus::ModelMetadata md;
  md.name = "org/m";
  md.version = "1.0.0";
  md.files.push_back({"w.bin", 3, std::string(64, 'a')});
  const std::string base = bus::encode_envelope(Message::make_reply(9, md.to_json()));
  int accepted = 0;
  for (std::size_t i = 0; i < base.size(); ++i)
    for (int v : {0x00, 0x7f, 0x80, 0x91, 0xa1, 0xc0, 0xc1, 0xcc, 0xd9, 0xde, 0xff}) {
      std::string b = base;
      b[i] = static_cast<char>(v);
      Message r, j;
      const std::string raw = outcome(b, BodyForm::raw, &r);
      ASSERT_EQ(raw, outcome(b, BodyForm::json, &j)) << i << " " << v;
      if (raw != "ok") continue;
      ++accepted;
      bus::materialize_body(r);
      EXPECT_EQ(r.body, j.body);
      EXPECT_EQ(r.type, j.type);
      EXPECT_EQ(r.id, j.id);
    }
  EXPECT_GT(accepted, 0);
}

// ------------------------------------------------------------------ MsgpackWriter
TEST(MsgpackWriterTest, WritesWhatMsgpackCsPackerWrites) {
  std::vector<std::uint64_t> us = {0, 1, 127, 128, 255, 256, 65535, 65536, 0xffffffffull, 0x100000000ull,
                                   std::numeric_limits<std::uint64_t>::max()};
  for (auto u : us) {
    bus::MsgpackWriter w;
    w.uint(u);
    EXPECT_EQ(w.bytes(), packed([&](Packer& pk) { pk.pack_uint64(u); })) << u;
  }
  std::vector<std::int64_t> is = {0, 5, -1, -32, -33, -128, -129, -32768, -32769, INT32_MIN,
                                  static_cast<std::int64_t>(INT32_MIN) - 1, INT64_MIN, INT64_MAX};
  for (auto i : is) {
    bus::MsgpackWriter w;
    w.sint(i);
    EXPECT_EQ(w.bytes(), packed([&](Packer& pk) { pk.pack_int64(i); })) << i;
  }
  for (std::size_t n : {0, 31, 32, 255, 256, 65535, 65536}) {
    const std::string s(n, 'x');
    bus::MsgpackWriter w;
    w.str(s);
    EXPECT_EQ(w.bytes(), packed([&](Packer& pk) { str(pk, s); })) << n;
    bus::MsgpackWriter a;
    a.array(n);
    EXPECT_EQ(a.bytes(), packed([&](Packer& pk) { pk.pack_array(static_cast<std::uint32_t>(n)); })) << n;
    bus::MsgpackWriter m;
    m.map(n);
    EXPECT_EQ(m.bytes(), packed([&](Packer& pk) { pk.pack_map(static_cast<std::uint32_t>(n)); })) << n;
    bus::MsgpackWriter b;
    b.binary(s.data(), n);
    EXPECT_EQ(b.bytes(), packed([&](Packer& pk) {
                pk.pack_bin(static_cast<std::uint32_t>(n));
                pk.pack_bin_body(s.data(), static_cast<std::uint32_t>(n));
              }))
        << n;
  }
}

TEST(MsgpackWriterTest, JsonValuesRoundTrip) {
  json v = {{"a", {1, -2, 3.0, -0.0, nullptr, true, "x"}},
            {"b", json::binary({1, 2, 3})},
            {"c", {{"d", std::uint64_t{1} << 63}}}};
  bus::MsgpackWriter w;
  w.json(v);
  EXPECT_EQ(w.bytes(), bus::to_msgpack(v));
  EXPECT_EQ(bus::from_msgpack(w.bytes().data(), w.bytes().size()), v);
}

// ------------------------------------------------------------------ metadata
bus::ModelMetadata sample() {
  bus::ModelMetadata md;
  md.name = "org/model";
  md.version = "2.1.0-rc.1";
  md.description = "d";
  md.author = "a";
  md.license = "MIT";
  md.format = "gguf";
  md.tags = {"t1", "t2"};
  md.files.push_back({"w.bin", 7, std::string(64, 'b')});
  md.files.push_back({"sub/c.json", 0, std::string(64, '0'), "/srv/c.json"});
  return md;
}

TEST(MetadataMsgpack, IsByteForByteTheJsonEncoding) {
  const auto md = sample();
  EXPECT_EQ(md.to_msgpack(), bus::to_msgpack(md.to_json()));
  bus::ModelMetadata empty;
  EXPECT_EQ(empty.to_msgpack(), bus::to_msgpack(empty.to_json()));
}

TEST(MetadataMsgpack, ReadsWhatFromJsonReads) {
  const auto md = sample();
  const std::string bytes = md.to_msgpack();
  const auto back = bus::ModelMetadata::from_msgpack(bytes.data(), bytes.size());
  EXPECT_EQ(back.to_json(), md.to_json());
}

// The outcome of one metadata reader: the re-encoded metadata, or the error text.
std::string read_json(const json& j) {
  try {
    return bus::ModelMetadata::from_json(j).to_json().dump();
  } catch (const bus::Error& e) {
    return std::string("error: ") + e.what();
  }
}
std::string read_msgpack(const json& j) {
  const std::string b = bus::to_msgpack(j);
  try {
    return bus::ModelMetadata::from_msgpack(b.data(), b.size()).to_json().dump();
  } catch (const bus::Error& e) {
    EXPECT_EQ(e.code(), bus::ErrorCode::bad_request);
    return std::string("error: ") + e.what();
  }
}

TEST(MetadataMsgpack, RefusesWhatFromJsonRefusesWithTheSameError) {
  const json good = sample().to_json();
  std::vector<json> cases = {json::array(), json("x"), json::object()};
  auto with = [&](const std::function<void(json&)>& f) {
    json j = good;
    f(j);
    cases.push_back(j);
  };
  for (const char* k : {"name", "version", "description", "author", "license", "format", "tags", "files"}) {
    with([&](json& j) { j.erase(k); });
    with([&](json& j) { j[k] = nullptr; });
    with([&](json& j) { j[k] = 5; });
    with([&](json& j) { j[k] = -5; });
    with([&](json& j) { j[k] = 1.5; });
    with([&](json& j) { j[k] = json::array({1}); });
    with([&](json& j) { j[k] = json::binary({1}); });
  }
  with([](json& j) { j["name"] = "Bad Name"; });
  with([](json& j) { j["version"] = "1.0"; });
  with([](json& j) { j["tags"] = {"a", nullptr}; });
  for (const char* k : {"name", "size", "sha256", "local_path"}) {
    with([&](json& j) { j["files"][0].erase(k); });
    with([&](json& j) { j["files"][0][k] = nullptr; });
    with([&](json& j) { j["files"][0][k] = "x"; });
    with([&](json& j) { j["files"][0][k] = -1; });
    with([&](json& j) { j["files"][0][k] = 2.0; });
    with([&](json& j) { j["files"][0][k] = true; });
  }
  with([](json& j) { j["files"][0]["name"] = "../escape"; });
  with([](json& j) { j["files"][0]["local_path"] = "relative"; });
  with([](json& j) { j["files"][0]["local_path"] = cat("/", std::string(5000, 'p')); });
  with([](json& j) { j["files"][0]["sha256"] = std::string(64, 'A'); });
  with([](json& j) { j["files"][0]["size"] = std::numeric_limits<std::uint64_t>::max(); });
  with([](json& j) { j["files"].push_back(j["files"][0]); });
  with([](json& j) { j["files"].push_back(42); });
  with([](json& j) { j["extra"] = {{"ignored", true}}; });
  // Duplicates among many files (the set path) and among few.
  for (int n : {3, 16, 17, 40}) {
    with([&](json& j) {
      j["files"] = json::array();
      for (int i = 0; i < n; ++i) j["files"].push_back({{"name", cat("f", std::to_string(i))}, {"size", i}, {"sha256", std::string(64, 'c')}});
    });
    with([&](json& j) {
      j["files"] = json::array();
      for (int i = 0; i < n; ++i) j["files"].push_back({{"name", cat("f", std::to_string(i % (n - 1)))}, {"size", i}, {"sha256", std::string(64, 'c')}});
    });
  }
  int refused = 0;
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const std::string want = read_json(cases[i]);
    refused += want.rfind("error: ", 0) == 0;
    EXPECT_EQ(read_msgpack(cases[i]), want) << i << ": " << cases[i].dump().substr(0, 200);
  }
  EXPECT_GT(refused, 40);
}

TEST(MetadataMsgpack, RefusesHostileBytesAsBadRequest) {
  const std::vector<std::string> hostile = {
      "", "\xc1", "\x81\xa4name", std::string("\x81\xa4name\xa2\xff\xfe", 8),
      std::string("\x82\xa1k\xc0\xa1k\xc0", 7), bus::to_msgpack({{"name", "a/b"}}) + "\x00"};
  for (const auto& b : hostile) {
    try {
      (void)bus::ModelMetadata::from_msgpack(b.data(), b.size());
      ADD_FAILURE() << "accepted " << b.size() << " hostile bytes";
    } catch (const bus::Error& e) {
      EXPECT_EQ(e.code(), bus::ErrorCode::bad_request);
    }
  }
  std::string dup = std::string("\x82\xa1k\xc0\xa1k\xc0", 7);
  try {
    (void)bus::ModelMetadata::from_msgpack(dup.data(), dup.size());
  } catch (const bus::Error& e) {
    EXPECT_STREQ(e.what(), "metadata is not valid msgpack: duplicate map key 'k'");
  }
}

// A map of more than 16 keys takes the sorted duplicate search: same errors, same order.
TEST(LargeMaps, DuplicateKeysAreFoundInWireOrder) {
  auto big = [](int n, const std::function<void(Packer&, int)>& key) {
    return reply_with_body([&](Packer& pk) {
      pk.pack_map(static_cast<std::uint32_t>(n));
      for (int i = 0; i < n; ++i) {
        key(pk, i);
        pk.pack_nil();
      }
    });
  };
  EXPECT_EQ(outcome(big(40, [](Packer& pk, int i) { str(pk, cat("k", std::to_string(i))); }), BodyForm::raw), "ok");
  // k5 repeats at 30, k7 at 20: the one reached first in wire order is reported.
  auto dups = [](Packer& pk, int i) { str(pk, cat("k", std::to_string(i == 30 ? 5 : i == 20 ? 7 : i))); };
  EXPECT_EQ(outcome(big(40, dups), BodyForm::raw), "duplicate map key 'k7'");
  EXPECT_EQ(outcome(big(40, dups), BodyForm::json), "duplicate map key 'k7'");
  // A non-string key before the duplicate is reported first, one after it is not.
  auto early = [](Packer& pk, int i) {
    if (i == 10) pk.pack_uint8(1);
    else str(pk, cat("k", std::to_string(i == 30 ? 5 : i)));
  };
  EXPECT_EQ(outcome(big(40, early), BodyForm::raw), "map key is not a string");
  auto late = [](Packer& pk, int i) {
    if (i == 35) pk.pack_uint8(1);
    else str(pk, cat("k", std::to_string(i == 30 ? 5 : i)));
  };
  EXPECT_EQ(outcome(big(40, late), BodyForm::raw), "duplicate map key 'k5'");
  // The largest map the limits allow, all keys equal: refused, quickly.
  EXPECT_EQ(outcome(big(65536, [](Packer& pk, int) { str(pk, "same"); }), BodyForm::raw), "duplicate map key 'same'");
}

// ------------------------------------------------------------------ show reply
TEST(ShowReply, IsByteForByteTheReplyBuiltAsJson) {
  core::Resolution res;
  res.ref = bus::parse_model_ref("org/model:2.1.0-rc.1");
  core::SourceAnswer a, b, c;
  a.plugin.name = "down";
  a.plugin.priority = -3;
  a.error = bus::Error(bus::ErrorCode::unavailable, "not running");
  b.plugin.name = "mem";
  b.plugin.priority = 10;
  b.metadata = sample();
  c.plugin.name = "other";
  c.error = bus::Error(bus::ErrorCode::not_found, "no such model");
  res.sources = {a, b, c};
  // The reply as the daemon built it before: a JSON tree.
  json sources = json::array();
  for (const auto& s : res.sources)
    sources.push_back({{"plugin", s.plugin.name},
                       {"priority", s.plugin.priority},
                       {"ok", s.metadata.has_value()},
                       {"version", s.metadata ? json(s.metadata->version) : json(nullptr)},
                       {"error", s.error ? bus::to_json(*s.error) : json(nullptr)}});
  json tree = {{"model", res.ref.str()}, {"best", "mem"}, {"metadata", sample().to_json()}, {"sources", sources}};
  EXPECT_EQ(core::show_reply_msgpack(res), bus::to_msgpack(tree));
  EXPECT_EQ(bus::encode_envelope(Message::make_raw_reply(4, core::show_reply_msgpack(res))),
            bus::encode_envelope(Message::make_reply(4, tree)));
}

}  // namespace

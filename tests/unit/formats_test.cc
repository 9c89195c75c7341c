// Unit tests of the structural checks of model files (extensions/formats, docs/extensions.md): valid
// files pass, every broken case fails with exactly its rule, no input crashes, and a large file
// is checked by reading its header only.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "model_files.h"
#include "modelzoo/formats/formats.h"

namespace {

namespace fs = std::filesystem;
namespace mt = modelzoo::testing;
using modelzoo::formats::check_bytes;
using modelzoo::formats::check_file;
using modelzoo::formats::check_reader;
using modelzoo::formats::describe;
using modelzoo::formats::FileReader;
using modelzoo::formats::format_of;
using modelzoo::formats::ModelFileLookup;
using modelzoo::formats::Violation;
using testing::HasSubstr;
using testing::StartsWith;

// A fresh directory per test, removed afterwards.
class FormatsTest : public testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::path(testing::TempDir()) / "formats_test.XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // Resolves inside dir_ as the daemon would: no absolute paths, no "..", existing files only.
  ModelFileLookup lookup() {
    return [this](const std::string& relative) -> std::optional<fs::path> {
      ++lookups_;
      fs::path p(relative);
      if (p.is_absolute()) return std::nullopt;
      for (const auto& part : p) {
        if (part == "..") return std::nullopt;
      }
      fs::path full = dir_ / p;
      if (!fs::exists(full)) return std::nullopt;
      return full;
    };
  }

  fs::path dir_;
  int lookups_ = 0;
};

std::string rule_number(const std::string& rule) { return rule.substr(rule.rfind('.') + 1); }

// ---------------------------------------------------------------------------------------------
// Names and messages.

TEST(FormatOf, Suffixes) {
  EXPECT_EQ(format_of("model.safetensors"), "safetensors");
  EXPECT_EQ(format_of("model-00001-of-00002.safetensors"), "safetensors");
  EXPECT_EQ(format_of("Model.SafeTensors"), "safetensors");
  EXPECT_EQ(format_of("llama-7b.Q4_K_M.gguf"), "gguf");
  EXPECT_EQ(format_of("X.GGUF"), "gguf");
  EXPECT_EQ(format_of("resnet50.onnx"), "onnx");
  EXPECT_EQ(format_of("dir/sub/model.ONNX"), "onnx");
  EXPECT_EQ(format_of("model.onnx_data"), "");
  EXPECT_EQ(format_of("model.onnx.part"), "");
  EXPECT_EQ(format_of("model.bin"), "");
  EXPECT_EQ(format_of("safetensors"), "");
  EXPECT_EQ(format_of(".gguf"), "");
  EXPECT_EQ(format_of("gguf"), "");
  EXPECT_EQ(format_of(""), "");
}

TEST(Describe, FormatRuleNumberAndMessage) {
  EXPECT_EQ(describe(Violation{"safetensors", "safetensors.5",
                               "tensor 'w' ends at 48 but the next begins at 52"}),
            "safetensors rule 5: tensor 'w' ends at 48 but the next begins at 52");
  EXPECT_EQ(describe(Violation{"gguf", "gguf.1", "x"}), "gguf rule 1: x");
  EXPECT_EQ(describe(Violation{"onnx", "onnx.4", "y"}), "onnx rule 4: y");
}

TEST(QuoteName, EscapesAndCuts) {
  using modelzoo::formats::quote_name;
  EXPECT_EQ(quote_name("w"), "'w'");
  EXPECT_EQ(quote_name(std::string("a\0b'\\\xff", 6)), "'a\\x00b\\x27\\x5c\\xff'");
  EXPECT_EQ(quote_name("abcdef", 3), "'abc...'");
}

TEST(CheckFile, UnknownFormatThrows) {
  EXPECT_THROW(check_bytes(mt::valid_gguf(), "pickle"), std::runtime_error);
  EXPECT_THROW(check_bytes(mt::valid_gguf(), "GGUF"), std::runtime_error);
  EXPECT_THROW(check_file("/nonexistent/x.bin", "pickle"), std::runtime_error);
}

TEST_F(FormatsTest, MissingFileThrowsNamingPathAndErrno) {
  const fs::path missing = dir_ / "missing.gguf";
  try {
    check_file(missing, "gguf");
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr(missing.string()));
    EXPECT_THAT(e.what(), HasSubstr("No such file or directory"));
  }
  try {
    check_file(dir_, "onnx");
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr(dir_.string()));
    EXPECT_THAT(e.what(), HasSubstr("Is a directory"));
  }
}

// ---------------------------------------------------------------------------------------------
// Valid files.

std::map<std::string, std::string> valid_files() {
  return {{"safetensors", mt::valid_safetensors()},
          {"gguf", mt::valid_gguf()},
          {"onnx", mt::valid_onnx()}};
}

TEST_F(FormatsTest, ValidFilesPass) {
  for (const auto& [format, bytes] : valid_files()) {
    SCOPED_TRACE(format);
    auto v = check_bytes(bytes, format);
    EXPECT_FALSE(v) << describe(*v);
    const fs::path p = dir_ / ("model." + format);
    mt::write_file(p, bytes);
    EXPECT_EQ(format_of(p.filename().string()), format);
    v = check_file(p, format);
    EXPECT_FALSE(v) << describe(*v);
  }
}

TEST(Safetensors, EveryDtypeWithItsWidth) {
  const std::vector<std::pair<std::string, unsigned>> dtypes = {
      {"BOOL", 8},    {"U8", 8},          {"I8", 8},          {"I16", 16},   {"U16", 16},
      {"F16", 16},    {"BF16", 16},       {"I32", 32},        {"U32", 32},   {"F32", 32},
      {"F64", 64},    {"I64", 64},        {"U64", 64},        {"C64", 64},   {"F8_E5M2", 8},
      {"F8_E4M3", 8}, {"F8_E8M0", 8},     {"F8_E4M3FNUZ", 8}, {"F8_E5M2FNUZ", 8},
      {"F4", 4},      {"F6_E2M3", 6},     {"F6_E3M2", 6}};
  std::vector<mt::SafetensorsTensor> tensors;
  std::uint64_t offset = 0;
  for (const auto& [dtype, bits] : dtypes) {
    const std::uint64_t bytes = 8 * bits / 8;  // shape [8]
    tensors.push_back({"t_" + dtype, dtype, {8}, offset, offset + bytes});
    offset += bytes;
  }
  const std::string file = mt::safetensors_file(mt::safetensors_header(tensors, {}), offset);
  auto v = check_bytes(file, "safetensors");
  EXPECT_FALSE(v) << describe(*v);
}

TEST(Safetensors, OtherValidShapes) {
  for (const std::string& header : {
           std::string("{}"),
           std::string(R"({"__metadata__":{}})"),
           std::string(R"({"__metadata__":{"format":"pt"}})"),
           // Keys of a tensor entry other than the three are ignored, as by the reference parser.
           std::string(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":[{"y":1}]}})"),
           // JSON escapes, whitespace inside the object.
           std::string("{ \"a\\u00e9\\n\" : { \"dtype\" : \"F32\" , \"shape\" : [ 2 ] ,\n"
                       "\"data_offsets\" : [ 0 , 8 ] } }"),
       }) {
    SCOPED_TRACE(header);
    const std::uint64_t data = header.find("data_offsets") != std::string::npos ? 8 : 0;
    auto v = check_bytes(mt::safetensors_file(header, data), "safetensors");
    EXPECT_FALSE(v) << describe(*v);
  }
  // Unpadded header (N not a multiple of 8) is fine too.
  const std::string header = R"({"a":{"dtype":"U8","shape":[3],"data_offsets":[0,3]}})";
  auto v = check_bytes(mt::le64(header.size()) + header + "abc", "safetensors");
  EXPECT_FALSE(v) << describe(*v);
}

TEST(Safetensors, MessagesNameTheNumbers) {
  auto two = [](std::uint64_t b_begin, std::uint64_t b_end, std::uint64_t data) {
    return mt::safetensors_file(
        mt::safetensors_header({{"w", "F32", {2}, 0, 8}, {"b", "F32", {2}, b_begin, b_end}}, {}),
        data);
  };
  auto v = check_bytes(two(12, 20, 20), "safetensors");
  ASSERT_TRUE(v);
  EXPECT_EQ(v->rule, "safetensors.5");
  EXPECT_EQ(v->message, "tensor 'w' ends at 8 but the next, 'b', begins at 12");
  EXPECT_EQ(describe(*v), "safetensors rule 5: tensor 'w' ends at 8 but the next, 'b', begins at 12");

  const std::string longer = two(8, 16, 17);
  v = check_bytes(longer, "safetensors");
  ASSERT_TRUE(v);
  EXPECT_EQ(v->rule, "safetensors.6");
  EXPECT_EQ(v->message, "the tensors end at byte 16 of the data, so the file should be " +
                            std::to_string(longer.size() - 1) + " bytes, but it is " +
                            std::to_string(longer.size()));

  v = check_bytes(mt::le64(200'000'000) + "{}", "safetensors");
  ASSERT_TRUE(v);
  EXPECT_EQ(v->rule, "safetensors.1");
  EXPECT_THAT(v->message, HasSubstr("200000000"));
}

TEST(Gguf, OtherValidFiles) {
  {
    mt::GgufWriter w;  // alignment 64, declared
    w.alignment = 64;
    w.kv_u32("general.alignment", 64)
        .tensor("a", {4}, 0, 16)
        .tensor("b", {32, 3}, 8, mt::ggml_nbytes(8, {32, 3}))
        .tensor("c", {5}, 26, 20);
    auto v = check_bytes(w.build(), "gguf");
    EXPECT_FALSE(v) << describe(*v);
  }
  {
    mt::GgufWriter w;  // version 2
    w.version = 2;
    w.kv_string("general.architecture", "x").tensor("a", {2, 2}, 30, 8);
    auto v = check_bytes(w.build(), "gguf");
    EXPECT_FALSE(v) << describe(*v);
  }
  {
    mt::GgufWriter w;  // metadata only (a vocabulary file), no data section
    w.kv_strings("tokenizer.ggml.tokens", {"a", "b"});
    auto v = check_bytes(w.build(), "gguf");
    EXPECT_FALSE(v) << describe(*v);
  }
  {
    mt::GgufWriter w;  // nothing at all
    auto v = check_bytes(w.build(), "gguf");
    EXPECT_FALSE(v) << describe(*v);
  }
  {
    // Arrays nested 8 deep: the limit.
    std::string value = mt::le32(0) + mt::le64(1) + "\x01";
    for (int level = 0; level < 7; ++level) value = mt::le32(9) + mt::le64(1) + value;
    mt::GgufWriter w;
    w.kv("test.deep", 9, value);
    auto v = check_bytes(w.build(), "gguf");
    EXPECT_FALSE(v) << describe(*v);
  }
  {
    // Types whose size is not computed (IQ2_XXS = 16, MXFP4 = 39): offsets aligned, increasing
    // and inside the file; a computed one after them still fits.
    mt::GgufWriter w;
    w.tensor("iq", {256}, 16, 66).tensor("mx", {32}, 39, 17).tensor("f", {4}, 0, 16);
    auto v = check_bytes(w.build(), "gguf");
    EXPECT_FALSE(v) << describe(*v);

    mt::GgufWriter back;  // the next offset is before the previous one
    back.tensor("iq", {256}, 16, 66).tensor("f", {4}, 0, 16, 0);
    v = check_bytes(back.build(), "gguf");
    ASSERT_TRUE(v);
    EXPECT_EQ(v->rule, "gguf.5");
  }
  {
    // The file may end with padding after the last tensor.
    mt::GgufWriter w;
    w.tensor("a", {3}, 0, 12);
    auto v = check_bytes(w.build() + std::string(20, '\0'), "gguf");
    EXPECT_FALSE(v) << describe(*v);
  }
}

TEST(Gguf, MessagesNameTheProblem) {
  mt::GgufWriter w;
  w.version = 0x03000000;
  auto v = check_bytes(w.build(), "gguf");
  ASSERT_TRUE(v);
  EXPECT_EQ(v->rule, "gguf.1");
  EXPECT_THAT(v->message, HasSubstr("big-endian"));
  EXPECT_THAT(v->message, HasSubstr("not supported"));

  mt::GgufWriter gap;
  gap.tensor("a", {4}, 0, 16).tensor("b", {4}, 0, 16, 64);
  v = check_bytes(gap.build(), "gguf");
  ASSERT_TRUE(v);
  EXPECT_EQ(v->message,
            "tensor 'b' is at offset 64 of the data section but the tensors before it end at 32 "
            "(padded to 32)");

  mt::GgufWriter align;
  align.kv_u32("general.alignment", 48);
  v = check_bytes(align.build(), "gguf");
  ASSERT_TRUE(v);
  EXPECT_EQ(describe(*v), "gguf rule 4: general.alignment is 48, not a power of two");
}

TEST(Onnx, OtherValidFiles) {
  const auto graph = mt::onnx_graph({mt::onnx_inline_initializer("W")});
  for (std::uint64_t ir : {1u, 2u}) {  // before IR 3, no opset_import is needed
    auto v = check_bytes(mt::onnx_model(ir, false, graph), "onnx");
    EXPECT_FALSE(v) << describe(*v);
  }
  for (std::uint64_t ir : {3u, 14u}) {
    auto v = check_bytes(mt::onnx_model(ir, true, graph), "onnx");
    EXPECT_FALSE(v) << describe(*v);
  }
  // Every ModelProto field, with its wire type; fields in any order, repeated graph.
  mt::ProtoWriter model;
  model.message(7, graph)
      .bytes(2, "p")
      .bytes(3, "1.0")
      .bytes(4, "ai.test")
      .varint(5, 3)
      .bytes(6, "doc")
      .message(8, mt::onnx_opset(17))
      .bytes(14, "")
      .bytes(20, "")
      .bytes(25, "")
      .bytes(26, "")
      .varint(1, 10)
      .message(7, graph);
  auto v = check_bytes(model.str(), "onnx");
  EXPECT_FALSE(v) << describe(*v);
}

// ---------------------------------------------------------------------------------------------
// Broken files.

TEST(BrokenFiles, CoverEveryRuleWithUniqueLabels) {
  std::set<std::string> rules, labels;
  for (const auto& b : mt::broken_files()) {
    rules.insert(b.rule);
    EXPECT_TRUE(labels.insert(b.format + "/" + b.label).second) << b.label;
    EXPECT_THAT(b.rule, StartsWith(b.format + "."));
  }
  const std::set<std::string> all = {
      "safetensors.1", "safetensors.2", "safetensors.3", "safetensors.4", "safetensors.5",
      "safetensors.6", "gguf.1",        "gguf.2",        "gguf.3",        "gguf.4",
      "gguf.5",        "onnx.1",        "onnx.2",        "onnx.3",        "onnx.4"};
  EXPECT_EQ(rules, all);
}

TEST(BrokenFiles, EachFailsWithExactlyItsRule) {
  for (const auto& b : mt::broken_files()) {
    SCOPED_TRACE(b.format + "/" + b.label);
    auto v = check_bytes(b.bytes, b.format);
    ASSERT_TRUE(v) << "passed";
    EXPECT_EQ(v->rule, b.rule) << describe(*v);
    EXPECT_EQ(v->format, b.format);
    EXPECT_FALSE(v->message.empty());
    EXPECT_THAT(describe(*v), StartsWith(b.format + " rule " + rule_number(b.rule) + ": "));
  }
}

TEST_F(FormatsTest, BrokenFilesFailTheSameWayOnDisk) {
  const fs::path p = dir_ / "model";
  for (const auto& b : mt::broken_files()) {
    SCOPED_TRACE(b.format + "/" + b.label);
    mt::write_file(p, b.bytes);
    auto from_file = check_file(p, b.format);
    auto from_bytes = check_bytes(b.bytes, b.format);
    ASSERT_TRUE(from_file);
    ASSERT_TRUE(from_bytes);
    EXPECT_EQ(from_file->rule, from_bytes->rule);
    EXPECT_EQ(from_file->message, from_bytes->message);
  }
}

// ---------------------------------------------------------------------------------------------
// No input crashes.

TEST(Robustness, EveryTruncationIsAViolation) {
  for (const auto& [format, bytes] : valid_files()) {
    for (std::size_t n = 0; n < bytes.size(); ++n) {
      auto v = check_bytes(std::string_view(bytes).substr(0, n), format);
      ASSERT_TRUE(v) << format << " cut to " << n << " of " << bytes.size() << " bytes passed";
      EXPECT_EQ(v->format, format);
    }
  }
}

TEST(Robustness, MutatedFilesNeverCrash) {
  std::mt19937_64 rng(12345);
  std::map<std::string, int> failures;
  for (const auto& [format, bytes] : valid_files()) {
    for (int i = 0; i < 3000; ++i) {
      std::string m = bytes;
      const int edits = 1 + static_cast<int>(rng() % 4);
      for (int e = 0; e < edits; ++e) {
        const std::size_t at = rng() % m.size();
        switch (rng() % 4) {
          case 0: m[at] = static_cast<char>(rng()); break;                     // any byte
          case 1: m[at] = static_cast<char>(m[at] ^ (1 << (rng() % 8))); break;  // one bit
          case 2: m[at] = static_cast<char>(0xff); break;
          default: m.insert(at, 1, static_cast<char>(rng())); break;
        }
      }
      auto v = check_bytes(m, format);
      if (v) {
        ++failures[format];
        EXPECT_THAT(v->rule, StartsWith(format + "."));
      }
    }
  }
  for (const auto& [format, bytes] : valid_files()) EXPECT_GT(failures[format], 1000) << format;
}

TEST(Robustness, RandomBytesNeverCrash) {
  std::mt19937_64 rng(99);
  for (const std::string format : {"safetensors", "gguf", "onnx"}) {
    for (int i = 0; i < 2000; ++i) {
      std::string bytes(rng() % 96, '\0');
      for (auto& c : bytes) c = static_cast<char>(rng());
      if (format == "gguf" && bytes.size() >= 8 && i % 2 == 0) {
        bytes.replace(0, 8, std::string("GGUF\x03\x00\x00\x00", 8));
      }
      if (format == "safetensors" && bytes.size() >= 8 && i % 2 == 0) {
        bytes.replace(0, 8, mt::le64(bytes.size() - 8));
      }
      auto v = check_bytes(bytes, format);
      if (v) {
        EXPECT_THAT(v->rule, StartsWith(format + "."));
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Cheap: large files are checked by their headers.

TEST_F(FormatsTest, LargeSparseSafetensorsIsCheckedByItsHeaderOnly) {
  const std::uint64_t big = 4ull << 30;  // 4 GiB of U8
  const std::string prefix = mt::safetensors_prefix(mt::safetensors_header(
      {{"small", "F32", {4}, 0, 16}, {"big", "U8", {big}, 16, 16 + big}}, {{"format", "pt"}}));
  const fs::path p = dir_ / "big.safetensors";
  mt::write_file(p, prefix);
  {
    int fd = ::open(p.c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::ftruncate(fd, static_cast<off_t>(prefix.size() + 16 + big)), 0);
    ::close(fd);
  }
  auto v = check_file(p, "safetensors");
  EXPECT_FALSE(v) << describe(*v);

  FileReader reader(p);
  EXPECT_EQ(reader.size(), prefix.size() + 16 + big);
  v = check_reader(reader, "safetensors");
  EXPECT_FALSE(v) << describe(*v);
  EXPECT_EQ(reader.bytes_read(), prefix.size());  // 8 + N, not a byte of data

  // One byte short: still only the header is read to say so.
  {
    int fd = ::open(p.c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::ftruncate(fd, static_cast<off_t>(prefix.size() + 16 + big - 1)), 0);
    ::close(fd);
  }
  FileReader short_reader(p);
  v = check_reader(short_reader, "safetensors");
  ASSERT_TRUE(v);
  EXPECT_EQ(v->rule, "safetensors.6");
  EXPECT_EQ(short_reader.bytes_read(), prefix.size());
}

TEST_F(FormatsTest, LargeSparseGgufIsCheckedByItsHeaderOnly) {
  mt::GgufWriter w;
  const std::uint64_t elements = 1ull << 28;  // 1 GiB of F32
  w.kv_string("general.architecture", "llama").tensor("big", {elements}, 0, 0);
  const std::string head = w.build();  // the data section is empty: filled by ftruncate
  const fs::path p = dir_ / "big.gguf";
  mt::write_file(p, head);
  {
    int fd = ::open(p.c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::ftruncate(fd, static_cast<off_t>(w.data_start() + elements * 4)), 0);
    ::close(fd);
  }
  FileReader reader(p);
  auto v = check_reader(reader, "gguf");
  EXPECT_FALSE(v) << describe(*v);
  EXPECT_LE(reader.bytes_read(), 64u * 1024);  // one window
}

TEST(Readers, FailCleanlyPastTheEnd) {
  const std::string bytes = "0123456789";
  modelzoo::formats::MemoryReader memory(bytes);
  char buf[16] = {};
  EXPECT_TRUE(memory.read(0, buf, 10));
  EXPECT_TRUE(memory.read(10, buf, 0));
  EXPECT_FALSE(memory.read(5, buf, 6));
  EXPECT_FALSE(memory.read(11, buf, 0));
  EXPECT_FALSE(memory.read(~0ull, buf, 2));

  // Reads through a small window: hits, misses, straddles and large reads.
  std::string big(1000, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7);
  modelzoo::formats::MemoryReader inner(big);
  modelzoo::formats::BufferedReader buffered(inner, 64);
  std::mt19937 rng(7);
  for (int i = 0; i < 2000; ++i) {
    const std::uint64_t offset = rng() % 1010;
    const std::size_t len = rng() % 80;
    std::string out(len, '\0');
    const bool ok = buffered.read(offset, out.data(), len);
    ASSERT_EQ(ok, offset + len <= big.size()) << offset << "+" << len;
    if (ok) {
      ASSERT_EQ(out, big.substr(offset, len));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// ONNX external data (rule 4).

TEST_F(FormatsTest, OnnxExternalDataThatFitsPasses) {
  mt::write_file(dir_ / "weights.bin", std::string(64, 'w'));
  fs::create_directories(dir_ / "data");
  mt::write_file(dir_ / "data" / "w.bin", std::string(8, 'w'));
  for (const auto& [location, offset, length] :
       std::vector<std::tuple<std::string, std::uint64_t, std::uint64_t>>{
           {"weights.bin", 0, 8}, {"weights.bin", 8, 56}, {"weights.bin", 64, 0},
           {"data/w.bin", 0, 8}, {"./weights.bin", 0, 64}}) {
    SCOPED_TRACE(location + " " + std::to_string(offset) + "+" + std::to_string(length));
    const std::string model = mt::onnx_with_external_data(location, offset, length);
    auto v = check_bytes(model, "onnx", lookup());
    EXPECT_FALSE(v) << describe(*v);
    mt::write_file(dir_ / "model.onnx", model);
    v = check_file(dir_ / "model.onnx", "onnx", lookup());
    EXPECT_FALSE(v) << describe(*v);
  }
  // Without a length: to the end of the file.
  const std::string model = mt::onnx_model(
      9, true,
      mt::onnx_graph({mt::onnx_external_initializer("W", {{"location", "weights.bin"}, {"offset", "16"}})}));
  auto v = check_bytes(model, "onnx", lookup());
  EXPECT_FALSE(v) << describe(*v);
}

TEST_F(FormatsTest, OnnxExternalDataViolations) {
  mt::write_file(dir_ / "weights.bin", std::string(64, 'w'));
  fs::create_directories(dir_ / "sub");
  struct Case {
    std::string location;
    std::uint64_t offset, length;
    std::string says;
    bool asks;  // whether the lookup may be asked
  };
  const std::vector<Case> cases = {
      {"missing.bin", 0, 8, "is not part of the model", true},
      {"../weights.bin", 0, 8, "'..'", false},
      {"sub/../../weights.bin", 0, 8, "'..'", false},
      {(dir_ / "weights.bin").string(), 0, 8, "absolute", false},
      {"weights.bin", 60, 8, "but the file is 64 bytes", true},
      {"weights.bin", 0, 65, "but the file is 64 bytes", true},
      {"weights.bin", 65, 0, "from offset 65 but the file is 64 bytes", true},
      {"weights.bin", 8, ~0ull, "but the file is 64 bytes", true},
      {"sub", 0, 0, "is not a regular file", true},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.location + " " + std::to_string(c.offset) + "+" + std::to_string(c.length));
    lookups_ = 0;
    auto v = check_bytes(mt::onnx_with_external_data(c.location, c.offset, c.length), "onnx",
                         lookup());
    ASSERT_TRUE(v);
    EXPECT_EQ(v->rule, "onnx.4");
    EXPECT_THAT(v->message, HasSubstr(c.says));
    EXPECT_THAT(v->message, HasSubstr("initializer 'W'"));
    if (!c.asks) {
      EXPECT_EQ(lookups_, 0) << "asked the lookup about an unsafe location";
    }
  }
  // No lookup at all: no file is part of the model.
  auto v = check_bytes(mt::onnx_with_external_data("weights.bin", 0, 8), "onnx");
  ASSERT_TRUE(v);
  EXPECT_EQ(v->rule, "onnx.4");
  EXPECT_THAT(v->message, HasSubstr("external data file 'weights.bin' is not part of the model"));
}

TEST_F(FormatsTest, OnnxEveryExternalInitializerIsChecked) {
  mt::write_file(dir_ / "weights.bin", std::string(64, 'w'));
  auto init = [](const std::string& name, const std::string& offset) {
    return mt::onnx_external_initializer(
        name, {{"location", "weights.bin"}, {"offset", offset}, {"length", "32"}});
  };
  const std::string ok =
      mt::onnx_model(9, true, mt::onnx_graph({init("A", "0"), init("B", "32")}));
  auto v = check_bytes(ok, "onnx", lookup());
  EXPECT_FALSE(v) << describe(*v);
  EXPECT_EQ(lookups_, 1);  // one look-up per distinct file

  const std::string bad =
      mt::onnx_model(9, true, mt::onnx_graph({init("A", "0"), mt::onnx_inline_initializer("I"),
                                              init("B", "48")}));
  v = check_bytes(bad, "onnx", lookup());
  ASSERT_TRUE(v);
  EXPECT_EQ(v->rule, "onnx.4");
  EXPECT_THAT(v->message, HasSubstr("initializer 'B'"));
  EXPECT_THAT(v->message, HasSubstr("[48, 48 + 32)"));
}

}  // namespace

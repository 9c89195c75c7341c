// CURVE key files and allow-lists (modelzoo/bus/curve.h): the parsing every reader shares.
#include "modelzoo/bus/curve.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include <gtest/gtest.h>

namespace modelzoo::bus {
namespace {

namespace fs = std::filesystem;

struct TempDir {
  fs::path path;
  TempDir() {
    char tmpl[] = "/tmp/modelzoo-curve-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path); }
};

TEST(Curve, GeneratedPairRoundTripsThroughItsFiles) {
  ASSERT_TRUE(curve_available());
  TempDir t;
  auto kp = generate_key_pair();
  EXPECT_FALSE(check_z85_key(kp.public_key));
  EXPECT_FALSE(check_z85_key(kp.secret_key));
  fs::path key = write_key_pair(t.path / "keys", "alice", kp);
  struct stat st {};
  ASSERT_EQ(::stat(key.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat((t.path / "keys").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  auto back = read_key_file(key);
  EXPECT_EQ(back.public_key, kp.public_key);
  EXPECT_EQ(back.secret_key, kp.secret_key);
  auto pub = read_key_file(t.path / "keys" / "alice.pub");
  EXPECT_EQ(pub.public_key, kp.public_key);
  EXPECT_TRUE(pub.secret_key.empty());
  // Never over an existing pair.
  EXPECT_THROW(write_key_pair(t.path / "keys", "alice", generate_key_pair()), KeyError);
}

TEST(Curve, BadKeyFilesAreRefusedNamingTheProblemNotTheSecret) {
  TempDir t;
  auto kp = generate_key_pair();
  auto other = generate_key_pair();
  auto write = [&](const std::string& name, const std::string& text, mode_t mode = 0600) {
    fs::path p = t.path / name;
    std::ofstream(p) << text;
    ::chmod(p.c_str(), mode);
    return p;
  };
  auto error_of = [](const fs::path& p) {
    try {
      read_key_file(p);
    } catch (const KeyError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  std::string pair = "public-key = " + kp.public_key + "\nsecret-key = " + kp.secret_key + "\n";
  EXPECT_NE(error_of(write("open.key", pair, 0644)).find("readable by others (mode 644)"), std::string::npos);
  std::string mixed = "public-key = " + other.public_key + "\nsecret-key = " + kp.secret_key + "\n";
  auto e = error_of(write("mixed.key", mixed));
  EXPECT_NE(e.find("does not belong"), std::string::npos) << e;
  EXPECT_EQ(e.find(kp.secret_key), std::string::npos) << "the secret leaked into the error";
  EXPECT_NE(error_of(write("short.key", "public-key = abc\n")).find(":1: public-key: a CURVE key is 40 Z85 characters, not 3"),
            std::string::npos);
  EXPECT_NE(error_of(write("alphabet.key", "public-key = " + std::string(40, '"') + "\n")).find("Z85 alphabet"),
            std::string::npos);
  EXPECT_NE(error_of(write("unknown.key", "private = x\n")).find("unknown setting 'private'"), std::string::npos);
  EXPECT_NE(error_of(write("empty.key", "# nothing\n")).find("no public-key"), std::string::npos);
  EXPECT_NE(error_of(t.path / "absent.key").find("No such file"), std::string::npos);
  EXPECT_NE(error_of(t.path).find("not a regular file"), std::string::npos);
  EXPECT_NE(error_of(write("big.key", std::string(5000, '#'))).find("too large"), std::string::npos);
  // A bare key line is a public key (what `modelzoo keys show` prints).
  EXPECT_EQ(read_key_file(write("bare.pub", kp.public_key + "\n", 0644)).public_key, kp.public_key);
}

TEST(Curve, AllowListTakesKeysAndPubFilesAndReportsBadLines) {
  auto a = generate_key_pair(), b = generate_key_pair(), c = generate_key_pair();
  std::string text = "# who may connect\n" + a.public_key + " alice laptop\n" + "public-key = " + b.public_key +
                     "\n" + "\n   \n" + "not-a-key bob\n" + c.public_key + "   # carol, by comment only\n";
  auto list = parse_allow_list(text, "authorized_clients");
  ASSERT_EQ(list.keys.size(), 3u);
  EXPECT_EQ(list.keys[0].public_key, a.public_key);
  EXPECT_EQ(list.keys[0].name, "alice laptop");
  EXPECT_EQ(list.keys[1].public_key, b.public_key);
  EXPECT_EQ(list.keys[1].name, b.public_key.substr(0, 8));  // a key without a name
  EXPECT_EQ(list.keys[2].public_key, c.public_key);
  ASSERT_EQ(list.problems.size(), 1u);
  EXPECT_EQ(list.problems[0], "authorized_clients:6: a CURVE key is 40 Z85 characters, not 9");
}

}  // namespace
}  // namespace modelzoo::bus

// `modelzoo encrypt` and `modelzoo decrypt`, the real binary on real files: no daemon needed.
#include <sys/stat.h>
#include <sys/wait.h>

#include <fstream>
#include <iterator>
#include <random>

#include "daemon_harness.h"
#include "modelzoo/codec/crypt.h"

namespace modelzoo::testing {
namespace {

int exit_code(const Run& r) { return WIFEXITED(r.status) ? WEXITSTATUS(r.status) : -1; }

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write(const fs::path& p, const std::string& data) { std::ofstream(p, std::ios::binary | std::ios::trunc) << data; }

nlohmann::json parse(const Run& r) {
  try {
    return nlohmann::json::parse(r.out);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not JSON (" << e.what() << "): " << r.out;
    return nullptr;
  }
}

class CryptCli : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/modelzoo-crypt-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    std::mt19937 gen(42);
    model_.resize(2 * 1024 * 1024 + 333);
    for (auto& c : model_) c = static_cast<char>(gen() & 0xff);
    write(path("model.bin"), model_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path path(const std::string& name) const { return dir_ / name; }
  // The command line for `args`; no daemon is running, nor needed: --runtime-dir leads nowhere.
  std::string cli(const std::string& args) const {
    return (bin_dir() / "modelzoo").string() + " --runtime-dir " + path("no-daemon").string() + " " + args;
  }
  // Creates a key file; returns its id.
  std::string generate(const std::string& name) {
    auto r = run(cli("encrypt --generate-key " + path(name).string() + " --json 2>/dev/null"));
    EXPECT_EQ(exit_code(r), 0) << r.out;
    return parse(r)["key_id"].get<std::string>();
  }

  fs::path dir_;
  std::string model_;
};

TEST_F(CryptCli, GenerateEncryptDecryptRoundTrips) {
  auto gen = run(cli("encrypt --generate-key " + path("publisher.key").string()));
  ASSERT_EQ(exit_code(gen), 0) << gen.out;
  const std::string id = codec::read_key_file(path("publisher.key")).id;
  EXPECT_EQ(gen.out, "key " + id + " written to " + path("publisher.key").string() + "\n");
  struct stat st {};
  ASSERT_EQ(::stat(path("publisher.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  auto enc = run(cli("encrypt --key " + path("publisher.key").string() + " " + path("model.bin").string()));
  ASSERT_EQ(exit_code(enc), 0) << enc.out;
  const auto enc_size = fs::file_size(path("model.bin.enc"));
  EXPECT_EQ(enc.out, path("model.bin").string() + " -> " + path("model.bin.enc").string() + " (key " + id + ", " +
                         std::to_string(enc_size) + " bytes)\n");
  EXPECT_EQ(codec::encrypted_key_id(path("model.bin.enc")), id);
  EXPECT_EQ(read(path("model.bin.enc")).find(model_.substr(0, 64)), std::string::npos);

  // The default output: IN without .enc.
  fs::rename(path("model.bin"), path("original.bin"));
  auto dec = run(cli("decrypt --key " + path("publisher.key").string() + " " + path("model.bin.enc").string()));
  ASSERT_EQ(exit_code(dec), 0) << dec.out;
  EXPECT_EQ(dec.out, path("model.bin.enc").string() + " -> " + path("model.bin").string() + " (key " + id + ", " +
                         std::to_string(model_.size()) + " bytes)\n");
  EXPECT_EQ(read(path("model.bin")), model_);

  // -o names the output.
  auto dec_o = run(cli("decrypt --key " + path("publisher.key").string() + " " + path("model.bin.enc").string() +
                       " -o " + path("checked.bin").string()));
  ASSERT_EQ(exit_code(dec_o), 0) << dec_o.out;
  EXPECT_EQ(read(path("checked.bin")), model_);
}

TEST_F(CryptCli, WrongKeyFileExitsOneWithAClearMessage) {
  const std::string right = generate("right.key");
  const std::string wrong = generate("wrong.key");
  ASSERT_EQ(exit_code(run(cli("encrypt --key " + path("right.key").string() + " " + path("model.bin").string()))), 0);

  auto r = run(cli("decrypt --key " + path("wrong.key").string() + " " + path("model.bin.enc").string() + " -o " +
                   path("out.bin").string()));
  EXPECT_EQ(exit_code(r), 1) << r.out;
  EXPECT_EQ(r.out, "modelzoo: " + path("model.bin.enc").string() + ": encrypted with key " + right +
                       ", and no configured key has that id (configured: " + wrong + ")\n");
  EXPECT_FALSE(fs::exists(path("out.bin")));

  // A tampered file: exit 1, named, nothing written.
  std::string data = read(path("model.bin.enc"));
  data[data.size() / 2] = static_cast<char>(data[data.size() / 2] ^ 1);
  write(path("tampered.enc"), data);
  r = run(cli("decrypt --key " + path("right.key").string() + " " + path("tampered.enc").string()));
  EXPECT_EQ(exit_code(r), 1) << r.out;
  EXPECT_NE(r.out.find("authentication failed at chunk 2 of 3: wrong key or tampered file"), std::string::npos)
      << r.out;
  EXPECT_FALSE(fs::exists(path("tampered")));

  // Truncated (a partial download): exit 1, named as such.
  write(path("short.enc"), read(path("model.bin.enc")).substr(0, 1000));
  r = run(cli("decrypt --key " + path("right.key").string() + " " + path("short.enc").string()));
  EXPECT_EQ(exit_code(r), 1) << r.out;
  EXPECT_NE(r.out.find("truncated: the file ends inside chunk 1 of 3"), std::string::npos) << r.out;
}

TEST_F(CryptCli, KeyFileReadableByOthersIsRefused) {
  generate("k");
  fs::permissions(path("k"), fs::perms::group_read | fs::perms::others_read, fs::perm_options::add);
  auto r = run(cli("encrypt --key " + path("k").string() + " " + path("model.bin").string()));
  EXPECT_EQ(exit_code(r), 1) << r.out;
  EXPECT_EQ(r.out, "modelzoo: key file " + path("k").string() +
                       " is readable by other users (mode 0644); chmod 600 it\n");
  EXPECT_FALSE(fs::exists(path("model.bin.enc")));
}

TEST_F(CryptCli, OverwritingIsRefusedUnlessForced) {
  generate("k");
  // A key file is never overwritten.
  const std::string key_text = read(path("k"));
  auto r = run(cli("encrypt --generate-key " + path("k").string()));
  EXPECT_EQ(exit_code(r), 1) << r.out;
  EXPECT_NE(r.out.find("already exists"), std::string::npos) << r.out;
  EXPECT_EQ(read(path("k")), key_text);

  write(path("model.bin.enc"), "precious");
  const std::string encrypt = "encrypt --key " + path("k").string() + " " + path("model.bin").string();
  r = run(cli(encrypt));
  EXPECT_EQ(exit_code(r), 1) << r.out;
  EXPECT_EQ(r.out, "modelzoo: " + path("model.bin.enc").string() + " already exists; use --force to replace it\n");
  EXPECT_EQ(read(path("model.bin.enc")), "precious");

  r = run(cli(encrypt + " --force"));
  EXPECT_EQ(exit_code(r), 0) << r.out;
  EXPECT_NE(read(path("model.bin.enc")), "precious");

  const std::string decrypt = "decrypt --key " + path("k").string() + " " + path("model.bin.enc").string();
  r = run(cli(decrypt));  // model.bin exists
  EXPECT_EQ(exit_code(r), 1) << r.out;
  EXPECT_NE(r.out.find("already exists; use --force"), std::string::npos) << r.out;
  write(path("model.bin"), "stale");
  r = run(cli(decrypt + " --force"));
  EXPECT_EQ(exit_code(r), 0) << r.out;
  EXPECT_EQ(read(path("model.bin")), model_);
}

TEST_F(CryptCli, UsageErrorsExitTwo) {
  generate("k");
  for (const std::string& args : {
           std::string("encrypt"),                                                           // neither key option
           "encrypt " + path("model.bin").string(),                                         // no --key
           "encrypt --key " + path("k").string(),                                          // no IN
           "encrypt --generate-key " + path("k2").string() + " --key " + path("k").string(),  // both
           "decrypt " + path("model.bin").string(),                                          // no --key
           "decrypt --key " + path("k").string() + " " + path("model.bin").string(),         // not .enc, no -o
       }) {
    auto r = run(cli(args));
    EXPECT_EQ(exit_code(r), 2) << args << "\n" << r.out;
    EXPECT_EQ(r.out.rfind("modelzoo: ", 0), 0u) << args << "\n" << r.out;
  }
  auto r = run(cli("decrypt --key " + path("k").string() + " " + path("model.bin").string()));
  EXPECT_NE(r.out.find("does not end in .enc; name the output with -o OUT"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(path("k2")));
}

TEST_F(CryptCli, JsonOutputParses) {
  auto gen = run(cli("encrypt --generate-key " + path("k").string() + " --json 2>/dev/null"));
  ASSERT_EQ(exit_code(gen), 0) << gen.out;
  auto g = parse(gen);
  EXPECT_EQ(g["key_file"], path("k").string());
  EXPECT_EQ(g["key_id"], codec::read_key_file(path("k")).id);

  auto enc = run(cli("--json encrypt --key " + path("k").string() + " " + path("model.bin").string() + " -o " +
                     path("m.enc").string() + " 2>/dev/null"));
  ASSERT_EQ(exit_code(enc), 0) << enc.out;
  auto e = parse(enc);
  EXPECT_EQ(e["input"], path("model.bin").string());
  EXPECT_EQ(e["output"], path("m.enc").string());
  EXPECT_EQ(e["key_id"], g["key_id"]);
  EXPECT_EQ(e["input_bytes"], model_.size());
  EXPECT_EQ(e["bytes"], fs::file_size(path("m.enc")));

  auto dec = run(cli("decrypt --json --key " + path("k").string() + " " + path("m.enc").string() + " -o " +
                     path("m.out").string() + " 2>/dev/null"));
  ASSERT_EQ(exit_code(dec), 0) << dec.out;
  auto d = parse(dec);
  EXPECT_EQ(d["output"], path("m.out").string());
  EXPECT_EQ(d["bytes"], model_.size());
  EXPECT_EQ(read(path("m.out")), model_);

  // Errors too: an object on stdout, the line on stderr.
  auto err = run(cli("decrypt --json --key " + path("k").string() + " " + path("model.bin").string() + " -o " +
                     path("x").string() + " 2>/dev/null"));
  EXPECT_EQ(exit_code(err), 1) << err.out;
  auto x = parse(err);
  EXPECT_EQ(x["error"]["code"], "failed");
  EXPECT_NE(x["error"]["message"].get<std::string>().find("not a modelzoo encrypted file (bad magic)"),
            std::string::npos)
      << err.out;
}

}  // namespace
}  // namespace modelzoo::testing

// `modelzoo secret keygen` and `modelzoo secret encrypt`, the real binary on real files: no
// daemon needed. The values it prints must decrypt with the library the daemon uses.
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <fstream>
#include <iterator>

#include "daemon_harness.h"
#include "modelzoo/codec/crypt.h"
#include "modelzoo/codec/secret.h"

namespace modelzoo::testing {
namespace {

constexpr const char* kSecret = "s3cr3t-Pa55w0rd";  // distinctive: searched for in the output

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

int exit_code(const Run& r) { return WIFEXITED(r.status) ? WEXITSTATUS(r.status) : -1; }

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

nlohmann::json parse(const std::string& text) {
  try {
    return nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not JSON (" << e.what() << "): " << text;
    return nullptr;
  }
}

// Single-quoted for sh.
std::string quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

class SecretCli : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/modelzoo-secret-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path path(const std::string& name) const { return dir_ / name; }
  // The command line for `args`, in an environment without the variables that choose the key
  // file (`env` adds some back); no daemon is running, nor needed.
  std::string cli(const std::string& args, const std::string& env = "") const {
    return "env -u MODELZOO_SECRET_KEY_FILE -u MODELZOO_DATA_DIR " + env + " " + (bin_dir() / "modelzoo").string() +
           " --runtime-dir " + path("no-daemon").string() + " " + args;
  }
  // `secret encrypt` with `input` (printf format) on stdin; stderr to `err` when given.
  ::modelzoo::testing::Run encrypt(const std::string& input, const std::string& args,
                                   const std::string& err = "2>&1") const {
    return run("printf " + quote(input) + " | " + cli("secret encrypt " + args) + " " + err);
  }
  std::string keygen(const std::string& name) const {
    const auto r = run(cli("secret keygen --key-file " + path(name).string()));
    EXPECT_EQ(exit_code(r), 0) << r.out;
    return codec::read_key_file(path(name)).id;
  }
  std::string decrypt(const std::string& value, const std::string& key_name) const {
    std::vector<codec::Key> keys;
    keys.push_back(codec::read_key_file(path(key_name)));
    return codec::decrypt_secret(value, keys);
  }

  fs::path dir_;
};

TEST_F(SecretCli, KeygenCreatesAPrivateKeyFileAndNeverOverwritesIt) {
  const fs::path key = path("secret.key");
  auto r = run(cli("secret keygen --key-file " + key.string()));
  ASSERT_EQ(exit_code(r), 0) << r.out;
  const std::string id = codec::read_key_file(key).id;
  EXPECT_EQ(r.out, "secrets key " + id + " written to " + key.string() + "\n");
  struct stat st {};
  ASSERT_EQ(::stat(key.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  const std::string before = read(key);
  auto again = run(cli("secret keygen --key-file " + key.string()));
  EXPECT_EQ(exit_code(again), 1);
  EXPECT_TRUE(contains(again.out, "already exists; refusing to overwrite it"));
  EXPECT_EQ(read(key), before);

  auto json_run = run(cli("secret keygen --json --key-file " + path("other.key").string() + " 2>/dev/null"));
  ASSERT_EQ(exit_code(json_run), 0) << json_run.out;
  const auto j = parse(json_run.out);
  EXPECT_EQ(j["key_file"], path("other.key").string());
  EXPECT_EQ(j["key_id"], codec::read_key_file(path("other.key")).id);
}

TEST_F(SecretCli, DefaultKeyFileFollowsTheDaemonsDataDir) {
  // $MODELZOO_SECRET_KEY_FILE, else $MODELZOO_DATA_DIR/secret.key, else $XDG_DATA_HOME/modelzoo/...,
  // else $HOME/.local/share/modelzoo/...; missing directories are created.
  const std::string base = "-u XDG_DATA_HOME HOME=" + path("home").string() + " ";
  struct Case {
    std::string env;
    fs::path expected;
  };
  const Case cases[] = {
      {base + "MODELZOO_SECRET_KEY_FILE=" + path("explicit.key").string() +
           " MODELZOO_DATA_DIR=" + path("data").string(),
       path("explicit.key")},
      {base + "MODELZOO_SECRET_KEY_FILE= MODELZOO_DATA_DIR=" + path("data").string(), path("data") / "secret.key"},
      {base + "XDG_DATA_HOME=" + path("xdg").string(), path("xdg") / "modelzoo" / "secret.key"},
      {base, path("home") / ".local" / "share" / "modelzoo" / "secret.key"},
  };
  for (const auto& c : cases) {
    auto r = run(cli("secret keygen --json 2>/dev/null", c.env));
    ASSERT_EQ(exit_code(r), 0) << c.env << ": " << r.out;
    EXPECT_EQ(parse(r.out)["key_file"], c.expected.string()) << c.env;
    ASSERT_TRUE(fs::exists(c.expected)) << c.expected;

    // encrypt finds the same file.
    auto enc = run("printf " + quote(kSecret) + " | " + cli("secret encrypt --json 2>/dev/null", c.env));
    ASSERT_EQ(exit_code(enc), 0) << c.env << ": " << enc.out;
    std::vector<codec::Key> keys;
    keys.push_back(codec::read_key_file(c.expected));
    EXPECT_EQ(codec::decrypt_secret(parse(enc.out)["value"].get<std::string>(), keys), kSecret);
    fs::remove(c.expected);
  }
}

TEST_F(SecretCli, EncryptsStdinIntoAValueTheLibraryDecrypts) {
  const std::string id = keygen("k");
  auto r = encrypt(std::string(kSecret) + "\\n", "--key-file " + path("k").string(), "2>" + path("err").string());
  ASSERT_EQ(exit_code(r), 0) << r.out << read(path("err"));
  ASSERT_FALSE(r.out.empty());
  EXPECT_EQ(r.out.back(), '\n');
  const std::string value = r.out.substr(0, r.out.size() - 1);
  EXPECT_EQ(value.rfind("enc:v1:" + id + ":", 0), 0u);
  EXPECT_EQ(value.find_first_of(" \n\t"), std::string::npos);
  EXPECT_FALSE(contains(value, kSecret));
  EXPECT_EQ(read(path("err")), "");         // no prompt: stdin is not a terminal
  EXPECT_EQ(decrypt(value, "k"), kSecret);  // one trailing newline stripped

  // --json: the value and the key id, nothing else.
  auto j = encrypt(kSecret, "--json --key-file " + path("k").string(), "2>/dev/null");
  ASSERT_EQ(exit_code(j), 0) << j.out;
  const auto reply = parse(j.out);
  EXPECT_EQ(reply.size(), 2u);
  EXPECT_EQ(reply["key_id"], id);
  EXPECT_EQ(decrypt(reply["value"].get<std::string>(), "k"), kSecret);
  EXPECT_FALSE(contains(j.out, kSecret));
}

TEST_F(SecretCli, OnlyOneTrailingNewlineIsStripped) {
  keygen("k");
  const std::string key = "--key-file " + path("k").string();
  const struct {
    std::string input;  // printf format
    std::string secret;
  } cases[] = {
      {"no-newline", "no-newline"},       {"crlf\\r\\n", "crlf"},   {"two\\n\\n", "two\n"},
      {"multi\\nline\\n", "multi\nline"}, {" spaced ", " spaced "}, {"p\\303\\244ss", "p\xc3\xa4ss"},
  };
  for (const auto& c : cases) {
    auto r = encrypt(c.input, key, "2>/dev/null");
    ASSERT_EQ(exit_code(r), 0) << c.input << ": " << r.out;
    EXPECT_EQ(decrypt(r.out.substr(0, r.out.size() - 1), "k"), c.secret) << c.input;
  }
}

TEST_F(SecretCli, RefusesAnEmptySecret) {
  keygen("k");
  for (const std::string input : {"", "\\n", "\\r\\n"}) {
    auto r = encrypt(input, "--key-file " + path("k").string());
    EXPECT_EQ(exit_code(r), 1) << r.out;
    EXPECT_EQ(r.out, "modelzoo: the secret is empty: give it on standard input\n");
  }
  auto j = encrypt("", "--json --key-file " + path("k").string(), "2>/dev/null");
  EXPECT_EQ(exit_code(j), 1);
  EXPECT_EQ(parse(j.out)["error"]["message"], "the secret is empty: give it on standard input");
}

TEST_F(SecretCli, RefusesNonUtf8AndOverlongSecretsWithoutShowingThem) {
  keygen("k");
  auto r = encrypt("abc\\377def", "--key-file " + path("k").string());
  EXPECT_EQ(exit_code(r), 1);
  EXPECT_EQ(r.out, "modelzoo: the secret is not valid UTF-8 text\n");

  auto big = run("head -c 70000 /dev/zero | tr '\\0' 'x' | " + cli("secret encrypt --key-file " + path("k").string()));
  EXPECT_EQ(exit_code(big), 1);
  EXPECT_EQ(big.out, "modelzoo: the secret is longer than 65536 bytes\n");
}

TEST_F(SecretCli, TheSecretIsNeverTakenFromTheCommandLineNorEchoedFromIt) {
  keygen("k");
  for (const std::string& args :
       {std::string(kSecret), std::string(kSecret) + " two words", "--pw=" + std::string(kSecret),
        std::string("--") + kSecret, std::string("-- ") + kSecret}) {
    auto r = encrypt("", args + " --key-file " + path("k").string());
    EXPECT_EQ(exit_code(r), 2) << r.out;  // a usage error
    EXPECT_TRUE(contains(r.out, "reads the secret from standard input")) << args;
    EXPECT_FALSE(contains(r.out, kSecret)) << args;
    auto j = encrypt("", "--json " + args + " --key-file " + path("k").string(), "2>/dev/null");
    EXPECT_EQ(exit_code(j), 2) << j.out;
    EXPECT_FALSE(contains(j.out, kSecret)) << args;
  }
}

TEST_F(SecretCli, RefusesAGroupReadableKeyFile) {
  keygen("k");
  ASSERT_EQ(::chmod(path("k").c_str(), 0640), 0);
  auto r = encrypt(kSecret, "--key-file " + path("k").string());
  EXPECT_EQ(exit_code(r), 1);
  EXPECT_EQ(r.out,
            "modelzoo: key file " + path("k").string() + " is readable by other users (mode 0640); chmod 600 it\n");
  EXPECT_FALSE(contains(r.out, kSecret));
}

TEST_F(SecretCli, NamesAMissingOrMalformedKeyFile) {
  auto missing = encrypt(kSecret, "--key-file " + path("none").string());
  EXPECT_EQ(exit_code(missing), 1);
  EXPECT_EQ(missing.out, "modelzoo: key file " + path("none").string() +
                             " does not exist; create it with `modelzoo secret keygen` (or name it with --key-file)\n");

  std::ofstream(path("bad")) << "not a key\n";
  ASSERT_EQ(::chmod(path("bad").c_str(), 0600), 0);
  auto bad = encrypt(kSecret, "--key-file " + path("bad").string());
  EXPECT_EQ(exit_code(bad), 1);
  EXPECT_TRUE(contains(bad.out, "key file " + path("bad").string() + " is malformed"));
}

// `secret encrypt --key-file KEY` with a pseudo-terminal as its stdin, stdout and stderr.
class OnATerminal {
 public:
  explicit OnATerminal(const fs::path& key) {
    master_ = ::posix_openpt(O_RDWR | O_NOCTTY);
    if (master_ < 0 || ::grantpt(master_) != 0 || ::unlockpt(master_) != 0) return;
    const std::string slave = ::ptsname(master_);
    const std::string exe = (bin_dir() / "modelzoo").string();
    pid_ = ::fork();
    if (pid_ == 0) {
      ::setsid();
      const int fd = ::open(slave.c_str(), O_RDWR);  // becomes the controlling terminal
      if (fd < 0) ::_exit(127);
      ::dup2(fd, 0);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::execl(exe.c_str(), exe.c_str(), "secret", "encrypt", "--key-file", key.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
  }
  ~OnATerminal() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (master_ >= 0) ::close(master_);
  }
  bool started() const { return master_ >= 0 && pid_ > 0; }

  // Reads until `text` has been seen (true) or `limit` passes, or the terminal closes.
  bool read_until(const std::string& text, std::chrono::milliseconds limit = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (output.find(text) == std::string::npos) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd p{master_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char buf[512];
      const ssize_t n = ::read(master_, buf, sizeof buf);
      if (n <= 0) return output.find(text) != std::string::npos;  // EIO: the other side closed
      output.append(buf, static_cast<std::size_t>(n));
    }
    return true;
  }
  // Reads until the terminal closes (the command exited) or `limit` passes.
  void read_to_end(std::chrono::milliseconds limit = 10s) { read_until(std::string(1, '\0'), limit); }
  bool echo() const {
    termios t{};
    return ::tcgetattr(master_, &t) == 0 && (t.c_lflag & ECHO) != 0;
  }
  void type(const std::string& text) {
    ASSERT_EQ(::write(master_, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  }
  // The exit status, once it has exited.
  int wait() {
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }

  std::string output;

 private:
  int master_ = -1;
  pid_t pid_ = -1;
};

TEST_F(SecretCli, FromATerminalPromptsAndReadsWithoutEcho) {
  keygen("k");
  OnATerminal term(path("k"));
  ASSERT_TRUE(term.started());
  ASSERT_TRUE(term.read_until("secret: ")) << term.output;
  ASSERT_TRUE(wait_until([&] { return !term.echo(); })) << "echo still on";
  term.type(std::string(kSecret) + "\n");
  term.read_to_end();
  const int status = term.wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << term.output;
  EXPECT_TRUE(term.echo());  // restored
  EXPECT_FALSE(contains(term.output, kSecret));
  const auto start = term.output.find("enc:v1:");
  ASSERT_NE(start, std::string::npos) << term.output;
  const std::string value = term.output.substr(start, term.output.find('\r', start) - start);
  EXPECT_EQ(decrypt(value, "k"), kSecret);
}

TEST_F(SecretCli, InterruptedAtThePromptRestoresEcho) {
  keygen("k");
  OnATerminal term(path("k"));
  ASSERT_TRUE(term.started());
  ASSERT_TRUE(term.read_until("secret: ")) << term.output;
  ASSERT_TRUE(wait_until([&] { return !term.echo(); })) << "echo still on";
  term.type("\x03");  // ^C: SIGINT to the foreground process group
  const int status = term.wait();
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGINT) << status;
  EXPECT_TRUE(term.echo());
}

TEST_F(SecretCli, ThereIsNoDecryptCommand) {
  auto r = run(cli("secret decrypt --key-file " + path("k").string()));
  EXPECT_EQ(exit_code(r), 2) << r.out;
}

}  // namespace
}  // namespace modelzoo::testing

// The runtime directory and its sockets are private to the daemon's user
// (docs/security.md, "Local peers: the runtime directory"): real daemon, real sockets, and
// (when the tests run as root, as in CI) a real second user trying to connect.
#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "daemon_harness.h"

namespace modelzoo::testing {
namespace {

constexpr uid_t kNobody = 65534;

// Connects to the unix socket `path` as user `uid` (in a child process); 0 or the errno.
int connect_as(uid_t uid, const fs::path& path) {
  pid_t pid = ::fork();
  if (pid == 0) {
    if (::setgroups(0, nullptr) != 0 || ::setgid(uid) != 0 || ::setuid(uid) != 0) ::_exit(200);
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
    int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    ::_exit(rc == 0 ? 0 : errno);
  }
  int st = 0;
  ::waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

TEST(Security, RuntimeDirectoryAndSocketsArePrivate) {
  Daemon d("sources:\n  - name: mem\n    plugin: memory\n", false);
  fs::create_directories(d.runtime_dir());
  ::chmod(d.runtime_dir().c_str(), 0777);  // left open by someone: the daemon closes it
  d.start();
  d.wait_plugin("mem");
  struct stat st {};
  ASSERT_EQ(::lstat(d.runtime_dir().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  for (const char* name : {"plugins.sock", "client.sock", "events.sock"}) {
    fs::path p = d.runtime_dir() / name;
    ASSERT_EQ(::lstat(p.c_str(), &st), 0) << p;
    EXPECT_TRUE(S_ISSOCK(st.st_mode)) << p;
    EXPECT_EQ(st.st_mode & 077, 0u) << p << ": group or others have access";
    EXPECT_EQ(st.st_uid, ::getuid()) << p;
  }
  if (::getuid() != 0) GTEST_SKIP() << "not root: cannot try the sockets as another user";
  // The parent of the runtime directory is the test's private temp dir; open it for the
  // other user so that only the runtime directory's own mode stands in the way.
  ::chmod(d.dir().c_str(), 0755);
  for (const char* name : {"plugins.sock", "client.sock", "events.sock"})
    EXPECT_EQ(connect_as(kNobody, d.runtime_dir() / name), EACCES) << name;
  // The daemon's own user connects fine (the check above can fail).
  EXPECT_EQ(connect_as(::getuid(), d.runtime_dir() / "client.sock"), 0);
}

// Runs the daemon on `d`'s directories and expects it to refuse to start (bounded: a daemon
// that starts after all is stopped by `timeout`, and the test fails on its status).
Run start_refused(Daemon& d) {
  return run("MODELZOO_RUNTIME_DIR=" + d.runtime_dir().string() + " MODELZOO_CACHE_DIR=" + d.cache_dir().string() +
             " timeout 20 " + (bin_dir() / "modelzood").string() + " --config " + (d.dir() / "modelzood.yaml").string());
}

TEST(Security, RuntimeDirectoryOfAnotherUserOrASymlinkIsRefused) {
  if (::getuid() != 0) GTEST_SKIP() << "not root: cannot make a directory owned by another user";
  {
    Daemon d("sources: []\n", false);
    fs::create_directories(d.runtime_dir());
    ASSERT_EQ(::chown(d.runtime_dir().c_str(), kNobody, kNobody), 0);
    auto r = start_refused(d);
    EXPECT_NE(r.status, 0);
    EXPECT_NE(r.out.find("belongs to another user"), std::string::npos) << r.out;
  }
  {
    Daemon d("sources: []\n", false);
    fs::create_directories(d.dir() / "elsewhere");
    fs::create_directory_symlink(d.dir() / "elsewhere", d.runtime_dir());
    auto r = start_refused(d);
    EXPECT_NE(r.status, 0);
    EXPECT_NE(r.out.find("is not a directory"), std::string::npos) << r.out;
    EXPECT_FALSE(fs::exists(d.dir() / "elsewhere" / "client.sock"));
  }
}

}  // namespace
}  // namespace modelzoo::testing

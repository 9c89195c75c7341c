// modelzoo-test-limits-probe: started by the daemon as a plugin (it never says hello), it
// reports what its resource limits and its sandbox let it do, then misbehaves on demand. It
// links nothing of modelzoo and is built without sanitizers, so that it can start under an
// address-space limit in the ASan build too.
//
//   modelzoo-test-limits-probe ACTION...
//
// The report goes to $MODELZOO_PLUGIN_DATA_DIR/report.txt, written whole (through a rename)
// after the last action that returns, ending with "done". Actions, in order:
//   limits           "limit <line>" for each line of /proc/self/limits
//   raise-nofile     "raise-nofile ok|<errno name>": raise the open-files hard limit by 1000
//   open-files       "open-files <count> <errno name>": open /dev/null until it fails (max 100000)
//   alloc=BYTES      "alloc ok" or, when malloc fails, an error line on stderr and exit 1
//   read=PATH        "read PATH ok|<errno name>"
//   write=PATH       "write PATH ok|<errno name>" (creates the file)
//   exec=PATH        "exec PATH ok|<errno name>" (runs PATH --version, waits)
//   write-big=BYTES  writes BYTES to data/big.bin (a file-size limit ends it with SIGXFSZ)
//   burn             spins on the CPU forever (a CPU limit ends it with SIGXCPU)
//   burn-ignoring    the same with SIGXCPU ignored (the kernel's SIGKILL at the hard limit ends it)
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

std::string errno_name(int e) {
  const char* n = ::strerrorname_np(e);
  return n ? n : std::to_string(e);
}

[[noreturn]] void burn() {
  volatile unsigned long x = 0;
  for (;;) x = x + 1;
}

}  // namespace

int main(int argc, char** argv) {
  const char* data = std::getenv("MODELZOO_PLUGIN_DATA_DIR");
  if (!data) {
    std::fprintf(stderr, "error MODELZOO_PLUGIN_DATA_DIR is not set\n");
    return 2;
  }
  std::string dir = data;
  std::ostringstream report;
  auto save = [&] {
    std::string tmp = dir + "/report.tmp";
    std::ofstream(tmp) << report.str();
    if (std::rename(tmp.c_str(), (dir + "/report.txt").c_str()) != 0)
      std::fprintf(stderr, "error cannot write the report: %s\n", std::strerror(errno));
  };
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    std::string value = a.find('=') == std::string::npos ? "" : a.substr(a.find('=') + 1);
    if (a == "limits") {
      std::ifstream in("/proc/self/limits");
      std::string line;
      while (std::getline(in, line)) report << "limit " << line << "\n";
    } else if (a == "raise-nofile") {
      rlimit r{};
      ::getrlimit(RLIMIT_NOFILE, &r);
      r.rlim_max += 1000;
      report << "raise-nofile " << (::setrlimit(RLIMIT_NOFILE, &r) == 0 ? "ok" : errno_name(errno)) << "\n";
    } else if (a == "open-files") {
      std::vector<int> fds;
      int err = 0;
      while (fds.size() < 100000) {
        int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
          err = errno;
          break;
        }
        fds.push_back(fd);
      }
      for (int fd : fds) ::close(fd);
      report << "open-files " << fds.size() << " " << (err ? errno_name(err) : "none") << "\n";
    } else if (a.rfind("alloc=", 0) == 0) {
      std::size_t n = std::stoull(value);
      void* p = std::malloc(n);
      if (!p) {
        std::fprintf(stderr, "error failed to allocate %zu bytes: %s\n", n, std::strerror(errno));
        save();
        return 1;
      }
      std::memset(p, 1, 4096);
      std::free(p);
      report << "alloc ok\n";
    } else if (a.rfind("read=", 0) == 0) {
      int fd = ::open(value.c_str(), O_RDONLY | O_CLOEXEC);
      report << "read " << value << " " << (fd >= 0 ? "ok" : errno_name(errno)) << "\n";
      if (fd >= 0) ::close(fd);
    } else if (a.rfind("write=", 0) == 0) {
      int fd = ::open(value.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
      report << "write " << value << " " << (fd >= 0 ? "ok" : errno_name(errno)) << "\n";
      if (fd >= 0) ::close(fd);
    } else if (a.rfind("exec=", 0) == 0) {
      pid_t pid = ::fork();
      if (pid == 0) {
        int null = ::open("/dev/null", O_WRONLY);
        ::dup2(null, 1);
        ::dup2(null, 2);
        ::execl(value.c_str(), value.c_str(), "--version", static_cast<char*>(nullptr));
        ::_exit(errno == EACCES ? 126 : 127);
      }
      int st = 0;
      ::waitpid(pid, &st, 0);
      int code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
      report << "exec " << value << " " << (code == 0 ? "ok" : code == 126 ? "EACCES" : "failed " + std::to_string(code)) << "\n";
    } else if (a.rfind("write-big=", 0) == 0) {
      save();  // what came before, in case the write ends the process
      std::size_t n = std::stoull(value);
      int fd = ::open((dir + "/big.bin").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      std::vector<char> block(65536, 'x');
      for (std::size_t done = 0; fd >= 0 && done < n; done += block.size())
        if (::write(fd, block.data(), block.size()) < 0) {
          std::fprintf(stderr, "error write: %s\n", std::strerror(errno));
          return 1;
        }
      report << "write-big ok\n";
    } else if (a == "burn" || a == "burn-ignoring") {
      if (a == "burn-ignoring") ::signal(SIGXCPU, SIG_IGN);
      report << a << "\n";
      save();
      burn();
    } else {
      std::fprintf(stderr, "error unknown action '%s'\n", a.c_str());
      return 2;
    }
  }
  report << "done\n";
  save();
  return 0;
}

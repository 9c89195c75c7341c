// The line reader shared by the daemon (plugin stdout/stderr) and the conformance kit.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "modelzoo/process/child_process.h"

namespace modelzoo::supervisor {
namespace {

struct Pipe {
  int r = -1, w = -1;
  Pipe() {
    int fds[2];
    EXPECT_EQ(::pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
    r = fds[0];
    w = fds[1];
  }
  ~Pipe() {
    if (r >= 0) ::close(r);
    if (w >= 0) ::close(w);
  }
  void write(const std::string& s) { ASSERT_EQ(::write(w, s.data(), s.size()), static_cast<ssize_t>(s.size())); }
  void close_write() {
    ::close(w);
    w = -1;
  }
};

TEST(OutputLines, CompleteLinesNowTheRestWhenTheStreamEnds) {
  Pipe p;
  std::string partial;
  std::vector<std::string> lines;
  p.write("one\ntwo\r\nthr");
  read_output_lines(p.r, partial, lines);
  EXPECT_EQ(lines, (std::vector<std::string>{"one", "two\r"}));
  EXPECT_EQ(partial, "thr");
  EXPECT_GE(p.r, 0) << "nothing more to read is not the end of the stream";
  p.write("ee\nfour");
  p.close_write();
  read_output_lines(p.r, partial, lines);
  EXPECT_EQ(lines, (std::vector<std::string>{"one", "two\r", "three", "four"}));
  EXPECT_EQ(p.r, -1) << "closed at EOF";
  EXPECT_TRUE(partial.empty());
  read_output_lines(p.r, partial, lines);  // a closed stream: nothing happens
  EXPECT_EQ(lines.size(), 4u);
}

TEST(OutputLines, ALineWithoutNewlineIsCutEvery16KiBAndNothingIsLost) {
  Pipe p;
  std::string partial;
  std::vector<std::string> lines;
  p.write(std::string(40000, 'x') + "\nend");
  p.close_write();
  read_output_lines(p.r, partial, lines);
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[0].size(), 16384u);
  EXPECT_EQ(lines[1].size(), 16384u);
  EXPECT_EQ(lines[2], std::string(40000 - 2 * 16384, 'x'));
  EXPECT_EQ(lines[3], "end");
}

TEST(OutputLines, WaitStatusesInWords) {
  EXPECT_EQ(describe_wait_status(3 << 8), "exit 3");
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::raise(SIGKILL);
    ::_exit(0);
  }
  int st = 0;
  ASSERT_EQ(::waitpid(pid, &st, 0), pid);
  EXPECT_EQ(describe_wait_status(st), "signal 9 (SIGKILL)");
}

}  // namespace
}  // namespace modelzoo::supervisor

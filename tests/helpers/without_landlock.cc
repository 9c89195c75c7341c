// Runs a command as on a kernel without Landlock: a seccomp filter makes the three Landlock
// system calls fail with ENOSYS, for the command and everything it starts. The isolation
// tests run modelzood under it to check `sandbox: landlock` (runs unconfined, says why) and
// `sandbox: require` (refuses to start the plugin) where the kernel has Landlock.
//   modelzoo-test-without-landlock PROGRAM ARGS...
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define MODELZOO_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define MODELZOO_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s PROGRAM ARGS...\n", argv[0]);
    return 2;
  }
#ifndef MODELZOO_AUDIT_ARCH
  fprintf(stderr, "%s: no seccomp filter for this architecture\n", argv[0]);
  return 77;
#else
  struct sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, MODELZOO_AUDIT_ARCH, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),  // another ABI: leave it alone
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_landlock_create_ruleset, 3, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_landlock_add_rule, 2, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_landlock_restrict_self, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)),
  };
  struct sock_fprog prog = {static_cast<unsigned short>(sizeof filter / sizeof filter[0]), filter};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
    fprintf(stderr, "%s: cannot install the seccomp filter: %s\n", argv[0], strerror(errno));
    return 77;
  }
  execv(argv[1], argv + 1);
  fprintf(stderr, "%s: cannot run %s: %s\n", argv[0], argv[1], strerror(errno));
  return 127;
#endif
}

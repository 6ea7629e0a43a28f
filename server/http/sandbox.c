/* sandbox.c: see sandbox.h. */
#include "sandbox.h"

#include <errno.h>
#include <grp.h>
#include <sched.h>
#include <pwd.h>
#include <seccomp.h>
#include <stdbool.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

int sandbox_drop_privileges(const char *user, nn_error *err) {
    if (geteuid() != 0) {
        if (user) {
            struct passwd *pw = getpwnam(user);
            if (!pw) return nn_fail(err, "--user %s: no such user", user);
            if (pw->pw_uid != geteuid())
                return nn_fail(err, "--user %s: only root can change user", user);
        }
        return 0;
    }
    if (!user) user = "nobody";
    struct passwd *pw = getpwnam(user);
    if (!pw) return nn_fail(err, "--user %s: no such user", user);
    if (pw->pw_uid == 0) return 0; /* asked to stay root */
    uid_t uid = pw->pw_uid;
    gid_t gid = pw->pw_gid;
    if (setgroups(0, NULL) != 0 || setgid(gid) != 0 || setuid(uid) != 0)
        return nn_fail(err, "cannot become user %s: %s", user, strerror(errno));
    if (setuid(0) == 0) return nn_fail(err, "became %s, yet root could be regained", user);
    /* setuid cleared the dumpable flag; keep it so (no core of requests) */
    return 0;
}

#if !defined(__SANITIZE_ADDRESS__) /* see sandbox_seccomp */
/* The system calls a serving daemon makes, found by running the HTTP and
 * hostile test groups under strace -f. */
static const int allowed[] = {
    /* I/O on sockets and files */
    SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(readv), SCMP_SYS(writev),
    SCMP_SYS(pread64), SCMP_SYS(pwrite64), SCMP_SYS(sendfile), SCMP_SYS(sendto),
    SCMP_SYS(recvfrom), SCMP_SYS(sendmsg), SCMP_SYS(recvmsg), SCMP_SYS(accept),
    SCMP_SYS(accept4), SCMP_SYS(shutdown), SCMP_SYS(close), SCMP_SYS(setsockopt),
    SCMP_SYS(getsockopt), SCMP_SYS(getsockname), SCMP_SYS(getpeername),
    SCMP_SYS(fcntl), SCMP_SYS(ioctl), SCMP_SYS(lseek), SCMP_SYS(pipe2),
    SCMP_SYS(eventfd2), SCMP_SYS(dup), SCMP_SYS(dup3),
    /* opening and reading files: model reloads, the page */
    SCMP_SYS(openat), SCMP_SYS(open), SCMP_SYS(fstat), SCMP_SYS(newfstatat),
    SCMP_SYS(stat), SCMP_SYS(lstat), SCMP_SYS(statx), SCMP_SYS(readlink),
    SCMP_SYS(readlinkat), SCMP_SYS(getdents64), SCMP_SYS(access), SCMP_SYS(faccessat),
    SCMP_SYS(faccessat2), SCMP_SYS(getcwd),
    /* polling */
    SCMP_SYS(epoll_create1), SCMP_SYS(epoll_ctl), SCMP_SYS(epoll_wait),
    SCMP_SYS(epoll_pwait), SCMP_SYS(poll), SCMP_SYS(ppoll), SCMP_SYS(select),
    SCMP_SYS(pselect6),
    /* memory */
    SCMP_SYS(mmap), SCMP_SYS(munmap), SCMP_SYS(mremap), SCMP_SYS(mprotect),
    SCMP_SYS(brk), SCMP_SYS(madvise),
    /* threads and time */
    SCMP_SYS(futex), SCMP_SYS(set_robust_list),
    SCMP_SYS(rseq), SCMP_SYS(sched_yield), SCMP_SYS(sched_getaffinity),
    SCMP_SYS(getpriority), SCMP_SYS(setpriority), SCMP_SYS(gettid), SCMP_SYS(getpid),
    SCMP_SYS(getuid), SCMP_SYS(geteuid), SCMP_SYS(getgid), SCMP_SYS(getegid),
    SCMP_SYS(clock_gettime), SCMP_SYS(clock_getres), SCMP_SYS(clock_nanosleep),
    SCMP_SYS(nanosleep), SCMP_SYS(gettimeofday), SCMP_SYS(getrandom),
    SCMP_SYS(sysinfo), SCMP_SYS(uname), SCMP_SYS(prlimit64), SCMP_SYS(getrusage),
    /* signals and ending */
    SCMP_SYS(rt_sigaction), SCMP_SYS(rt_sigprocmask), SCMP_SYS(rt_sigreturn),
    SCMP_SYS(rt_sigtimedwait), SCMP_SYS(sigaltstack), SCMP_SYS(tgkill),
    SCMP_SYS(exit), SCMP_SYS(exit_group), SCMP_SYS(restart_syscall),
};
#endif

/* Never needed, and the first thing an exploit wants: the process dies. */
static const int fatal[] = {
    SCMP_SYS(execve), SCMP_SYS(execveat), SCMP_SYS(fork), SCMP_SYS(vfork),
#if !defined(__SANITIZE_ADDRESS__)
    SCMP_SYS(ptrace), SCMP_SYS(process_vm_readv),
#endif
    SCMP_SYS(process_vm_writev), SCMP_SYS(kexec_load), SCMP_SYS(init_module),
    SCMP_SYS(finit_module), SCMP_SYS(mount), SCMP_SYS(bpf), SCMP_SYS(setuid),
    SCMP_SYS(setgid), SCMP_SYS(setreuid), SCMP_SYS(setresuid), SCMP_SYS(socket),
    SCMP_SYS(connect), SCMP_SYS(bind), SCMP_SYS(listen),
};

int sandbox_seccomp(nn_error *err) {
#if defined(__SANITIZE_ADDRESS__)
    /* AddressSanitizer's run-time makes calls the daemon never does (at
     * exit LeakSanitizer stops the world from a traced clone, and spins if
     * refused): in sanitizer builds calls outside the list are allowed;
     * the fatal ones below still kill. */
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
#else
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
#endif
    if (!ctx) return nn_fail(err, "seccomp: cannot make a filter");
    int rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
#if !defined(__SANITIZE_ADDRESS__) /* allowing is the default there */
    for (size_t i = 0; rc == 0 && i < sizeof allowed / sizeof allowed[0]; i++)
        if (allowed[i] >= 0) rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, allowed[i], 0);
#endif
    for (size_t i = 0; rc == 0 && i < sizeof fatal / sizeof fatal[0]; i++)
        if (fatal[i] >= 0) rc = seccomp_rule_add(ctx, SCMP_ACT_KILL_PROCESS, fatal[i], 0);
    /* Threads only: clone must carry CLONE_THREAD (a new process would not).
     * clone3 passes its flags in memory a filter cannot read, so it is
     * answered ENOSYS and the C library falls back to clone. */
#if !defined(__SANITIZE_ADDRESS__)
    if (rc == 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
                              SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
#endif
    if (rc == 0) rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
    if (rc == 0) rc = seccomp_load(ctx);
    seccomp_release(ctx);
    if (rc != 0) return nn_fail(err, "seccomp: the filter was refused: %s", strerror(-rc));
    return 0;
}

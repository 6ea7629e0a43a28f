/* sandbox.h: what `digitd serve` gives up once it is listening, so that a
 * bug reached by a hostile request can do little: root's privileges
 * (dropped to an ordinary user) and most of the kernel's system calls
 * (a seccomp filter). */
#ifndef DIGITD_SANDBOX_H
#define DIGITD_SANDBOX_H

#include "nn.h"

/* When the process runs as root, becomes `user` (its uid, gid, and no
 * supplementary groups); user "root" keeps root. Not root: nothing
 * happens (user must then be NULL, or name the current user).
 * Returns 0, or -1 with err (unknown user, a failed set*id). */
int sandbox_drop_privileges(const char *user, nn_error *err);

/* Installs a seccomp filter on every thread of the process that allows
 * only the system calls a running daemon makes (network I/O, memory,
 * threads, clocks, reading files for reloads and the page); anything
 * else fails with EPERM, and execve, ptrace and the like kill the
 * process. Returns 0, or -1 with err when the kernel refuses. */
int sandbox_seccomp(nn_error *err);

#endif

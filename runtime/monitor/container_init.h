#pragma once
// The code that runs inside a new container process: in the monitor's clone()d child (the
// container's init) and in `cubelet-monitor exec`. Each function reports failure by writing a
// message to `err_fd` and calling _exit(), so the caller learns the cause before anything else.
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/monitor/spec.h"

namespace monitor {

struct InitFds {
  int sync_read = -1;   // "go" byte from the monitor once cubelet put the pid in the cgroup
                        // (only when the spec has no cgroup_procs)
  int err_write = -1;   // CLOEXEC: EOF = exec succeeded, else an error message
  int stdout_write = -1;
  int stderr_write = -1;
  int rootfs_mount = -1;  // a detached mount of the rootfs (fsmount) to attach, else -1
  // When >= 0: a "rootfs" line arrives there (with the mount fd, or none: mount from the spec)
  // before the init needs the rootfs.
  int rootfs_channel = -1;
  // Not an fd: with CLONE_VM (the monitor's memory shared until exec) the init stores its start
  // time (/proc/<pid>/stat field 22) here just before exec, so the monitor need not read it
  // while the exec runs (0.7 ms there on small VMs, competing with the exec for a core).
  uint64_t* start_ticks = nullptr;
};

// One line from cubelet's command socket (fd 4) and the fd it may carry (SCM_RIGHTS; -1 when
// none). A pipe (spawned by an older cubelet) carries no fds: plain reads.
bool ReadCommand(int fd, std::string* out, int* passed_fd);

// Loaded before pivot_root (the program file lives on the host).
std::vector<char> LoadSeccompProgram(const std::string& path, std::string* error);

// Runs in a child made with CLONE_NEWPID|CLONE_NEWNS. Never returns.
[[noreturn]] void RunContainerInit(const ContainerSpec& spec, const InitFds& fds);

// Identity, capabilities, no_new_privs, seccomp, then execve with PATH lookup. Used by both the
// init (after pivot_root) and exec. Never returns.
[[noreturn]] void FinishAndExec(const ContainerSpec& spec, const std::vector<std::string>& args,
                                const std::vector<char>& seccomp, int err_fd);

[[noreturn]] void DieWith(int err_fd, const std::string& message);
// "context: strerror(errno)".
[[noreturn]] void DieErrno(int err_fd, const std::string& context);

}  // namespace monitor

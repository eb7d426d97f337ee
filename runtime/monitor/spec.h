#pragma once
// The files cubelet and cubelet-monitor exchange through a container's state directory. A small
// line format (`key=value`, values escaped, lists as repeated keys) so that the monitor needs no
// JSON library and stays tiny. Everything here is dependency-free (libc + libstdc++ only).
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace monitor {

struct MountSpec {
  std::string source;
  std::string destination;  // absolute path inside the container
  std::string type = "bind";  // bind | tmpfs
  bool readonly = false;
  bool recursive = true;
};

// What the container's init needs to set itself up and exec (the runtime's "config.json").
struct ContainerSpec {
  std::string id;
  std::string name;  // container name, for messages
  // Root filesystem: overlay(lower, upper, work) mounted on `rootfs`, or when upper is empty a
  // recursive bind mount of `lower` (a private copy made by the runtime).
  std::string rootfs;
  std::string lower;       // overlay lowerdir: "top:...:bottom"
  std::string lower_base;  // when set, `lower` is relative to it (long layer lists)
  std::string upper;
  std::string work;
  // Mount the overlay with "volatile" (Linux 5.10+): no sync of the upper filesystem when the
  // container's mount namespace goes away. A container's writable layer does not outlive a host
  // crash anyway (the container is recreated), and that sync cost ~8 ms per container exit.
  bool overlay_volatile = false;
  bool readonly_rootfs = false;
  // Pinned pod namespaces to join (empty = keep the monitor's).
  std::string netns;
  std::string ipcns;
  std::string utsns;
  bool host_pid = false;  // hostPID: no new pid namespace
  std::vector<MountSpec> mounts;
  std::vector<std::string> masked_paths;
  std::vector<std::string> readonly_paths;
  std::vector<std::string> args;
  std::vector<std::string> env;
  std::string cwd = "/";
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<uint32_t> groups;
  uint64_t capabilities = 0;  // bit n = capability n; bounding = effective = permitted
  bool no_new_privs = false;
  std::string seccomp_bpf;    // path of a raw BPF program (struct sock_filter[]) or empty
  bool has_oom_score_adj = false;
  int oom_score_adj = 0;
  std::string log_path;       // CRI log file
  std::string oom_counter;    // memory.oom_control (v1) or memory.events (v2) of the container
  bool privileged = false;
  // cgroup.procs files the init writes "0" to before anything else (one per v1 hierarchy, one on
  // v2). Empty: the older protocol, where the monitor reports "pid N" and cubelet moves the pid
  // and answers "go" (one round trip through cubelet per start).
  std::vector<std::string> cgroup_procs;
  struct Rlimit {
    int resource = 0;
    uint64_t soft = 0, hard = 0;
  };
  std::vector<Rlimit> rlimits;
};

// Written by the monitor when the container's process has exec'd.
struct StartRecord {
  int init_pid = 0;
  uint64_t init_start_ticks = 0;     // /proc/PID/stat field 22, guards against pid reuse
  int monitor_pid = 0;
  uint64_t monitor_start_ticks = 0;
  int64_t started_at_ns = 0;
};

// Written by the monitor when the container's process is gone (or could not be started).
struct ExitRecord {
  int exit_code = 0;       // 128+signal when killed by a signal; 128 when the start failed
  int signal = 0;
  int64_t finished_at_ns = 0;
  bool oom_killed = false;
  std::string reason;      // "Completed" | "Error" | "OOMKilled" | "StartError"
  std::string message;
};

std::string Escape(std::string_view s);
std::string Unescape(std::string_view s);

std::string EncodeSpec(const ContainerSpec& spec);
bool DecodeSpec(std::string_view text, ContainerSpec* out, std::string* error);

std::string EncodeStart(const StartRecord& r);
bool DecodeStart(std::string_view text, StartRecord* out);

std::string EncodeExit(const ExitRecord& r);
bool DecodeExit(std::string_view text, ExitRecord* out);

// Small libc helpers shared by the monitor and the runtime.
bool ReadWholeFile(const std::string& path, std::string* out);
// temp file + rename (+ fsync when `sync`). Container state only has to survive process
// restarts: after a host crash every container is gone anyway, so the hot path skips fsync.
bool WriteFileAtomically(const std::string& path, std::string_view data, bool sync = false);
// /proc/PID/stat field 22 (start time in clock ticks since boot); 0 if the process is gone.
uint64_t ProcessStartTicks(int pid);
int64_t NowUnixNanos();

}  // namespace monitor

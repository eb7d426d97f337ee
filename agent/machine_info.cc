#include "agent/machine_info.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <sched.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/file.h"
#include "base/log.h"
#include "base/strings.h"

#ifndef CUBELET_VERSION
#define CUBELET_VERSION "0.0.0"
#endif

namespace agent {
namespace {

// The upstream release whose API behaviour cubelet implements (see the samples' v1.32.5 server).
constexpr const char* kKubernetesVersion = "v1.32.0";

std::string ReadTrimmed(const std::string& path) {
  auto r = base::ReadFile(path);
  if (!r) return "";
  return std::string(base::Trim(*r));
}

int64_t ParseInt(std::string_view s, int64_t fallback = -1) {
  s = base::Trim(s);
  if (s.empty()) return fallback;
  int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return fallback;
    v = v * 10 + (c - '0');
  }
  return v;
}

// "2048kB" directory suffix -> "2Mi" like resource.Quantity prints page sizes.
std::string HugePageResourceName(int64_t size_kb) {
  static const char* kSuffix[] = {"Ki", "Mi", "Gi", "Ti", "Pi"};
  int64_t v = size_kb;
  int i = 0;
  while (v % 1024 == 0 && i < 4) {
    v /= 1024;
    ++i;
  }
  return "hugepages-" + std::to_string(v) + kSuffix[i];
}

bool IsLoopback(const sockaddr* sa) {
  if (sa->sa_family == AF_INET) {
    auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
  }
  if (sa->sa_family == AF_INET6) {
    auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
  }
  return true;
}

bool IsLinkLocal(const sockaddr* sa) {
  if (sa->sa_family == AF_INET) {
    auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    return (ntohl(in->sin_addr.s_addr) >> 16) == 0xa9fe;  // 169.254/16
  }
  if (sa->sa_family == AF_INET6) {
    auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    return IN6_IS_ADDR_LINKLOCAL(&in6->sin6_addr);
  }
  return false;
}

std::string AddrToString(const sockaddr* sa) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (sa->sa_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, buf, sizeof buf);
  } else if (sa->sa_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, buf, sizeof buf);
  }
  return buf;
}

bool IsIPLiteral(const std::string& s) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

// Name of the interface holding the IPv4 default route, from /proc/net/route.
std::string DefaultRouteInterface() {
  auto table = base::ReadFile("/proc/net/route");
  if (!table) return "";
  for (const auto& line : base::Split(*table, '\n', true)) {
    auto cols = base::Split(line, '\t', true);
    if (cols.size() > 2 && base::Trim(cols[1]) == "00000000") {
      return std::string(base::Trim(cols[0]));
    }
  }
  return "";
}

// First global IPv4 (then IPv6) address of `ifname`, or of any up interface when ifname is "".
std::string InterfaceAddress(const std::string& ifname) {
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return "";
  std::string v4, v6;
  for (ifaddrs* a = list; a; a = a->ifa_next) {
    if (!a->ifa_addr || !(a->ifa_flags & IFF_UP)) continue;
    if (!ifname.empty() && ifname != a->ifa_name) continue;
    if (IsLoopback(a->ifa_addr) || IsLinkLocal(a->ifa_addr)) continue;
    if (a->ifa_addr->sa_family == AF_INET && v4.empty()) v4 = AddrToString(a->ifa_addr);
    if (a->ifa_addr->sa_family == AF_INET6 && v6.empty()) v6 = AddrToString(a->ifa_addr);
  }
  freeifaddrs(list);
  return !v4.empty() ? v4 : v6;
}

}  // namespace

std::string CubeletVersion() { return CUBELET_VERSION; }
std::string KubeletVersion() {
  return std::string(kKubernetesVersion) + "+cubelet." + CUBELET_VERSION;
}
std::string ContainerRuntimeVersion() { return std::string("cubelet://") + CUBELET_VERSION; }

std::string BinaryArch() {
#if defined(__x86_64__)
  return "amd64";
#elif defined(__aarch64__)
  return "arm64";
#elif defined(__arm__)
  return "arm";
#elif defined(__i386__)
  return "386";
#elif defined(__powerpc64__) && defined(__LITTLE_ENDIAN__)
  return "ppc64le";
#elif defined(__s390x__)
  return "s390x";
#elif defined(__riscv) && __riscv_xlen == 64
  return "riscv64";
#else
  return "unknown";
#endif
}

std::string ParseOsReleasePrettyName(std::string_view text) {
  for (const auto& raw : base::Split(text, '\n', true)) {
    std::string_view line = base::Trim(raw);
    if (!base::StartsWith(line, "PRETTY_NAME=")) continue;
    std::string_view v = line.substr(strlen("PRETTY_NAME="));
    if (v.size() >= 2 && (v.front() == '"' || v.front() == '\'') && v.back() == v.front()) {
      v = v.substr(1, v.size() - 2);
    }
    std::string out;
    for (size_t i = 0; i < v.size(); ++i) {
      if (v[i] == '\\' && i + 1 < v.size()) ++i;
      out += v[i];
    }
    return out;
  }
  return "";
}

int64_t ParseMeminfoBytes(std::string_view meminfo, std::string_view key) {
  for (const auto& line : base::Split(meminfo, '\n', true)) {
    auto colon = line.find(':');
    if (colon == std::string::npos || std::string_view(line).substr(0, colon) != key) continue;
    auto fields = base::Split(std::string_view(line).substr(colon + 1), ' ', true);
    if (fields.empty()) return -1;
    int64_t v = ParseInt(fields[0]);
    if (v < 0) return -1;
    if (fields.size() > 1 && fields[1] == "kB") v *= 1024;
    return v;
  }
  return -1;
}

MachineInfoReader::MachineInfoReader(Options options) : options_(std::move(options)) {}

std::string MachineInfoReader::Path(std::string_view rel) const {
  std::string root = options_.root;
  while (!root.empty() && root.back() == '/') root.pop_back();
  return root + std::string(rel);
}

base::Result<MachineInfo> MachineInfoReader::Info() {
  MachineInfo info;

  // CPUs: the processors the kernel lists (what cAdvisor reports), else our affinity mask.
  auto cpuinfo = base::ReadFile(Path("/proc/cpuinfo"));
  if (cpuinfo) {
    for (const auto& line : base::Split(*cpuinfo, '\n', true)) {
      if (base::StartsWith(line, "processor") && line.find(':') != std::string::npos) {
        ++info.cpu_cores;
      }
    }
  }
  if (info.cpu_cores == 0 && options_.allow_syscalls) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0) info.cpu_cores = CPU_COUNT(&set);
    if (info.cpu_cores == 0) info.cpu_cores = sysconf(_SC_NPROCESSORS_ONLN);
  }
  if (info.cpu_cores <= 0)
    return base::Fail("count cpus: no processor in " + Path("/proc/cpuinfo"));

  auto meminfo = base::ReadFile(Path("/proc/meminfo"));
  if (!meminfo) return tl::unexpected(meminfo.error().Wrap("read memory capacity"));
  info.memory_bytes = ParseMeminfoBytes(*meminfo, "MemTotal");
  if (info.memory_bytes <= 0)
    return base::Fail("read memory capacity: no MemTotal in " + Path("/proc/meminfo"));

  // Hugepages of every size the kernel supports (0 when none are reserved), as cAdvisor does.
  std::string hp_dir = Path("/sys/kernel/mm/hugepages");
  if (DIR* d = opendir(hp_dir.c_str())) {
    while (dirent* e = readdir(d)) {
      std::string_view name = e->d_name;
      if (!base::StartsWith(name, "hugepages-") || !base::EndsWith(name, "kB")) continue;
      int64_t size_kb = ParseInt(name.substr(10, name.size() - 12));
      if (size_kb <= 0) continue;
      int64_t pages = ParseInt(ReadTrimmed(hp_dir + "/" + std::string(name) + "/nr_hugepages"), 0);
      info.hugepages[HugePageResourceName(size_kb)] = pages * size_kb * 1024;
    }
    closedir(d);
  }

  // Ephemeral storage: the filesystem that will hold pod logs and writable layers.
  std::string fs = options_.fs_path.empty() ? "/" : options_.fs_path;
  struct statvfs st {};
  while (statvfs(fs.c_str(), &st) != 0) {
    if (errno != ENOENT || fs == "/") return base::Errno("statfs '" + fs + "'");
    auto slash = fs.find_last_of('/');
    fs = slash == 0 || slash == std::string::npos ? "/" : fs.substr(0, slash);
  }
  info.ephemeral_storage_bytes = static_cast<int64_t>(st.f_blocks) * st.f_frsize;

  info.machine_id = ReadTrimmed(Path("/etc/machine-id"));
  if (info.machine_id.empty()) info.machine_id = ReadTrimmed(Path("/var/lib/dbus/machine-id"));
  info.system_uuid = ReadTrimmed(Path("/sys/class/dmi/id/product_uuid"));
  if (info.system_uuid.empty()) info.system_uuid = info.machine_id;
  info.boot_id = ReadTrimmed(Path("/proc/sys/kernel/random/boot_id"));

  // Same string as uname(2)'s release, but readable below the injectable root.
  info.kernel_version = ReadTrimmed(Path("/proc/sys/kernel/osrelease"));
  if (info.kernel_version.empty() && options_.allow_syscalls) {
    struct utsname u {};
    if (uname(&u) == 0) info.kernel_version = u.release;
  }

  auto os_release = base::ReadFile(Path("/etc/os-release"));
  if (!os_release) os_release = base::ReadFile(Path("/usr/lib/os-release"));
  if (os_release) info.os_image = ParseOsReleasePrettyName(*os_release);
  if (info.os_image.empty()) info.os_image = "Linux";  // cAdvisor's fallback
  return info;
}

FsUsage ReadFsUsage(const std::string& path) {
  FsUsage out;
  std::string fs = path.empty() ? "/" : path;
  struct statvfs st {};
  while (statvfs(fs.c_str(), &st) != 0) {
    if (errno != ENOENT || fs == "/") break;
    auto slash = fs.find_last_of('/');
    fs = slash == 0 || slash == std::string::npos ? "/" : fs.substr(0, slash);
  }
  if (st.f_blocks > 0) {
    out.capacity_bytes = static_cast<int64_t>(st.f_blocks) * st.f_frsize;
    out.available_bytes = static_cast<int64_t>(st.f_bavail) * st.f_frsize;
    out.inodes = static_cast<int64_t>(st.f_files);
    out.inodes_free = static_cast<int64_t>(st.f_ffree);
  }
  return out;
}

ResourceUsage MachineInfoReader::Usage() {
  ResourceUsage u;
  if (auto meminfo = base::ReadFile(Path("/proc/meminfo"))) {
    u.memory_available_bytes = ParseMeminfoBytes(*meminfo, "MemAvailable");
    u.memory_capacity_bytes = ParseMeminfoBytes(*meminfo, "MemTotal");
  }
  FsUsage fs = ReadFsUsage(options_.fs_path);
  u.fs_capacity_bytes = fs.capacity_bytes;
  u.fs_available_bytes = fs.available_bytes;
  u.fs_inodes = fs.inodes;
  u.fs_inodes_free = fs.inodes_free;
  // /proc/loadavg: "0.12 0.18 0.16 1/92 9428": the 4th field's denominator counts all tasks.
  if (auto load = base::ReadFile(Path("/proc/loadavg"))) {
    auto fields = base::Split(*load, ' ', true);
    if (fields.size() >= 4) {
      auto slash = fields[3].find('/');
      if (slash != std::string::npos) u.pids_used = ParseInt(fields[3].substr(slash + 1));
    }
  }
  int64_t pid_max = ParseInt(ReadTrimmed(Path("/proc/sys/kernel/pid_max")));
  int64_t threads_max = ParseInt(ReadTrimmed(Path("/proc/sys/kernel/threads-max")));
  if (pid_max > 0 && threads_max > 0)
    pid_max = std::min(pid_max, threads_max);
  else if (pid_max <= 0)
    pid_max = threads_max;
  u.pid_max = pid_max > 0 ? pid_max : -1;
  return u;
}

base::Result<std::string> DetectNodeIP(const std::string& hostname) {
  if (IsIPLiteral(hostname)) return hostname;
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (!hostname.empty() && getaddrinfo(hostname.c_str(), nullptr, &hints, &res) == 0) {
    std::string v4, v6;
    for (addrinfo* a = res; a; a = a->ai_next) {
      if (IsLoopback(a->ai_addr) || IsLinkLocal(a->ai_addr)) continue;
      if (a->ai_family == AF_INET && v4.empty()) v4 = AddrToString(a->ai_addr);
      if (a->ai_family == AF_INET6 && v6.empty()) v6 = AddrToString(a->ai_addr);
    }
    freeaddrinfo(res);
    if (!v4.empty()) return v4;
    if (!v6.empty()) return v6;
  }
  std::string ifname = DefaultRouteInterface();
  if (!ifname.empty()) {
    std::string a = InterfaceAddress(ifname);
    if (!a.empty()) return a;
  }
  std::string any = InterfaceAddress("");
  if (!any.empty()) return any;
  return base::Fail("detect node IP for '" + hostname +
                    "': no non-loopback address (set --node-ip)");
}

base::Result<NodeUsage> ParseNodeUsage(std::string_view proc_stat, std::string_view meminfo,
                                       long clock_ticks_per_second) {
  NodeUsage u;
  bool found = false;
  for (const auto& line : base::Split(proc_stat, '\n', true)) {
    auto f = base::Split(line, ' ', true);
    if (f.empty() || f[0] != "cpu") continue;
    if (f.size() < 9) return base::Fail("/proc/stat: short cpu line");
    uint64_t busy = 0;
    // user nice system idle iowait irq softirq steal: all but idle (4) and iowait (5).
    for (size_t i : {1, 2, 3, 6, 7, 8}) busy += std::strtoull(f[i].c_str(), nullptr, 10);
    if (clock_ticks_per_second <= 0) return base::Fail("bad clock tick rate");
    u.cpu_usage_ns = busy * (1'000'000'000ULL / static_cast<uint64_t>(clock_ticks_per_second));
    found = true;
    break;
  }
  if (!found) return base::Fail("/proc/stat: no cpu line");
  int64_t total = ParseMeminfoBytes(meminfo, "MemTotal");
  int64_t free = ParseMeminfoBytes(meminfo, "MemFree");
  int64_t inactive_file = ParseMeminfoBytes(meminfo, "Inactive(file)");
  int64_t available = ParseMeminfoBytes(meminfo, "MemAvailable");
  if (total <= 0 || free < 0) return base::Fail("/proc/meminfo: no MemTotal/MemFree");
  u.memory_usage_bytes = static_cast<uint64_t>(total - free);
  uint64_t inactive = inactive_file > 0 ? static_cast<uint64_t>(inactive_file) : 0;
  u.memory_working_set_bytes = u.memory_usage_bytes > inactive ? u.memory_usage_bytes - inactive : 0;
  u.memory_available_bytes = available > 0 ? static_cast<uint64_t>(available) : 0;
  return u;
}

base::Result<NodeUsage> ReadNodeUsage() {
  auto stat = base::ReadFile("/proc/stat");
  if (!stat) return tl::unexpected(stat.error());
  auto mem = base::ReadFile("/proc/meminfo");
  if (!mem) return tl::unexpected(mem.error());
  return ParseNodeUsage(*stat, *mem, sysconf(_SC_CLK_TCK));
}

}  // namespace agent

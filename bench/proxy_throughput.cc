// bench/proxy_throughput: the userspace mode's data path against direct pod access.
//
// In a fresh network namespace (a forked child), a "pod" namespace behind a veth runs a TCP sink
// and an echo server. Measured from the node's namespace:
//   - bulk throughput: one connection sending `--mib` MiB, direct to the pod and through the
//     userspace proxy (ClusterIP -> REDIRECT -> listener -> splice relay -> pod);
//   - added latency: round trips of 64-byte messages on one connection, both ways.
// Usage (root): proxy_throughput [--mib 2048] [--rounds 20000] [--repeat 1] [--cpu]
//   --repeat N: N throughput pairs, direct and proxied alternating (so that the load of a shared
//     host hits both alike), medians reported; --cpu: where the CPU went in each bulk transfer
//     (per thread of this process, and the whole machine from /proc/stat).
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "base/file.h"
#include "base/log.h"
#include "netproxy/iptables_restore_backend.h"
#include "netproxy/proxier.h"

using namespace netproxy;
using Clock = std::chrono::steady_clock;

namespace {

int Sh(const std::string& cmd) { return system(cmd.c_str()); }

// A thread's time on a CPU and waiting for one (runnable), from /proc/.../schedstat; the rest of
// the elapsed time it slept (blocked on its socket).
struct ThreadTimes {
  long run_ns = 0, wait_ns = 0, slices = 0;  // slices: times it was put on a CPU
};

ThreadTimes ReadSchedstat(const std::string& path) {
  ThreadTimes t;
  std::ifstream(path) >> t.run_ns >> t.wait_ns >> t.slices;
  return t;
}

// The sink's finished connection threads (they end before the sender sees EOF, and /proc forgets
// a thread when it ends).
std::atomic<long> sink_run_ns{0}, sink_wait_ns{0}, sink_slices{0};
std::atomic<long> sink_bytes{0};  // received by the sink's finished connections

// CPU of this process's threads by name, and of the machine by /proc/stat column.
struct CpuSnapshot {
  std::map<std::string, ThreadTimes> threads;
  std::vector<long> machine;  // ticks: user nice system idle iowait irq softirq steal
  Clock::time_point at;
};

CpuSnapshot TakeCpu() {
  CpuSnapshot s;
  s.at = Clock::now();
  std::string line;
  std::ifstream st("/proc/stat");
  std::getline(st, line);
  std::istringstream ls(line.substr(3));
  long v;
  for (int i = 0; i < 8 && ls >> v; ++i) s.machine.push_back(v);
  DIR* dir = opendir("/proc/self/task");
  while (dirent* e = dir ? readdir(dir) : nullptr) {
    if (e->d_name[0] == '.') continue;
    const std::string task = std::string("/proc/self/task/") + e->d_name;
    std::string comm;
    std::getline(std::ifstream(task + "/comm"), comm);
    if (comm == "pod-sink" || comm.empty()) continue;  // counted when the connection ends
    ThreadTimes t = ReadSchedstat(task + "/schedstat");
    s.threads[comm].run_ns += t.run_ns;
    s.threads[comm].wait_ns += t.wait_ns;
    s.threads[comm].slices += t.slices;
  }
  if (dir) closedir(dir);
  s.threads["pod-sink"] = {sink_run_ns.load(), sink_wait_ns.load(), sink_slices.load()};
  return s;
}

// "sender 45%+30%/2k ..." (on a CPU + waiting for one, of the elapsed time / times put on a
// CPU) "| machine: ...";
// *cpu_secs: this process's CPU time.
std::string CpuUse(const CpuSnapshot& a, const CpuSnapshot& b, double* cpu_secs) {
  const double hz = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double secs = std::chrono::duration<double>(b.at - a.at).count();
  auto pct = [&](long ticks) { return 100.0 * static_cast<double>(ticks) / hz / secs; };
  auto pct_ns = [&](long ns) { return 100.0 * static_cast<double>(ns) / 1e9 / secs; };
  std::string out;
  char buf[128];
  long ours_ns = 0;
  for (const auto& [comm, t] : b.threads) {
    auto it = a.threads.find(comm);
    ThreadTimes before = it == a.threads.end() ? ThreadTimes{} : it->second;
    long run = t.run_ns - before.run_ns, wait = t.wait_ns - before.wait_ns;
    long slices = t.slices - before.slices;
    ours_ns += run;
    if (pct_ns(run) < 1.0) continue;
    snprintf(buf, sizeof buf, "%s %.0f%%+%.0f%%/%.1fk ", comm.c_str(), pct_ns(run), pct_ns(wait),
             static_cast<double>(slices) / 1000);
    out += buf;
  }
  std::vector<long> d(8, 0);
  long total = 0;
  for (size_t i = 0; i < 8 && i < a.machine.size() && i < b.machine.size(); ++i) {
    d[i] = b.machine[i] - a.machine[i];
    total += d[i];
  }
  const long busy = total - d[3] - d[4];
  *cpu_secs = static_cast<double>(ours_ns) / 1e9;
  snprintf(buf, sizeof buf,
           "| machine: busy %.0f%% (softirq %.0f%%), idle %.0f%%, other processes %.0f%%",
           pct(busy), pct(d[6]), pct(d[3] + d[4]), pct(busy) - pct_ns(ours_ns));
  return out + buf;
}

bool LoopbackUp() {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ifreq ifr{};
  strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  bool ok = ioctl(s, SIOCGIFFLAGS, &ifr) == 0;
  ifr.ifr_flags |= IFF_UP;
  ok = ok && ioctl(s, SIOCSIFFLAGS, &ifr) == 0;
  close(s);
  return ok;
}

int Listen(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(fd, 64) != 0) {
    perror("listen");
    exit(1);
  }
  return fd;
}

// Servers inside the pod namespace: a sink on 9000, an echo on 9001.
void PodServers(const std::string& netns) {
  std::thread([netns] {
    int ns = open(netns.c_str(), O_RDONLY | O_CLOEXEC);
    if (setns(ns, CLONE_NEWNET) != 0) {
      perror("setns");
      exit(1);
    }
    int sink = Listen(9000), echo = Listen(9001);
    std::thread([sink] {
      while (true) {
        int c = accept4(sink, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) continue;
        std::thread([c] {
          pthread_setname_np(pthread_self(), "pod-sink");
          std::vector<char> b(1 << 20);
          long total = 0;
          ssize_t rn;
          while ((rn = read(c, b.data(), b.size())) > 0) total += rn;
          sink_bytes += total;
          ThreadTimes t = ReadSchedstat("/proc/thread-self/schedstat");
          sink_run_ns += t.run_ns;
          sink_wait_ns += t.wait_ns;
          sink_slices += t.slices;
          close(c);
        }).detach();
      }
    }).detach();
    while (true) {
      int c = accept4(echo, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      std::thread([c] {
        pthread_setname_np(pthread_self(), "pod-echo");
        int one = 1;
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        char b[4096];
        ssize_t n;
        while ((n = read(c, b, sizeof b)) > 0) {
          if (write(c, b, static_cast<size_t>(n)) != n) break;
        }
        close(c);
      }).detach();
    }
  }).detach();
}

int Connect(const std::string& ip, int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    perror(("connect " + ip).c_str());
    exit(1);
  }
  return fd;
}

double Throughput(const std::string& ip, int port, size_t mib) {
  const long bytes_before = sink_bytes;
  int fd = Connect(ip, port);
  std::vector<char> buf(1 << 20, 'x');
  auto t0 = Clock::now();
  for (size_t i = 0; i < mib; ++i) {
    size_t off = 0;
    while (off < buf.size()) {
      ssize_t n = write(fd, buf.data() + off, buf.size() - off);
      if (n <= 0) {
        perror("write");
        exit(1);
      }
      off += static_cast<size_t>(n);
    }
  }
  shutdown(fd, SHUT_WR);
  char c;
  while (read(fd, &c, 1) > 0) {
  }
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  close(fd);
  // The sink counted its bytes before closing, so before the EOF read above: a path that loses
  // data cannot pass for a fast one.
  if (sink_bytes - bytes_before != static_cast<long>(mib << 20)) {
    fprintf(stderr, "%s:%d: the sink received %ld of %zu bytes\n", ip.c_str(), port,
            sink_bytes - bytes_before, mib << 20);
    exit(1);
  }
  return static_cast<double>(mib) / secs;  // MiB/s
}

// Median round trip of a 64-byte message, in microseconds.
double RoundTrip(const std::string& ip, int port, int rounds) {
  int fd = Connect(ip, port);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  char msg[64] = {0}, back[64];
  std::vector<double> us;
  for (int i = 0; i < rounds; ++i) {
    auto t0 = Clock::now();
    if (write(fd, msg, sizeof msg) != sizeof msg) exit(1);
    size_t got = 0;
    while (got < sizeof back) {
      ssize_t n = read(fd, back + got, sizeof back - got);
      if (n <= 0) exit(1);
      got += static_cast<size_t>(n);
    }
    us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  close(fd);
  std::sort(us.begin(), us.end());
  return us[us.size() / 2];
}

}  // namespace

// The pod namespace of this run, removed however the bench ends (exit() on a failed connect
// too); and the ones runs that were killed left behind (their pid is gone).
static std::string g_pod_ns;

static void RemovePodNamespace() {
  if (g_pod_ns.empty()) return;
  Sh("ip netns pids " + g_pod_ns + " 2>/dev/null | xargs -r kill -9; ip netns del " + g_pod_ns +
     " 2>/dev/null");
  g_pod_ns.clear();
}

static void RemoveStaleNamespaces() {
  for (const auto& name : base::ListDir("/run/netns")) {
    const std::string prefix = "cubelet-bench-";
    if (name.rfind(prefix, 0) != 0) continue;
    pid_t pid = static_cast<pid_t>(atoi(name.c_str() + prefix.size()));
    if (pid > 0 && kill(pid, 0) == 0) continue;  // a run in progress
    Sh("ip netns del " + name + " 2>/dev/null");
  }
}

int main(int argc, char** argv) {
  size_t mib = 2048;
  int rounds = 20000;
  int repeat = 1;
  bool cpu = false;
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    if (k == "--cpu") {
      cpu = true;
      continue;
    }
    if (i + 1 >= argc) break;
    if (k == "--repeat") repeat = std::max(1, std::stoi(argv[++i]));
    if (k == "--mib") mib = std::stoul(argv[++i]);
    if (k == "--rounds") rounds = std::stoi(argv[++i]);
  }
  if (geteuid() != 0) {
    fprintf(stderr, "proxy_throughput needs root\n");
    return 77;
  }
  base::log::SetLevel(base::log::Level::kWarn);
  if (unshare(CLONE_NEWNET) != 0 || !LoopbackUp()) {
    perror("unshare");
    return 1;
  }
  RemoveStaleNamespaces();
  const std::string ns = "cubelet-bench-" + std::to_string(getpid());
  Sh("ip netns add " + ns);
  g_pod_ns = ns;
  atexit(RemovePodNamespace);
  Sh("ip link add bp0 type veth peer name eth0 netns " + ns);
  Sh("ip addr add 10.251.0.1/24 dev bp0 && ip link set bp0 up");
  Sh("ip netns exec " + ns +
     " sh -c 'ip addr add 10.251.0.2/24 dev eth0 && ip link set eth0 up "
     "&& ip link set lo up && ip route add default via 10.251.0.1'");
  Sh("ip route add 10.96.0.0/12 dev bp0");
  PodServers("/run/netns/" + ns);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));

  ProxierOptions o;
  o.node_name = "node-a";
  o.cluster_cidr = "10.251.0.0/16";
  o.mode = ProxyMode::kUserspace;
  o.min_sync_period = std::chrono::milliseconds(0);
  auto p = Proxier::Create(o);
  if (!p) {
    fprintf(stderr, "proxier: %s\n", p.error().message.c_str());
    return 1;
  }
  Service svc;
  svc.ns = "bench";
  svc.name = "sink";
  svc.cluster_ip = "10.96.0.50";
  svc.cluster_ips = {svc.cluster_ip};
  ServicePortSpec sink_port, echo_port;
  sink_port.name = "sink";
  sink_port.port = 9000;
  echo_port.name = "echo";
  echo_port.port = 9001;
  svc.ports = {sink_port, echo_port};
  EndpointSlice sl;
  sl.ns = "bench";
  sl.name = "sink-1";
  sl.service_name = "sink";
  Endpoint ep;
  ep.addresses = {"10.251.0.2"};
  sl.endpoints = {ep};
  EndpointPort p1, p2;
  p1.name = "sink";
  p1.port = 9000;
  p2.name = "echo";
  p2.port = 9001;
  sl.ports = {p1, p2};
  (*p)->OnServiceAdd(svc);
  (*p)->OnEndpointSliceAdd(sl);
  (*p)->OnServicesSynced();
  (*p)->OnEndpointSlicesSynced();
  if (!(*p)->WaitForSync(std::chrono::seconds(30))) {
    fprintf(stderr, "sync failed: %s\n", (*p)->Health().last_error.c_str());
    return 1;
  }
  pthread_setname_np(pthread_self(), "sender");
  // Warm up both paths.
  Throughput("10.251.0.2", 9000, 64);
  Throughput("10.96.0.50", 9000, 64);
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
  };
  std::vector<double> direct, proxied, ratio, direct_eff, proxied_eff;
  for (int r = 0; r < repeat; ++r) {
    for (bool via_proxy : {false, true}) {
      CpuSnapshot a = TakeCpu();
      double mibs =
          via_proxy ? Throughput("10.96.0.50", 9000, mib) : Throughput("10.251.0.2", 9000, mib);
      CpuSnapshot b = TakeCpu();
      (via_proxy ? proxied : direct).push_back(mibs);
      if (cpu) {
        // MiB moved per CPU-second of the bench's threads: how much the path costs, which the
        // load of other processes on a shared host changes much less than the MiB/s.
        double secs = 0;
        std::string use = CpuUse(a, b, &secs);
        (via_proxy ? proxied_eff : direct_eff).push_back(static_cast<double>(mib) / secs);
        printf("%-9s %6.0f MiB/s %6.0f MiB/cpu-s  %s\n", via_proxy ? "userspace" : "direct", mibs,
               static_cast<double>(mib) / secs, use.c_str());
      } else if (repeat > 1) {
        printf("%-9s %6.0f MiB/s\n", via_proxy ? "userspace" : "direct", mibs);
      }
    }
    ratio.push_back(proxied.back() / direct.back());
  }
  double rtt_direct = RoundTrip("10.251.0.2", 9001, rounds);
  double rtt_proxied = RoundTrip("10.96.0.50", 9001, rounds);
  printf("%-28s %12s %12s %8s\n", "path", "direct", "userspace", "ratio");
  printf("%-28s %12.0f %12.0f %7.0f%%\n",
         repeat > 1 ? "throughput MiB/s (median)" : "throughput MiB/s (1 conn)", median(direct),
         median(proxied), 100.0 * median(ratio));
  if (repeat > 1) {
    printf("%-28s %12s %12s %7.0f%%..%.0f%%\n", "ratio of each pair", "", "",
           100.0 * *std::min_element(ratio.begin(), ratio.end()),
           100.0 * *std::max_element(ratio.begin(), ratio.end()));
  }
  if (cpu) {
    printf("%-28s %12.0f %12.0f %7.0f%%\n", "MiB per CPU-second (median)", median(direct_eff),
           median(proxied_eff), 100.0 * median(proxied_eff) / median(direct_eff));
  }
  printf("%-28s %12.1f %12.1f %+7.1f\n", "round trip us (p50, 64 B)", rtt_direct, rtt_proxied,
         rtt_proxied - rtt_direct);
  p->reset();
  IptablesRestoreBackend b(DetectIptablesVariant());
  CleanupLeftovers(b);
  RemovePodNamespace();
  return 0;
}

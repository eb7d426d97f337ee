// bench/proxy_sync: how fast the service proxy programs the kernel at scale.
//
// For each mode and size (service ports with E endpoints each), in a fresh network namespace of
// a forked child (so nothing reaches the host and RSS is per run):
//   - first full sync: from "informers synced" to rules in the kernel,
//   - one endpoint change: from the event to rules in the kernel,
//   - peak RSS of the proxy process and, separately, of its helper children (iptables-restore),
// and beside it the floor: the same full ruleset written to a file beforehand and loaded by
// plain `iptables-restore` / `nft -f` into an empty namespace.
//
// Usage (root): proxy_sync [--sizes 1000,5000] [--endpoints 10] [--modes iptables,nftables]
//                          [--iptables nft|legacy|libiptc] [--iptc-writer blob|libiptc]
//                          [--no-floor] [--in-process]
// --in-process runs the proxy of the first mode and size in this process (its own netns, no
// fork, no floor) so that heaptrack or perf see it.
// --iptables legacy commits with iptables-legacy-restore, libiptc in-process through libiptc
// (LibiptcBackend; its floor is still iptables-legacy-restore, and the same two buffers loaded
// through LibiptcBackend are reported beside it, with the same writer, and the kernel's own
// cost: the loaded nat table read back with IPT_SO_GET_ENTRIES into a buffer already faulted in,
// and replaced as it is with IPT_SO_SET_REPLACE, the fastest of three, each call timed alone). --iptc-writer: how LibiptcBackend writes a table
// (IptcWriter; default blob).
#include <malloc.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <libiptc/libiptc.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "base/file.h"
#include "base/log.h"
#include "base/strings.h"
#include "netproxy/exec.h"
#include "netproxy/iptables_renderer.h"
#include "netproxy/iptables_restore_backend.h"
#include "netproxy/libiptc_backend.h"
#include "netproxy/nft_renderer.h"
#include "netproxy/proxier.h"

using namespace netproxy;
using Clock = std::chrono::steady_clock;

namespace {

struct Args {
  std::vector<int> sizes = {1000, 5000, 10000};
  int endpoints = 10;
  std::vector<std::string> modes = {"iptables"};
  IptablesVariant variant = IptablesVariant::kNft;
  bool libiptc = false;  // legacy through LibiptcBackend
  IptcWriter writer = IptcWriter::kBlob;
  bool floor = true;
  bool in_process = false;  // no forked child (for heaptrack/perf); one size, no floor
  int changes = 1;          // endpoint changes measured (the median is reported)
};

bool LoopbackUp() {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return false;
  ifreq ifr{};
  strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  bool ok = ioctl(s, SIOCGIFFLAGS, &ifr) == 0;
  ifr.ifr_flags |= IFF_UP;
  ok = ok && ioctl(s, SIOCSIFFLAGS, &ifr) == 0;
  close(s);
  return ok;
}

std::string Ip(int base, int n) {
  return std::to_string(base) + "." + std::to_string((n >> 16) & 255) + "." +
         std::to_string((n >> 8) & 255) + "." + std::to_string(n & 255);
}

Service MakeService(int i) {
  Service s;
  s.ns = "bench";
  s.name = "svc-" + std::to_string(i);
  s.type = ServiceType::kClusterIP;
  s.cluster_ip = Ip(10, (96 << 16) + i + 1);  // 10.96.x.y .. (fits 10.96.0.0/12 for < 1M)
  s.cluster_ips = {s.cluster_ip};
  ServicePortSpec p;
  p.name = "http";
  p.port = 80;
  p.target_port.number = 8080;
  s.ports = {p};
  return s;
}

EndpointSlice MakeSlice(int i, int endpoints, int generation) {
  EndpointSlice sl;
  sl.ns = "bench";
  sl.service_name = "svc-" + std::to_string(i);
  sl.name = sl.service_name + "-abcde";
  for (int e = 0; e < endpoints; ++e) {
    Endpoint ep;
    // Unique per endpoint inside the cluster CIDR 10.128.0.0/10.
    const int idx = i * endpoints + e;
    ep.addresses = {"10." + std::to_string(128 + (idx >> 16) % 64) + "." +
                    std::to_string((idx >> 8) & 255) + "." +
                    std::to_string((idx + generation) & 255)};
    ep.conditions.ready = true;
    ep.node_name = e % 3 == 0 ? "node-a" : "node-b";
    sl.endpoints.push_back(ep);
  }
  EndpointPort port;
  port.name = "http";
  port.port = 8080;
  sl.ports = {port};
  return sl;
}

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double CpuMs() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

long MaxRssKb(int who) {
  rusage ru{};
  getrusage(who, &ru);
  return ru.ru_maxrss;
}

struct Result {
  double ingest_ms = 0, first_ms = 0, change_ms = 0;
  // CPU time of the proxy's process (user + system, all threads) over the same spans: what a
  // sync costs whatever else the host runs (wall times here move 2-3x with the load).
  double first_cpu_ms = 0, change_cpu_ms = 0;
  long rss_kb = 0, child_rss_kb = 0;
  double floor_full_ms = 0, floor_change_ms = 0;
  double iptc_full_ms = 0, iptc_change_ms = 0;  // the floor's buffers through LibiptcBackend
  double kernel_get_ms = 0, kernel_replace_ms = 0;  // nat: IPT_SO_GET_ENTRIES, IPT_SO_SET_REPLACE
  size_t kernel_bytes = 0;
  size_t bytes = 0;
  bool ok = false;
};

// Runs in a forked child inside its own netns; writes the result to `fd`.
Result RunProxy(const Args& a, const std::string& mode, int n) {
  Result r;
  ProxierOptions o;
  o.node_name = "node-a";
  o.node_ips = {"192.168.0.2"};
  o.cluster_cidr = "10.128.0.0/10";
  o.min_sync_period = std::chrono::milliseconds(0);
  o.cleanup_at_start = false;
  o.mode = *ParseProxyMode(mode);
  RulesBackendPtr backend;
  if (o.mode == ProxyMode::kIptables) {
    if (a.libiptc) {
      backend = std::make_unique<LibiptcBackend>(true, std::chrono::seconds(5), a.writer);
    } else {
      backend = std::make_unique<IptablesRestoreBackend>(a.variant);
    }
  }
  auto p = Proxier::Create(o, std::move(backend));
  if (!p) {
    fprintf(stderr, "create proxier: %s\n", p.error().message.c_str());
    return r;
  }
  auto& proxier = *p;
  auto t0 = Clock::now();
  for (int i = 0; i < n; ++i) {
    proxier->OnServiceAdd(MakeService(i));
    proxier->OnEndpointSliceAdd(MakeSlice(i, a.endpoints, 0));
  }
  auto t1 = Clock::now();
  r.ingest_ms = Ms(t1 - t0);
  if (getenv("PROXY_SYNC_MEM")) {
    fprintf(stderr, "after ingest: heap in use %.1f MiB, rss %.1f MiB\n",
            mallinfo2().uordblks / 1048576.0, MaxRssKb(RUSAGE_SELF) / 1024.0);
  }
  const double cpu1 = CpuMs();
  proxier->OnServicesSynced();
  proxier->OnEndpointSlicesSynced();
  if (!proxier->WaitForSync(std::chrono::minutes(10))) {
    fprintf(stderr, "first sync failed: %s\n", proxier->Health().last_error.c_str());
    return r;
  }
  auto t2 = Clock::now();
  r.first_ms = Ms(t2 - t1);
  r.first_cpu_ms = CpuMs() - cpu1;
  if (getenv("PROXY_SYNC_MEM")) {
    fprintf(stderr, "after first sync: heap in use %.1f MiB, peak rss %.1f MiB\n",
            mallinfo2().uordblks / 1048576.0, MaxRssKb(RUSAGE_SELF) / 1024.0);
  }
  // One endpoint of one service replaced, `changes` times (different services).
  std::vector<double> times, cpu_times;
  for (int c = 0; c < a.changes; ++c) {
    int k = (n / 2 + c * 7919) % n;
    auto old_slice = MakeSlice(k, a.endpoints, 0);
    auto new_slice = old_slice;
    new_slice.endpoints[0].addresses[0] =
        "10.255." + std::to_string(c / 250) + "." + std::to_string(c % 250 + 1);
    auto t3 = Clock::now();
    const double cpu3 = CpuMs();
    proxier->OnEndpointSliceUpdate(old_slice, new_slice);
    if (!proxier->WaitForSync(std::chrono::minutes(5))) {
      fprintf(stderr, "change sync failed: %s\n", proxier->Health().last_error.c_str());
      return r;
    }
    times.push_back(Ms(Clock::now() - t3));
    cpu_times.push_back(CpuMs() - cpu3);
  }
  std::sort(times.begin(), times.end());
  r.change_ms = times[times.size() / 2];
  std::sort(cpu_times.begin(), cpu_times.end());
  r.change_cpu_ms = cpu_times[cpu_times.size() / 2];
  r.rss_kb = MaxRssKb(RUSAGE_SELF);
  r.child_rss_kb = MaxRssKb(RUSAGE_CHILDREN);
  r.ok = true;
  return r;
}

void FillState(ProxyState& state, const Args& a, int n) {
  for (int i = 0; i < n; ++i) {
    Service s = MakeService(i);
    state.service_changes().Update(nullptr, &s);
    state.endpoint_changes().EndpointSliceUpdate(MakeSlice(i, a.endpoints, 0), false, WallTime{});
  }
  state.Update();
}

// The floor: the same full ruleset loaded by plain iptables-restore into an empty netns.
Result RunNftFloor(const Args& a, int n) {
  Result r;
  ProxyState state("node-a", WallTime{});
  FillState(state, a, n);
  NftRendererConfig cfg;
  cfg.cluster_cidr = "10.128.0.0/10";
  NftServiceMap m;
  for (const auto& [spn, svc] : state.service_ports()) {
    m.emplace(spn, RenderNftService(cfg, svc, state.EndpointsFor(spn)));
  }
  std::string full = NftFullScript(cfg, m);
  r.bytes = full.size();
  const std::string file = "/tmp/proxy_sync_floor_" + std::to_string(getpid()) + ".nft";
  if (!base::WriteFile(file, full)) return r;
  auto t0 = Clock::now();
  auto res = RunCommand({"nft", "-f", file});
  r.floor_full_ms = Ms(Clock::now() - t0);
  if (!res || !res->ok()) {
    fprintf(stderr, "floor nft -f failed: %s\n", res ? res->err.c_str() : "");
    return r;
  }
  auto slice = MakeSlice(n / 2, a.endpoints, 0);
  slice.endpoints[0].addresses[0] = "10.255.255.1";
  state.endpoint_changes().EndpointSliceUpdate(slice, false, WallTime{});
  auto upd = state.Update();
  const ServicePortName spn{*upd.updated_services.begin(), "http", Protocol::kTCP};
  auto after = RenderNftService(cfg, state.service_ports().at(spn), state.EndpointsFor(spn));
  NftRefCounts refs;
  for (const auto& [_, o] : m) {
    for (const auto& e : o.elements) {
      if (e.map == kNftHairpinSet) refs.Add(NftHairpinKey(e.key));
    }
  }
  std::string diff = NftDiffScript({{&m.at(spn), &after}}, refs);
  base::WriteFile(file, diff);
  t0 = Clock::now();
  res = RunCommand({"nft", "-f", file});
  r.floor_change_ms = Ms(Clock::now() - t0);
  unlink(file.c_str());
  r.child_rss_kb = MaxRssKb(RUSAGE_CHILDREN);
  r.ok = res && res->ok();
  return r;
}

// The kernel's part of a commit: the loaded nat table read back (IPT_SO_GET_ENTRIES) and
// replaced by itself (IPT_SO_SET_REPLACE: copy in, checks, per-CPU copies, the old table's
// counters out and freed), each call timed alone. No change is smaller than that on legacy
// iptables: every commit replaces a whole table.
void KernelFloor(Result& r) {
  int sock = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
  if (sock < 0) return;
  ipt_getinfo info{};
  strcpy(info.name, "nat");
  socklen_t len = sizeof info;
  if (getsockopt(sock, SOL_IP, IPT_SO_GET_INFO, &info, &len) != 0) {
    close(sock);
    return;
  }
  std::vector<uint64_t> get((sizeof(ipt_get_entries) + info.size + 7) / 8, 0);
  auto* ge = reinterpret_cast<ipt_get_entries*>(get.data());
  strcpy(ge->name, "nat");
  ge->size = info.size;
  len = static_cast<socklen_t>(sizeof(ipt_get_entries) + info.size);
  // Twice: the first read also faults the buffer in; the proxy reuses its buffers.
  bool ok = getsockopt(sock, SOL_IP, IPT_SO_GET_ENTRIES, ge, &len) == 0;
  auto t0 = Clock::now();
  ok = ok && getsockopt(sock, SOL_IP, IPT_SO_GET_ENTRIES, ge, &len) == 0;
  r.kernel_get_ms = Ms(Clock::now() - t0);
  std::vector<uint64_t> rep((sizeof(ipt_replace) + info.size + 7) / 8, 0);
  auto* repl = reinterpret_cast<ipt_replace*>(rep.data());
  strcpy(repl->name, "nat");
  repl->valid_hooks = info.valid_hooks;
  repl->num_entries = info.num_entries;
  repl->size = info.size;
  memcpy(repl->hook_entry, info.hook_entry, sizeof info.hook_entry);
  memcpy(repl->underflow, info.underflow, sizeof info.underflow);
  std::vector<xt_counters> counters(info.num_entries);
  repl->num_counters = info.num_entries;
  repl->counters = counters.data();
  memcpy(repl->entries, ge->entrytable, info.size);
  get = {};
  // The fastest of three replaces (the same table each time: the entries are copied in).
  r.kernel_replace_ms = 1e9;
  for (int i = 0; i < 3 && ok; ++i) {
    t0 = Clock::now();
    ok = setsockopt(sock, SOL_IP, IPT_SO_SET_REPLACE, repl, sizeof(ipt_replace) + info.size) == 0;
    r.kernel_replace_ms = std::min(r.kernel_replace_ms, Ms(Clock::now() - t0));
  }
  r.kernel_bytes = ok ? info.size : 0;
  if (!ok) perror("kernel floor");
  close(sock);
}

Result RunFloor(const Args& a, const std::string& mode, int n) {
  if (mode == "nftables") return RunNftFloor(a, n);
  Result r;
  if (mode != "iptables") return r;
  ProxyState state("node-a", WallTime{});
  FillState(state, a, n);
  IptablesRendererConfig cfg;
  cfg.cluster_cidr = "10.128.0.0/10";
  IptablesRenderer renderer(cfg);
  std::string full = renderer.Render(state, nullptr, {}).Serialize(IptablesJumps(true));
  r.bytes = full.size();
  const std::string file = "/tmp/proxy_sync_floor_" + std::to_string(getpid()) + ".rules";
  if (!base::WriteFile(file, full)) return r;
  std::string restore =
      a.variant == IptablesVariant::kNft ? "iptables-nft-restore" : "iptables-legacy-restore";
  auto t0 = Clock::now();
  // Plain restore into an empty netns: what loading this ruleset costs at least.
  auto res = RunCommand({"sh", "-c", restore + " < " + file});
  r.floor_full_ms = Ms(Clock::now() - t0);
  if (!res || !res->ok()) {
    fprintf(stderr, "floor restore failed: %s\n", res ? res->err.c_str() : "");
    return r;
  }
  // One changed service, as the proxy's partial commit would write it.
  auto slice = MakeSlice(n / 2, a.endpoints, 0);
  slice.endpoints[0].addresses[0] = "10.255.255.1";
  state.endpoint_changes().EndpointSliceUpdate(slice, false, WallTime{});
  auto upd = state.Update();
  auto rs = renderer.Render(state, &upd.updated_services, {});
  std::string partial = rs.Serialize();
  base::WriteFile(file, partial);
  t0 = Clock::now();
  res = RunCommand({"sh", "-c", restore + " --noflush < " + file});
  r.floor_change_ms = Ms(Clock::now() - t0);
  unlink(file.c_str());
  r.child_rss_kb = MaxRssKb(RUSAGE_CHILDREN);
  r.ok = res && res->ok();
  if (r.ok && a.libiptc) {
    // The same two buffers through libiptc, in a fresh netns of their own.
    std::thread t([&] {
      if (unshare(CLONE_NEWNET) != 0) return;
      LibiptcBackend lib(true, std::chrono::seconds(5), a.writer);
      auto t1 = Clock::now();
      auto ok = lib.Restore(full);
      r.iptc_full_ms = Ms(Clock::now() - t1);
      if (!ok) {
        fprintf(stderr, "libiptc full: %s\n", ok.error().message.c_str());
        return;
      }
      t1 = Clock::now();
      ok = lib.Restore(partial);
      r.iptc_change_ms = Ms(Clock::now() - t1);
      if (!ok) fprintf(stderr, "libiptc change: %s\n", ok.error().message.c_str());
      KernelFloor(r);
    });
    t.join();
  }
  return r;
}

Result InChild(const std::function<Result()>& fn) {
  int fds[2];
  if (pipe(fds) != 0) return {};
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    if (unshare(CLONE_NEWNET) != 0 || !LoopbackUp()) {
      perror("unshare");
      _exit(1);
    }
    Result r = fn();
    if (write(fds[1], &r, sizeof r) != sizeof r) _exit(1);
    _exit(0);
  }
  close(fds[1]);
  Result r;
  if (read(fds[0], &r, sizeof r) != sizeof r) r.ok = false;
  close(fds[0]);
  int st;
  waitpid(pid, &st, 0);
  return r;
}

std::vector<int> ParseSizes(const std::string& s) {
  std::vector<int> out;
  for (const auto& p : base::Split(s, ',', true)) out.push_back(std::stoi(p));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (k == "--sizes") {
      a.sizes = ParseSizes(next());
    } else if (k == "--endpoints") {
      a.endpoints = std::stoi(next());
    } else if (k == "--modes") {
      a.modes = base::Split(next(), ',', true);
    } else if (k == "--iptables") {
      std::string v = next();
      a.variant = v == "nft" ? IptablesVariant::kNft : IptablesVariant::kLegacy;
      a.libiptc = v == "libiptc";
    } else if (k == "--iptc-writer") {
      a.writer = next() == "libiptc" ? IptcWriter::kLibiptc : IptcWriter::kBlob;
    } else if (k == "--dump") {
      // Writes the full iptables ruleset for N services to stdout and exits.
      int n = std::stoi(next());
      ProxyState state("node-a", WallTime{});
      FillState(state, a, n);
      IptablesRendererConfig cfg;
      cfg.cluster_cidr = "10.128.0.0/10";
      IptablesRenderer renderer(cfg);
      fputs(renderer.Render(state, nullptr, {}).Serialize(IptablesJumps(true)).c_str(), stdout);
      return 0;
    } else if (k == "--changes") {
      a.changes = std::max(1, std::stoi(next()));
    } else if (k == "--no-floor") {
      a.floor = false;
    } else if (k == "--in-process") {
      a.in_process = true;
    } else {
      fprintf(stderr, "unknown argument %s\n", k.c_str());
      return 2;
    }
  }
  if (geteuid() != 0) {
    fprintf(stderr, "proxy_sync needs root (it works in its own network namespaces)\n");
    return 77;
  }
  base::log::SetLevel(base::log::Level::kWarn);
  printf("%-10s %-8s %7s %9s %10s %10s %9s %10s %11s %12s %8s\n", "mode", "backend", "svcs",
         "ingest_ms", "first_ms", "change_ms", "rss_MiB", "child_MiB", "floor_full", "floor_change",
         "MB");
  for (const auto& mode : a.modes) {
    for (int n : a.sizes) {
      if (a.in_process) {
        if (unshare(CLONE_NEWNET) != 0 || !LoopbackUp()) {
          perror("unshare");
          return 1;
        }
        Result r = RunProxy(a, mode, n);
        printf("%-10s %-8s %7d %9.0f %10.0f %10.1f %9.1f (in process)\n", mode.c_str(), "-", n,
               r.ingest_ms, r.first_ms, r.change_ms, r.rss_kb / 1024.0);
        return r.ok ? 0 : 1;
      }
      Result r = InChild([&] { return RunProxy(a, mode, n); });
      Result f;
      if (a.floor) f = InChild([&] { return RunFloor(a, mode, n); });
      std::string backend = mode != "iptables" ? std::string("-")
                            : a.libiptc        ? std::string(a.writer == IptcWriter::kBlob
                                                                 ? "iptc-blob"
                                                                 : "libiptc")
                                               : std::string(IptablesVariantName(a.variant));
      if (!r.ok) {
        printf("%-10s %-8s %7d FAILED\n", mode.c_str(), backend.c_str(), n);
        continue;
      }
      printf("%-10s %-8s %7d %9.0f %10.0f %10.1f %9.1f %10.1f %11.0f %12.1f %8.1f\n", mode.c_str(),
             backend.c_str(), n, r.ingest_ms, r.first_ms, r.change_ms, r.rss_kb / 1024.0,
             r.child_rss_kb / 1024.0, f.floor_full_ms, f.floor_change_ms, f.bytes / 1e6);
      printf("%-10s %-8s %7d proxy CPU time: first sync %.0f ms, one change %.1f ms (median)\n",
             mode.c_str(), backend.c_str(), n, r.first_cpu_ms, r.change_cpu_ms);
      if (a.libiptc && mode == "iptables" && a.floor) {
        printf("%-10s %-8s %7d floor buffers through LibiptcBackend (%s): full %.0f ms, change "
               "%.1f ms; kernel (nat, %.1f MB): get entries %.1f ms, replace %.1f ms\n",
               mode.c_str(), backend.c_str(), n, backend.c_str(), f.iptc_full_ms,
               f.iptc_change_ms, f.kernel_bytes / 1e6, f.kernel_get_ms, f.kernel_replace_ms);
      }
      fflush(stdout);
    }
  }
  return 0;
}

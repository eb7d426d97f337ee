// bench/net_setup: cost of the pod network per pod. Moves itself into a fresh network namespace
// (root needed; the host's network is never touched), sets up the node network, then creates N
// pod namespaces and times PodNetwork::Setup and ::Teardown for each, sequentially and then with
// T threads at once. Prints medians / p90 / max and one JSON line.
//   --plugin bridge  the built-in BridgeNetwork (netlink, own host-local IPAM)
//   --plugin cni     CniNetwork running the CNI reference plugins from --cni-bin-dir with the
//                    equivalent chain: bridge (isGateway, ipMasq, hairpin) + host-local + loopback
//
//   net_setup [--plugin bridge|cni] [--cni-bin-dir /usr/lib/cni] [--pods 100] [--threads 4]
//             [--rounds 3]
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "base/file.h"
#include "base/log.h"
#include "runtime/network/bridge_network.h"
#include "runtime/network/cni_network.h"
#include "runtime/network/netns.h"

using namespace runtime::net;
using Clock = std::chrono::steady_clock;

namespace {

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

struct Stats {
  double p50 = 0, p90 = 0, max = 0, total = 0;
};

Stats Summarize(std::vector<double> v) {
  Stats s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  s.p50 = v[v.size() / 2];
  s.p90 = v[std::min(v.size() - 1, v.size() * 9 / 10)];
  s.max = v.back();
  for (double x : v) s.total += x;
  return s;
}

void Print(const char* what, const Stats& s) {
  printf("%-28s p50 %7.2f ms   p90 %7.2f ms   max %7.2f ms   sum %8.1f ms\n", what, s.p50, s.p90,
         s.max, s.total);
}

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

[[noreturn]] void Die(const std::string& msg) {
  fprintf(stderr, "net_setup: %s\n", msg.c_str());
  exit(1);
}

}  // namespace

int main(int argc, char** argv) {
  int pods = 100, threads = 4, rounds = 3;
  std::string plugin = "bridge", cni_bin_dir = "/usr/lib/cni";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    int v = atoi(argv[i + 1]);
    if (a == "--plugin")
      plugin = argv[i + 1];
    else if (a == "--cni-bin-dir")
      cni_bin_dir = argv[i + 1];
    else if (a == "--pods")
      pods = v;
    else if (a == "--threads")
      threads = v;
    else if (a == "--rounds")
      rounds = v;
    else
      Die("unknown option " + a);
  }
  if (pods < 1 || pods > 250 || threads < 1 || rounds < 1) Die("bad options");
  if (plugin != "bridge" && plugin != "cni") Die("--plugin is bridge or cni");
  if (geteuid() != 0) Die("needs root (it works in its own network namespace)");
  if (unshare(CLONE_NEWNET) != 0 || !LoopbackUp()) Die("cannot make a network namespace");
  base::log::SetLevel(base::log::Level::kWarn);

  const std::string root = "/run/cubelet-bench/net-setup-" + std::to_string(getpid());
  PodNetworkPtr netp;
  if (plugin == "bridge") {
    BridgeNetworkOptions o;
    o.bridge_name = "cbench0";
    o.state_dir = root + "/state";
    o.cluster_cidr = "10.244.0.0/16";
    netp = std::make_unique<BridgeNetwork>(o);
  } else {
    CniNetworkOptions o;
    o.conf_dir = root + "/net.d";
    o.bin_dirs = {cni_bin_dir};
    o.cache_dir = root + "/cni-cache";
    std::string conf =
        R"({"cniVersion": "0.4.0", "name": "bench", "plugins": [)"
        R"({"type": "bridge", "bridge": "cbench0", "isGateway": true, "ipMasq": true,)"
        R"( "hairpinMode": true, "ipam": {"type": "host-local", "dataDir": ")" +
        root + R"(/ipam", "ranges": [[{"subnet": "10.244.1.0/24"}]],)"
        R"( "routes": [{"dst": "0.0.0.0/0"}]}}, {"type": "loopback"}]})";
    if (auto r = base::MkdirAll(o.conf_dir); !r) Die(r.error().message);
    if (auto r = base::WriteFile(o.conf_dir + "/10-bench.conflist", conf); !r)
      Die(r.error().message);
    netp = std::make_unique<CniNetwork>(o);
  }
  PodNetwork& net = *netp;
  auto t0 = Clock::now();
  if (auto r = net.EnsureNodeNetwork("10.244.1.0/24"); !r) Die(r.error().message);
  double node_ms = Ms(Clock::now() - t0);

  std::vector<SandboxNetRequest> reqs;
  std::vector<double> ns_create, ns_remove;
  for (int i = 0; i < pods; ++i) {
    char id[65];
    snprintf(id, sizeof id, "%08x%056d", 0x10000000 + i, 0);
    SandboxNetRequest r;
    r.sandbox_id = id;
    r.netns_path = root + "/netns/" + id;
    auto t = Clock::now();
    if (auto ns = NetNamespace::Create(r.netns_path); !ns) Die(ns.error().message);
    ns_create.push_back(Ms(Clock::now() - t));
    reqs.push_back(r);
  }

  std::vector<double> seq_setup, seq_teardown, seq_both, par_setup, par_teardown;
  double seq_wall = 0, par_wall = 0;
  for (int round = 0; round < rounds; ++round) {
    auto w = Clock::now();
    std::vector<double> s(pods);
    for (int i = 0; i < pods; ++i) {
      auto t = Clock::now();
      if (auto st = net.Setup(reqs[i]); !st) Die(st.error().message);
      s[i] = Ms(Clock::now() - t);
      seq_setup.push_back(s[i]);
    }
    for (int i = 0; i < pods; ++i) {
      auto t = Clock::now();
      if (auto r = net.Teardown(reqs[i]); !r) Die(r.error().message);
      double td = Ms(Clock::now() - t);
      seq_teardown.push_back(td);
      seq_both.push_back(s[i] + td);
    }
    seq_wall += Ms(Clock::now() - w);

    // Parallel: T workers share the pods, as pod workers would on a busy node.
    std::atomic<int> next{0};
    std::vector<std::vector<double>> ps(threads), pt(threads);
    std::atomic<bool> failed{false};
    w = Clock::now();
    auto run = [&](bool setup) {
      next = 0;
      std::vector<std::thread> ts;
      for (int k = 0; k < threads; ++k) {
        ts.emplace_back([&, k] {
          for (int i; (i = next++) < pods;) {
            auto t = Clock::now();
            bool ok = setup ? bool(net.Setup(reqs[i])) : bool(net.Teardown(reqs[i]));
            if (!ok) failed = true;
            (setup ? ps : pt)[k].push_back(Ms(Clock::now() - t));
          }
        });
      }
      for (auto& t : ts) t.join();
    };
    run(true);
    run(false);
    par_wall += Ms(Clock::now() - w);
    if (failed) Die("parallel setup/teardown failed");
    for (int k = 0; k < threads; ++k) {
      par_setup.insert(par_setup.end(), ps[k].begin(), ps[k].end());
      par_teardown.insert(par_teardown.end(), pt[k].begin(), pt[k].end());
    }
  }

  for (const auto& r : reqs) {
    auto t = Clock::now();
    (void)NetNamespace::Remove(r.netns_path);
    ns_remove.push_back(Ms(Clock::now() - t));
  }
  (void)base::RemoveAll(root);

  printf("plugin %s, pods %d, rounds %d, threads %d; node network setup %.1f ms\n",
         plugin.c_str(), pods, rounds, threads, node_ms);
  Stats a = Summarize(seq_setup), b = Summarize(seq_teardown), c = Summarize(seq_both);
  Stats d = Summarize(par_setup), e = Summarize(par_teardown);
  Stats f = Summarize(ns_create), g = Summarize(ns_remove);
  Print("setup (sequential)", a);
  Print("teardown (sequential)", b);
  Print("setup+teardown (sequential)", c);
  Print("setup (parallel)", d);
  Print("teardown (parallel)", e);
  Print("netns create", f);
  Print("netns remove", g);
  printf("wall per round: sequential %.1f ms, %d threads %.1f ms (setup+teardown of %d pods)\n",
         seq_wall / rounds, threads, par_wall / rounds, pods);
  printf(
      "{\"bench\":\"net_setup\",\"plugin\":\"%s\",\"pods\":%d,\"rounds\":%d,\"threads\":%d,"
      "\"setup_p50_ms\":%.3f,\"teardown_p50_ms\":%.3f,\"setup_teardown_p50_ms\":%.3f,"
      "\"parallel_setup_p50_ms\":%.3f,\"sequential_round_ms\":%.1f,\"parallel_round_ms\":%.1f}\n",
      plugin.c_str(), pods, rounds, threads, a.p50, b.p50, c.p50, d.p50, seq_wall / rounds, par_wall / rounds);
  return 0;
}

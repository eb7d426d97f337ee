// The iptables proxy on the real kernel (privileged; the test process runs in its own fresh
// network namespace, see tests/support/privileged_main.cc). Two "pods" are network namespaces
// with a busybox httpd each, connected to the test's namespace by veths; the test's namespace
// plays the node. Traffic to a ClusterIP and to a NodePort must reach the pods, balance across
// both, and be refused (not hang) once there are no endpoints.
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <thread>

#include "base/fd.h"
#include "base/file.h"
#include "base/strings.h"
#include "netproxy/chain_names.h"
#include "netproxy/iptables_restore_backend.h"
#include "netproxy/libiptc_backend.h"
#include "netproxy/nftables_engine.h"
#include "netproxy/proxier.h"
#include "tests/netproxy/fixtures.h"
#include "tests/support/kernel_env.h"

using namespace netproxy;
using namespace netproxy::testing;
using namespace std::chrono_literals;
using testsupport::Run;

namespace {

constexpr const char* kNsPrefix = "cubelet-np-";

// Deletes pod namespaces (and their processes) of earlier runs whose test process is gone.
void SweepStaleNamespaces() {
  DIR* d = opendir("/run/netns");
  if (!d) return;
  std::vector<std::string> stale;
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (!base::StartsWith(name, kNsPrefix)) continue;
    auto parts = base::Split(name.substr(strlen(kNsPrefix)), '-');
    if (parts.empty()) continue;
    pid_t pid = atoi(parts[0].c_str());
    if (pid > 0 && kill(pid, 0) == 0) continue;
    stale.push_back(name);
  }
  closedir(d);
  for (const auto& n : stale) {
    Run("ip netns pids " + n + " | xargs -r kill -9");
    Run("ip netns del " + n);
  }
}

// A pod: a netns with eth0 = <prefix>.2/24, its peer veth in the test netns = <prefix>.1/24,
// serving `body` with busybox httpd on :8080.
class Pod {
 public:
  Pod(int index, const std::string& prefix, const std::string& body)
      : ns_(std::string(kNsPrefix) + std::to_string(getpid()) + "-" + std::to_string(index)),
        host_if_("np" + std::to_string(index)),
        ip_(prefix + ".2"),
        host_ip_(prefix + ".1"),
        dir_("/tmp/" + ns_) {
    Run("ip netns del " + ns_);
    REQUIRE(Run("ip netns add " + ns_) == 0);
    std::string out;
    INFO(out);
    REQUIRE(Run("ip link add " + host_if_ + " type veth peer name eth0 netns " + ns_, &out) == 0);
    REQUIRE(Run("ip addr add " + host_ip_ + "/24 dev " + host_if_ + " && ip link set " + host_if_ +
                    " up",
                &out) == 0);
    std::string in_ns = "nsenter --net=/run/netns/" + ns_ + " ";
    REQUIRE(Run(in_ns + "ip addr add " + ip_ + "/24 dev eth0", &out) == 0);
    REQUIRE(Run(in_ns + "ip link set eth0 up && " + in_ns + "ip link set lo up", &out) == 0);
    REQUIRE(Run(in_ns + "ip route add default via " + host_ip_, &out) == 0);
    if (body.empty()) return;  // a client, no server
    REQUIRE(base::MkdirAll(dir_));
    REQUIRE(base::WriteFile(dir_ + "/index.html", body + "\n"));
    // Without -f busybox httpd daemonizes; its pid is found through the netns at teardown.
    REQUIRE(Run(in_ns + "busybox httpd -p 8080 -h " + dir_, &out) == 0);
    for (int i = 0; i < 50; ++i) {
      if (Run("curl -s --max-time 1 http://" + ip_ + ":8080/") == 0) return;
      std::this_thread::sleep_for(100ms);
    }
    FAIL("httpd in " << ns_ << " did not come up");
  }
  ~Pod() {
    Run("ip netns pids " + ns_ + " | xargs -r kill -9");
    Run("ip link del " + host_if_);
    Run("ip netns del " + ns_);
    base::RemoveAll(dir_);
  }
  const std::string& ip() const { return ip_; }
  const std::string& host_ip() const { return host_ip_; }
  std::string netns_path() const { return "/run/netns/" + ns_; }
  // Runs a shell command inside the pod's network namespace.
  int Exec(const std::string& cmd, std::string* out = nullptr) const {
    return Run("nsenter --net=/run/netns/" + ns_ + " " + cmd, out);
  }

 private:
  std::string ns_, host_if_, ip_, host_ip_, dir_;
};

// Passes calls through to the real backend and keeps the buffers.
class RecordingBackend final : public RulesBackend {
 public:
  explicit RecordingBackend(RulesBackend* inner) : inner_(inner) {}
  std::string Name() const override { return inner_->Name(); }
  base::Result<IptablesSnapshot> Snapshot() override { return inner_->Snapshot(); }
  base::Result<bool> CanaryPresent() override { return inner_->CanaryPresent(); }
  base::Result<> Restore(const std::string& buffer) override {
    {
      std::lock_guard lock(mu_);
      buffers_.push_back(buffer);
    }
    return inner_->Restore(buffer);
  }
  std::string last() const {
    std::lock_guard lock(mu_);
    return buffers_.empty() ? "" : buffers_.back();
  }

 private:
  RulesBackend* inner_;
  mutable std::mutex mu_;
  std::vector<std::string> buffers_;
};

// Splits a rule line into words, honouring double quotes.
std::vector<std::string> Words(const std::string& line) {
  std::vector<std::string> out;
  std::string cur;
  bool quoted = false, any = false;
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (c == '\\' && quoted && i + 1 < line.size()) {
      cur += line[++i];
    } else if (c == '"') {
      quoted = !quoted;
      any = true;
    } else if (c == ' ' && !quoted) {
      if (any || !cur.empty()) out.push_back(cur);
      cur.clear();
      any = false;
    } else {
      cur += c;
    }
  }
  if (any || !cur.empty()) out.push_back(cur);
  return out;
}

// table -> KUBE-* chain -> one signature per rule: the parts iptables-save keeps verbatim
// (iptables-save reorders matches and normalizes some values, so whole lines differ).
using Layout = std::map<std::string, std::map<std::string, std::vector<std::string>>>;

Layout LayoutOf(const std::string& text) {
  Layout out;
  std::string table;
  for (const auto& line : base::Split(text, '\n', true)) {
    if (line[0] == '*') {
      table = line.substr(1);
    } else if (line[0] == ':') {
      std::string chain = line.substr(1, line.find(' ') - 1);
      if (base::StartsWith(chain, "KUBE-")) out[table][chain];
    } else if (base::StartsWith(line, "-A KUBE-")) {
      auto w = Words(line);
      std::set<std::string> parts;
      for (size_t i = 2; i + 1 < w.size(); ++i) {
        if (w[i] == "-j" || w[i] == "--to-destination" || w[i] == "--comment" ||
            w[i] == "--dport" || w[i] == "--probability") {
          std::string v = w[i + 1];
          if (w[i] == "--probability") v = v.substr(0, 8);  // save prints 11 decimals
          parts.insert(w[i] + "=" + v);
        } else if (w[i] == "-d" || w[i] == "-s") {
          std::string v = w[i + 1];
          if (base::EndsWith(v, "/32")) v.resize(v.size() - 3);
          parts.insert(w[i] + "=" + (i > 2 && w[i - 1] == "!" ? "!" : "") + v);
        }
      }
      std::string sig = base::Join({parts.begin(), parts.end()}, " ");
      out[table][w[1]].push_back(sig);
    }
  }
  return out;
}

std::string Save(IptablesVariant v) {
  std::string out;
  Run(std::string("(") +
          (v == IptablesVariant::kNft ? "iptables-nft-save" : "iptables-legacy-save") +
          " 2>/dev/null)",
      &out);
  return out;
}

// curl exit code and body.
int Curl(const std::string& url, std::string* body = nullptr, const std::string& extra = "") {
  std::string out;
  int rc = Run("curl -s --max-time 5 " + extra + " " + url, &out);
  if (body) *body = std::string(base::Trim(out));
  return rc;
}

std::string NftList() {
  std::string out;
  Run("(nft list ruleset 2>/dev/null | sed -n '/^table ip cubelet/,/^}/p')", &out);
  return out;
}

// Makes this netns a legacy-iptables host for variant detection (the kubelet's hint chain in
// legacy mangle) while it lives; removes the hint and the proxy's legacy rules at the end.
class LegacyHost {
 public:
  explicit LegacyHost(bool on) : on_(on) {
    if (!on_) return;
    // Earlier cases' nft syncs left the nft hint, which detection would prefer.
    Run("iptables-nft -t mangle -X KUBE-IPTABLES-HINT 2>/dev/null");
    Run("iptables-legacy -w 5 -t mangle -N KUBE-IPTABLES-HINT 2>/dev/null");
  }
  ~LegacyHost() {
    if (!on_) return;
    LibiptcBackend b;
    (void)CleanupLeftovers(b);
    Run("iptables-legacy -w 5 -t mangle -X KUBE-IPTABLES-HINT 2>/dev/null");
  }

 private:
  bool on_;
};

// The same traffic scenario for each mode: ClusterIP, NodePort, balancing, REJECT, removal.
// legacy: the host's iptables is the legacy one, committed through libiptc.
void TrafficScenario(ProxyMode mode, bool legacy = false) {
  SweepStaleNamespaces();
  LegacyHost legacy_host(legacy);
  // A fresh netns: both iptables variants are empty, so detection must pick nft (Debian 12),
  // unless the legacy hint is there.
  const IptablesVariant variant = DetectIptablesVariant();
  CHECK(variant == (legacy ? IptablesVariant::kLegacy : IptablesVariant::kNft));

  Pod pod1(1, "10.250.1", "pod-1");
  // Services are routed like the rest of the cluster network (kube-proxy relies on a route).
  REQUIRE(Run("ip route add 10.96.0.0/12 dev np1") == 0);

  RulesBackendPtr real_backend = MakeIptablesBackend(variant);
  RulesBackend& real = *real_backend;
  CHECK(real.Name() == (legacy ? "iptables-legacy-libiptc" : "iptables-nft"));
  RecordingBackend* recorder = nullptr;
  ProxierOptions o;
  o.node_name = "node-a";
  o.node_ips = {pod1.host_ip()};
  o.cluster_cidr = "10.250.0.0/16";
  o.min_sync_period = 100ms;
  o.sync_period = 1s;  // how often a flush by someone else is noticed
  o.mode = mode;
  o.nft_shards = 3;  // the service lands in one of three service tables
  base::Result<std::unique_ptr<Proxier>> created;
  if (mode == ProxyMode::kIptables) {
    auto rec = std::make_unique<RecordingBackend>(&real);
    recorder = rec.get();
    created = Proxier::Create(o, std::move(rec));
  } else {
    created = Proxier::Create(o);
  }
  REQUIRE(created);
  auto& proxier = *created;

  Service svc = ClusterIPService("default", "web", "10.96.0.10",
                                 {Port("http", 80, 8080, Protocol::kTCP, 30080)});
  svc.type = ServiceType::kNodePort;
  EndpointSlice slice =
      Slice("default", "web", "web-abc", {Ep(pod1.ip(), true, "node-a")}, {EpPort("http", 8080)});
  proxier->OnServiceAdd(svc);
  proxier->OnEndpointSliceAdd(slice);
  proxier->OnServicesSynced();
  proxier->OnEndpointSlicesSynced();
  REQUIRE(proxier->WaitForSync(10s));

  std::string body;
  SECTION("cluster IP, load balancing, NodePort, reject, layout, removal") {
    REQUIRE(Curl("http://10.96.0.10/", &body) == 0);
    CHECK(body == "pod-1");

    if (mode == ProxyMode::kIptables) {
      // The kernel holds exactly the layout that was rendered.
      Layout saved = LayoutOf(Save(variant));
      Layout rendered = LayoutOf(recorder->last());
      for (const auto& [table, chains] : rendered) {
        for (const auto& [chain, rules] : chains) {
          INFO(table << " " << chain);
          REQUIRE(saved[table].count(chain));
          CHECK(saved[table][chain] == rules);
        }
      }
      const std::string svc_chain = ServiceChainName("default/web:http", "tcp");
      CHECK(saved["nat"].count(svc_chain));
      CHECK(saved["nat"].count(EndpointChainName("default/web:http", "tcp", pod1.ip() + ":8080")));
      std::string save = Save(variant);
      CHECK(save.find("-A PREROUTING -m comment --comment \"kubernetes service portals\" -j "
                      "KUBE-SERVICES") != std::string::npos);
      CHECK(save.find("-A OUTPUT -m comment --comment \"kubernetes service portals\" -j "
                      "KUBE-SERVICES") != std::string::npos);
      CHECK(save.find("-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j "
                      "KUBE-POSTROUTING") != std::string::npos);
    } else if (mode == ProxyMode::kUserspace) {
      std::string save = Save(variant);
      INFO(save);
      CHECK(save.find("-A KUBE-PORTALS-CONTAINER -d 10.96.0.10/32 -p tcp -m comment --comment "
                      "\"default/web:http\" -m tcp --dport 80 -j REDIRECT --to-ports") !=
            std::string::npos);
      CHECK(save.find("-A KUBE-NODEPORT-HOST -p tcp -m comment --comment \"default/web:http\" -m "
                      "tcp --dport 30080 -j REDIRECT") != std::string::npos);
    } else {
      std::string list = NftList();
      INFO(list);
      CHECK(list.find("10.96.0.10 . tcp . 80 : goto service-") != std::string::npos);
      CHECK(list.find("tcp . 30080 : goto external-") != std::string::npos);
      CHECK(list.find("dnat to " + pod1.ip() + ":8080") != std::string::npos);
      // iptables mode's rules are not there.
      CHECK(Save(variant).find("KUBE-SERVICES") == std::string::npos);
    }

    // Someone flushes everything (a firewall reload): the proxier notices and rewrites.
    const uint64_t syncs = proxier->metrics().sync_count();
    if (mode == ProxyMode::kNftables) {
      REQUIRE(Run("nft flush ruleset") == 0);
    } else {
      const std::string ipt = legacy ? "iptables-legacy" : "iptables-nft";
      REQUIRE(Run(ipt + " -t nat -F && " + ipt + " -t nat -X") == 0);
    }
    // No event arrives: only the periodic check can trigger this sync.
    for (int i = 0; i < 40 && proxier->metrics().sync_count() == syncs; ++i) {
      std::this_thread::sleep_for(100ms);
    }
    CHECK(proxier->metrics().sync_count() > syncs);
    REQUIRE(proxier->WaitForSync(10s));
    CHECK(Curl("http://10.96.0.10/", &body) == 0);

    // NodePort on the node's own address, and (iptables: route_localnet) on 127.0.0.1.
    REQUIRE(Curl("http://" + pod1.host_ip() + ":30080/", &body) == 0);
    CHECK(body == "pod-1");
    if (mode == ProxyMode::kIptables) {
      CHECK(Curl("http://127.0.0.1:30080/", &body) == 0);
      CHECK(body == "pod-1");
    }

    // A second pod: both answer over repeated requests.
    Pod pod2(2, "10.250.2", "pod-2");
    slice.endpoints.push_back(Ep(pod2.ip(), true, "node-b"));
    proxier->OnEndpointSliceUpdate(slice, slice);
    REQUIRE(proxier->WaitForSync(10s));
    std::map<std::string, int> seen;
    for (int i = 0; i < 40; ++i) {
      REQUIRE(Curl("http://10.96.0.10/", &body) == 0);
      seen[body]++;
    }
    INFO("pod-1: " << seen["pod-1"] << " pod-2: " << seen["pod-2"]);
    CHECK(seen.size() == 2);
    CHECK(seen["pod-1"] >= 5);
    CHECK(seen["pod-2"] >= 5);
    REQUIRE(Curl("http://" + pod1.host_ip() + ":30080/", &body) == 0);
    if (mode == ProxyMode::kUserspace) {
      // Round robin alternates exactly; an endpoint that refuses is skipped (next one tried).
      CHECK(std::abs(seen["pod-1"] - seen["pod-2"]) <= 1);
      EndpointSlice dead = Slice("default", "web", "web-dead", {Ep(pod2.ip(), true, "node-b")},
                                 {EpPort("http", 9999)});
      proxier->OnEndpointSliceAdd(dead);
      REQUIRE(proxier->WaitForSync(10s));
      for (int i = 0; i < 12; ++i) CHECK(Curl("http://10.96.0.10/", &body) == 0);
      proxier->OnEndpointSliceDelete(dead);
      REQUIRE(proxier->WaitForSync(10s));
    }

    // No endpoints: refused at once (REJECT), not a hang.
    slice.endpoints.clear();
    proxier->OnEndpointSliceUpdate(slice, slice);
    REQUIRE(proxier->WaitForSync(10s));
    auto t0 = std::chrono::steady_clock::now();
    int rc = Curl("http://10.96.0.10/");
    auto took = std::chrono::steady_clock::now() - t0;
    CHECK(rc == 7);  // curl: failed to connect (connection refused)
    CHECK(took < 2s);
    rc = Curl("http://" + pod1.host_ip() + ":30080/");
    CHECK(rc == 7);
    if (mode != ProxyMode::kNftables) {
      CHECK(Save(variant).find("default/web:http has no endpoints") != std::string::npos);
      CHECK(Save(variant).find(ServiceChainName("default/web:http", "tcp")) == std::string::npos);
    } else {
      CHECK(NftList().find("10.96.0.10 . tcp . 80 : goto reject-chain") != std::string::npos);
      CHECK(NftList().find("chain service-") == std::string::npos);
    }

    // Endpoints back, then service and slice deleted: nothing of it remains.
    slice.endpoints.push_back(Ep(pod1.ip(), true, "node-a"));
    proxier->OnEndpointSliceUpdate(slice, slice);
    REQUIRE(proxier->WaitForSync(10s));
    REQUIRE(Curl("http://10.96.0.10/", &body) == 0);
    proxier->OnServiceDelete(svc);
    proxier->OnEndpointSliceDelete(slice);
    REQUIRE(proxier->WaitForSync(10s));
    if (mode != ProxyMode::kNftables) {
      std::string save = Save(variant);
      CHECK(save.find("default/web") == std::string::npos);
      CHECK(save.find("KUBE-SVC-") == std::string::npos);
      CHECK(save.find("KUBE-SEP-") == std::string::npos);
      CHECK(save.find("KUBE-EXT-") == std::string::npos);
    } else {
      std::string list = NftList();
      INFO(list);
      CHECK(list.find("default/web") == std::string::npos);
      CHECK(list.find("10.96.0.10") == std::string::npos);
      CHECK(list.find(pod1.ip()) == std::string::npos);  // hairpin element gone too
    }
    CHECK(Curl("http://10.96.0.10/") != 0);
  }

  SECTION("cleanup removes every rule of the proxy") {
    proxier->Stop();
    if (mode != ProxyMode::kNftables) {
      REQUIRE(CleanupLeftovers(real));
      std::string save = Save(variant);
      INFO(save);
      CHECK(save.find("KUBE-SERVICES") == std::string::npos);
      CHECK(save.find("KUBE-SVC-") == std::string::npos);
      CHECK(save.find("KUBE-POSTROUTING") == std::string::npos);
      CHECK(save.find("KUBE-FORWARD") == std::string::npos);
      CHECK(save.find("KUBE-MARK-MASQ") == std::string::npos);
      CHECK(save.find("KUBE-PORTALS") == std::string::npos);
    } else {
      auto nft = MakeNetlinkNftBackend();
      REQUIRE(CleanupNftables(*nft));
      CHECK(NftList().empty());
    }
    CHECK(Curl("http://10.96.0.10/") != 0);
  }
  proxier.reset();
  CleanupLeftovers(real);
  auto nft = MakeNetlinkNftBackend();
  CleanupNftables(*nft);
  Run("ip route del 10.96.0.0/12");
}

}  // namespace

// A UDP socket bound to `port`, created inside the network namespace at `netns_path` (the
// calling thread switches there and back).
base::UniqueFd UdpSocketIn(const std::string& netns_path, int port) {
  base::UniqueFd self(open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
  base::UniqueFd target(open(netns_path.c_str(), O_RDONLY | O_CLOEXEC));
  REQUIRE(self);
  REQUIRE(target);
  REQUIRE(setns(target.get(), CLONE_NEWNET) == 0);
  base::UniqueFd fd(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  int rc = bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a);
  REQUIRE(setns(self.get(), CLONE_NEWNET) == 0);
  REQUIRE(rc == 0);
  timeval tv{0, 200000};
  setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

// Answers every datagram with `body` until destroyed.
class UdpResponder {
 public:
  UdpResponder(const std::string& netns_path, int port, std::string body)
      : fd_(UdpSocketIn(netns_path, port)), body_(std::move(body)) {
    thread_ = std::thread([this] {
      char buf[512];
      while (!stop_) {
        sockaddr_in from{};
        socklen_t len = sizeof from;
        ssize_t n =
            recvfrom(fd_.get(), buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &len);
        if (n < 0) continue;
        sendto(fd_.get(), body_.data(), body_.size(), 0, reinterpret_cast<sockaddr*>(&from), len);
      }
    });
  }
  ~UdpResponder() {
    stop_ = true;
    thread_.join();
  }

 private:
  base::UniqueFd fd_;
  std::string body_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// Sends one datagram to ip:port from `fd` and returns the answer ("" after 1 s).
std::string UdpAsk(int fd, const std::string& ip, int port) {
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, ip.c_str(), &to.sin_addr);
  sendto(fd, "q", 1, 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
  char buf[512];
  for (int i = 0; i < 5; ++i) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n > 0) return std::string(buf, static_cast<size_t>(n));
  }
  return "";
}

// A UDP flow (a DNS client reusing its port) follows the endpoint change: the conntrack entry
// that pinned it to the old endpoint is removed. Without the cleanup it would stick.
void UdpScenario(ProxyMode mode, bool cleanup) {
  SweepStaleNamespaces();
  Pod pod1(1, "10.250.1", "");
  Pod pod2(2, "10.250.2", "");
  REQUIRE(Run("ip route add 10.96.0.0/12 dev np1") == 0);
  UdpResponder r1(pod1.netns_path(), 5353, "pod-1");
  UdpResponder r2(pod2.netns_path(), 5353, "pod-2");

  ProxierOptions o;
  o.node_name = "node-a";
  o.cluster_cidr = "10.250.0.0/16";
  o.min_sync_period = 50ms;
  o.mode = mode;
  o.conntrack_cleanup = cleanup;
  auto created = Proxier::Create(o);
  REQUIRE(created);
  auto& proxier = *created;
  Service dns =
      ClusterIPService("kube-system", "dns", "10.96.0.30", {Port("dns", 53, 5353, Protocol::kUDP)});
  EndpointSlice slice = Slice("kube-system", "dns", "dns-1", {Ep(pod1.ip(), true, "node-a")},
                              {EpPort("dns", 5353, Protocol::kUDP)});
  proxier->OnServiceAdd(dns);
  proxier->OnEndpointSliceAdd(slice);
  proxier->OnServicesSynced();
  proxier->OnEndpointSlicesSynced();
  REQUIRE(proxier->WaitForSync(10s));

  base::UniqueFd client = UdpSocketIn("/proc/self/ns/net", 40053);
  CHECK(UdpAsk(client.get(), "10.96.0.30", 53) == "pod-1");
  slice.endpoints = {Ep(pod2.ip(), true, "node-b")};
  proxier->OnEndpointSliceUpdate(slice, slice);
  REQUIRE(proxier->WaitForSync(10s));
  if (mode == ProxyMode::kUserspace) {
    // The proxy's flow to the old endpoint ends after its idle timeout (250 ms).
    std::this_thread::sleep_for(500ms);
    CHECK(UdpAsk(client.get(), "10.96.0.30", 53) == "pod-2");
  } else {
    CHECK(UdpAsk(client.get(), "10.96.0.30", 53) == (cleanup ? "pod-2" : "pod-1"));
  }

  proxier.reset();
  IptablesRestoreBackend real(IptablesVariant::kNft);
  CleanupLeftovers(real);
  CleanupNftables(*MakeNetlinkNftBackend());
  Run("conntrack -F 2>/dev/null");  // this netns only
  Run("ip route del 10.96.0.0/12");
}

TEST_CASE("UDP flows follow endpoint changes (stale conntrack entries removed)") {
  SECTION("iptables") { UdpScenario(ProxyMode::kIptables, true); }
  SECTION("nftables") { UdpScenario(ProxyMode::kNftables, true); }
  // The same steps without the cleanup: the flow sticks to the old endpoint, so the test above
  // does detect a missing cleanup.
  SECTION("control: no cleanup") { UdpScenario(ProxyMode::kNftables, false); }
  SECTION("userspace") { UdpScenario(ProxyMode::kUserspace, true); }
}

// externalTrafficPolicy Local with its health check node port, and ClientIP affinity.
void PolicyScenario(ProxyMode mode, bool legacy = false) {
  SweepStaleNamespaces();
  LegacyHost legacy_host(legacy);
  Pod pod1(1, "10.250.1", "pod-1");
  Pod pod2(2, "10.250.2", "pod-2");
  // A client outside the cluster CIDR, as a load balancer or an external user would be.
  Pod client(3, "192.168.77", "");
  REQUIRE(Run("ip route add 10.96.0.0/12 dev np1") == 0);
  REQUIRE(base::WriteFile("/proc/sys/net/ipv4/ip_forward", "1"));  // this test's netns only

  ProxierOptions o;
  o.node_name = "node-a";
  o.node_ips = {pod1.host_ip()};
  o.cluster_cidr = "10.250.0.0/16";
  o.min_sync_period = 50ms;
  o.mode = mode;
  auto created = Proxier::Create(o);
  REQUIRE(created);
  auto& proxier = *created;

  Service lb = ClusterIPService("default", "lb", "10.96.0.20",
                                {Port("http", 80, 8080, Protocol::kTCP, 30081)});
  lb.type = ServiceType::kLoadBalancer;
  lb.external_traffic_policy = TrafficPolicy::kLocal;
  lb.health_check_node_port = 32000;
  EndpointSlice lb_slice =
      Slice("default", "lb", "lb-1", {Ep(pod1.ip(), true, "node-a"), Ep(pod2.ip(), true, "node-b")},
            {EpPort("http", 8080)});
  Service sticky = ClusterIPService("default", "sticky", "10.96.0.21", {Port("http", 80, 8080)});
  sticky.session_affinity = SessionAffinity::kClientIP;
  sticky.session_affinity_timeout_seconds = 600;
  EndpointSlice sticky_slice =
      Slice("default", "sticky", "sticky-1",
            {Ep(pod1.ip(), true, "node-a"), Ep(pod2.ip(), true, "node-b")}, {EpPort("http", 8080)});
  proxier->OnServiceAdd(lb);
  proxier->OnEndpointSliceAdd(lb_slice);
  proxier->OnServiceAdd(sticky);
  proxier->OnEndpointSliceAdd(sticky_slice);
  proxier->OnServicesSynced();
  proxier->OnEndpointSlicesSynced();
  REQUIRE(proxier->WaitForSync(10s));

  std::string body;
  // The health check node port reports this node's local endpoints.
  REQUIRE(Curl("http://" + pod1.host_ip() + ":32000/", &body, "-w ' %{http_code}'") == 0);
  CHECK(body ==
        "{\"service\": {\"namespace\": \"default\", \"name\": \"lb\"}, "
        "\"localEndpoints\": 1, \"serviceProxyHealthy\": true} 200");

  // From outside the cluster, the NodePort reaches only the local endpoint (client address kept).
  const std::string np_url = "http://" + client.host_ip() + ":30081/";
  std::map<std::string, int> seen;
  for (int i = 0; i < 20; ++i) {
    std::string out;
    REQUIRE(client.Exec("curl -s --max-time 5 " + np_url, &out) == 0);
    seen[std::string(base::Trim(out))]++;
  }
  CHECK(seen == std::map<std::string, int>{{"pod-1", 20}});
  // From this node itself the short-circuit reaches both endpoints.
  seen.clear();
  for (int i = 0; i < 30; ++i) {
    REQUIRE(Curl("http://" + pod1.host_ip() + ":30081/", &body) == 0);
    seen[body]++;
  }
  CHECK(seen.size() == 2);

  // Affinity: one client keeps its endpoint.
  seen.clear();
  for (int i = 0; i < 20; ++i) {
    REQUIRE(Curl("http://10.96.0.21/", &body) == 0);
    seen[body]++;
  }
  CHECK(seen.size() == 1);
  CHECK(seen.begin()->second == 20);

  // No local endpoint left: the health check fails and outside NodePort traffic is dropped
  // (a black hole by design: the load balancer stops sending here).
  lb_slice.endpoints = {Ep(pod2.ip(), true, "node-b")};
  proxier->OnEndpointSliceUpdate(lb_slice, lb_slice);
  REQUIRE(proxier->WaitForSync(10s));
  REQUIRE(Curl("http://" + pod1.host_ip() + ":32000/", &body, "-w ' %{http_code}'") == 0);
  CHECK(base::EndsWith(body, "\"localEndpoints\": 0, \"serviceProxyHealthy\": true} 503"));
  CHECK(client.Exec("curl -s --max-time 2 " + np_url) == 28);  // timeout, not refused
  // The node itself still reaches the remote endpoint.
  REQUIRE(Curl("http://" + pod1.host_ip() + ":30081/", &body) == 0);
  CHECK(body == "pod-2");

  // The service gone: its health check port closes.
  proxier->OnServiceDelete(lb);
  proxier->OnEndpointSliceDelete(lb_slice);
  REQUIRE(proxier->WaitForSync(10s));
  CHECK(Curl("http://" + pod1.host_ip() + ":32000/") == 7);

  proxier.reset();
  IptablesRestoreBackend real(IptablesVariant::kNft);
  CleanupLeftovers(real);
  CleanupNftables(*MakeNetlinkNftBackend());
  Run("ip route del 10.96.0.0/12");
}

TEST_CASE("iptables mode: externalTrafficPolicy Local, health check node port, affinity") {
  PolicyScenario(ProxyMode::kIptables);
}

TEST_CASE(
    "iptables mode, legacy host (libiptc): externalTrafficPolicy Local, health check node port, "
    "affinity") {
  PolicyScenario(ProxyMode::kIptables, true);
}

TEST_CASE("nftables mode: externalTrafficPolicy Local, health check node port, affinity") {
  PolicyScenario(ProxyMode::kNftables);
}

TEST_CASE(
    "iptables mode: ClusterIP and NodePort traffic reaches pods, balanced, rejected "
    "without endpoints") {
  TrafficScenario(ProxyMode::kIptables);
}

TEST_CASE(
    "iptables mode, legacy host (libiptc): ClusterIP and NodePort traffic reaches pods, "
    "balanced, rejected without endpoints") {
  TrafficScenario(ProxyMode::kIptables, true);
}

TEST_CASE(
    "userspace mode: ClusterIP and NodePort traffic reaches pods, balanced, rejected "
    "without endpoints") {
  TrafficScenario(ProxyMode::kUserspace);
}

TEST_CASE(
    "userspace mode, legacy host (libiptc): ClusterIP and NodePort traffic reaches pods, "
    "balanced, rejected without endpoints") {
  TrafficScenario(ProxyMode::kUserspace, true);
}

TEST_CASE(
    "nftables mode: ClusterIP and NodePort traffic reaches pods, balanced, rejected "
    "without endpoints") {
  TrafficScenario(ProxyMode::kNftables);
}

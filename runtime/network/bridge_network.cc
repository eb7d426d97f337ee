#include "runtime/network/bridge_network.h"

#include <linux/rtnetlink.h>

#include "base/file.h"
#include "base/log.h"
#include "base/scope_guard.h"
#include "base/strings.h"
#include "runtime/network/address.h"
#include "runtime/network/route.h"

namespace runtime::net {
namespace {

constexpr const char* kIpForward = "/proc/sys/net/ipv4/ip_forward";

Result<> ValidateSandboxId(const std::string& id) {
  if (id.empty()) return base::Fail("empty sandbox id", EINVAL);
  for (char c : id) {
    bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              c == '_' || c == '-' || c == '.';
    if (!ok) return base::Fail("invalid sandbox id \"" + id + "\"", EINVAL);
  }
  return {};
}

// ip_forward is per network namespace; /proc/sys/net follows the writing thread's namespace.
Result<> EnableIpForward() {
  auto cur = base::ReadFile(kIpForward);
  if (cur && base::Trim(*cur) == "1") return {};
  CUBELET_TRY_CTX(base::WriteFile(kIpForward, "1\n"), "enable IPv4 forwarding");
  return {};
}

}  // namespace

BridgeNetwork::BridgeNetwork(BridgeNetworkOptions options)
    : options_(std::move(options)),
      ipam_(options_.state_dir + "/ipam"),
      host_ports_(options_.state_dir + "/hostports", options_.iptables) {
  auto ns = NetNamespace::Current();
  if (ns) {
    node_ns_.emplace(std::move(*ns));
  } else {
    node_ns_error_ = ns.error().message;
  }
}

BridgeNetwork::~BridgeNetwork() = default;

std::string BridgeNetwork::HostVethName(const std::string& sandbox_id) {
  return "veth" + sandbox_id.substr(0, 8);
}

Result<const NetNamespace*> BridgeNetwork::NodeNs() const {
  if (!node_ns_) return base::Fail("node network namespace unavailable: " + node_ns_error_);
  return &*node_ns_;
}

std::optional<Ipv4Cidr> BridgeNetwork::PodCidr() const {
  std::lock_guard<std::mutex> l(mu_);
  return pod_cidr_;
}

bool BridgeNetwork::Ready(std::string* reason, std::string* message) const {
  std::lock_guard<std::mutex> l(mu_);
  if (pod_cidr_) {
    if (reason) reason->clear();
    if (message) message->clear();
    return true;
  }
  if (reason) *reason = "NetworkPluginNotReady";
  if (message) *message = not_ready_message_;
  return false;
}

Result<Bridge> BridgeNetwork::EnsureBridge(NetlinkSocket& sock, const Ipv4Cidr& cidr) const {
  // A fixed MAC: otherwise the bridge takes the lowest MAC of its ports and changes it as pods
  // come and go, which breaks the pods' ARP entries for the gateway.
  auto br = Bridge::Ensure(sock, {options_.bridge_name, options_.mtu, cidr.Gateway().Mac()});
  if (!br) return br;
  CUBELET_TRY(Address::Ensure(sock, br->link(), {cidr.Gateway(), cidr.prefix}, true));
  return br;
}

Result<> BridgeNetwork::EnsureNodeNetwork(const std::string& pod_cidr) {
  std::lock_guard<std::mutex> serial(node_setup_mu_);
  const std::string what = "set up node network for pod CIDR \"" + pod_cidr + "\"";
  auto cidr = Ipv4Cidr::Parse(pod_cidr);
  auto result = [&]() -> Result<> {
    if (pod_cidr.empty()) return base::Fail("no pod CIDR");
    if (!cidr) return tl::unexpected(cidr.error());
    if (cidr->PodIpCount() == 0) {
      return base::Fail("pod CIDR " + cidr->ToString() + " is too small (prefix > 30)");
    }
    NodeRulesConfig rules{*cidr, std::nullopt, options_.masquerade, options_.forward_accept};
    if (!options_.cluster_cidr.empty()) {
      auto cc = Ipv4Cidr::Parse(options_.cluster_cidr);
      if (!cc) return tl::unexpected(cc.error().Wrap("cluster CIDR"));
      rules.cluster_cidr = *cc;
    }
    auto ns = NodeNs();
    if (!ns) return tl::unexpected(ns.error());
    // The whole node-side setup runs inside the node namespace: netlink, /proc/sys and the
    // iptables programs all follow the calling thread's namespace.
    auto guard = (*ns)->Enter();
    if (!guard) return tl::unexpected(guard.error());
    auto sock = NetlinkSocket::Open("node netns");
    if (!sock) return tl::unexpected(sock.error());
    auto br = EnsureBridge(*sock, *cidr);
    if (!br) return tl::unexpected(br.error());
    CUBELET_TRY(EnableIpForward());
    CUBELET_TRY(ApplyNodeRules(rules, options_.iptables));
    // Restores host port rules after a restart or a flush of the tables.
    if (options_.host_ports) CUBELET_TRY(host_ports_.Apply());
    return {};
  }();

  std::lock_guard<std::mutex> l(mu_);
  if (!result) {
    auto err = result.error().Wrap(what);
    // A failed repair of the CIDR already in use leaves working pods working; anything else
    // means no pod can be set up.
    if (!pod_cidr_ || !cidr || *pod_cidr_ != *cidr) {
      pod_cidr_.reset();
      not_ready_message_ = pod_cidr.empty() ? "no pod CIDR" : err.message;
    }
    return tl::unexpected(err);
  }
  if (pod_cidr_ && *pod_cidr_ != *cidr) {
    base::log::Warn("pod CIDR changed; existing pods keep their addresses",
                    {{"old", pod_cidr_->ToString()}, {"new", cidr->ToString()}});
  }
  if (!pod_cidr_ || *pod_cidr_ != *cidr) {
    base::log::Info("node pod network ready", {{"bridge", options_.bridge_name},
                                               {"pod_cidr", cidr->ToString()},
                                               {"gateway", cidr->Gateway().ToString()}});
  }
  pod_cidr_ = *cidr;
  not_ready_message_.clear();
  return {};
}

Result<SandboxNetStatus> BridgeNetwork::Setup(const SandboxNetRequest& req) {
  const std::string what = "set up network of sandbox " + req.sandbox_id;
  auto cidr = PodCidr();
  if (!cidr) {
    std::string reason, message;
    Ready(&reason, &message);
    return base::Fail(what + ": pod network not ready: " + message);
  }
  auto r = DoSetup(req, *cidr);
  if (!r) return tl::unexpected(r.error().Wrap(what));
  return r;
}

Result<SandboxNetStatus> BridgeNetwork::DoSetup(const SandboxNetRequest& req,
                                                const Ipv4Cidr& cidr) {
  CUBELET_TRY(ValidateSandboxId(req.sandbox_id));
  if (req.netns_path.empty()) return base::Fail("no network namespace path", EINVAL);
  auto node_ns = NodeNs();
  if (!node_ns) return tl::unexpected(node_ns.error());
  auto pod_ns = NetNamespace::Open(req.netns_path);
  if (!pod_ns) return tl::unexpected(pod_ns.error());
  // Host ports: reject bad or taken ones before touching anything (Set re-checks under its lock).
  auto ports = HostPortEntries(req.sandbox_id, Ipv4{}, req.port_mappings);
  if (!ports) return tl::unexpected(ports.error());
  if (!options_.host_ports && !ports->empty()) {
    base::log::Warn("host ports disabled; ignoring the pod's host ports",
                    {{"sandbox", req.sandbox_id}, {"count", ports->size()}});
    ports->clear();
  }
  if (!ports->empty()) {
    auto others = host_ports_.LoadAll(req.sandbox_id);
    if (!others) return tl::unexpected(others.error());
    CUBELET_TRY(CheckHostPortConflicts(*ports, *others));
  }

  auto alloc = ipam_.Allocate(cidr, req.sandbox_id);
  if (!alloc) return tl::unexpected(alloc.error());
  const Ipv4 ip = alloc->ip;
  // A new address goes back if the rest fails; an address the sandbox already held stays (the
  // runtime's Teardown frees it).
  auto release = base::Defer([&] {
    if (auto r = ipam_.Release(req.sandbox_id); !r) {
      base::log::Warn("cannot release IP after failed setup",
                      {{"sandbox", req.sandbox_id}, {"err", r.error().message}});
    }
  });
  if (alloc->existing) release.Dismiss();

  auto node_sock = NetlinkSocket::OpenIn(**node_ns);
  if (!node_sock) return tl::unexpected(node_sock.error());
  auto pod_sock = NetlinkSocket::OpenIn(*pod_ns);
  if (!pod_sock) return tl::unexpected(pod_sock.error());

  // The bridge may have been deleted behind our back: repair it (cheap when it is fine).
  auto bridge = EnsureBridge(*node_sock, cidr);
  if (!bridge) return tl::unexpected(bridge.error());

  const std::string host_name = HostVethName(req.sandbox_id);
  const std::string& ifname = options_.interface_name;
  auto host = Link::Find(*node_sock, host_name);
  if (!host) return tl::unexpected(host.error());
  auto peer = Link::Find(*pod_sock, ifname);
  if (!peer) return tl::unexpected(peer.error());
  if (*host && !(*host)->alias().empty() && (*host)->alias() != req.sandbox_id) {
    return base::Fail("host interface " + host_name + " belongs to sandbox " + (*host)->alias(),
                      EEXIST);
  }

  // Reuse a pair left by an earlier Setup only if both ends are there and point at each other.
  bool intact = *host && *peer && (*host)->kind() == "veth" && (*peer)->kind() == "veth" &&
                (*host)->peer_index() == (*peer)->index() &&
                (*peer)->peer_index() == (*host)->index();
  std::optional<VethPair> created;
  if (!intact) {
    if (*host) CUBELET_TRY((*host)->Delete());
    if (*peer) CUBELET_TRY((*peer)->Delete());
    auto pair = VethPair::Create(*node_sock, {host_name, ifname, &*pod_ns, options_.mtu, ip.Mac()});
    if (!pair) return tl::unexpected(pair.error());
    created.emplace(std::move(*pair));
    auto p = Link::Get(*pod_sock, ifname);
    if (!p) return tl::unexpected(p.error());
    peer->emplace(std::move(*p));
  }
  Link& host_link = created ? created->host() : **host;
  Link& pod_link = **peer;

  // Pod side: MAC, address, up, loopback, default route through the bridge.
  CUBELET_TRY(pod_link.SetMac(ip.Mac()));
  CUBELET_TRY(pod_link.SetMtu(options_.mtu));
  CUBELET_TRY(Address::Ensure(*pod_sock, pod_link, {ip, cidr.prefix}, true));
  CUBELET_TRY(pod_link.SetUp());
  auto lo = Link::Get(*pod_sock, "lo");
  if (!lo) return tl::unexpected(lo.error());
  CUBELET_TRY(lo->SetUp());
  Route def{Ipv4Cidr{Ipv4{0}, 0}, cidr.Gateway(), pod_link.index(), RTPROT_BOOT};
  CUBELET_TRY(Route::Replace(*pod_sock, def));

  // Node side: owned by the sandbox (alias), on the bridge, hairpin, up.
  CUBELET_TRY(host_link.SetAlias(req.sandbox_id));
  CUBELET_TRY(host_link.SetMtu(options_.mtu));
  CUBELET_TRY(bridge->AddPort(host_link, options_.hairpin));
  CUBELET_TRY(host_link.SetUp());

  if (!ports->empty() || host_ports_.Has(req.sandbox_id)) {
    for (auto& p : *ports) p.pod_ip = ip;
    auto guard = (*node_ns)->Enter();  // iptables acts in the calling thread's namespace
    if (!guard) return tl::unexpected(guard.error());
    CUBELET_TRY(host_ports_.Set(req.sandbox_id, *ports));
  }

  if (created) created->Keep();
  release.Dismiss();
  base::log::Debug("pod network set up", {{"sandbox", req.sandbox_id},
                                          {"ip", ip.ToString()},
                                          {"veth", host_name},
                                          {"reused", intact ? 1 : 0}});
  SandboxNetStatus st;
  st.ip = ip.ToString();
  st.interface = ifname;
  st.gateway = cidr.Gateway().ToString();
  return st;
}

Result<> BridgeNetwork::Teardown(const SandboxNetRequest& req) {
  const std::string what = "tear down network of sandbox " + req.sandbox_id;
  CUBELET_TRY_CTX(ValidateSandboxId(req.sandbox_id), what);
  auto node_ns = NodeNs();
  if (!node_ns) return tl::unexpected(node_ns.error().Wrap(what));
  auto node_sock = NetlinkSocket::OpenIn(**node_ns);
  if (!node_sock) return tl::unexpected(node_sock.error().Wrap(what));

  const std::string host_name = HostVethName(req.sandbox_id);
  auto host = Link::Find(*node_sock, host_name);
  if (!host) return tl::unexpected(host.error().Wrap(what));
  if (*host && (*host)->alias() != req.sandbox_id && !(*host)->alias().empty()) {
    // Same 8-digit prefix, other sandbox: not ours to delete.
    base::log::Warn(
        "host veth belongs to another sandbox; leaving it",
        {{"veth", host_name}, {"sandbox", req.sandbox_id}, {"owner", (*host)->alias()}});
  } else if (*host) {
    // Deleting one end deletes both.
    CUBELET_TRY_CTX((*host)->Delete(), what);
  } else if (!req.netns_path.empty() && NetNamespace::IsPinned(req.netns_path)) {
    // Half-made pair (crash during Setup): the pod end may be alone.
    auto pod_ns = NetNamespace::Open(req.netns_path);
    if (pod_ns) {
      auto pod_sock = NetlinkSocket::OpenIn(*pod_ns);
      if (!pod_sock) return tl::unexpected(pod_sock.error().Wrap(what));
      auto peer = Link::Find(*pod_sock, options_.interface_name);
      if (!peer) return tl::unexpected(peer.error().Wrap(what));
      if (*peer && (*peer)->kind() == "veth") CUBELET_TRY_CTX((*peer)->Delete(), what);
    }
  }
  if (host_ports_.Has(req.sandbox_id)) {
    auto guard = (*node_ns)->Enter();
    if (!guard) return tl::unexpected(guard.error().Wrap(what));
    CUBELET_TRY_CTX(host_ports_.Set(req.sandbox_id, {}), what);
  }
  auto freed = ipam_.Release(req.sandbox_id);
  if (!freed) return tl::unexpected(freed.error().Wrap(what));
  for (const auto& a : *freed) {
    base::log::Debug("released pod IP", {{"sandbox", req.sandbox_id}, {"ip", a.ip.ToString()}});
  }
  return {};
}

Result<size_t> BridgeNetwork::GarbageCollect(const std::set<std::string>& live) {
  const std::string what = "garbage-collect pod network";
  std::set<std::string> cleaned;
  auto freed = ipam_.GarbageCollect(live);
  if (!freed) return tl::unexpected(freed.error().Wrap(what));
  for (const auto& a : *freed) {
    cleaned.insert(a.sandbox_id);
    base::log::Info("released IP of vanished sandbox",
                    {{"sandbox", a.sandbox_id}, {"ip", a.ip.ToString()}});
  }

  auto node_ns = NodeNs();
  if (!node_ns) return tl::unexpected(node_ns.error().Wrap(what));
  auto mapped = host_ports_.LoadAll();
  if (!mapped) return tl::unexpected(mapped.error().Wrap(what));
  std::set<std::string> stale_ports;
  for (const auto& e : *mapped) {
    if (!live.count(e.sandbox_id)) stale_ports.insert(e.sandbox_id);
  }
  if (!stale_ports.empty()) {
    auto guard = (*node_ns)->Enter();
    if (!guard) return tl::unexpected(guard.error().Wrap(what));
    for (const auto& id : stale_ports) {
      CUBELET_TRY_CTX(host_ports_.Set(id, {}), what);
      cleaned.insert(id);
    }
  }
  auto sock = NetlinkSocket::OpenIn(**node_ns);
  if (!sock) return tl::unexpected(sock.error().Wrap(what));
  auto br = Bridge::Find(*sock, options_.bridge_name);
  if (!br) return tl::unexpected(br.error().Wrap(what));
  if (!*br) return cleaned.size();
  std::set<std::string> live_names;
  for (const auto& id : live) live_names.insert(HostVethName(id));
  auto links = Link::List(*sock);
  if (!links) return tl::unexpected(links.error().Wrap(what));
  for (auto& l : *links) {
    if (l.master() != (*br)->index() || l.kind() != "veth") continue;
    std::string owner = l.alias();
    bool alive = owner.empty() ? live_names.count(l.name()) > 0 : live.count(owner) > 0;
    if (alive) continue;
    CUBELET_TRY_CTX(l.Delete(), what);
    cleaned.insert(owner.empty() ? l.name() : owner);
    base::log::Info("deleted veth of vanished sandbox", {{"veth", l.name()}, {"sandbox", owner}});
  }
  return cleaned.size();
}

}  // namespace runtime::net

#include "netproxy/conntrack.h"

#include <arpa/inet.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <netinet/in.h>

#include <map>
#include <set>
#include <vector>

#include "base/scope_guard.h"

namespace netproxy {

namespace {

uint32_t Addr(const std::string& ip) {
  in_addr a{};
  inet_pton(AF_INET, ip.c_str(), &a);
  return a.s_addr;  // network order, as conntrack reports it
}

struct Frontends {
  // (orig dst address, orig dst port) -> serving endpoint addresses; all network order.
  std::map<std::pair<uint32_t, uint16_t>, std::set<uint32_t>> by_ip;
  std::map<uint16_t, std::set<uint32_t>> by_node_port;
  std::vector<nf_conntrack*> stale;
};

int OnEntry(enum nf_conntrack_msg_type, nf_conntrack* ct, void* data) {
  auto* f = static_cast<Frontends*>(data);
  if (nfct_get_attr_u8(ct, ATTR_ORIG_L4PROTO) != IPPROTO_UDP) return NFCT_CB_CONTINUE;
  uint32_t dst = nfct_get_attr_u32(ct, ATTR_ORIG_IPV4_DST);
  uint16_t dport = nfct_get_attr_u16(ct, ATTR_ORIG_PORT_DST);
  uint32_t reply_src = nfct_get_attr_u32(ct, ATTR_REPL_IPV4_SRC);
  bool stale = false;
  if (auto it = f->by_ip.find({dst, dport}); it != f->by_ip.end()) {
    stale = !it->second.count(reply_src);
  } else if (auto np = f->by_node_port.find(dport); np != f->by_node_port.end()) {
    stale = !np->second.count(reply_src);
  }
  if (stale) f->stale.push_back(nfct_clone(ct));
  return NFCT_CB_CONTINUE;
}

}  // namespace

base::Result<size_t> CleanStaleUdpConntrack(const ProxyState& state) {
  Frontends f;
  for (const auto& [spn, svc] : state.service_ports()) {
    if (spn.protocol != Protocol::kUDP) continue;
    std::set<uint32_t> serving;
    for (const auto& ep : state.EndpointsFor(spn)) {
      if (ep.serving) serving.insert(htonl(ep.ipv4));
    }
    // Without endpoints the packets are rejected, and no entry is confirmed.
    if (serving.empty()) continue;
    const uint16_t port = htons(static_cast<uint16_t>(svc.port));
    f.by_ip[{Addr(svc.cluster_ip), port}] = serving;
    for (const auto& ip : svc.external_ips) f.by_ip[{Addr(ip), port}] = serving;
    for (const auto& ip : svc.load_balancer_ips) f.by_ip[{Addr(ip), port}] = serving;
    if (svc.node_port) f.by_node_port[htons(static_cast<uint16_t>(svc.node_port))] = serving;
  }
  if (f.by_ip.empty() && f.by_node_port.empty()) return size_t{0};

  nfct_handle* h = nfct_open(CONNTRACK, 0);
  if (!h) return base::Errno("conntrack: open netlink socket");
  auto close = base::Defer([&] { nfct_close(h); });
  auto free_all = base::Defer([&] {
    for (nf_conntrack* ct : f.stale) nfct_destroy(ct);
  });
  nfct_callback_register(h, NFCT_T_ALL, OnEntry, &f);
  uint32_t family = AF_INET;
  if (nfct_query(h, NFCT_Q_DUMP, &family) < 0) return base::Errno("conntrack: dump");
  nfct_callback_unregister(h);
  size_t deleted = 0;
  for (nf_conntrack* ct : f.stale) {
    // ENOENT: the entry expired meanwhile.
    if (nfct_query(h, NFCT_Q_DESTROY, ct) == 0 || errno == ENOENT) ++deleted;
  }
  return deleted;
}

}  // namespace netproxy

// The nftables backend that speaks netlink directly (nft_netlink_batch.h writes the messages,
// one batch per transaction). Unlike libnftables it neither parses text nor reads the table back
// before each change (measured with libnftables at 5k services: 0.2-0.3 s per command, all cache
// reads). What a change still costs grows with its table, as the kernel re-validates a table after
// a change that adds jumps or NAT: hence the service tables of NftRendererConfig::shards. The
// expressions mirror what `nft --debug=netlink` shows for the text rules of nft_renderer.cc
// (tests/netproxy/nft_netlink_test.cc loads both into the kernel and compares `nft list`).
// First: it includes <arpa/inet.h> before the <linux/...> headers, which clash otherwise.
#include "netproxy/nft_netlink_batch.h"
// clang-format off
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter_ipv4.h>
// clang-format on

#include <future>
#include <memory>
#include <set>
#include <system_error>

#include "base/strings.h"
#include "netproxy/nftables_engine.h"

namespace netproxy {

namespace {

using namespace nftwire;

// --- translation of the renderer's objects ---

// "ip . ip"
ElementData HairpinElement(std::string_view key) {
  ElementData d;
  size_t dot = key.find(" . ");
  uint32_t a = IPv4(key.substr(0, dot));
  uint32_t b = dot == std::string_view::npos ? 0 : IPv4(key.substr(dot + 3));
  d.key.AppendPadded(&a, 4);
  d.key.AppendPadded(&b, 4);
  return d;
}

ElementData ParseElement(const NftElement& e) {
  ElementData d;
  std::string_view key = e.key;
  // The key's fields, each in a 4-byte register slot.
  size_t d1 = key.find(" . ");
  std::string_view f0 = key.substr(0, d1);
  std::string_view rest = d1 == std::string_view::npos ? std::string_view() : key.substr(d1 + 3);
  if (e.map == "service-ips" || e.map == "no-endpoint-services") {
    size_t d2 = rest.find(" . ");
    std::string_view f1 = rest.substr(0, d2);
    std::string_view f2 = d2 == std::string_view::npos ? std::string_view() : rest.substr(d2 + 3);
    uint32_t ip = IPv4(f0);
    uint8_t proto = ProtoNum(f1);
    uint16_t port = PortBE(atoi(std::string(f2).c_str()));
    d.key.AppendPadded(&ip, 4);
    d.key.AppendPadded(&proto, 1);
    d.key.AppendPadded(&port, 2);
  } else if (e.map == "service-nodeports" || e.map == "no-endpoint-nodeports") {
    uint8_t proto = ProtoNum(f0);
    uint16_t port = PortBE(atoi(std::string(rest).c_str()));
    d.key.AppendPadded(&proto, 1);
    d.key.AppendPadded(&port, 2);
  } else {
    d = HairpinElement(key);
  }
  if (base::StartsWith(e.value, "goto ")) {
    d.has_verdict = true;
    d.verdict = NFT_GOTO;
    d.chain = std::string_view(e.value).substr(5);
  } else if (e.value == "drop") {
    d.has_verdict = true;
    d.verdict = NF_DROP;
  }
  return d;
}

void AddElements(Batch& b, bool del, const std::vector<NftElement>& elems) {
  std::map<std::pair<std::string_view, std::string_view>, std::vector<const NftElement*>> by_map;
  for (const auto& e : elems) by_map[{e.table, e.map}].push_back(&e);
  for (const auto& [tm, list] : by_map) {
    b.Use(std::string(tm.first));
    b.Elements(del, std::string(tm.second), list.begin(), list.end(),
               [](const NftElement* e) { return ParseElement(*e); });
  }
}

void AddRule(Batch& b, const std::string& chain, const NftRule& r,
             const std::map<std::string, uint32_t>& new_set_ids) {
  using K = NftRule::Kind;
  auto set_id = [&](const std::string& name) {
    auto it = new_set_ids.find(name);
    return it == new_set_ids.end() ? 0u : it->second;
  };
  switch (r.kind) {
    case K::kMasqOffCluster:
      b.Rule(chain, [&](Expr& e) {
        e.Daddr();
        e.Cmp(NFT_CMP_EQ, IPv4Value(r.ip));
        e.Meta(NFT_META_L4PROTO);
        e.Cmp(NFT_CMP_EQ, ProtoValue(r.proto));
        e.Dport();
        e.Cmp(NFT_CMP_EQ, PortValue(r.port));
        if (!r.cidr.empty()) e.AddrInCidr(true, r.cidr, NFT_CMP_NEQ);
        e.Verdict(NFT_JUMP, kNftMarkChain);
      });
      return;
    case K::kDnat:
      b.Rule(chain, [&](Expr& e) {
        if (r.mod) e.NumgenIsZero(static_cast<uint32_t>(r.mod));
        e.Meta(NFT_META_L4PROTO);
        e.Cmp(NFT_CMP_EQ, ProtoValue(r.proto));
        e.Immediate(NFT_REG_1, IPv4Value(r.endpoints[0].first));
        e.Immediate(NFT_REG_2, PortValue(r.endpoints[0].second));
        e.Dnat(NFT_REG_1, NFT_REG_2, NF_NAT_RANGE_PROTO_SPECIFIED);
      });
      return;
    case K::kJump:
    case K::kGoto:
      b.Rule(chain, [&](Expr& e) {
        if (r.mod) e.NumgenIsZero(static_cast<uint32_t>(r.mod));
        e.Verdict(r.kind == K::kJump ? NFT_JUMP : NFT_GOTO, r.target);
      });
      return;
    case K::kDrop:
      b.Rule(chain, [&](Expr& e) { e.Verdict(NF_DROP); });
      return;
    case K::kSaddrGoto:
      b.Rule(chain, [&](Expr& e) {
        e.AddrInCidr(true, r.cidr, NFT_CMP_EQ);
        e.Verdict(NFT_GOTO, r.target);
      });
      return;
    case K::kLocalSrcJump:
    case K::kLocalSrcGoto:
      b.Rule(chain, [&](Expr& e) {
        e.FibType(true);
        e.Verdict(r.kind == K::kLocalSrcJump ? NFT_JUMP : NFT_GOTO, r.target);
      });
      return;
    case K::kAffinityGoto:
      b.Rule(chain, [&](Expr& e) {
        e.Saddr();
        e.Lookup(r.target, set_id(r.target), -1);
        e.Verdict(NFT_GOTO, r.target2);
      });
      return;
    case K::kAffinityUpdate:
      b.Rule(chain, [&](Expr& e) {
        e.Saddr();
        e.DynsetUpdate(r.target, set_id(r.target));
      });
      return;
  }
}

uint32_t AddAffinitySet(Batch& b, const NftAffinitySet& s) {
  uint32_t id = b.NewSetId();
  b.Set(s.name, NFT_SET_TIMEOUT | NFT_SET_EVAL, kTypeIPv4, 4, 0, 0, id,
        static_cast<uint64_t>(s.timeout_seconds) * 1000);
  return id;
}

// The service-routing part of a table: maps, services chain, nat hooks.
void AddServiceRouting(Batch& b) {
  const uint32_t svc_key = Concat({kTypeIPv4, kTypeProto, kTypeService});
  const uint32_t np_key = Concat({kTypeProto, kTypeService});
  b.Set("service-ips", NFT_SET_MAP, svc_key, 12, NFT_DATA_VERDICT, 0, b.NewSetId());
  b.Set("service-nodeports", NFT_SET_MAP, np_key, 8, NFT_DATA_VERDICT, 0, b.NewSetId());
  b.Chain(NFT_MSG_NEWCHAIN, "services");
  b.Chain(NFT_MSG_NEWCHAIN, "nat-prerouting", "nat", NF_INET_PRE_ROUTING, NF_IP_PRI_NAT_DST);
  b.Chain(NFT_MSG_NEWCHAIN, "nat-output", "nat", NF_INET_LOCAL_OUT, NF_IP_PRI_NAT_DST);
}

void AddMarkChain(Batch& b, const NftRendererConfig& cfg) {
  const uint32_t mark_v = 1u << cfg.masquerade_bit;
  const Value mark = HostU32(mark_v);
  b.Chain(NFT_MSG_NEWCHAIN, kNftMarkChain);
  b.Rule(kNftMarkChain, [&](Expr& e) {
    e.Meta(NFT_META_MARK);
    e.Bitwise(HostU32(~mark_v), mark);
    e.MetaSet(NFT_META_MARK);
  });
}

// `chain` looks up daddr . l4proto . dport in ip_map and l4proto . dport (for local addresses)
// in np_map.
void AddLookups(Batch& b, const NftRendererConfig& cfg, const std::string& chain,
                const char* ip_map, const char* np_map) {
  b.Rule(chain, [&](Expr& e) {
    e.Daddr(NFT_REG_1);
    e.Meta(NFT_META_L4PROTO, NFT_REG32_01);
    e.Dport(NFT_REG32_02);
    e.Lookup(ip_map, 0, NFT_REG_VERDICT);
  });
  auto np_lookup = [&](Expr& e) {
    e.Meta(NFT_META_L4PROTO, NFT_REG_1);
    e.Dport(NFT_REG32_01);
    e.Lookup(np_map, 0, NFT_REG_VERDICT);
  };
  if (cfg.nodeport_ips.empty()) {
    b.Rule(chain, [&](Expr& e) {
      e.FibType(false);
      e.AddrInCidr(false, "127.0.0.0/8", NFT_CMP_NEQ);
      np_lookup(e);
    });
  } else {
    for (const auto& ip : cfg.nodeport_ips) {
      b.Rule(chain, [&](Expr& e) {
        e.Daddr();
        e.Cmp(NFT_CMP_EQ, IPv4Value(ip));
        np_lookup(e);
      });
    }
  }
}

void AddServiceRoutingRules(Batch& b, const NftRendererConfig& cfg) {
  AddLookups(b, cfg, "services", "service-ips", "service-nodeports");
  for (const char* c : {"nat-prerouting", "nat-output"}) {
    b.Rule(c, [&](Expr& e) { e.Verdict(NFT_JUMP, "services"); });
  }
}

// The main table of NftBaseTable().
void AddBase(Batch& b, const NftRendererConfig& cfg) {
  const uint32_t svc_key = Concat({kTypeIPv4, kTypeProto, kTypeService});
  const uint32_t np_key = Concat({kTypeProto, kTypeService});
  if (cfg.shards <= 1) AddServiceRouting(b);
  b.Set("no-endpoint-services", NFT_SET_MAP, svc_key, 12, NFT_DATA_VERDICT, 0, b.NewSetId());
  b.Set("no-endpoint-nodeports", NFT_SET_MAP, np_key, 8, NFT_DATA_VERDICT, 0, b.NewSetId());
  b.Set(kNftHairpinSet, 0, Concat({kTypeIPv4, kTypeIPv4}), 8, 0, 0, b.NewSetId());

  // Chains in the order of NftBaseTable() (`nft list` shows them in creation order).
  const Value mark = HostU32(1u << cfg.masquerade_bit);
  b.Chain(NFT_MSG_NEWCHAIN, "reject-chain");
  AddMarkChain(b, cfg);
  for (const char* c : {"masquerading", "endpoints-check"}) b.Chain(NFT_MSG_NEWCHAIN, c);
  b.Chain(NFT_MSG_NEWCHAIN, "nat-postrouting", "nat", NF_INET_POST_ROUTING, NF_IP_PRI_NAT_SRC);
  b.Chain(NFT_MSG_NEWCHAIN, "filter-input", "filter", NF_INET_LOCAL_IN, 0);
  b.Chain(NFT_MSG_NEWCHAIN, "filter-forward", "filter", NF_INET_FORWARD, 0);
  b.Chain(NFT_MSG_NEWCHAIN, "filter-output", "filter", NF_INET_LOCAL_OUT, 0);

  b.Rule("reject-chain", [&](Expr& e) {
    e.Reject(NFT_REJECT_ICMP_UNREACH, 3);  // port unreachable
  });
  b.Rule("masquerading", [&](Expr& e) {
    e.Ct(NFT_CT_STATUS);
    e.BitsSet(IPS_DST_NAT);
    e.Saddr(NFT_REG_1);
    e.Daddr(NFT_REG32_01);
    e.Lookup(kNftHairpinSet, 0, -1);
    e.Verdict(NFT_JUMP, kNftMarkChain);
  });
  b.Rule("masquerading", [&](Expr& e) {
    e.Meta(NFT_META_MARK);
    e.Bitwise(mark, HostU32(0));
    e.Cmp(NFT_CMP_EQ, HostU32(0));
    e.Verdict(NFT_RETURN);
  });
  b.Rule("masquerading", [&](Expr& e) {
    e.Meta(NFT_META_MARK);
    e.Bitwise(HostU32(0xffffffff), mark);
    e.MetaSet(NFT_META_MARK);
  });
  b.Rule("masquerading",
         [&](Expr& e) { e.Masq(cfg.random_fully ? NF_NAT_RANGE_PROTO_RANDOM_FULLY : 0); });
  if (cfg.shards <= 1) AddServiceRoutingRules(b, cfg);
  AddLookups(b, cfg, "endpoints-check", "no-endpoint-services", "no-endpoint-nodeports");
  b.Rule("nat-postrouting", [&](Expr& e) { e.Verdict(NFT_JUMP, "masquerading"); });
  auto new_check = [&](const char* chain) {
    b.Rule(chain, [&](Expr& e) {
      e.Ct(NFT_CT_STATE);
      e.BitsSet(NF_CT_STATE_BIT(IP_CT_NEW));
      e.Verdict(NFT_JUMP, "endpoints-check");
    });
  };
  new_check("filter-input");
  if (!cfg.conntrack_tcp_be_liberal) {
    b.Rule("filter-forward", [&](Expr& e) {
      e.Ct(NFT_CT_STATE);
      e.BitsSet(NF_CT_STATE_INVALID_BIT);
      e.Verdict(NF_DROP);
    });
  }
  new_check("filter-forward");
  new_check("filter-output");
}

void ReplaceTableMsgs(Batch& b, const std::string& table) {
  b.Use(table);
  b.Table(false);
  b.Table(true);
}

// One service's sets, chains and rules (in the batch's current table); its rules refer only to
// its own chains and sets and to the table's base chains.
void AddServiceObjects(Batch& b, const NftServiceObjects& o) {
  std::map<std::string, uint32_t> set_ids;
  for (const auto& s : o.sets) set_ids[s.name] = AddAffinitySet(b, s);
  for (const auto& c : o.chains) b.Chain(NFT_MSG_NEWCHAIN, c.name);
  for (const auto& c : o.chains) {
    for (const auto& r : c.rules) AddRule(b, c.name, r, set_ids);
  }
}

class NetlinkNftBackend final : public NftBackend {
 public:
  ~NetlinkNftBackend() override {
    (void)Flush();
    if (nl_) mnl_socket_close(nl_);
  }
  std::string Name() const override { return "nftables-netlink"; }

  base::Result<> ReplaceTable(const NftRendererConfig& config, const std::string& table,
                              const NftServiceSource& services,
                              const std::vector<NftElement>& elements,
                              const NftRefCounts* hairpin) override {
    std::unique_ptr<Batch> bp = TakeBatch();
    Batch& b = *bp;
    ReplaceTableMsgs(b, table);
    b.Table(false);
    if (table == kNftTable) {
      AddBase(b, config);
    } else {
      AddServiceRouting(b);
      AddMarkChain(b, config);
      AddServiceRoutingRules(b, config);
    }
    services([&](const NftServiceObjects& o) { AddServiceObjects(b, o); });
    b.Use(table);
    AddElements(b, false, elements);
    if (hairpin) {
      b.Use(table);
      b.Elements(false, kNftHairpinSet, hairpin->begin(), hairpin->end(), [](const auto& kv) {
        ElementData d;
        uint32_t a = htonl(static_cast<uint32_t>(kv.first >> 32));
        uint32_t b = htonl(static_cast<uint32_t>(kv.first));
        d.key.AppendPadded(&a, 4);
        d.key.AppendPadded(&b, 4);
        return d;
      });
    }
    return SendAsync(std::move(bp));
  }

  base::Result<> Wait() override { return WaitInflight(); }

  base::Result<> Flush() override {
    auto r = WaitInflight();
    // A full sync's buffers (MiBs) are not kept between full syncs; a change's 1 MiB is.
    if (spare_ && spare_->capacity() > (1u << 20)) spare_.reset();
    return r;
  }

  base::Result<bool> Present() override {
    CUBELET_TRY(Flush());
    CUBELET_TRY(Open());
    char buf[MNL_SOCKET_BUFFER_SIZE];
    const uint32_t seq = ++get_seq_;
    nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
    nlh->nlmsg_type = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETTABLE;
    nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
    nlh->nlmsg_seq = seq;
    auto* g = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
    g->nfgen_family = NFPROTO_IPV4;
    g->version = NFNETLINK_V0;
    mnl_attr_put_strz(nlh, NFTA_TABLE_NAME, kNftTable);
    if (mnl_socket_sendto(nl_, nlh, nlh->nlmsg_len) < 0) return base::Errno("nftables: get table");
    // A NEWTABLE reply (then an ack) when it exists, an ENOENT error when not.
    std::vector<char> rb(1 << 16);
    while (true) {
      ssize_t len = recv(mnl_socket_get_fd(nl_), rb.data(), rb.size(), 0);
      if (len < 0) {
        if (errno == EINTR) continue;
        return base::Errno("nftables: get table reply");
      }
      for (auto* h = reinterpret_cast<nlmsghdr*>(rb.data()); NLMSG_OK(h, static_cast<size_t>(len));
           h = NLMSG_NEXT(h, len)) {
        if (h->nlmsg_seq != seq) continue;
        if (h->nlmsg_type == NLMSG_ERROR) {
          int err = -static_cast<nlmsgerr*>(NLMSG_DATA(h))->error;
          if (err == 0) return true;  // the ack after the table
          if (err == ENOENT) return false;
          return base::Errno("nftables: get table", err);
        }
      }
    }
  }

  base::Result<> DeleteTables(const std::vector<std::string>& tables) override {
    Batch b;
    for (const auto& t : tables) ReplaceTableMsgs(b, t);
    return Send(b);
  }

  base::Result<> ApplyDiff(const NftDiff& d) override {
    CUBELET_TRY(Flush());
    std::unique_ptr<Batch> bp = TakeBatch();
    Batch& b = *bp;
    std::map<std::string, uint32_t> set_ids;
    for (const auto& [t, s] : d.sets_add) {
      b.Use(t);
      set_ids[s.name] = AddAffinitySet(b, s);
    }
    for (const auto& c : d.chains_add) {
      b.Use(c.table);
      b.Chain(NFT_MSG_NEWCHAIN, c.name);
    }
    for (const auto& c : d.chains_flush) {
      b.Use(c.table);
      b.FlushChain(c.name);
    }
    for (const auto& [c, r] : d.rules_add) {
      b.Use(c.table);
      AddRule(b, c.name, r, set_ids);
    }
    AddElements(b, true, d.elems_del);
    AddElements(b, false, d.elems_add);
    for (const auto& c : d.chains_del) {
      b.Use(c.table);
      b.FlushChain(c.name);
    }
    for (const auto& c : d.chains_del) {
      b.Use(c.table);
      b.Chain(NFT_MSG_DELCHAIN, c.name);
    }
    for (const auto& s : d.sets_del) {
      b.Use(s.table);
      b.DelSet(s.name);
    }
    auto r = Send(b);
    GiveBack(std::move(bp));
    return r;
  }

 private:
  base::Result<> Send(Batch& b) {
    CUBELET_TRY(Flush());
    CUBELET_TRY(Open());
    return b.Send(mnl_socket_get_fd(nl_));
  }
  // A batch for a synchronous transaction (diffs, deletions): the spare buffer when there is one.
  std::unique_ptr<Batch> TakeBatch() {
    if (!spare_) return std::make_unique<Batch>();
    spare_->Reset();
    return std::move(spare_);
  }
  void GiveBack(std::unique_ptr<Batch> b) { spare_ = std::move(b); }

  // Sends `b` on a thread of its own and returns: the caller builds the next batch while the
  // kernel applies this one (the kernel's work runs in the sending thread's sendmsg). One batch
  // at a time is in flight, so transactions keep their order.
  base::Result<> SendAsync(std::unique_ptr<Batch> b) {
    CUBELET_TRY(WaitInflight());
    CUBELET_TRY(Open());
    const int fd = mnl_socket_get_fd(nl_);
    try {
      inflight_ = std::async(std::launch::async, [fd, raw = b.get()] { return raw->Send(fd); });
    } catch (const std::system_error&) {
      return b->Send(fd);  // no thread: send it here
    }
    inflight_batch_ = std::move(b);
    return {};
  }

  // The result of the batch in flight; its buffer becomes the spare for the next batch.
  base::Result<> WaitInflight() {
    if (!inflight_.valid()) return {};
    base::Result<> r = inflight_.get();
    inflight_batch_->Reset();
    spare_ = std::move(inflight_batch_);
    return r;
  }

  base::Result<> Open() {
    if (!nl_) {
      nl_ = mnl_socket_open(NETLINK_NETFILTER);
      if (!nl_) return base::Errno("nftables: open netlink socket");
      if (mnl_socket_bind(nl_, 0, MNL_SOCKET_AUTOPID) < 0) {
        auto e = base::Errno("nftables: bind netlink socket");
        mnl_socket_close(nl_);
        nl_ = nullptr;
        return e;
      }
      int one = 1;
      // Errors without the echoed request; a reply timeout so that a lost ack cannot hang us.
      setsockopt(mnl_socket_get_fd(nl_), SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
      timeval tv{30, 0};
      setsockopt(mnl_socket_get_fd(nl_), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      int rcvbuf = 4 << 20;
      setsockopt(mnl_socket_get_fd(nl_), SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf);
    }
    return {};
  }

  mnl_socket* nl_ = nullptr;
  std::future<base::Result<>> inflight_;
  std::unique_ptr<Batch> inflight_batch_;
  std::unique_ptr<Batch> spare_;
  uint32_t get_seq_ = 1u << 30;  // apart from the batches' sequence numbers
};

}  // namespace

NftBackendPtr MakeNetlinkNftBackend() { return std::make_unique<NetlinkNftBackend>(); }

}  // namespace netproxy

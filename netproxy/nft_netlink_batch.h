#pragma once
// Internal to nft_netlink.cc: nftables netlink messages built with libnftnl. Expr appends the
// expressions of one rule; Batch collects a transaction's messages (one sequence number each,
// with a description for error reports) and sends it with one sendmsg, waiting for the ack of
// the last message.
#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <libnftnl/batch.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <initializer_list>
#include <map>
#include <string>
#include <vector>

#include "base/result.h"
#include "netproxy/nft_renderer.h"

namespace netproxy::nftnl {

// nft's datatype ids (for `nft list` to print keys; the kernel ignores them) and how nft
// composes a concatenation's type id (6 bits per member).
inline constexpr uint32_t kTypeIPv4 = 7, kTypeProto = 12, kTypeService = 13;
inline constexpr uint32_t Concat(std::initializer_list<uint32_t> types) {
  uint32_t t = 0;
  for (uint32_t x : types) t = (t << 6) | x;
  return t;
}
inline constexpr uint32_t kRtnLocal = 2;  // RTN_LOCAL

using Bytes = std::vector<uint8_t>;

inline Bytes IPv4Bytes(const std::string& ip) {
  in_addr a{};
  inet_pton(AF_INET, ip.c_str(), &a);
  Bytes b(4);
  memcpy(b.data(), &a, 4);
  return b;
}

// CIDR -> (network bytes, mask bytes).
inline std::pair<Bytes, Bytes> CidrBytes(const std::string& cidr) {
  size_t slash = cidr.find('/');
  int bits = slash == std::string::npos ? 32 : std::stoi(cidr.substr(slash + 1));
  Bytes net = IPv4Bytes(cidr.substr(0, slash));
  uint32_t mask = bits == 0 ? 0 : htonl(~uint32_t{0} << (32 - bits));
  Bytes m(4);
  memcpy(m.data(), &mask, 4);
  for (int i = 0; i < 4; ++i) net[i] &= m[i];
  return {net, m};
}

inline uint8_t ProtoNum(const std::string& p) {
  if (p == "udp") return IPPROTO_UDP;
  if (p == "sctp") return IPPROTO_SCTP;
  return IPPROTO_TCP;
}

// A value in a 32-bit register slot: `len` bytes, zero padded to 4.
inline Bytes Padded(const Bytes& b) {
  Bytes out = b;
  out.resize((b.size() + 3) / 4 * 4, 0);
  return out;
}

inline Bytes Port(int port) {
  uint16_t p = htons(static_cast<uint16_t>(port));
  Bytes b(2);
  memcpy(b.data(), &p, 2);
  return b;
}

inline Bytes HostU32(uint32_t v) {
  Bytes b(4);
  memcpy(b.data(), &v, 4);
  return b;
}

inline Bytes Cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const auto& p : parts) {
    Bytes padded = Padded(p);
    out.insert(out.end(), padded.begin(), padded.end());
  }
  return out;
}

// One rule's expressions.
class Expr {
 public:
  explicit Expr(nftnl_rule* r) : r_(r) {}
  nftnl_expr* New(const char* name) {
    nftnl_expr* e = nftnl_expr_alloc(name);
    nftnl_rule_add_expr(r_, e);
    return e;
  }
  void Payload(uint32_t base, uint32_t offset, uint32_t len, uint32_t dreg) {
    nftnl_expr* e = New("payload");
    nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
    nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, offset);
    nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
    nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, dreg);
  }
  void Daddr(uint32_t dreg = NFT_REG_1) { Payload(NFT_PAYLOAD_NETWORK_HEADER, 16, 4, dreg); }
  void Saddr(uint32_t dreg = NFT_REG_1) { Payload(NFT_PAYLOAD_NETWORK_HEADER, 12, 4, dreg); }
  void Dport(uint32_t dreg = NFT_REG_1) { Payload(NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, dreg); }
  void Cmp(uint32_t op, const Bytes& data, uint32_t sreg = NFT_REG_1) {
    nftnl_expr* e = New("cmp");
    nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, sreg);
    nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, op);
    nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data.data(), data.size());
  }
  void Meta(uint32_t key, uint32_t dreg = NFT_REG_1) {
    nftnl_expr* e = New("meta");
    nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
    nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, dreg);
  }
  void MetaSet(uint32_t key, uint32_t sreg = NFT_REG_1) {
    nftnl_expr* e = New("meta");
    nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
    nftnl_expr_set_u32(e, NFTNL_EXPR_META_SREG, sreg);
  }
  void Bitwise(const Bytes& mask, const Bytes& xr, uint32_t reg = NFT_REG_1) {
    nftnl_expr* e = New("bitwise");
    nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, reg);
    nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, reg);
    nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, mask.size());
    nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, mask.data(), mask.size());
    nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, xr.data(), xr.size());
  }
  // dreg < 0: a set (match only); 0: a verdict map; else a data map into dreg.
  void Lookup(const std::string& set, uint32_t set_id, int dreg, bool invert = false) {
    nftnl_expr* e = New("lookup");
    nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, NFT_REG_1);
    if (dreg >= 0) nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_DREG, dreg);
    nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, set.c_str());
    if (set_id) nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SET_ID, set_id);
    if (invert) nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_FLAGS, NFT_LOOKUP_F_INV);
  }
  void Verdict(int verdict, const std::string& chain = {}) {
    nftnl_expr* e = New("immediate");
    nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
    nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, static_cast<uint32_t>(verdict));
    if (!chain.empty()) nftnl_expr_set_str(e, NFTNL_EXPR_IMM_CHAIN, chain.c_str());
  }
  void Immediate(uint32_t dreg, const Bytes& data) {
    nftnl_expr* e = New("immediate");
    nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, dreg);
    nftnl_expr_set(e, NFTNL_EXPR_IMM_DATA, data.data(), data.size());
  }
  void Ct(uint32_t key, uint32_t dreg = NFT_REG_1) {
    nftnl_expr* e = New("ct");
    nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, key);
    nftnl_expr_set_u32(e, NFTNL_EXPR_CT_DREG, dreg);
  }
  // (reg & bits) != 0 for a 32-bit host-order value (ct state, ct status).
  void BitsSet(uint32_t bits) {
    Bitwise(HostU32(bits), HostU32(0));
    Cmp(NFT_CMP_NEQ, HostU32(0));
  }
  void FibType(bool saddr) {
    nftnl_expr* e = New("fib");
    nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_FLAGS, saddr ? NFTA_FIB_F_SADDR : NFTA_FIB_F_DADDR);
    nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_RESULT, NFT_FIB_RESULT_ADDRTYPE);
    nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_DREG, NFT_REG_1);
    Cmp(NFT_CMP_EQ, HostU32(kRtnLocal));
  }
  void Numgen(uint32_t mod) {
    nftnl_expr* e = New("numgen");
    nftnl_expr_set_u32(e, NFTNL_EXPR_NG_DREG, NFT_REG_1);
    nftnl_expr_set_u32(e, NFTNL_EXPR_NG_MODULUS, mod);
    nftnl_expr_set_u32(e, NFTNL_EXPR_NG_TYPE, NFT_NG_RANDOM);
    nftnl_expr_set_u32(e, NFTNL_EXPR_NG_OFFSET, 0);
  }
  // numgen random mod `mod` == 0
  void NumgenIsZero(uint32_t mod) {
    Numgen(mod);
    Cmp(NFT_CMP_EQ, HostU32(0));
  }
  void Dnat(uint32_t addr_reg, uint32_t proto_reg, uint32_t flags) {
    nftnl_expr* e = New("nat");
    nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_TYPE, NFT_NAT_DNAT);
    nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_FAMILY, NFPROTO_IPV4);
    nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_REG_ADDR_MIN, addr_reg);
    nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_REG_PROTO_MIN, proto_reg);
    if (flags) nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_FLAGS, flags);
  }
  // ip saddr/daddr matches a CIDR (eq) or not (neq).
  void AddrInCidr(bool saddr, const std::string& cidr, uint32_t op) {
    auto [net, mask] = CidrBytes(cidr);
    saddr ? Saddr() : Daddr();
    if (mask != Bytes{0xff, 0xff, 0xff, 0xff}) Bitwise(mask, Bytes(4, 0));
    Cmp(op, net);
  }

 private:
  nftnl_rule* r_;
};

struct ElementData {
  Bytes key;
  int verdict = 0;  // NFT_GOTO, NF_DROP, ...; used when chain/data are empty
  std::string chain;
  Bytes data;  // value maps
  bool has_verdict = false;
};

class Batch {
 public:
  Batch() : batch_(nftnl_batch_alloc(1 << 20, 1 << 18)) {
    nftnl_batch_begin(static_cast<char*>(nftnl_batch_buffer(batch_)), seq_++);
    nftnl_batch_update(batch_);
  }
  ~Batch() { nftnl_batch_free(batch_); }
  Batch(const Batch&) = delete;
  Batch& operator=(const Batch&) = delete;

  // The table the following messages address.
  void Use(const std::string& table) { table_ = table; }
  uint32_t first_seq() const { return 1; }
  uint32_t last_seq() const { return seq_ - 1; }
  const std::string& What(uint32_t seq) const {
    static const std::string kUnknown = "batch";
    auto it = what_.find(seq);
    return it == what_.end() ? kUnknown : it->second;
  }

  void Table(bool del) {
    nftnl_table* t = nftnl_table_alloc();
    nftnl_table_set_str(t, NFTNL_TABLE_NAME, table_.c_str());
    nftnl_table_set_u32(t, NFTNL_TABLE_FAMILY, NFPROTO_IPV4);
    nftnl_table_nlmsg_build_payload(
        Hdr(del ? NFT_MSG_DELTABLE : NFT_MSG_NEWTABLE, del ? 0 : NLM_F_CREATE,
            std::string(del ? "delete" : "add") + " table " + table_),
        t);
    nftnl_table_free(t);
    Done();
  }

  // type "" = a regular chain.
  void Chain(uint16_t msg, const std::string& name, const char* type = nullptr, uint32_t hook = 0,
             int prio = 0) {
    nftnl_chain* c = nftnl_chain_alloc();
    nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, table_.c_str());
    nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, name.c_str());
    nftnl_chain_set_u32(c, NFTNL_CHAIN_FAMILY, NFPROTO_IPV4);
    if (type) {
      nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, type);
      nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, hook);
      nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, prio);
      nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, NF_ACCEPT);
    }
    const char* verb = msg == NFT_MSG_NEWCHAIN ? "add" : "delete";
    nftnl_chain_nlmsg_build_payload(
        Hdr(msg, msg == NFT_MSG_NEWCHAIN ? NLM_F_CREATE : 0, std::string(verb) + " chain " + name),
        c);
    nftnl_chain_free(c);
    Done();
  }

  void FlushChain(const std::string& name) {
    nftnl_rule* r = nftnl_rule_alloc();
    nftnl_rule_set_str(r, NFTNL_RULE_TABLE, table_.c_str());
    nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, name.c_str());
    nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, NFPROTO_IPV4);
    nftnl_rule_nlmsg_build_payload(Hdr(NFT_MSG_DELRULE, 0, "flush chain " + name), r);
    nftnl_rule_free(r);
    Done();
  }

  // Adds a rule built by `fill`.
  template <class F>
  void Rule(const std::string& chain, const std::string& what, F&& fill) {
    nftnl_rule* r = nftnl_rule_alloc();
    nftnl_rule_set_str(r, NFTNL_RULE_TABLE, table_.c_str());
    nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, chain.c_str());
    nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, NFPROTO_IPV4);
    Expr e(r);
    fill(e);
    nftnl_rule_nlmsg_build_payload(
        Hdr(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, "add rule " + chain + " " + what), r);
    nftnl_rule_free(r);
    Done();
  }

  uint32_t NewSetId() { return ++set_id_; }

  void Set(const std::string& name, uint32_t flags, uint32_t key_type, uint32_t key_len,
           uint32_t data_type, uint32_t data_len, uint32_t id, uint64_t timeout_ms = 0) {
    nftnl_set* s = nftnl_set_alloc();
    nftnl_set_set_str(s, NFTNL_SET_TABLE, table_.c_str());
    nftnl_set_set_str(s, NFTNL_SET_NAME, name.c_str());
    nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_IPV4);
    nftnl_set_set_u32(s, NFTNL_SET_FLAGS, flags);
    nftnl_set_set_u32(s, NFTNL_SET_KEY_TYPE, key_type);
    nftnl_set_set_u32(s, NFTNL_SET_KEY_LEN, key_len);
    if (flags & NFT_SET_MAP) {
      nftnl_set_set_u32(s, NFTNL_SET_DATA_TYPE, data_type);
      nftnl_set_set_u32(s, NFTNL_SET_DATA_LEN, data_len);
    }
    if (id) nftnl_set_set_u32(s, NFTNL_SET_ID, id);
    if (timeout_ms) nftnl_set_set_u64(s, NFTNL_SET_TIMEOUT, timeout_ms);
    nftnl_set_nlmsg_build_payload(Hdr(NFT_MSG_NEWSET, NLM_F_CREATE, "add set " + name), s);
    nftnl_set_free(s);
    Done();
  }

  void DelSet(const std::string& name) {
    nftnl_set* s = nftnl_set_alloc();
    nftnl_set_set_str(s, NFTNL_SET_TABLE, table_.c_str());
    nftnl_set_set_str(s, NFTNL_SET_NAME, name.c_str());
    nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_IPV4);
    nftnl_set_nlmsg_build_payload(Hdr(NFT_MSG_DELSET, 0, "delete set " + name), s);
    nftnl_set_free(s);
    Done();
  }

  // Elements go in messages of at most 512 each.
  void Elements(bool del, const std::string& set, uint32_t set_id,
                const std::vector<ElementData>& elems) {
    for (size_t start = 0; start < elems.size(); start += 512) {
      nftnl_set* s = nftnl_set_alloc();
      nftnl_set_set_str(s, NFTNL_SET_TABLE, table_.c_str());
      nftnl_set_set_str(s, NFTNL_SET_NAME, set.c_str());
      nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_IPV4);
      if (set_id) nftnl_set_set_u32(s, NFTNL_SET_ID, set_id);
      for (size_t i = start; i < std::min(elems.size(), start + 512); ++i) {
        const ElementData& d = elems[i];
        nftnl_set_elem* e = nftnl_set_elem_alloc();
        nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, d.key.data(), d.key.size());
        if (!del) {
          if (d.has_verdict) {
            nftnl_set_elem_set_u32(e, NFTNL_SET_ELEM_VERDICT, static_cast<uint32_t>(d.verdict));
            if (!d.chain.empty()) nftnl_set_elem_set_str(e, NFTNL_SET_ELEM_CHAIN, d.chain.c_str());
          } else if (!d.data.empty()) {
            nftnl_set_elem_set(e, NFTNL_SET_ELEM_DATA, d.data.data(), d.data.size());
          }
        }
        nftnl_set_elem_add(s, e);
      }
      nftnl_set_elems_nlmsg_build_payload(
          Hdr(del ? NFT_MSG_DELSETELEM : NFT_MSG_NEWSETELEM, del ? 0 : NLM_F_CREATE,
              std::string(del ? "delete" : "add") + " element " + set),
          s);
      nftnl_set_free(s);
      Done();
    }
  }

  // Sends the batch and waits for the kernel's verdict on the whole transaction.
  base::Result<> Send(mnl_socket* nl) {
    if (seq_ == 1) return {};  // nothing but the begin marker
    // The last real message asks for an ack: when it arrives, the transaction is done.
    last_->nlmsg_flags |= NLM_F_ACK;
    nftnl_batch_end(static_cast<char*>(nftnl_batch_buffer(batch_)), seq_);
    nftnl_batch_update(batch_);
    const int n = nftnl_batch_iovec_len(batch_);
    std::vector<iovec> iov(n);
    nftnl_batch_iovec(batch_, iov.data(), n);
    size_t total = 0;
    for (const auto& v : iov) total += v.iov_len;
    int sndbuf = static_cast<int>(std::min<size_t>(total + (1 << 16), 1u << 30));
    setsockopt(mnl_socket_get_fd(nl), SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof sndbuf);
    sockaddr_nl snl{};
    snl.nl_family = AF_NETLINK;
    msghdr msg{};
    msg.msg_name = &snl;
    msg.msg_namelen = sizeof snl;
    msg.msg_iov = iov.data();
    msg.msg_iovlen = iov.size();
    if (sendmsg(mnl_socket_get_fd(nl), &msg, 0) < 0) return base::Errno("nftables: send batch");

    const uint32_t wait_for = last_seq_real_;
    std::string errors;
    std::vector<char> buf(1 << 16);
    bool done = false;
    while (!done) {
      ssize_t len = recv(mnl_socket_get_fd(nl), buf.data(), buf.size(), 0);
      if (len < 0) {
        if (errno == EINTR) continue;
        if (!errors.empty()) break;
        return base::Errno("nftables: read reply");
      }
      for (auto* h = reinterpret_cast<nlmsghdr*>(buf.data()); NLMSG_OK(h, static_cast<size_t>(len));
           h = NLMSG_NEXT(h, len)) {
        if (h->nlmsg_type != NLMSG_ERROR) continue;
        auto* err = static_cast<nlmsgerr*>(NLMSG_DATA(h));
        if (err->error != 0) {
          if (!errors.empty()) errors += "; ";
          errors += What(h->nlmsg_seq) + ": " + strerror(-err->error);
        }
        if (h->nlmsg_seq == wait_for) done = true;
      }
    }
    if (!errors.empty()) return base::Fail("nftables transaction failed: " + errors);
    return {};
  }

 private:
  nlmsghdr* Hdr(uint16_t type, uint16_t flags, std::string what) {
    what_.emplace(seq_, std::move(what));
    last_seq_real_ = seq_;
    last_ = nftnl_nlmsg_build_hdr(static_cast<char*>(nftnl_batch_buffer(batch_)), type,
                                  NFPROTO_IPV4, flags, seq_++);
    return last_;
  }
  // Records where the last message ends; a new page is started when this one is full (the
  // messages already written stay where they are).
  void Done() { nftnl_batch_update(batch_); }

  nftnl_batch* batch_;
  std::string table_ = kNftTable;
  uint32_t seq_ = 0;
  uint32_t last_seq_real_ = 0;
  uint32_t set_id_ = 0;
  nlmsghdr* last_ = nullptr;
  std::map<uint32_t, std::string> what_;
};

}  // namespace netproxy::nftnl

#pragma once
// Internal to nft_netlink.cc: nftables netlink messages written straight into one contiguous
// buffer (nlmsghdr + nfgenmsg + attributes through libmnl's attribute helpers), the same bytes
// libnftnl would produce but without its per-object allocations: a 30k-service full sync is
// ~330k rule messages, and building them as libnftnl objects (plus a description string per
// message) cost as much CPU as the kernel spent applying them. Expr appends the expressions
// of one rule; Batch is one transaction (one sequence number per message), sent with one
// sendmsg, waiting for the ack of the last message. What failed is described afterwards from
// the message itself (its type and object names), so nothing is kept per message.
#include <arpa/inet.h>
#include <endian.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <new>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "netproxy/nft_renderer.h"

namespace netproxy::nftwire {

// nft's datatype ids (for `nft list` to print keys; the kernel ignores them) and how nft
// composes a concatenation's type id (6 bits per member).
inline constexpr uint32_t kTypeIPv4 = 7, kTypeProto = 12, kTypeService = 13;
inline constexpr uint32_t Concat(std::initializer_list<uint32_t> types) {
  uint32_t t = 0;
  for (uint32_t x : types) t = (t << 6) | x;
  return t;
}
inline constexpr uint32_t kRtnLocal = 2;  // RTN_LOCAL

// A value of up to 16 bytes (register width), built without allocation.
struct Value {
  uint8_t b[16] = {};
  uint32_t len = 0;
  void Append(const void* p, uint32_t n) {
    memcpy(b + len, p, n);
    len += n;
  }
  // A concatenation member: zero padded to a 4-byte register slot.
  void AppendPadded(const void* p, uint32_t n) {
    Append(p, n);
    len = (len + 3) / 4 * 4;
  }
  bool operator==(const Value& o) const { return len == o.len && memcmp(b, o.b, len) == 0; }
};

inline Value Raw(const void* p, uint32_t n) {
  Value v;
  v.Append(p, n);
  return v;
}
inline uint32_t IPv4(std::string_view ip) {
  char buf[INET_ADDRSTRLEN] = {};
  memcpy(buf, ip.data(), std::min(ip.size(), sizeof buf - 1));
  in_addr a{};
  inet_pton(AF_INET, buf, &a);
  return a.s_addr;
}
inline Value IPv4Value(std::string_view ip) {
  uint32_t a = IPv4(ip);
  return Raw(&a, 4);
}
inline uint8_t ProtoNum(std::string_view p) {
  if (p == "udp") return IPPROTO_UDP;
  if (p == "sctp") return IPPROTO_SCTP;
  return IPPROTO_TCP;
}
inline Value ProtoValue(std::string_view p) {
  uint8_t n = ProtoNum(p);
  return Raw(&n, 1);
}
inline uint16_t PortBE(int port) { return htons(static_cast<uint16_t>(port)); }
inline Value PortValue(int port) {
  uint16_t p = PortBE(port);
  return Raw(&p, 2);
}
inline Value HostU32(uint32_t v) { return Raw(&v, 4); }

// CIDR -> (network, mask), network order.
inline std::pair<Value, Value> CidrValues(std::string_view cidr) {
  size_t slash = cidr.find('/');
  int bits =
      slash == std::string_view::npos ? 32 : atoi(std::string(cidr.substr(slash + 1)).c_str());
  uint32_t net = IPv4(cidr.substr(0, slash));
  uint32_t mask = bits <= 0 ? 0 : htonl(~uint32_t{0} << (32 - std::min(bits, 32)));
  net &= mask;
  return {Raw(&net, 4), Raw(&mask, 4)};
}

// One rule's expressions (inside the rule's NFTA_RULE_EXPRESSIONS nest).
class Expr {
 public:
  explicit Expr(nlmsghdr* h) : h_(h) {}

  void Payload(uint32_t base, uint32_t offset, uint32_t len, uint32_t dreg) {
    Open("payload");
    U32(NFTA_PAYLOAD_DREG, dreg);
    U32(NFTA_PAYLOAD_BASE, base);
    U32(NFTA_PAYLOAD_OFFSET, offset);
    U32(NFTA_PAYLOAD_LEN, len);
    Close();
  }
  void Daddr(uint32_t dreg = NFT_REG_1) { Payload(NFT_PAYLOAD_NETWORK_HEADER, 16, 4, dreg); }
  void Saddr(uint32_t dreg = NFT_REG_1) { Payload(NFT_PAYLOAD_NETWORK_HEADER, 12, 4, dreg); }
  void Dport(uint32_t dreg = NFT_REG_1) { Payload(NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, dreg); }
  void Cmp(uint32_t op, const Value& data, uint32_t sreg = NFT_REG_1) {
    Open("cmp");
    U32(NFTA_CMP_SREG, sreg);
    U32(NFTA_CMP_OP, op);
    Data(NFTA_CMP_DATA, data);
    Close();
  }
  void Meta(uint32_t key, uint32_t dreg = NFT_REG_1) {
    Open("meta");
    U32(NFTA_META_KEY, key);
    U32(NFTA_META_DREG, dreg);
    Close();
  }
  void MetaSet(uint32_t key, uint32_t sreg = NFT_REG_1) {
    Open("meta");
    U32(NFTA_META_KEY, key);
    U32(NFTA_META_SREG, sreg);
    Close();
  }
  void Bitwise(const Value& mask, const Value& xr, uint32_t reg = NFT_REG_1) {
    Open("bitwise");
    U32(NFTA_BITWISE_SREG, reg);
    U32(NFTA_BITWISE_DREG, reg);
    U32(NFTA_BITWISE_LEN, mask.len);
    Data(NFTA_BITWISE_MASK, mask);
    Data(NFTA_BITWISE_XOR, xr);
    Close();
  }
  // dreg < 0: a set (match only); else a map into dreg (NFT_REG_VERDICT: a verdict map).
  void Lookup(const std::string& set, uint32_t set_id, int dreg) {
    Open("lookup");
    U32(NFTA_LOOKUP_SREG, NFT_REG_1);
    if (dreg >= 0) U32(NFTA_LOOKUP_DREG, static_cast<uint32_t>(dreg));
    mnl_attr_put_strz(h_, NFTA_LOOKUP_SET, set.c_str());
    if (set_id) U32(NFTA_LOOKUP_SET_ID, set_id);
    Close();
  }
  void Verdict(int verdict, const std::string& chain = {}) {
    Open("immediate");
    U32(NFTA_IMMEDIATE_DREG, NFT_REG_VERDICT);
    nlattr* d = mnl_attr_nest_start(h_, NFTA_IMMEDIATE_DATA);
    PutVerdict(h_, verdict, chain);
    mnl_attr_nest_end(h_, d);
    Close();
  }
  void Immediate(uint32_t dreg, const Value& data) {
    Open("immediate");
    U32(NFTA_IMMEDIATE_DREG, dreg);
    Data(NFTA_IMMEDIATE_DATA, data);
    Close();
  }
  void Ct(uint32_t key, uint32_t dreg = NFT_REG_1) {
    Open("ct");
    U32(NFTA_CT_KEY, key);
    U32(NFTA_CT_DREG, dreg);
    Close();
  }
  // (reg & bits) != 0 for a 32-bit host-order value (ct state, ct status).
  void BitsSet(uint32_t bits) {
    Bitwise(HostU32(bits), HostU32(0));
    Cmp(NFT_CMP_NEQ, HostU32(0));
  }
  void FibType(bool saddr) {
    Open("fib");
    U32(NFTA_FIB_DREG, NFT_REG_1);
    U32(NFTA_FIB_RESULT, NFT_FIB_RESULT_ADDRTYPE);
    U32(NFTA_FIB_FLAGS, saddr ? NFTA_FIB_F_SADDR : NFTA_FIB_F_DADDR);
    Close();
    Cmp(NFT_CMP_EQ, HostU32(kRtnLocal));
  }
  // numgen random mod `mod` == 0
  void NumgenIsZero(uint32_t mod) {
    Open("numgen");
    U32(NFTA_NG_DREG, NFT_REG_1);
    U32(NFTA_NG_MODULUS, mod);
    U32(NFTA_NG_TYPE, NFT_NG_RANDOM);
    U32(NFTA_NG_OFFSET, 0);
    Close();
    Cmp(NFT_CMP_EQ, HostU32(0));
  }
  void Dnat(uint32_t addr_reg, uint32_t proto_reg, uint32_t flags) {
    Open("nat");
    U32(NFTA_NAT_TYPE, NFT_NAT_DNAT);
    U32(NFTA_NAT_FAMILY, NFPROTO_IPV4);
    U32(NFTA_NAT_REG_ADDR_MIN, addr_reg);
    U32(NFTA_NAT_REG_PROTO_MIN, proto_reg);
    if (flags) U32(NFTA_NAT_FLAGS, flags);
    Close();
  }
  void Masq(uint32_t flags) {
    Open("masq");
    if (flags) U32(NFTA_MASQ_FLAGS, flags);
    Close();
  }
  void Reject(uint32_t type, uint8_t code) {
    Open("reject");
    U32(NFTA_REJECT_TYPE, type);
    mnl_attr_put_u8(h_, NFTA_REJECT_ICMP_CODE, code);
    Close();
  }
  // update @set { <reg 1> }
  void DynsetUpdate(const std::string& set, uint32_t set_id) {
    Open("dynset");
    mnl_attr_put_strz(h_, NFTA_DYNSET_SET_NAME, set.c_str());
    if (set_id) U32(NFTA_DYNSET_SET_ID, set_id);
    U32(NFTA_DYNSET_OP, NFT_DYNSET_OP_UPDATE);
    U32(NFTA_DYNSET_SREG_KEY, NFT_REG_1);
    Close();
  }
  // ip saddr/daddr matches a CIDR (eq) or not (neq).
  void AddrInCidr(bool saddr, std::string_view cidr, uint32_t op) {
    auto [net, mask] = CidrValues(cidr);
    saddr ? Saddr() : Daddr();
    if (!(mask == HostU32(0xffffffff))) Bitwise(mask, HostU32(0));
    Cmp(op, net);
  }

  static void PutVerdict(nlmsghdr* h, int verdict, std::string_view chain) {
    nlattr* v = mnl_attr_nest_start(h, NFTA_DATA_VERDICT);
    mnl_attr_put_u32(h, NFTA_VERDICT_CODE, htonl(static_cast<uint32_t>(verdict)));
    if (!chain.empty()) PutStr(h, NFTA_VERDICT_CHAIN, chain);
    mnl_attr_nest_end(h, v);
  }
  // A NUL-terminated string attribute from a string_view.
  static void PutStr(nlmsghdr* h, uint16_t type, std::string_view s) {
    nlattr* a = static_cast<nlattr*>(mnl_nlmsg_get_payload_tail(h));
    const size_t len = MNL_ATTR_HDRLEN + s.size() + 1;
    a->nla_type = type;
    a->nla_len = static_cast<uint16_t>(len);
    char* p = static_cast<char*>(mnl_attr_get_payload(a));
    memcpy(p, s.data(), s.size());
    // The NUL and the alignment padding.
    memset(p + s.size(), 0, MNL_ALIGN(len) - len + 1);
    h->nlmsg_len += MNL_ALIGN(len);
  }

 private:
  void Open(const char* name) {
    elem_ = mnl_attr_nest_start(h_, NFTA_LIST_ELEM);
    mnl_attr_put_strz(h_, NFTA_EXPR_NAME, name);
    data_ = mnl_attr_nest_start(h_, NFTA_EXPR_DATA);
  }
  void Close() {
    mnl_attr_nest_end(h_, data_);
    mnl_attr_nest_end(h_, elem_);
  }
  void U32(uint16_t type, uint32_t v) { mnl_attr_put_u32(h_, type, htonl(v)); }
  void Data(uint16_t type, const Value& v) {
    nlattr* n = mnl_attr_nest_start(h_, type);
    mnl_attr_put(h_, NFTA_DATA_VALUE, v.len, v.b);
    mnl_attr_nest_end(h_, n);
  }

  nlmsghdr* h_;
  nlattr* elem_ = nullptr;
  nlattr* data_ = nullptr;
};

// One map or set element: key, and a verdict (maps) or nothing (sets).
struct ElementData {
  Value key;
  bool has_verdict = false;
  int verdict = 0;         // NFT_GOTO, NF_DROP, ...
  std::string_view chain;  // for NFT_GOTO/NFT_JUMP
};

// A growable byte buffer in its own anonymous mapping: grown with mremap (no copy; pages not
// yet written cost no memory), returned to the kernel when destroyed. Not malloc: freeing a
// large malloc'ed block raises glibc's mmap and trim thresholds to its size, after which the
// heap keeps that much memory resident for good.
class Buffer {
 public:
  Buffer() = default;
  ~Buffer() {
    if (data_) munmap(data_, cap_);
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  char* data() { return data_; }
  size_t size() const { return len_; }
  size_t capacity() const { return cap_; }
  void clear() { len_ = 0; }
  // Room for `n` more bytes at the end.
  char* Reserve(size_t n) {
    if (len_ + n > cap_) {
      size_t cap = std::max({len_ + n, cap_ * 2, size_t{1} << 20});
      cap = (cap + 4095) & ~size_t{4095};
      void* p =
          data_ ? mremap(data_, cap_, cap, MREMAP_MAYMOVE)
                : mmap(nullptr, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED) throw std::bad_alloc();
      data_ = static_cast<char*>(p);
      cap_ = cap;
    }
    return data_ + len_;
  }
  void Commit(size_t n) { len_ += n; }

 private:
  char* data_ = nullptr;
  size_t len_ = 0;
  size_t cap_ = 0;
};

class Batch {
 public:
  Batch() { Reset(); }
  // Empty again (the buffer is kept for the next transaction).
  void Reset() {
    buf_.clear();
    table_ = kNftTable;
    seq_ = set_id_ = 0;
    cur_ = last_ = 0;
    Begin(NFNL_MSG_BATCH_BEGIN, 0, AF_UNSPEC, htons(NFNL_SUBSYS_NFTABLES));
    End();
  }
  Batch(const Batch&) = delete;
  Batch& operator=(const Batch&) = delete;

  // The table the following messages address.
  void Use(const std::string& table) { table_ = table; }
  size_t messages() const { return seq_ - 1; }
  size_t bytes() const { return buf_.size(); }
  size_t capacity() const { return buf_.capacity(); }

  void Table(bool del) {
    nlmsghdr* h = Msg(del ? NFT_MSG_DELTABLE : NFT_MSG_NEWTABLE, del ? 0 : NLM_F_CREATE);
    mnl_attr_put_strz(h, NFTA_TABLE_NAME, table_.c_str());
    End();
  }

  // type nullptr = a regular chain.
  void Chain(uint16_t msg, const std::string& name, const char* type = nullptr, uint32_t hook = 0,
             int prio = 0) {
    nlmsghdr* h = Msg(msg, msg == NFT_MSG_NEWCHAIN ? NLM_F_CREATE : 0);
    mnl_attr_put_strz(h, NFTA_CHAIN_TABLE, table_.c_str());
    mnl_attr_put_strz(h, NFTA_CHAIN_NAME, name.c_str());
    if (type) {
      nlattr* n = mnl_attr_nest_start(h, NFTA_CHAIN_HOOK);
      mnl_attr_put_u32(h, NFTA_HOOK_HOOKNUM, htonl(hook));
      mnl_attr_put_u32(h, NFTA_HOOK_PRIORITY, htonl(static_cast<uint32_t>(prio)));
      mnl_attr_nest_end(h, n);
      mnl_attr_put_u32(h, NFTA_CHAIN_POLICY, htonl(NF_ACCEPT));
      mnl_attr_put_strz(h, NFTA_CHAIN_TYPE, type);
    }
    End();
  }

  void FlushChain(const std::string& name) {
    nlmsghdr* h = Msg(NFT_MSG_DELRULE, 0);
    mnl_attr_put_strz(h, NFTA_RULE_TABLE, table_.c_str());
    mnl_attr_put_strz(h, NFTA_RULE_CHAIN, name.c_str());
    End();
  }

  // Adds a rule whose expressions `fill` writes.
  template <class F>
  void Rule(const std::string& chain, F&& fill) {
    nlmsghdr* h = Msg(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND);
    mnl_attr_put_strz(h, NFTA_RULE_TABLE, table_.c_str());
    mnl_attr_put_strz(h, NFTA_RULE_CHAIN, chain.c_str());
    nlattr* exprs = mnl_attr_nest_start(h, NFTA_RULE_EXPRESSIONS);
    Expr e(h);
    fill(e);
    mnl_attr_nest_end(h, exprs);
    End();
  }

  uint32_t NewSetId() { return ++set_id_; }

  void Set(const std::string& name, uint32_t flags, uint32_t key_type, uint32_t key_len,
           uint32_t data_type, uint32_t data_len, uint32_t id, uint64_t timeout_ms = 0) {
    nlmsghdr* h = Msg(NFT_MSG_NEWSET, NLM_F_CREATE);
    mnl_attr_put_strz(h, NFTA_SET_TABLE, table_.c_str());
    mnl_attr_put_strz(h, NFTA_SET_NAME, name.c_str());
    mnl_attr_put_u32(h, NFTA_SET_FLAGS, htonl(flags));
    mnl_attr_put_u32(h, NFTA_SET_KEY_TYPE, htonl(key_type));
    mnl_attr_put_u32(h, NFTA_SET_KEY_LEN, htonl(key_len));
    if (flags & NFT_SET_MAP) {
      mnl_attr_put_u32(h, NFTA_SET_DATA_TYPE, htonl(data_type));
      mnl_attr_put_u32(h, NFTA_SET_DATA_LEN, htonl(data_len));
    }
    if (id) mnl_attr_put_u32(h, NFTA_SET_ID, htonl(id));
    if (timeout_ms) mnl_attr_put_u64(h, NFTA_SET_TIMEOUT, htobe64(timeout_ms));
    End();
  }

  void DelSet(const std::string& name) {
    nlmsghdr* h = Msg(NFT_MSG_DELSET, 0);
    mnl_attr_put_strz(h, NFTA_SET_TABLE, table_.c_str());
    mnl_attr_put_strz(h, NFTA_SET_NAME, name.c_str());
    End();
  }

  // Elements go in messages of at most ~32 KiB (the elements nest has a 16-bit length).
  template <class It, class ToData>
  void Elements(bool del, const std::string& set, It begin, It end, ToData&& to_data) {
    for (It it = begin; it != end;) {
      nlmsghdr* h = Msg(del ? NFT_MSG_DELSETELEM : NFT_MSG_NEWSETELEM, del ? 0 : NLM_F_CREATE);
      mnl_attr_put_strz(h, NFTA_SET_ELEM_LIST_TABLE, table_.c_str());
      mnl_attr_put_strz(h, NFTA_SET_ELEM_LIST_SET, set.c_str());
      nlattr* list = mnl_attr_nest_start(h, NFTA_SET_ELEM_LIST_ELEMENTS);
      const uint32_t start_len = h->nlmsg_len;
      for (; it != end && h->nlmsg_len - start_len < kElementBytes; ++it) {
        const ElementData d = to_data(*it);
        nlattr* el = mnl_attr_nest_start(h, NFTA_LIST_ELEM);
        nlattr* k = mnl_attr_nest_start(h, NFTA_SET_ELEM_KEY);
        mnl_attr_put(h, NFTA_DATA_VALUE, d.key.len, d.key.b);
        mnl_attr_nest_end(h, k);
        if (!del && d.has_verdict) {
          nlattr* v = mnl_attr_nest_start(h, NFTA_SET_ELEM_DATA);
          Expr::PutVerdict(h, d.verdict, d.chain);
          mnl_attr_nest_end(h, v);
        }
        mnl_attr_nest_end(h, el);
      }
      mnl_attr_nest_end(h, list);
      End();
    }
  }

  // Sends the batch and waits for the kernel's verdict on the whole transaction.
  base::Result<> Send(int fd) {
    if (seq_ == 1) return {};  // nothing but the begin marker
    // The last real message asks for an ack: when it arrives, the transaction is done.
    reinterpret_cast<nlmsghdr*>(buf_.data() + last_)->nlmsg_flags |= NLM_F_ACK;
    const uint32_t wait_for = seq_ - 1;
    Begin(NFNL_MSG_BATCH_END, 0, AF_UNSPEC, htons(NFNL_SUBSYS_NFTABLES));
    End();
    const size_t total = buf_.size();
    int sndbuf = static_cast<int>(std::min<size_t>(total + (1 << 16), 1u << 30));
    setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof sndbuf);
    sockaddr_nl snl{};
    snl.nl_family = AF_NETLINK;
    iovec iov{buf_.data(), total};
    msghdr msg{};
    msg.msg_name = &snl;
    msg.msg_namelen = sizeof snl;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (sendmsg(fd, &msg, 0) < 0) return base::Errno("nftables: send batch");

    std::string errors;
    std::vector<char> rb(1 << 16);
    bool done = false;
    while (!done) {
      ssize_t len = recv(fd, rb.data(), rb.size(), 0);
      if (len < 0) {
        if (errno == EINTR) continue;
        if (!errors.empty()) break;
        return base::Errno("nftables: read reply");
      }
      for (auto* h = reinterpret_cast<nlmsghdr*>(rb.data()); NLMSG_OK(h, static_cast<size_t>(len));
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

  // The message with sequence number `seq`, described from its type and names ("add rule ip
  // cubelet-svc-03 service-... (rule 2 of this chain in the batch)").
  std::string What(uint32_t seq) {
    const nlmsghdr* found = nullptr;
    std::string rule_chain;
    int rule_index = 0;
    for (size_t off = 0; off + sizeof(nlmsghdr) <= buf_.size();) {
      auto* h = reinterpret_cast<const nlmsghdr*>(buf_.data() + off);
      if (h->nlmsg_len < sizeof(nlmsghdr)) break;
      if (h->nlmsg_seq == seq) {
        found = h;
        break;
      }
      off += NLMSG_ALIGN(h->nlmsg_len);
    }
    if (!found) return "batch";
    const uint16_t type = found->nlmsg_type & 0xff;
    auto attr = [&](const nlmsghdr* h, uint16_t t) -> std::string {
      auto* a = static_cast<const nlattr*>(mnl_nlmsg_get_payload_offset(h, sizeof(nfgenmsg)));
      const char* tail = static_cast<const char*>(mnl_nlmsg_get_payload_tail(h));
      for (; mnl_attr_ok(a, static_cast<int>(tail - reinterpret_cast<const char*>(a)));
           a = mnl_attr_next(a)) {
        if (mnl_attr_get_type(a) == t) return static_cast<const char*>(mnl_attr_get_payload(a));
      }
      return "";
    };
    switch (type) {
      case NFT_MSG_NEWTABLE:
      case NFT_MSG_DELTABLE:
        return std::string(type == NFT_MSG_NEWTABLE ? "add" : "delete") + " table ip " +
               attr(found, NFTA_TABLE_NAME);
      case NFT_MSG_NEWCHAIN:
      case NFT_MSG_DELCHAIN:
        return std::string(type == NFT_MSG_NEWCHAIN ? "add" : "delete") + " chain ip " +
               attr(found, NFTA_CHAIN_TABLE) + " " + attr(found, NFTA_CHAIN_NAME);
      case NFT_MSG_DELRULE:
        return "flush chain ip " + attr(found, NFTA_RULE_TABLE) + " " +
               attr(found, NFTA_RULE_CHAIN);
      case NFT_MSG_NEWRULE: {
        rule_chain = attr(found, NFTA_RULE_CHAIN);
        // Which rule of its chain: count the earlier rules of the same chain.
        for (size_t off = 0; off < buf_.size();) {
          auto* h = reinterpret_cast<const nlmsghdr*>(buf_.data() + off);
          if (h == found || h->nlmsg_len < sizeof(nlmsghdr)) break;
          if ((h->nlmsg_type & 0xff) == NFT_MSG_NEWRULE && h->nlmsg_seq != 0 &&
              attr(h, NFTA_RULE_CHAIN) == rule_chain) {
            ++rule_index;
          }
          off += NLMSG_ALIGN(h->nlmsg_len);
        }
        return "add rule ip " + attr(found, NFTA_RULE_TABLE) + " " + rule_chain + " (rule " +
               std::to_string(rule_index + 1) + " of this chain in the batch)";
      }
      case NFT_MSG_NEWSET:
      case NFT_MSG_DELSET:
        return std::string(type == NFT_MSG_NEWSET ? "add" : "delete") + " set ip " +
               attr(found, NFTA_SET_TABLE) + " " + attr(found, NFTA_SET_NAME);
      case NFT_MSG_NEWSETELEM:
      case NFT_MSG_DELSETELEM:
        return std::string(type == NFT_MSG_NEWSETELEM ? "add" : "delete") + " element ip " +
               attr(found, NFTA_SET_ELEM_LIST_TABLE) + " " + attr(found, NFTA_SET_ELEM_LIST_SET);
      default:
        return "message type " + std::to_string(type);
    }
  }

 private:
  // Largest message: one rule (< 4 KiB) or an element message (kElementBytes + one element).
  static constexpr size_t kMaxMessage = 64 << 10;
  static constexpr uint32_t kElementBytes = 32 << 10;

  nlmsghdr* Begin(uint16_t type, uint16_t flags, uint8_t family, uint16_t res_id) {
    char* p = buf_.Reserve(kMaxMessage);
    nlmsghdr* h = mnl_nlmsg_put_header(p);
    h->nlmsg_type = type;
    h->nlmsg_flags = NLM_F_REQUEST | flags;
    h->nlmsg_seq = seq_++;
    auto* g = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(h, sizeof(nfgenmsg)));
    g->nfgen_family = family;
    g->version = NFNETLINK_V0;
    g->res_id = res_id;
    cur_ = buf_.size();
    return h;
  }
  nlmsghdr* Msg(uint16_t type, uint16_t flags) {
    last_ = buf_.size();
    return Begin(static_cast<uint16_t>((NFNL_SUBSYS_NFTABLES << 8) | type), flags, NFPROTO_IPV4, 0);
  }
  void End() { buf_.Commit(reinterpret_cast<nlmsghdr*>(buf_.data() + cur_)->nlmsg_len); }

  Buffer buf_;
  std::string table_ = kNftTable;
  uint32_t seq_ = 0;
  uint32_t set_id_ = 0;
  size_t cur_ = 0;   // offset of the message being written
  size_t last_ = 0;  // offset of the last real message
};

}  // namespace netproxy::nftwire

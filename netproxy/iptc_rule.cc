#include "netproxy/iptc_rule.h"

#include <arpa/inet.h>
#include <libiptc/libiptc.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/xt_MARK.h>
#include <linux/netfilter/xt_addrtype.h>
#include <linux/netfilter/xt_comment.h>
#include <linux/netfilter/xt_conntrack.h>
#include <linux/netfilter/xt_mark.h>
#include <linux/netfilter/xt_recent.h>
// xt_sctp.h has C99 inline helpers (with _Bool) that C++ does not know.
#define _Bool bool
#include <linux/netfilter/xt_sctp.h>
#undef _Bool
#include <linux/netfilter/xt_statistic.h>
#include <linux/netfilter/xt_tcpudp.h>
#include <linux/netfilter_ipv4/ipt_REJECT.h>
#include <netinet/in.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>

namespace netproxy::iptc {

base::Result<> SplitWords(std::string_view line, std::vector<std::string>& words) {
  words.clear();
  std::string cur;
  bool quoted = false, any = false;
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (quoted && c == '\\' && i + 1 < line.size()) {
      cur += line[++i];
    } else if (c == '"') {
      quoted = !quoted;
      any = true;
    } else if ((c == ' ' || c == '\t') && !quoted) {
      if (any || !cur.empty()) words.push_back(std::move(cur));
      cur.clear();
      any = false;
    } else {
      cur += c;
    }
  }
  if (quoted) return base::Fail("unterminated quote");
  if (any || !cur.empty()) words.push_back(std::move(cur));
  return {};
}

const ipt_entry* Entry::get() const { return reinterpret_cast<const ipt_entry*>(storage_.data()); }
ipt_entry* Entry::get() { return reinterpret_cast<ipt_entry*>(storage_.data()); }

namespace {

using Words = std::vector<std::string>;

// --- value parsers ---

bool ParseU32(std::string_view s, uint32_t& out, int base = 0) {
  if (s.empty() || s.size() > 20 || s[0] == '-' || s[0] == '+') return false;
  char buf[24];
  memcpy(buf, s.data(), s.size());
  buf[s.size()] = 0;
  char* end = nullptr;
  errno = 0;
  unsigned long v = strtoul(buf, &end, base);
  if (errno || *end || v > 0xffffffffUL) return false;
  out = static_cast<uint32_t>(v);
  return true;
}

bool ParsePort(std::string_view s, uint16_t& out) {
  uint32_t v;
  if (!ParseU32(s, v, 10) || v > 65535) return false;
  out = static_cast<uint16_t>(v);
  return true;
}

// "a", "a:b", ":b", "a:" (as iptables' port ranges).
bool ParsePortRange(std::string_view s, uint16_t range[2], char sep = ':') {
  size_t c = s.find(sep);
  if (c == std::string_view::npos) {
    if (!ParsePort(s, range[0])) return false;
    range[1] = range[0];
    return true;
  }
  std::string_view a = s.substr(0, c), b = s.substr(c + 1);
  range[0] = 0;
  range[1] = 0xffff;
  if (!a.empty() && !ParsePort(a, range[0])) return false;
  if (!b.empty() && !ParsePort(b, range[1])) return false;
  return range[0] <= range[1];
}

bool ParseAddr(std::string_view s, in_addr& out) {
  if (s.size() >= INET_ADDRSTRLEN) return false;
  char buf[INET_ADDRSTRLEN];
  memcpy(buf, s.data(), s.size());
  buf[s.size()] = 0;
  return inet_pton(AF_INET, buf, &out) == 1;
}

// "a.b.c.d", "a.b.c.d/n", "a.b.c.d/m.m.m.m"; the address is masked as iptables does.
bool ParseCidr(std::string_view s, in_addr& addr, in_addr& mask) {
  size_t slash = s.find('/');
  if (!ParseAddr(s.substr(0, slash), addr)) return false;
  mask.s_addr = 0xffffffff;
  if (slash != std::string_view::npos) {
    std::string_view m = s.substr(slash + 1);
    uint32_t bits;
    if (m.find('.') != std::string_view::npos) {
      if (!ParseAddr(m, mask)) return false;
    } else if (ParseU32(m, bits, 10) && bits <= 32) {
      mask.s_addr = bits == 0 ? 0 : htonl(~uint32_t{0} << (32 - bits));
    } else {
      return false;
    }
  }
  addr.s_addr &= mask.s_addr;
  return true;
}

bool ParseProtocol(std::string_view s, uint16_t& out) {
  static const struct {
    const char* name;
    uint16_t num;
  } kNames[] = {{"tcp", IPPROTO_TCP},   {"udp", IPPROTO_UDP},         {"sctp", IPPROTO_SCTP},
                {"icmp", IPPROTO_ICMP}, {"udplite", IPPROTO_UDPLITE}, {"esp", IPPROTO_ESP},
                {"ah", IPPROTO_AH},     {"dccp", IPPROTO_DCCP},       {"all", 0}};
  for (const auto& n : kNames) {
    if (s == n.name) {
      out = n.num;
      return true;
    }
  }
  uint32_t v;
  if (ParseU32(s, v, 10) && v <= 255) {
    out = static_cast<uint16_t>(v);
    return true;
  }
  return false;
}

const char* ProtocolName(uint16_t p) {
  switch (p) {
    case IPPROTO_TCP:
      return "tcp";
    case IPPROTO_UDP:
      return "udp";
    case IPPROTO_SCTP:
      return "sctp";
    case IPPROTO_ICMP:
      return "icmp";
    case IPPROTO_UDPLITE:
      return "udplite";
    case IPPROTO_ESP:
      return "esp";
    case IPPROTO_AH:
      return "ah";
    case IPPROTO_DCCP:
      return "dccp";
    default:
      return nullptr;
  }
}

// As xtables_parse_interface: "eth0" matches exactly, "eth+" any name starting with "eth".
bool ParseInterface(std::string_view s, char name[IFNAMSIZ], unsigned char mask[IFNAMSIZ]) {
  if (s.empty() || s.size() >= IFNAMSIZ) return false;
  memset(name, 0, IFNAMSIZ);
  memset(mask, 0, IFNAMSIZ);
  memcpy(name, s.data(), s.size());
  if (s.back() == '+') {
    memset(mask, 0xff, s.size() - 1);
  } else {
    memset(mask, 0xff, s.size() + 1);
  }
  return true;
}

int HexVal(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// --- extensions ---

struct Ctx {
  const Words& w;
  size_t& i;       // index of the option; parsers advance it past their arguments
  bool invert;     // "!" before the option
  uint16_t proto;  // -p so far
  // The option's argument, or an error naming the option.
  base::Result<std::string_view> Arg() {
    if (i + 1 >= w.size() || (w[i + 1].size() > 1 && w[i + 1][0] == '-' && w[i + 1][1] == '-')) {
      return base::Fail("option " + w[i] + " needs an argument");
    }
    return std::string_view(w[++i]);
  }
  base::Result<> Bad(std::string_view v) const {
    return base::Fail("bad value \"" + std::string(v) + "\" for " + w[i - 1]);
  }
  base::Result<> NoInvert() const { return base::Fail("option " + w[i] + " cannot be inverted"); }
};

// Parses one option into data; false = not an option of this extension.
using ParseFn = base::Result<bool> (*)(Ctx& c, std::string_view opt, void* data);
using InitFn = void (*)(void* data);
using FinalFn = base::Result<> (*)(void* data, uint16_t proto);

struct Kind {
  const char* name;
  uint8_t revision;
  size_t size;      // of the data (before XT_ALIGN)
  size_t usersize;  // compared by -D (the rest is the kernel's)
  InitFn init;
  ParseFn parse;
  FinalFn final;
};

#define CUBELET_ARG(c, var)                             \
  auto var##_r = (c).Arg();                             \
  if (!var##_r) return tl::unexpected(var##_r.error()); \
  std::string_view var = *var##_r

base::Result<bool> CommentParse(Ctx& c, std::string_view opt, void* data) {
  if (opt != "--comment") return false;
  if (c.invert) return tl::unexpected(c.NoInvert().error());
  CUBELET_ARG(c, v);
  auto* info = static_cast<xt_comment_info*>(data);
  if (v.size() >= sizeof info->comment) {
    return base::Fail("comment longer than " + std::to_string(sizeof info->comment - 1));
  }
  memcpy(info->comment, v.data(), v.size());
  return true;
}

void TcpInit(void* data) {
  auto* info = static_cast<xt_tcp*>(data);
  info->spts[1] = info->dpts[1] = 0xffff;
}

base::Result<bool> TcpParse(Ctx& c, std::string_view opt, void* data) {
  auto* info = static_cast<xt_tcp*>(data);
  bool dst = opt == "--dport" || opt == "--destination-port";
  bool src = opt == "--sport" || opt == "--source-port";
  if (!dst && !src) return false;
  CUBELET_ARG(c, v);
  if (!ParsePortRange(v, dst ? info->dpts : info->spts)) return tl::unexpected(c.Bad(v).error());
  if (c.invert) info->invflags |= dst ? XT_TCP_INV_DSTPT : XT_TCP_INV_SRCPT;
  return true;
}

void UdpInit(void* data) {
  auto* info = static_cast<xt_udp*>(data);
  info->spts[1] = info->dpts[1] = 0xffff;
}

base::Result<bool> UdpParse(Ctx& c, std::string_view opt, void* data) {
  auto* info = static_cast<xt_udp*>(data);
  bool dst = opt == "--dport" || opt == "--destination-port";
  bool src = opt == "--sport" || opt == "--source-port";
  if (!dst && !src) return false;
  CUBELET_ARG(c, v);
  if (!ParsePortRange(v, dst ? info->dpts : info->spts)) return tl::unexpected(c.Bad(v).error());
  if (c.invert) info->invflags |= dst ? XT_UDP_INV_DSTPT : XT_UDP_INV_SRCPT;
  return true;
}

void SctpInit(void* data) {
  auto* info = static_cast<xt_sctp_info*>(data);
  for (auto& f : info->flag_info) f.chunktype = 0xff;
}

base::Result<bool> SctpParse(Ctx& c, std::string_view opt, void* data) {
  auto* info = static_cast<xt_sctp_info*>(data);
  bool dst = opt == "--dport" || opt == "--destination-port";
  bool src = opt == "--sport" || opt == "--source-port";
  if (!dst && !src) return false;
  CUBELET_ARG(c, v);
  if (!ParsePortRange(v, dst ? info->dpts : info->spts)) return tl::unexpected(c.Bad(v).error());
  uint32_t flag = dst ? XT_SCTP_DEST_PORTS : XT_SCTP_SRC_PORTS;
  info->flags |= flag;
  if (c.invert) info->invflags |= flag;
  return true;
}

constexpr const char* kAddrTypes[] = {"UNSPEC",   "UNICAST",   "LOCAL",     "BROADCAST",
                                      "ANYCAST",  "MULTICAST", "BLACKHOLE", "UNREACHABLE",
                                      "PROHIBIT", "THROW",     "NAT",       "XRESOLVE"};

bool ParseNameList(std::string_view v, const char* const* names, size_t n, const uint16_t* bits,
                   uint16_t& out) {
  while (!v.empty()) {
    size_t comma = v.find(',');
    std::string_view one = v.substr(0, comma);
    bool found = false;
    for (size_t k = 0; k < n; ++k) {
      if (strncasecmp(one.data(), names[k], one.size()) == 0 && strlen(names[k]) == one.size()) {
        out |= bits ? bits[k] : uint16_t(1u << k);
        found = true;
        break;
      }
    }
    if (!found) return false;
    if (comma == std::string_view::npos) break;
    v = v.substr(comma + 1);
  }
  return true;
}

base::Result<bool> AddrtypeParse(Ctx& c, std::string_view opt, void* data) {
  auto* info = static_cast<xt_addrtype_info_v1*>(data);
  if (opt == "--limit-iface-in" || opt == "--limit-iface-out") {
    if (c.invert) return tl::unexpected(c.NoInvert().error());
    info->flags |=
        opt == "--limit-iface-in" ? XT_ADDRTYPE_LIMIT_IFACE_IN : XT_ADDRTYPE_LIMIT_IFACE_OUT;
    return true;
  }
  bool src = opt == "--src-type";
  if (!src && opt != "--dst-type") return false;
  CUBELET_ARG(c, v);
  uint16_t& mask = src ? info->source : info->dest;
  if (!ParseNameList(v, kAddrTypes, std::size(kAddrTypes), nullptr, mask)) {
    return tl::unexpected(c.Bad(v).error());
  }
  if (c.invert) info->flags |= src ? XT_ADDRTYPE_INVERT_SOURCE : XT_ADDRTYPE_INVERT_DEST;
  return true;
}

// "V" or "V/M" (M defaults to all ones).
bool ParseMarkMask(std::string_view v, uint32_t& mark, uint32_t& mask) {
  size_t slash = v.find('/');
  if (!ParseU32(v.substr(0, slash), mark)) return false;
  mask = 0xffffffff;
  return slash == std::string_view::npos || ParseU32(v.substr(slash + 1), mask);
}

base::Result<bool> MarkParse(Ctx& c, std::string_view opt, void* data) {
  if (opt != "--mark") return false;
  auto* info = static_cast<xt_mark_mtinfo1*>(data);
  CUBELET_ARG(c, v);
  if (!ParseMarkMask(v, info->mark, info->mask)) return tl::unexpected(c.Bad(v).error());
  info->invert = c.invert;
  return true;
}

base::Result<bool> StatisticParse(Ctx& c, std::string_view opt, void* data) {
  auto* info = static_cast<xt_statistic_info*>(data);
  if (opt == "--mode") {
    CUBELET_ARG(c, v);
    if (v == "random") {
      info->mode = XT_STATISTIC_MODE_RANDOM;
    } else if (v == "nth") {
      info->mode = XT_STATISTIC_MODE_NTH;
    } else {
      return tl::unexpected(c.Bad(v).error());
    }
    return true;
  }
  if (opt == "--probability") {
    CUBELET_ARG(c, v);
    std::string s(v);
    char* end = nullptr;
    double p = strtod(s.c_str(), &end);
    if (*end || !(p >= 0.0 && p <= 1.0)) return tl::unexpected(c.Bad(v).error());
    info->u.random.probability = static_cast<uint32_t>(lround(0x80000000 * p));
    if (c.invert) info->flags |= XT_STATISTIC_INVERT;
    return true;
  }
  if (opt == "--every" || opt == "--packet") {
    CUBELET_ARG(c, v);
    uint32_t n;
    if (!ParseU32(v, n, 10) || (opt == "--every" && n == 0)) {
      return tl::unexpected(c.Bad(v).error());
    }
    if (opt == "--every") {
      info->u.nth.every = n - 1;
      if (c.invert) info->flags |= XT_STATISTIC_INVERT;
    } else {
      info->u.nth.packet = n;
    }
    return true;
  }
  return false;
}

base::Result<> StatisticFinal(void* data, uint16_t) {
  auto* info = static_cast<xt_statistic_info*>(data);
  // As libxt_statistic: count starts at every - packet (every aliases the probability).
  info->u.nth.count = info->u.nth.every - info->u.nth.packet;
  return {};
}

void RecentInit(void* data) {
  auto* info = static_cast<xt_recent_mtinfo_v1*>(data);
  strcpy(info->name, "DEFAULT");
  info->side = XT_RECENT_SOURCE;
  memset(&info->mask, 0xff, sizeof info->mask);
}

base::Result<bool> RecentParse(Ctx& c, std::string_view opt, void* data) {
  auto* info = static_cast<xt_recent_mtinfo_v1*>(data);
  static const struct {
    const char* opt;
    uint8_t bit;
  } kModes[] = {{"--set", XT_RECENT_SET},
                {"--rcheck", XT_RECENT_CHECK},
                {"--update", XT_RECENT_UPDATE},
                {"--remove", XT_RECENT_REMOVE}};
  for (const auto& m : kModes) {
    if (opt == m.opt) {
      info->check_set |= m.bit;
      if (c.invert) info->invert = 1;
      return true;
    }
  }
  if (opt == "--rttl" || opt == "--reap") {
    info->check_set |= opt == "--rttl" ? XT_RECENT_TTL : XT_RECENT_REAP;
    return true;
  }
  if (opt == "--rsource" || opt == "--rdest") {
    info->side = opt == "--rsource" ? XT_RECENT_SOURCE : XT_RECENT_DEST;
    return true;
  }
  if (opt == "--name") {
    CUBELET_ARG(c, v);
    if (v.empty() || v.size() >= XT_RECENT_NAME_LEN) return tl::unexpected(c.Bad(v).error());
    // Over "DEFAULT" without clearing the rest, byte for byte as libxt_recent does.
    memcpy(info->name, v.data(), v.size());
    info->name[v.size()] = 0;
    return true;
  }
  if (opt == "--seconds" || opt == "--hitcount") {
    CUBELET_ARG(c, v);
    uint32_t n;
    if (!ParseU32(v, n, 10)) return tl::unexpected(c.Bad(v).error());
    (opt == "--seconds" ? info->seconds : info->hit_count) = n;
    return true;
  }
  if (opt == "--mask") {
    CUBELET_ARG(c, v);
    memset(&info->mask, 0, sizeof info->mask);
    if (!ParseAddr(v, info->mask.in)) return tl::unexpected(c.Bad(v).error());
    return true;
  }
  return false;
}

constexpr const char* kCtStates[] = {"INVALID",   "NEW",  "RELATED", "ESTABLISHED",
                                     "UNTRACKED", "SNAT", "DNAT"};
constexpr uint16_t kCtStateBits[] = {XT_CONNTRACK_STATE_INVALID,
                                     XT_CONNTRACK_STATE_BIT(IP_CT_NEW),
                                     XT_CONNTRACK_STATE_BIT(IP_CT_RELATED),
                                     XT_CONNTRACK_STATE_BIT(IP_CT_ESTABLISHED),
                                     XT_CONNTRACK_STATE_UNTRACKED,
                                     XT_CONNTRACK_STATE_SNAT,
                                     XT_CONNTRACK_STATE_DNAT};

base::Result<bool> ConntrackParse(Ctx& c, std::string_view opt, void* data) {
  if (opt != "--ctstate") return false;
  auto* info = static_cast<xt_conntrack_mtinfo3*>(data);
  CUBELET_ARG(c, v);
  if (!ParseNameList(v, kCtStates, std::size(kCtStates), kCtStateBits, info->state_mask)) {
    return tl::unexpected(c.Bad(v).error());
  }
  info->match_flags |= XT_CONNTRACK_STATE;
  if (c.invert) info->invert_flags |= XT_CONNTRACK_STATE;
  return true;
}

// Targets.

base::Result<bool> MarkTargetParse(Ctx& c, std::string_view opt, void* data) {
  auto* info = static_cast<xt_mark_tginfo2*>(data);
  bool set_x = opt == "--set-xmark", set = opt == "--set-mark", and_ = opt == "--and-mark",
       or_ = opt == "--or-mark", xor_ = opt == "--xor-mark";
  if (!set_x && !set && !and_ && !or_ && !xor_) return false;
  if (c.invert) return tl::unexpected(c.NoInvert().error());
  CUBELET_ARG(c, v);
  uint32_t mark, mask;
  bool ok = (set_x || set) ? ParseMarkMask(v, mark, mask) : ParseU32(v, mark);
  if (!ok) return tl::unexpected(c.Bad(v).error());
  if (set_x) {  // as libxt_MARK
    info->mark = mark;
    info->mask = mask;
  } else if (set) {
    info->mark = mark;
    info->mask = mark | mask;
  } else if (and_) {
    info->mark = 0;
    info->mask = ~mark;
  } else if (or_) {
    info->mark = info->mask = mark;
  } else {
    info->mark = mark;
    info->mask = 0;
  }
  return true;
}

bool NeedsPortProto(uint16_t proto) {
  return proto == IPPROTO_TCP || proto == IPPROTO_UDP || proto == IPPROTO_SCTP ||
         proto == IPPROTO_DCCP;
}

base::Result<bool> DnatParse(Ctx& c, std::string_view opt, void* data) {
  auto* r = static_cast<nf_nat_range2*>(data);
  if (opt == "--random" || opt == "--persistent" || opt == "--random-fully") {
    r->flags |= opt == "--random"       ? NF_NAT_RANGE_PROTO_RANDOM
                : opt == "--persistent" ? NF_NAT_RANGE_PERSISTENT
                                        : NF_NAT_RANGE_PROTO_RANDOM_FULLY;
    return true;
  }
  if (opt != "--to-destination") return false;
  if (c.invert) return tl::unexpected(c.NoInvert().error());
  CUBELET_ARG(c, v);
  if (r->flags & NF_NAT_RANGE_MAP_IPS) return base::Fail("only one --to-destination allowed");
  std::string_view addrs = v, ports;
  size_t colon = v.find(':');
  if (colon != std::string_view::npos) {
    addrs = v.substr(0, colon);
    ports = v.substr(colon + 1);
  }
  if (!addrs.empty()) {
    size_t dash = addrs.find('-');
    if (!ParseAddr(addrs.substr(0, dash), r->min_addr.in)) return tl::unexpected(c.Bad(v).error());
    r->max_addr = r->min_addr;
    if (dash != std::string_view::npos && !ParseAddr(addrs.substr(dash + 1), r->max_addr.in)) {
      return tl::unexpected(c.Bad(v).error());
    }
    r->flags |= NF_NAT_RANGE_MAP_IPS;
  }
  if (colon != std::string_view::npos) {
    uint16_t range[2];
    if (!ParsePortRange(ports, range, '-')) return tl::unexpected(c.Bad(v).error());
    r->min_proto.all = htons(range[0]);
    r->max_proto.all = htons(range[1]);
    r->flags |= NF_NAT_RANGE_PROTO_SPECIFIED;
  }
  return true;
}

base::Result<> PortsNeedProto(uint32_t flags, uint16_t proto) {
  if ((flags & NF_NAT_RANGE_PROTO_SPECIFIED) && !NeedsPortProto(proto)) {
    return base::Fail("need TCP, UDP, SCTP or DCCP with port specification");
  }
  return {};
}

base::Result<> DnatFinal(void* data, uint16_t proto) {
  auto* r = static_cast<nf_nat_range2*>(data);
  if (!(r->flags & NF_NAT_RANGE_MAP_IPS) && !(r->flags & NF_NAT_RANGE_PROTO_SPECIFIED)) {
    return base::Fail("DNAT needs --to-destination");
  }
  return PortsNeedProto(r->flags, proto);
}

void CompatInit(void* data) { static_cast<nf_nat_ipv4_multi_range_compat*>(data)->rangesize = 1; }

// MASQUERADE and REDIRECT (revision 0: one nf_nat_ipv4_range).
base::Result<bool> CompatPortsParse(Ctx& c, std::string_view opt, void* data) {
  auto& r = static_cast<nf_nat_ipv4_multi_range_compat*>(data)->range[0];
  if (opt == "--random" || opt == "--random-fully") {
    r.flags |= opt == "--random" ? NF_NAT_RANGE_PROTO_RANDOM : NF_NAT_RANGE_PROTO_RANDOM_FULLY;
    return true;
  }
  if (opt != "--to-ports") return false;
  if (c.invert) return tl::unexpected(c.NoInvert().error());
  CUBELET_ARG(c, v);
  uint16_t range[2];
  if (!ParsePortRange(v, range, '-')) return tl::unexpected(c.Bad(v).error());
  r.min.all = htons(range[0]);
  r.max.all = htons(range[1]);
  r.flags |= NF_NAT_RANGE_PROTO_SPECIFIED;
  return true;
}

base::Result<> CompatPortsFinal(void* data, uint16_t proto) {
  return PortsNeedProto(static_cast<nf_nat_ipv4_multi_range_compat*>(data)->range[0].flags, proto);
}

constexpr const char* kRejectWith[] = {"icmp-net-unreachable",   "icmp-host-unreachable",
                                       "icmp-proto-unreachable", "icmp-port-unreachable",
                                       "icmp-echo-reply",        "icmp-net-prohibited",
                                       "icmp-host-prohibited",   "tcp-reset",
                                       "icmp-admin-prohibited"};

void RejectInit(void* data) {
  static_cast<ipt_reject_info*>(data)->with = IPT_ICMP_PORT_UNREACHABLE;
}

base::Result<bool> RejectParse(Ctx& c, std::string_view opt, void* data) {
  if (opt != "--reject-with") return false;
  CUBELET_ARG(c, v);
  static const struct {
    const char* alias;
    ipt_reject_with with;
  } kAliases[] = {
      {"net-unreach", IPT_ICMP_NET_UNREACHABLE},    {"host-unreach", IPT_ICMP_HOST_UNREACHABLE},
      {"proto-unreach", IPT_ICMP_PROT_UNREACHABLE}, {"port-unreach", IPT_ICMP_PORT_UNREACHABLE},
      {"net-prohib", IPT_ICMP_NET_PROHIBITED},      {"host-prohib", IPT_ICMP_HOST_PROHIBITED},
      {"admin-prohib", IPT_ICMP_ADMIN_PROHIBITED}};
  auto* info = static_cast<ipt_reject_info*>(data);
  for (size_t k = 0; k < std::size(kRejectWith); ++k) {
    if (v == kRejectWith[k] && k != IPT_ICMP_ECHOREPLY) {
      info->with = static_cast<ipt_reject_with>(k);
      return true;
    }
  }
  for (const auto& a : kAliases) {
    if (v == a.alias) {
      info->with = a.with;
      return true;
    }
  }
  return tl::unexpected(c.Bad(v).error());
}

base::Result<> RejectFinal(void* data, uint16_t proto) {
  auto* info = static_cast<ipt_reject_info*>(data);
  if (info->with == IPT_TCP_RESET && proto != IPPROTO_TCP) {
    return base::Fail("--reject-with tcp-reset needs -p tcp");
  }
  return {};
}

// Revisions as iptables 1.8.9 picks them on kernels 4.x-6.x (checked against
// iptables-legacy-save by tests/netproxy/libiptc_backend_test.cc).
const Kind kMatches[] = {
    {"comment", 0, sizeof(xt_comment_info), sizeof(xt_comment_info), nullptr, CommentParse,
     nullptr},
    {"tcp", 0, sizeof(xt_tcp), sizeof(xt_tcp), TcpInit, TcpParse, nullptr},
    {"udp", 0, sizeof(xt_udp), sizeof(xt_udp), UdpInit, UdpParse, nullptr},
    {"sctp", 0, sizeof(xt_sctp_info), sizeof(xt_sctp_info), SctpInit, SctpParse, nullptr},
    {"addrtype", 1, sizeof(xt_addrtype_info_v1), sizeof(xt_addrtype_info_v1), nullptr,
     AddrtypeParse, nullptr},
    {"mark", 1, sizeof(xt_mark_mtinfo1), sizeof(xt_mark_mtinfo1), nullptr, MarkParse, nullptr},
    {"statistic", 0, sizeof(xt_statistic_info), offsetof(xt_statistic_info, master), nullptr,
     StatisticParse, StatisticFinal},
    {"recent", 1, sizeof(xt_recent_mtinfo_v1), sizeof(xt_recent_mtinfo_v1), RecentInit, RecentParse,
     nullptr},
    {"conntrack", 3, sizeof(xt_conntrack_mtinfo3), sizeof(xt_conntrack_mtinfo3), nullptr,
     ConntrackParse, nullptr},
};

const Kind kTargets[] = {
    {"MARK", 2, sizeof(xt_mark_tginfo2), sizeof(xt_mark_tginfo2), nullptr, MarkTargetParse,
     nullptr},
    {"DNAT", 2, sizeof(nf_nat_range2), sizeof(nf_nat_range2), nullptr, DnatParse, DnatFinal},
    {"MASQUERADE", 0, sizeof(nf_nat_ipv4_multi_range_compat),
     sizeof(nf_nat_ipv4_multi_range_compat), CompatInit, CompatPortsParse, CompatPortsFinal},
    {"REDIRECT", 0, sizeof(nf_nat_ipv4_multi_range_compat), sizeof(nf_nat_ipv4_multi_range_compat),
     CompatInit, CompatPortsParse, CompatPortsFinal},
    {"REJECT", 0, sizeof(ipt_reject_info), sizeof(ipt_reject_info), RejectInit, RejectParse,
     RejectFinal},
};

const Kind* FindKind(const Kind* kinds, size_t n, std::string_view name) {
  for (size_t k = 0; k < n; ++k) {
    if (name == kinds[k].name) return &kinds[k];
  }
  return nullptr;
}

const Kind* FindMatch(std::string_view name) {
  return FindKind(kMatches, std::size(kMatches), name);
}
const Kind* FindTarget(std::string_view name) {
  return FindKind(kTargets, std::size(kTargets), name);
}

bool IsVerdict(std::string_view t) {
  return t == "ACCEPT" || t == "DROP" || t == "RETURN" || t == "QUEUE";
}

// A match or target being built. kind == nullptr: raw (name and revision from --xt-raw).
struct Part {
  std::string name;
  const Kind* kind = nullptr;
  uint8_t revision = 0;
  std::vector<uint64_t> data;  // zeroed, aligned
  size_t size = 0;             // XT_ALIGN'ed data size
  bool raw_set = false;
  void* ptr() { return data.data(); }
};

base::Result<Part> NewPart(std::string_view name, const Kind* kind) {
  if (name.empty() || name.size() >= XT_EXTENSION_MAXNAMELEN) {
    return base::Fail("bad extension name \"" + std::string(name) + "\"");
  }
  Part p;
  p.name = std::string(name);
  p.kind = kind;
  if (kind) {
    p.revision = kind->revision;
    p.size = XT_ALIGN(kind->size);
    p.data.assign(p.size / 8, 0);
    if (kind->init) kind->init(p.ptr());
  }
  return p;
}

// "--xt-raw REV:HEX": the data of an extension this file does not encode (see FormatRule).
base::Result<bool> RawParse(Ctx& c, std::string_view opt, Part& p) {
  if (opt != "--xt-raw") return false;
  CUBELET_ARG(c, v);
  size_t colon = v.find(':');
  uint32_t rev;
  std::string_view hex = colon == std::string_view::npos ? "" : v.substr(colon + 1);
  if (colon == std::string_view::npos || !ParseU32(v.substr(0, colon), rev, 10) || rev > 255 ||
      hex.size() % 2) {
    return tl::unexpected(c.Bad(v).error());
  }
  p.revision = static_cast<uint8_t>(rev);
  p.size = XT_ALIGN(hex.size() / 2);
  p.data.assign(p.size / 8, 0);
  auto* out = static_cast<unsigned char*>(p.ptr());
  for (size_t k = 0; k < hex.size(); k += 2) {
    int hi = HexVal(hex[k]), lo = HexVal(hex[k + 1]);
    if (hi < 0 || lo < 0) return tl::unexpected(c.Bad(v).error());
    out[k / 2] = static_cast<unsigned char>(hi << 4 | lo);
  }
  p.kind = nullptr;
  p.raw_set = true;
  return true;
}

base::Result<bool> PartParse(Ctx& c, std::string_view opt, Part& p) {
  auto raw = RawParse(c, opt, p);
  if (!raw || *raw) return raw;
  if (!p.kind) return false;
  return p.kind->parse(c, opt, p.ptr());
}

}  // namespace

class EntryBuilder {
 public:
  static base::Result<Entry> Build(const Words& w, size_t begin);
};

base::Result<Entry> EntryBuilder::Build(const Words& w, size_t begin) {
  ipt_ip ip{};
  std::vector<Part> matches;
  std::optional<Part> target;
  std::string target_name;
  bool have_target = false;
  bool invert = false;
  bool seen_proto = false;

  for (size_t i = begin; i < w.size(); ++i) {
    const std::string& opt = w[i];
    if (opt == "!") {
      if (invert) return base::Fail("double \"!\"");
      invert = true;
      continue;
    }
    Ctx c{w, i, invert, ip.proto};
    auto arg = [&]() -> base::Result<std::string_view> { return c.Arg(); };
    if (opt == "-p" || opt == "--protocol") {
      auto v = arg();
      if (!v) return tl::unexpected(v.error());
      if (seen_proto) return base::Fail("multiple -p flags");
      if (!ParseProtocol(*v, ip.proto)) return base::Fail("unknown protocol \"" + w[i] + "\"");
      seen_proto = true;
      if (invert) ip.invflags |= IPT_INV_PROTO;
    } else if (opt == "-s" || opt == "--source" || opt == "--src" || opt == "-d" ||
               opt == "--destination" || opt == "--dst") {
      bool src = opt == "-s" || opt == "--source" || opt == "--src";
      auto v = arg();
      if (!v) return tl::unexpected(v.error());
      if (!ParseCidr(*v, src ? ip.src : ip.dst, src ? ip.smsk : ip.dmsk)) {
        return base::Fail("bad address \"" + w[i] + "\" for " + opt);
      }
      if (invert) ip.invflags |= src ? IPT_INV_SRCIP : IPT_INV_DSTIP;
    } else if (opt == "-i" || opt == "--in-interface" || opt == "-o" || opt == "--out-interface") {
      bool in = opt == "-i" || opt == "--in-interface";
      auto v = arg();
      if (!v) return tl::unexpected(v.error());
      if (!ParseInterface(*v, in ? ip.iniface : ip.outiface,
                          in ? ip.iniface_mask : ip.outiface_mask)) {
        return base::Fail("bad interface \"" + w[i] + "\"");
      }
      if (invert) ip.invflags |= in ? IPT_INV_VIA_IN : IPT_INV_VIA_OUT;
    } else if (opt == "-m" || opt == "--match") {
      if (invert) return base::Fail("\"!\" before -m");
      auto v = arg();
      if (!v) return tl::unexpected(v.error());
      auto p = NewPart(*v, FindMatch(*v));
      if (!p) return tl::unexpected(p.error());
      matches.push_back(std::move(*p));
    } else if (opt == "-j" || opt == "--jump" || opt == "-g" || opt == "--goto") {
      if (invert) return base::Fail("\"!\" before " + opt);
      if (have_target) return base::Fail("more than one target (-j)");
      auto v = arg();
      if (!v) return tl::unexpected(v.error());
      have_target = true;
      target_name = std::string(*v);
      if (opt == "-g" || opt == "--goto") {
        if (IsVerdict(target_name) || FindTarget(target_name)) {
          return base::Fail("-g needs a chain, not " + target_name);
        }
        ip.flags |= IPT_F_GOTO;
      } else if (!IsVerdict(target_name)) {
        // An extension, or (unknown kind, no --xt-raw) a chain to jump to.
        auto p = NewPart(target_name, FindTarget(target_name));
        if (!p) return tl::unexpected(p.error());
        target = std::move(*p);
      }
    } else if (opt.size() > 2 && opt[0] == '-' && opt[1] == '-') {
      // An extension's option: the target's, else the last match that knows it (as getopt
      // over iptables' merged options finds it).
      bool handled = false;
      if (target) {
        auto r = PartParse(c, opt, *target);
        if (!r) return tl::unexpected(r.error().Wrap(target->name));
        handled = *r;
      }
      for (size_t k = matches.size(); !handled && k-- > 0;) {
        auto r = PartParse(c, opt, matches[k]);
        if (!r) return tl::unexpected(r.error().Wrap("-m " + matches[k].name));
        handled = *r;
      }
      if (!handled && ProtocolName(ip.proto) && !(ip.invflags & IPT_INV_PROTO)) {
        // Implicit "-m tcp" for "-p tcp --dport 80", as iptables loads it.
        const Kind* k = FindMatch(ProtocolName(ip.proto));
        bool loaded = false;
        for (const auto& m : matches) loaded = loaded || m.name == ProtocolName(ip.proto);
        if (k && !loaded) {
          auto p = NewPart(k->name, k);
          if (!p) return tl::unexpected(p.error());
          auto r = PartParse(c, opt, *p);
          if (!r) return tl::unexpected(r.error().Wrap(std::string("-m ") + k->name));
          if (*r) matches.push_back(std::move(*p));
          handled = *r;
        }
      }
      if (!handled) {
        for (const auto& m : matches) {
          if (!m.kind && !m.raw_set) return base::Fail("unknown match \"" + m.name + "\"");
        }
        return base::Fail("unknown option \"" + opt + "\"");
      }
    } else {
      return base::Fail("unexpected argument \"" + opt + "\"");
    }
    invert = false;
  }
  if (invert) return base::Fail("\"!\" at the end");

  for (auto& m : matches) {
    if (!m.kind && !m.raw_set) return base::Fail("unknown match \"" + m.name + "\"");
    if (m.kind && m.kind->final) {
      auto r = m.kind->final(m.ptr(), ip.proto);
      if (!r) return tl::unexpected(r.error().Wrap("-m " + m.name));
    }
  }
  if (target && target->kind && target->kind->final) {
    auto r = target->kind->final(target->ptr(), ip.proto);
    if (!r) return tl::unexpected(r.error().Wrap(target->name));
  }
  const bool standard = !target || (!target->kind && !target->raw_set);
  if (!target_name.empty() && target_name[0] == '-') {
    return base::Fail("bad target \"" + target_name + "\"");
  }

  // Layout: ipt_entry, matches, target.
  size_t size = XT_ALIGN(sizeof(ipt_entry));
  for (const auto& m : matches) size += XT_ALIGN(sizeof(xt_entry_match)) + m.size;
  const size_t target_offset = size;
  const size_t target_size = standard ? XT_ALIGN(sizeof(xt_standard_target))
                                      : XT_ALIGN(sizeof(xt_entry_target)) + target->size;
  size += target_size;
  if (size > 0xffff) return base::Fail("rule too large");

  Entry out;
  out.storage_.assign((size + 7) / 8, 0);
  out.size_ = size;
  out.target_ = target_name;
  out.standard_ = standard;
  auto* base = reinterpret_cast<unsigned char*>(out.storage_.data());
  auto* e = reinterpret_cast<ipt_entry*>(base);
  e->ip = ip;
  e->target_offset = static_cast<uint16_t>(target_offset);
  e->next_offset = static_cast<uint16_t>(size);
  size_t off = XT_ALIGN(sizeof(ipt_entry));
  for (auto& m : matches) {
    auto* em = reinterpret_cast<xt_entry_match*>(base + off);
    em->u.match_size = static_cast<uint16_t>(XT_ALIGN(sizeof(xt_entry_match)) + m.size);
    strcpy(em->u.user.name, m.name.c_str());
    em->u.user.revision = m.revision;
    memcpy(em->data, m.ptr(), m.size);
    off += em->u.match_size;
  }
  auto* t = reinterpret_cast<xt_entry_target*>(base + off);
  t->u.target_size = static_cast<uint16_t>(target_size);
  // libiptc maps "" (fall through), verdict names and chain names of a standard target.
  strcpy(t->u.user.name, target_name.c_str());
  if (!standard) {
    t->u.user.revision = target->revision;
    memcpy(t->data, target->ptr(), target->size);
  }
  return out;
}

base::Result<Entry> BuildEntry(const std::vector<std::string>& words, size_t begin) {
  return EntryBuilder::Build(words, begin);
}

bool SameRule(const ipt_entry* e, std::string_view target, const Entry& want) {
  const ipt_entry* w = want.get();
  if (memcmp(&e->ip, &w->ip, sizeof e->ip) != 0) return false;
  if (e->target_offset != w->target_offset || e->next_offset != w->next_offset) return false;
  if (target != want.target()) return false;
  const auto* a = reinterpret_cast<const unsigned char*>(e);
  const auto* b = reinterpret_cast<const unsigned char*>(w);
  for (size_t off = XT_ALIGN(sizeof(ipt_entry)); off < w->target_offset;) {
    const auto* ma = reinterpret_cast<const xt_entry_match*>(a + off);
    const auto* mb = reinterpret_cast<const xt_entry_match*>(b + off);
    if (ma->u.match_size != mb->u.match_size || ma->u.match_size < sizeof(xt_entry_match)) {
      return false;
    }
    if (strcmp(ma->u.user.name, mb->u.user.name) != 0 ||
        ma->u.user.revision != mb->u.user.revision) {
      return false;
    }
    const Kind* k = FindMatch(mb->u.user.name);
    size_t n = ma->u.match_size - sizeof(xt_entry_match);
    if (k && k->revision == mb->u.user.revision) n = std::min(n, k->usersize);
    if (memcmp(ma->data, mb->data, n) != 0) return false;
    off += ma->u.match_size;
  }
  if (want.standard_target()) return true;  // verdict or jump: compared by name
  const auto* ta = reinterpret_cast<const xt_entry_target*>(a + e->target_offset);
  const auto* tb = reinterpret_cast<const xt_entry_target*>(b + w->target_offset);
  return ta->u.target_size == tb->u.target_size && ta->u.user.revision == tb->u.user.revision &&
         memcmp(ta->data, tb->data, tb->u.target_size - sizeof(xt_entry_target)) == 0;
}

namespace {

// As xtables_save_string.
void SaveString(std::string& out, std::string_view v) {
  static const char kPlain[] = "_-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
  size_t n = 0;
  while (n < v.size() && strchr(kPlain, v[n]) && v[n]) ++n;
  out += ' ';
  if (n > 0 && n == v.size()) {
    out += v;
    return;
  }
  out += '"';
  for (char ch : v) {
    if (ch == '"' || ch == '\\' || ch == '\'') out += '\\';
    out += ch;
  }
  out += '"';
}

void Hex(std::string& out, uint32_t v) {
  char buf[16];
  snprintf(buf, sizeof buf, "0x%x", v);
  out += buf;
}

void Addr(std::string& out, const char* flag, in_addr a, in_addr m, bool inv) {
  if (m.s_addr == 0 && a.s_addr == 0 && !inv) return;
  if (inv) out += " !";
  out += ' ';
  out += flag;
  out += ' ';
  char buf[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &a, buf, sizeof buf);
  out += buf;
  uint32_t hm = ntohl(m.s_addr);
  int bits = __builtin_popcount(hm);
  if (hm == (bits == 0 ? 0 : ~uint32_t{0} << (32 - bits))) {
    out += '/' + std::to_string(bits);
  } else {
    inet_ntop(AF_INET, &m, buf, sizeof buf);
    out += '/';
    out += buf;
  }
}

void Iface(std::string& out, const char* flag, const char* name, const unsigned char* mask,
           bool inv) {
  if (name[0] == 0) return;
  if (inv) out += " !";
  out += ' ';
  out += flag;
  out += ' ';
  size_t len = strnlen(name, IFNAMSIZ);
  out.append(name, len);
  // A wildcard (mask shorter than the name + NUL) whose '+' was not kept.
  if (mask[len] == 0 && (len == 0 || mask[len - 1] == 0) && name[len - 1] != '+') out += '+';
}

void Ports(std::string& out, const char* flag, const uint16_t p[2], bool inv) {
  if (p[0] == 0 && p[1] == 0xffff && !inv) return;
  if (inv) out += " !";
  out += ' ';
  out += flag;
  out += ' ';
  out += std::to_string(p[0]);
  if (p[1] != p[0]) out += ':' + std::to_string(p[1]);
}

void NameList(std::string& out, uint16_t mask, const char* const* names, size_t n,
              const uint16_t* bits) {
  bool first = true;
  for (size_t k = 0; k < n; ++k) {
    uint16_t bit = bits ? bits[k] : uint16_t(1u << k);
    if (!(mask & bit)) continue;
    if (!first) out += ',';
    out += names[k];
    first = false;
  }
}

void RawData(std::string& out, uint8_t rev, const unsigned char* data, size_t n) {
  static const char kDigits[] = "0123456789abcdef";
  out += " --xt-raw ";
  out += std::to_string(rev);
  out += ':';
  for (size_t k = 0; k < n; ++k) {
    out += kDigits[data[k] >> 4];
    out += kDigits[data[k] & 15];
  }
}

// The options of a known match, or false.
bool MatchOptions(std::string& out, const xt_entry_match* m) {
  std::string_view name = m->u.user.name;
  const void* d = m->data;
  const uint8_t rev = m->u.user.revision;
  if (name == "comment" && rev == 0) {
    auto* i = static_cast<const xt_comment_info*>(d);
    out += " --comment";
    SaveString(out, std::string_view(i->comment, strnlen(i->comment, sizeof i->comment)));
  } else if (name == "tcp" && rev == 0) {
    auto* i = static_cast<const xt_tcp*>(d);
    if (i->option || i->flg_mask) return false;
    Ports(out, "--sport", i->spts, i->invflags & XT_TCP_INV_SRCPT);
    Ports(out, "--dport", i->dpts, i->invflags & XT_TCP_INV_DSTPT);
  } else if (name == "udp" && rev == 0) {
    auto* i = static_cast<const xt_udp*>(d);
    Ports(out, "--sport", i->spts, i->invflags & XT_UDP_INV_SRCPT);
    Ports(out, "--dport", i->dpts, i->invflags & XT_UDP_INV_DSTPT);
  } else if (name == "conntrack" && rev == 3) {
    auto* i = static_cast<const xt_conntrack_mtinfo3*>(d);
    if (i->match_flags != XT_CONNTRACK_STATE) return false;
    out += (i->invert_flags & XT_CONNTRACK_STATE) ? " ! --ctstate " : " --ctstate ";
    NameList(out, i->state_mask, kCtStates, std::size(kCtStates), kCtStateBits);
  } else if (name == "addrtype" && rev == 1) {
    auto* i = static_cast<const xt_addrtype_info_v1*>(d);
    if (i->source) {
      out += (i->flags & XT_ADDRTYPE_INVERT_SOURCE) ? " ! --src-type " : " --src-type ";
      NameList(out, i->source, kAddrTypes, std::size(kAddrTypes), nullptr);
    }
    if (i->dest) {
      out += (i->flags & XT_ADDRTYPE_INVERT_DEST) ? " ! --dst-type " : " --dst-type ";
      NameList(out, i->dest, kAddrTypes, std::size(kAddrTypes), nullptr);
    }
    if (i->flags & XT_ADDRTYPE_LIMIT_IFACE_IN) out += " --limit-iface-in";
    if (i->flags & XT_ADDRTYPE_LIMIT_IFACE_OUT) out += " --limit-iface-out";
  } else if (name == "mark" && rev == 1) {
    auto* i = static_cast<const xt_mark_mtinfo1*>(d);
    out += i->invert ? " ! --mark " : " --mark ";
    Hex(out, i->mark);
    if (i->mask != 0xffffffff) {
      out += '/';
      Hex(out, i->mask);
    }
  } else {
    return false;
  }
  return true;
}

}  // namespace

std::string FormatRule(std::string_view chain, const ipt_entry* e, std::string_view target) {
  std::string out = "-A ";
  out += chain;
  const ipt_ip& ip = e->ip;
  Addr(out, "-s", ip.src, ip.smsk, ip.invflags & IPT_INV_SRCIP);
  Addr(out, "-d", ip.dst, ip.dmsk, ip.invflags & IPT_INV_DSTIP);
  Iface(out, "-i", ip.iniface, ip.iniface_mask, ip.invflags & IPT_INV_VIA_IN);
  Iface(out, "-o", ip.outiface, ip.outiface_mask, ip.invflags & IPT_INV_VIA_OUT);
  if (ip.proto || (ip.invflags & IPT_INV_PROTO)) {
    out += (ip.invflags & IPT_INV_PROTO) ? " ! -p " : " -p ";
    const char* p = ProtocolName(ip.proto);
    out += p ? std::string(p) : std::to_string(ip.proto);
  }
  const auto* base = reinterpret_cast<const unsigned char*>(e);
  for (size_t off = XT_ALIGN(sizeof(ipt_entry)); off < e->target_offset;) {
    const auto* m = reinterpret_cast<const xt_entry_match*>(base + off);
    if (m->u.match_size < sizeof(xt_entry_match)) break;
    out += " -m ";
    out += m->u.user.name;
    std::string opts;
    if (!MatchOptions(opts, m)) {
      opts.clear();
      RawData(opts, m->u.user.revision, m->data, m->u.match_size - sizeof(xt_entry_match));
    }
    out += opts;
    off += m->u.match_size;
  }
  if (!target.empty()) {
    out += (ip.flags & IPT_F_GOTO) ? " -g " : " -j ";
    out += target;
    const auto* t = reinterpret_cast<const xt_entry_target*>(base + e->target_offset);
    if (target == t->u.user.name && t->u.user.name[0]) {  // an extension, not a verdict/jump
      if (target == "MARK" && t->u.user.revision == 2) {
        auto* i = reinterpret_cast<const xt_mark_tginfo2*>(t->data);
        out += " --set-xmark ";
        Hex(out, i->mark);
        out += '/';
        Hex(out, i->mask);
      } else {
        RawData(out, t->u.user.revision, t->data, t->u.target_size - sizeof(xt_entry_target));
      }
    }
  }
  return out;
}

}  // namespace netproxy::iptc

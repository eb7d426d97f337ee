#include "cgroups/parse.h"

#include <algorithm>
#include <cerrno>
#include <charconv>

#include "base/strings.h"

namespace cgroups {
namespace {

template <class T>
std::optional<T> Number(std::string_view s) {
  T v{};
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

}  // namespace

FlatKeyed ParseFlatKeyed(std::string_view text) {
  FlatKeyed out;
  for (const auto& line : base::Split(text, '\n', true)) {
    auto sp = line.find(' ');
    if (sp == std::string::npos) continue;
    auto value = Number<uint64_t>(base::Trim(std::string_view(line).substr(sp + 1)));
    if (!value) continue;
    out.emplace(line.substr(0, sp), *value);
  }
  return out;
}

std::optional<uint64_t> Lookup(const FlatKeyed& m, std::string_view key) {
  auto it = m.find(key);
  if (it == m.end()) return std::nullopt;
  return it->second;
}

Result<int64_t> ParseMaxOrNumber(std::string_view text) {
  auto t = base::Trim(text);
  if (t == "max") return -1;
  auto v = Number<int64_t>(t);
  if (!v) return base::Fail("not a number or 'max': '" + std::string(t) + "'", EINVAL);
  return *v;
}

std::string FormatMaxOrNumber(int64_t v) { return v < 0 ? "max" : std::to_string(v); }

uint64_t V1MemoryLimitOrZero(uint64_t raw) { return raw >= (uint64_t{1} << 62) ? 0 : raw; }

Result<CpuMax> ParseCpuMax(std::string_view text) {
  auto parts = base::Split(base::Trim(text), ' ', true);
  if (parts.empty() || parts.size() > 2)
    return base::Fail("cpu.max: expected '<quota|max> <period>', got '" + std::string(text) + "'",
                      EINVAL);
  CpuMax m;
  auto quota = ParseMaxOrNumber(parts[0]);
  if (!quota) return tl::unexpected(quota.error().Wrap("cpu.max quota"));
  m.quota_us = *quota;
  if (parts.size() == 2) {
    auto period = Number<uint64_t>(parts[1]);
    if (!period) return base::Fail("cpu.max: bad period '" + parts[1] + "'", EINVAL);
    m.period_us = *period;
  }
  return m;
}

std::string FormatCpuMax(const CpuMax& m) {
  return FormatMaxOrNumber(m.quota_us) + " " + std::to_string(m.period_us);
}

OomControl ParseOomControl(std::string_view text) {
  auto kv = ParseFlatKeyed(text);
  OomControl c;
  c.oom_kill_disable = Lookup(kv, "oom_kill_disable").value_or(0) != 0;
  c.under_oom = Lookup(kv, "under_oom").value_or(0) != 0;
  c.oom_kill = Lookup(kv, "oom_kill");
  return c;
}

std::string FormatDeviceRule(const DeviceRule& r) {
  auto num = [](int64_t n) { return n < 0 ? std::string("*") : std::to_string(n); };
  std::string out(1, r.type);
  out += ' ' + num(r.major) + ':' + num(r.minor) + ' ' + r.access;
  return out;
}

Result<DeviceRule> ParseDeviceRule(std::string_view text, bool allow) {
  auto bad = [&](const char* why) {
    return base::Fail("device rule '" + std::string(text) + "': " + why, EINVAL);
  };
  auto parts = base::Split(base::Trim(text), ' ', true);
  DeviceRule r;
  r.allow = allow;
  if (parts.empty() || parts[0].size() != 1) return bad("expected 'a', 'b' or 'c' first");
  r.type = parts[0][0];
  if (r.type != 'a' && r.type != 'b' && r.type != 'c') return bad("type must be a, b or c");
  if (r.type == 'a') {
    // "a" alone means everything; devices.list prints "a *:* rwm".
    r.major = r.minor = -1;
    r.access = parts.size() >= 3 ? parts[2] : "rwm";
    return r;
  }
  if (parts.size() != 3) return bad("expected 'TYPE MAJOR:MINOR ACCESS'");
  auto colon = parts[1].find(':');
  if (colon == std::string::npos) return bad("expected MAJOR:MINOR");
  auto num = [](std::string_view s) -> std::optional<int64_t> {
    if (s == "*") return -1;
    return Number<int64_t>(s);
  };
  auto major = num(std::string_view(parts[1]).substr(0, colon));
  auto minor = num(std::string_view(parts[1]).substr(colon + 1));
  if (!major || !minor) return bad("bad major or minor number");
  r.major = *major;
  r.minor = *minor;
  r.access = parts[2];
  if (r.access.empty() || r.access.find_first_not_of("rwm") != std::string::npos)
    return bad("access must be a combination of r, w, m");
  return r;
}

Result<std::vector<DeviceRule>> ParseDevicesList(std::string_view text) {
  std::vector<DeviceRule> out;
  for (const auto& line : base::Split(text, '\n', true)) {
    auto r = ParseDeviceRule(line);
    if (!r) return tl::unexpected(r.error());
    out.push_back(*r);
  }
  return out;
}

bool SameAccess(std::string_view a, std::string_view b) {
  auto bits = [](std::string_view s) {
    int v = 0;
    for (char c : s) v |= c == 'r' ? 1 : c == 'w' ? 2 : c == 'm' ? 4 : 8;
    return v;
  };
  return bits(a) == bits(b);
}

bool IsAllowAll(const DeviceRule& r) {
  return r.allow && r.type == 'a' && r.major < 0 && r.minor < 0 && SameAccess(r.access, "rwm");
}

std::vector<std::string> ParseControllerList(std::string_view text) {
  std::vector<std::string> out;
  for (auto& w : base::Split(base::Trim(text), ' ', true)) {
    auto t = std::string(base::Trim(w));
    if (!t.empty()) out.push_back(std::move(t));
  }
  return out;
}

Result<uint64_t> ParseWeightFile(std::string_view text) {
  for (const auto& line : base::Split(text, '\n', true)) {
    auto parts = base::Split(base::Trim(line), ' ', true);
    if (parts.size() == 1) {
      if (auto v = Number<uint64_t>(parts[0])) return *v;
    } else if (parts.size() == 2 && parts[0] == "default") {
      if (auto v = Number<uint64_t>(parts[1])) return *v;
    }
  }
  return base::Fail("no default weight in '" + std::string(base::Trim(text)) + "'", EINVAL);
}

std::string FormatIoMax(const BlkioThrottle& t) {
  auto v = [](uint64_t n) { return n == 0 ? std::string("max") : std::to_string(n); };
  return std::to_string(t.major) + ":" + std::to_string(t.minor) + " rbps=" + v(t.read_bps) +
         " wbps=" + v(t.write_bps) + " riops=" + v(t.read_iops) + " wiops=" + v(t.write_iops);
}

uint64_t BlkioWeightToIoWeight(uint64_t w) {
  if (w == 0) return 0;
  w = std::clamp<uint64_t>(w, 10, 1000);
  return 1 + (w - 10) * 9999 / 990;
}

std::map<std::string, uint64_t> ParseThrottleFile(std::string_view text) {
  std::map<std::string, uint64_t> out;
  for (const auto& line : base::Split(text, '\n', true)) {
    auto parts = base::Split(base::Trim(line), ' ', true);
    if (parts.size() != 2) continue;
    if (auto v = Number<uint64_t>(parts[1])) out[parts[0]] = *v;
  }
  return out;
}

std::map<std::string, std::string> ParseProcCgroup(std::string_view text) {
  std::map<std::string, std::string> out;
  for (const auto& line : base::Split(text, '\n', true)) {
    auto c1 = line.find(':');
    if (c1 == std::string::npos) continue;
    auto c2 = line.find(':', c1 + 1);
    if (c2 == std::string::npos) continue;
    std::string ctrls = line.substr(c1 + 1, c2 - c1 - 1);
    std::string path = line.substr(c2 + 1);
    if (ctrls.empty()) {
      out[""] = path;
      continue;
    }
    for (const auto& c : base::Split(ctrls, ',', true)) out[c] = path;
  }
  return out;
}

}  // namespace cgroups

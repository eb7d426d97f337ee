#include "cgroups/mountinfo.h"

#include <set>

#include "base/strings.h"

namespace cgroups {
namespace {

std::string Unescape(std::string_view s) {
  auto oct = [](char c) { return c >= '0' && c <= '7'; };
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && oct(s[i + 1]) && oct(s[i + 2]) && oct(s[i + 3])) {
      out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
      continue;
    }
    out += s[i];
  }
  return out;
}

std::string StripSlash(std::string_view p) {
  while (p.size() > 1 && p.back() == '/') p.remove_suffix(1);
  return std::string(p);
}

// Controller names the kernel may list in a v1 mount's super options; everything else there
// (rw, xattr, nsdelegate, release_agent=..., clone_children, noprefix, cpuset_v2_mode) is not one.
const std::set<std::string, std::less<>>& KnownControllers() {
  static const std::set<std::string, std::less<>> k = {
      "cpu",      "cpuacct", "cpuset",     "memory",  "devices", "freezer", "net_cls",
      "net_prio", "blkio",   "perf_event", "hugetlb", "pids",    "rdma",    "misc"};
  return k;
}

}  // namespace

std::vector<MountInfo> ParseMountInfo(std::string_view text) {
  std::vector<MountInfo> out;
  for (const auto& line : base::Split(text, '\n', true)) {
    auto f = base::Split(line, ' ', true);
    // id parent major:minor root mount_point options [optional...] - fstype source super_options
    size_t sep = 0;
    for (size_t i = 6; i < f.size(); ++i) {
      if (f[i] == "-") {
        sep = i;
        break;
      }
    }
    if (sep == 0 || sep + 1 >= f.size()) continue;
    MountInfo m;
    m.root = Unescape(f[3]);
    m.mount_point = Unescape(f[4]);
    m.fstype = f[sep + 1];
    m.source = sep + 2 < f.size() ? Unescape(f[sep + 2]) : "";
    m.super_options = sep + 3 < f.size() ? f[sep + 3] : "";
    out.push_back(std::move(m));
  }
  return out;
}

std::map<std::string, std::string> V1Hierarchies(const std::vector<MountInfo>& mounts,
                                                 std::string_view mount_root) {
  std::map<std::string, std::string> out;
  std::string root = StripSlash(mount_root);
  for (const auto& m : mounts) {
    if (m.fstype != "cgroup") continue;
    if (!base::StartsWith(m.mount_point, root + "/")) continue;
    for (const auto& opt : base::Split(m.super_options, ',', true)) {
      bool is_ctrl = KnownControllers().count(opt) > 0 || base::StartsWith(opt, "name=");
      if (is_ctrl) out.emplace(opt, m.mount_point);
    }
  }
  return out;
}

std::string FsTypeAt(const std::vector<MountInfo>& mounts, std::string_view path) {
  std::string p = StripSlash(path);
  std::string type;
  // The last mount on a mount point is the visible one.
  for (const auto& m : mounts)
    if (m.mount_point == p) type = m.fstype;
  return type;
}

}  // namespace cgroups

#include "runtime/command.h"

#include <cstdlib>

#include "base/file.h"
#include "base/strings.h"
#include "runtime/layer.h"

namespace runtime {
namespace {

bool ParseU32(const std::string& s, uint32_t* out) {
  if (s.empty() || s.size() > 10) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  unsigned long long v = strtoull(s.c_str(), nullptr, 10);
  if (v > 0xffffffffull) return false;
  *out = static_cast<uint32_t>(v);
  return true;
}

struct PasswdEntry {
  std::string name;
  uint32_t uid = 0, gid = 0;
  std::string home;
};

std::vector<std::vector<std::string>> ReadColonFile(const std::vector<std::string>& layers,
                                                    const std::string& rel) {
  std::vector<std::vector<std::string>> out;
  auto text = ReadMergedFile(layers, rel);
  if (!text || !*text) return out;
  for (const auto& line : base::Split(**text, '\n', true)) {
    if (line.empty() || line[0] == '#') continue;
    out.push_back(base::Split(line, ':'));
  }
  return out;
}

}  // namespace

Result<std::vector<std::string>> ResolveCommand(const ImageConfig& image,
                                                const std::vector<std::string>& command,
                                                const std::vector<std::string>& args) {
  std::vector<std::string> out;
  if (!command.empty()) {
    out = command;
    out.insert(out.end(), args.begin(), args.end());
  } else {
    out = image.entrypoint;
    const auto& tail = args.empty() ? image.cmd : args;
    out.insert(out.end(), tail.begin(), tail.end());
  }
  if (out.empty()) return base::Fail("no command specified");
  return out;
}

std::vector<std::string> MergeEnv(const std::vector<std::string>& image_env,
                                  const std::vector<cri::KeyValue>& envs) {
  std::vector<std::string> out;
  auto set = [&](const std::string& key, const std::string& kv) {
    for (auto& e : out) {
      if (e.compare(0, key.size() + 1, key + "=") == 0) {
        e = kv;
        return;
      }
    }
    out.push_back(kv);
  };
  for (const auto& e : image_env) set(e.substr(0, e.find('=')), e);
  for (const auto& kv : envs) set(kv.key, kv.key + "=" + kv.value);
  return out;
}

Result<ProcessUser> ResolveUser(const std::vector<std::string>& layers,
                                const std::string& image_user,
                                const cri::LinuxContainerSecurityContext& sc) {
  std::string user_part, group_part;
  if (sc.run_as_user) {
    user_part = std::to_string(*sc.run_as_user);
  } else if (!sc.run_as_username.empty()) {
    user_part = sc.run_as_username;
  } else {
    user_part = image_user.substr(0, image_user.find(':'));
    if (image_user.find(':') != std::string::npos) {
      group_part = image_user.substr(image_user.find(':') + 1);
    }
  }
  auto passwd = ReadColonFile(layers, "etc/passwd");
  auto groups = ReadColonFile(layers, "etc/group");
  ProcessUser u;
  std::string username;
  bool found = false;
  uint32_t uid = 0;
  bool numeric = user_part.empty() || ParseU32(user_part, &uid);
  if (user_part.empty()) uid = 0;
  for (const auto& f : passwd) {
    if (f.size() < 6) continue;
    uint32_t fuid = 0, fgid = 0;
    if (!ParseU32(f[2], &fuid) || !ParseU32(f[3], &fgid)) continue;
    if ((numeric && fuid == uid) || (!numeric && f[0] == user_part)) {
      u.uid = fuid;
      u.gid = fgid;
      u.home = f[5].empty() ? "/" : f[5];
      username = f[0];
      found = true;
      break;
    }
  }
  if (!found) {
    if (!numeric) {
      return base::Fail("unable to find user " + user_part + ": no matching entries in passwd file");
    }
    u.uid = uid;
    u.gid = 0;
  }
  if (!group_part.empty()) {
    uint32_t gid = 0;
    if (ParseU32(group_part, &gid)) {
      u.gid = gid;
    } else {
      bool gfound = false;
      for (const auto& f : groups) {
        if (f.size() >= 3 && f[0] == group_part && ParseU32(f[2], &gid)) {
          u.gid = gid;
          gfound = true;
          break;
        }
      }
      if (!gfound) return base::Fail("unable to find group " + group_part + ": no matching entries in group file");
    }
  }
  if (sc.run_as_group) u.gid = static_cast<uint32_t>(*sc.run_as_group);
  // Supplementary groups: the user's memberships in the image's /etc/group, then the pod's.
  auto add = [&](uint32_t g) {
    for (uint32_t x : u.groups) {
      if (x == g) return;
    }
    u.groups.push_back(g);
  };
  if (!username.empty()) {
    for (const auto& f : groups) {
      if (f.size() < 4) continue;
      uint32_t gid = 0;
      if (!ParseU32(f[2], &gid)) continue;
      for (const auto& m : base::Split(f[3], ',', true)) {
        if (m == username) add(gid);
      }
    }
  }
  for (int64_t g : sc.supplemental_groups) add(static_cast<uint32_t>(g));
  return u;
}

}  // namespace runtime

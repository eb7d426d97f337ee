#include "agent/volume_manager.h"

#include <dirent.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include <nlohmann/json.hpp>

#include "base/file.h"
#include "base/log.h"
#include "base/strings.h"
#include "base/time.h"

namespace agent {

using nlohmann::json;

namespace {

std::string B64Decode(const std::string& in) {
  static const std::string k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  int val = 0, bits = -8;
  for (unsigned char c : in) {
    auto pos = k.find(static_cast<char>(c));
    if (pos == std::string::npos) continue;
    val = (val << 6) + static_cast<int>(pos);
    bits += 6;
    if (bits >= 0) {
      out.push_back(static_cast<char>((val >> bits) & 0xFF));
      bits -= 8;
    }
  }
  return out;
}

bool IsMountPoint(const std::string& path) {
  struct stat a, b;
  if (::stat(path.c_str(), &a) != 0) return false;
  std::string parent = path.substr(0, path.rfind('/'));
  if (::stat(parent.c_str(), &b) != 0) return false;
  return a.st_dev != b.st_dev;
}

base::Result<> EnsureTmpfs(const std::string& dir) {
  CUBELET_TRY(base::MkdirAll(dir, 0750));
  if (IsMountPoint(dir)) return {};
  if (::mount("tmpfs", dir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0755") != 0)
    return base::Errno("mount tmpfs on " + dir);
  return {};
}

std::string DownwardValue(const Pod& pod, const std::string& field, const std::vector<std::string>& node_ips) {
  auto render = [](const std::map<std::string, std::string>& m) {
    std::string out;
    for (const auto& [k, v] : m) out += k + "=\"" + v + "\"\n";
    return out;
  };
  if (field == "metadata.name") return pod.name;
  if (field == "metadata.namespace") return pod.ns;
  if (field == "metadata.uid") return pod.uid;
  if (field == "metadata.labels") return render(pod.labels);
  if (field == "metadata.annotations") return render(pod.annotations);
  if (field == "spec.nodeName") return pod.node_name;
  if (field == "spec.serviceAccountName") return pod.service_account_name;
  if (field == "status.hostIP") return node_ips.empty() ? "" : node_ips.front();
  auto bracket = [&](const std::string& prefix, const std::map<std::string, std::string>& m) -> std::optional<std::string> {
    if (!base::StartsWith(field, prefix + "['") || !base::EndsWith(field, "']")) return std::nullopt;
    auto it = m.find(field.substr(prefix.size() + 2, field.size() - prefix.size() - 4));
    return it == m.end() ? std::string() : it->second;
  };
  if (auto v = bracket("metadata.labels", pod.labels)) return *v;
  if (auto v = bracket("metadata.annotations", pod.annotations)) return *v;
  return "";
}

bool SafeRelative(const std::string& p) {
  if (p.empty() || p[0] == '/') return false;
  for (const auto& part : base::Split(p, '/')) {
    if (part == ".." || part.empty()) return false;
  }
  return true;
}

}  // namespace

base::Result<> AtomicWriteDir(const std::string& dir,
                              const std::map<std::string, std::pair<std::string, int>>& files,
                              std::optional<int64_t> gid) {
  CUBELET_TRY(base::MkdirAll(dir, 0755));
  auto now = std::chrono::system_clock::now();
  std::string stamp = "..";
  {
    auto t = std::chrono::system_clock::to_time_t(now);
    struct tm tm;
    gmtime_r(&t, &tm);
    char buf[64];
    strftime(buf, sizeof buf, "%Y_%m_%d_%H_%M_%S", &tm);
    stamp += buf;
    stamp += "." + std::to_string(std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count() % 1000000000);
  }
  std::string tsdir = dir + "/" + stamp;
  CUBELET_TRY(base::MkdirAll(tsdir, 0755));
  for (const auto& [rel, content] : files) {
    if (!SafeRelative(rel)) return base::Fail("volume path \"" + rel + "\" must be relative without '..'");
    std::string full = tsdir + "/" + rel;
    auto slash = full.rfind('/');
    CUBELET_TRY(base::MkdirAll(full.substr(0, slash), 0755));
    CUBELET_TRY(base::WriteFile(full, content.first));
    if (::chmod(full.c_str(), static_cast<mode_t>(content.second & 07777)) != 0) return base::Errno("chmod " + full);
    if (gid && ::chown(full.c_str(), static_cast<uid_t>(-1), static_cast<gid_t>(*gid)) != 0)
      return base::Errno("chown " + full);
  }
  // Swap ..data to the new directory atomically.
  std::string tmp_link = dir + "/..data_tmp";
  ::unlink(tmp_link.c_str());
  if (::symlink(stamp.c_str(), tmp_link.c_str()) != 0) return base::Errno("symlink " + tmp_link);
  std::string data_link = dir + "/..data";
  char old_target[256] = {0};
  ssize_t n = ::readlink(data_link.c_str(), old_target, sizeof old_target - 1);
  if (::rename(tmp_link.c_str(), data_link.c_str()) != 0) return base::Errno("rename " + data_link);
  // Top-level entries point through ..data.
  std::map<std::string, bool> top;
  for (const auto& [rel, content] : files) top[rel.substr(0, rel.find('/'))] = true;
  for (const auto& [name, unused] : top) {
    std::string link = dir + "/" + name;
    std::string target = "..data/" + name;
    char cur[512] = {0};
    ssize_t m = ::readlink(link.c_str(), cur, sizeof cur - 1);
    if (m > 0 && target == std::string(cur, static_cast<size_t>(m))) continue;
    ::unlink(link.c_str());
    if (::symlink(target.c_str(), link.c_str()) != 0) return base::Errno("symlink " + link);
  }
  // Remove entries no longer present, then the previous timestamped directory.
  if (DIR* d = ::opendir(dir.c_str())) {
    std::vector<std::string> stale;
    while (dirent* e = ::readdir(d)) {
      std::string name = e->d_name;
      if (name == "." || name == ".." || base::StartsWith(name, "..")) continue;
      if (!top.count(name)) stale.push_back(dir + "/" + name);
    }
    ::closedir(d);
    for (const auto& s : stale) ::unlink(s.c_str());
  }
  if (n > 0) {
    std::string old(old_target, static_cast<size_t>(n));
    if (old != stamp) (void)base::RemoveAll(dir + "/" + old);
  }
  return {};
}

VolumeManager::VolumeManager(ApiClientPtr api, std::string root_dir)
    : api_(std::move(api)), root_(std::move(root_dir)) {}

std::string VolumeManager::PodDir(const std::string& pod_uid) const { return root_ + "/pods/" + pod_uid; }

std::vector<std::string> VolumeManager::PodsOnDisk() const {
  std::vector<std::string> out;
  if (DIR* d = ::opendir((root_ + "/pods").c_str())) {
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") out.push_back(n);
    }
    ::closedir(d);
  }
  return out;
}

std::optional<std::map<std::string, std::string>> VolumeManager::GetConfigMap(const std::string& ns,
                                                                              const std::string& name,
                                                                              std::string* err) {
  auto r = api_->Do("GET", "/api/v1/namespaces/" + ns + "/configmaps/" + name);
  if (!r || !r->ok()) {
    if (err) *err = r ? DescribeStatus(*r) : r.error().message;
    return std::nullopt;
  }
  json j = json::parse(r->body, nullptr, false);
  std::map<std::string, std::string> out;
  if (j.contains("data") && j["data"].is_object()) {
    for (auto& [k, v] : j["data"].items()) out[k] = v.is_string() ? v.get<std::string>() : v.dump();
  }
  if (j.contains("binaryData") && j["binaryData"].is_object()) {
    for (auto& [k, v] : j["binaryData"].items()) out[k] = B64Decode(v.get<std::string>());
  }
  return out;
}

std::optional<std::map<std::string, std::string>> VolumeManager::GetSecret(const std::string& ns,
                                                                           const std::string& name,
                                                                           std::string* err) {
  auto r = api_->Do("GET", "/api/v1/namespaces/" + ns + "/secrets/" + name);
  if (!r || !r->ok()) {
    if (err) *err = r ? DescribeStatus(*r) : r.error().message;
    return std::nullopt;
  }
  json j = json::parse(r->body, nullptr, false);
  std::map<std::string, std::string> out;
  if (j.contains("data") && j["data"].is_object()) {
    for (auto& [k, v] : j["data"].items()) out[k] = B64Decode(v.get<std::string>());
  }
  if (j.contains("stringData") && j["stringData"].is_object()) {
    for (auto& [k, v] : j["stringData"].items()) out[k] = v.get<std::string>();
  }
  return out;
}

base::Result<std::string> VolumeManager::Token(const Pod& pod, const ProjectionSource& src) {
  std::string key = pod.uid + "/" + src.audience + "/" + std::to_string(src.expiration_seconds);
  auto now = std::chrono::system_clock::now();
  {
    std::lock_guard lk(mu_);
    auto it = tokens_.find(key);
    // Refresh at 80% of the token's lifetime or after 24 h, like the kubelet's token manager.
    if (it != tokens_.end()) {
      auto ttl = it->second.expires - it->second.issued;
      if (now < it->second.issued + ttl * 8 / 10 && now < it->second.issued + std::chrono::hours(24))
        return it->second.token;
    }
  }
  std::string sa = pod.service_account_name.empty() ? "default" : pod.service_account_name;
  json body = json::object();
  body["kind"] = "TokenRequest";
  body["apiVersion"] = "authentication.k8s.io/v1";
  body["metadata"] = {{"creationTimestamp", nullptr}};
  json spec = json::object();
  spec["audiences"] = src.audience.empty() ? json(nullptr) : json::array({src.audience});
  spec["expirationSeconds"] = src.expiration_seconds;
  spec["boundObjectRef"] = {{"kind", "Pod"}, {"apiVersion", "v1"}, {"name", pod.name}, {"uid", pod.uid}};
  body["spec"] = spec;
  body["status"] = {{"token", ""}, {"expirationTimestamp", nullptr}};
  std::string path = "/api/v1/namespaces/" + pod.ns + "/serviceaccounts/" + sa + "/token";
  auto r = api_->Do("POST", path, body.dump());
  if (!r) return base::Fail("request service account token for " + pod.ns + "/" + sa + ": " + r.error().message);
  if (!r->ok()) return base::Fail("request service account token for " + pod.ns + "/" + sa + ": " + DescribeStatus(*r));
  json j = json::parse(r->body, nullptr, false);
  if (!j.is_object() || !j.contains("status") || !j["status"].contains("token"))
    return base::Fail("request service account token for " + pod.ns + "/" + sa + ": response has no status.token");
  TokenState st;
  st.token = j["status"]["token"].get<std::string>();
  st.issued = now;
  st.expires = now + std::chrono::seconds(src.expiration_seconds);
  if (j["status"].contains("expirationTimestamp") && j["status"]["expirationTimestamp"].is_string()) {
    if (auto t = base::ParseRfc3339(j["status"]["expirationTimestamp"].get<std::string>())) st.expires = *t;
  }
  std::lock_guard lk(mu_);
  tokens_[key] = st;
  return st.token;
}

base::Result<> VolumeManager::SetupWritable(const Pod& pod, const Volume& v, const std::string& dir,
                                            const std::vector<std::string>& node_ips) {
  std::map<std::string, std::pair<std::string, int>> files;
  auto add_items = [&](const std::map<std::string, std::string>& data, const std::vector<KeyToPath>& items,
                       int mode, const std::string& kind, const std::string& name) -> base::Result<> {
    if (items.empty()) {
      for (const auto& [k, val] : data) files[k] = {val, mode};
      return {};
    }
    for (const auto& it : items) {
      auto d = data.find(it.key);
      if (d == data.end())
        return base::Fail("configmap/secret key \"" + it.key + "\" not found in " + kind + " " + pod.ns + "/" + name);
      files[it.path] = {d->second, it.mode.value_or(mode)};
    }
    return {};
  };
  std::optional<int64_t> gid = pod.security_context.fs_group;
  if (v.kind == Volume::Kind::kConfigMap || v.kind == Volume::Kind::kSecret) {
    bool cm = v.kind == Volume::Kind::kConfigMap;
    std::string err;
    auto data = cm ? GetConfigMap(pod.ns, v.source_name, &err) : GetSecret(pod.ns, v.source_name, &err);
    if (!data) {
      if (!v.optional)
        return base::Fail(std::string(cm ? "configmap" : "secret") + " \"" + v.source_name + "\" not found: " + err);
      data = std::map<std::string, std::string>{};
    }
    CUBELET_TRY(add_items(*data, v.items, v.default_mode, cm ? "ConfigMap" : "Secret", v.source_name));
  } else {
    for (const auto& src : v.sources) {
      switch (src.kind) {
        case ProjectionSource::Kind::kServiceAccountToken: {
          auto tok = Token(pod, src);
          if (!tok) return tl::unexpected(tok.error());
          // The token file is readable by the container's user (fsGroup) only; default 0600 when
          // the pod runs as a non-root user without fsGroup would lock it out, so keep the mode.
          files[src.path.empty() ? "token" : src.path] = {*tok, v.default_mode};
          break;
        }
        case ProjectionSource::Kind::kConfigMap:
        case ProjectionSource::Kind::kSecret: {
          bool cm = src.kind == ProjectionSource::Kind::kConfigMap;
          std::string err;
          auto data = cm ? GetConfigMap(pod.ns, src.name, &err) : GetSecret(pod.ns, src.name, &err);
          if (!data) {
            if (src.optional) break;
            return base::Fail(std::string(cm ? "configmap" : "secret") + " \"" + src.name + "\" not found: " + err);
          }
          CUBELET_TRY(add_items(*data, src.items, v.default_mode, cm ? "ConfigMap" : "Secret", src.name));
          break;
        }
        case ProjectionSource::Kind::kDownwardAPI:
          for (const auto& [path, field] : src.fields) files[path] = {DownwardValue(pod, field, node_ips), v.default_mode};
          break;
        case ProjectionSource::Kind::kUnknown:
          break;
      }
    }
  }
  return AtomicWriteDir(dir, files, gid);
}

base::Result<PreparedVolumes> VolumeManager::Setup(const Pod& pod, const std::vector<std::string>& node_ips) {
  PreparedVolumes out;
  std::string base_dir = PodDir(pod.uid) + "/volumes";
  CUBELET_TRY(base::MkdirAll(PodDir(pod.uid) + "/containers", 0750));
  for (const auto& v : pod.volumes) {
    std::string err_prefix = "MountVolume.SetUp failed for volume \"" + v.name + "\"";
    switch (v.kind) {
      case Volume::Kind::kEmptyDir: {
        std::string dir = base_dir + "/kubernetes.io~empty-dir/" + v.name;
        if (v.medium == "Memory") {
          auto r = EnsureTmpfs(dir);
          if (!r) return tl::unexpected(r.error().Wrap(err_prefix));
        } else {
          auto r = base::MkdirAll(dir, 0777);
          if (!r) return tl::unexpected(r.error().Wrap(err_prefix));
        }
        ::chmod(dir.c_str(), 0777);
        out.host_paths[v.name] = dir;
        break;
      }
      case Volume::Kind::kHostPath: {
        struct stat st;
        bool exists = ::stat(v.host_path.c_str(), &st) == 0;
        const std::string& t = v.host_path_type;
        if (t == "DirectoryOrCreate" && !exists) {
          auto r = base::MkdirAll(v.host_path, 0755);
          if (!r) return tl::unexpected(r.error().Wrap(err_prefix));
        } else if (t == "FileOrCreate" && !exists) {
          auto r = base::WriteFile(v.host_path, "");
          if (!r) return tl::unexpected(r.error().Wrap(err_prefix));
        } else if (!t.empty() && !exists) {
          return base::Fail(err_prefix + " : hostPath type check failed: " + v.host_path + " does not exist");
        } else if (exists && ((t == "Directory" && !S_ISDIR(st.st_mode)) || (t == "File" && !S_ISREG(st.st_mode)) ||
                              (t == "Socket" && !S_ISSOCK(st.st_mode)) || (t == "CharDevice" && !S_ISCHR(st.st_mode)) ||
                              (t == "BlockDevice" && !S_ISBLK(st.st_mode)))) {
          return base::Fail(err_prefix + " : hostPath type check failed: " + v.host_path + " is not a " + t);
        }
        out.host_paths[v.name] = v.host_path;
        break;
      }
      case Volume::Kind::kConfigMap:
      case Volume::Kind::kSecret:
      case Volume::Kind::kProjected:
      case Volume::Kind::kDownwardAPI: {
        const char* plugin = v.kind == Volume::Kind::kConfigMap ? "configmap"
                             : v.kind == Volume::Kind::kSecret  ? "secret"
                             : v.kind == Volume::Kind::kProjected ? "projected"
                                                                   : "downward-api";
        std::string dir = base_dir + "/kubernetes.io~" + plugin + "/" + v.name;
        // Secrets and tokens never touch the disk.
        if (v.kind == Volume::Kind::kSecret || v.kind == Volume::Kind::kProjected) {
          auto r = EnsureTmpfs(dir);
          if (!r) return tl::unexpected(r.error().Wrap(err_prefix));
        }
        auto r = SetupWritable(pod, v, dir, node_ips);
        if (!r) return tl::unexpected(r.error().Wrap(err_prefix));
        out.host_paths[v.name] = dir;
        out.read_only[v.name] = true;  // the kubelet mounts these read-only regardless
        break;
      }
      case Volume::Kind::kUnsupported:
        // Left unprepared: a container mounting it fails with a clear config error; pods that
        // declare but do not mount it still run.
        base::log::Warn("volume type not supported by cubelet", {{"pod", pod.ns + "/" + pod.name}, {"volume", v.name}, {"type", v.unsupported_type}});
        break;
    }
  }
  return out;
}

base::Result<> VolumeManager::Cleanup(const std::string& pod_uid) {
  std::string dir = PodDir(pod_uid);
  if (!base::PathExists(dir)) return {};
  // Unmount every tmpfs below the pod dir (deepest first), then remove the tree.
  std::vector<std::string> mounts;
  if (FILE* f = ::fopen("/proc/self/mounts", "r")) {
    char dev[512], mnt[4096], rest[4096];
    while (::fscanf(f, "%511s %4095s %4095[^\n]", dev, mnt, rest) == 3) {
      std::string m = mnt;
      if (base::StartsWith(m, dir + "/")) mounts.push_back(m);
    }
    ::fclose(f);
  }
  std::sort(mounts.begin(), mounts.end(), [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  for (const auto& m : mounts) {
    if (::umount2(m.c_str(), MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT)
      return base::Errno("unmount " + m);
  }
  {
    std::lock_guard lk(mu_);
    for (auto it = tokens_.begin(); it != tokens_.end();) {
      if (base::StartsWith(it->first, pod_uid + "/")) it = tokens_.erase(it);
      else ++it;
    }
  }
  return base::RemoveAll(dir);
}

}  // namespace agent

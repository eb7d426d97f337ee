#include "agent/static_pods.h"

#include <dirent.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <regex>
#include <set>
#include <vector>

#include "base/file.h"
#include "base/log.h"
#include "base/time.h"

namespace agent {
namespace {

using nlohmann::json;

json Scalar(const YAML::Node& n) {
  const std::string& v = n.Scalar();
  if (n.Tag() == "!") return v;  // quoted: a string
  static const std::regex kInt("[-+]?[0-9]+");
  static const std::regex kFloat("[-+]?(\\.[0-9]+|[0-9]+(\\.[0-9]*)?)([eE][-+]?[0-9]+)?");
  if (v == "null" || v == "Null" || v == "NULL" || v == "~" || v.empty()) return nullptr;
  if (v == "true" || v == "True" || v == "TRUE") return true;
  if (v == "false" || v == "False" || v == "FALSE") return false;
  if (std::regex_match(v, kInt)) {
    try {
      return std::stoll(v);
    } catch (...) {
      return v;
    }
  }
  if (std::regex_match(v, kFloat)) return std::stod(v);
  return v;
}

json Convert(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Map: {
      json o = json::object();
      for (const auto& kv : n) o[kv.first.as<std::string>()] = Convert(kv.second);
      return o;
    }
    case YAML::NodeType::Sequence: {
      json a = json::array();
      for (const auto& e : n) a.push_back(Convert(e));
      return a;
    }
    case YAML::NodeType::Scalar:
      return Scalar(n);
    default:
      return nullptr;
  }
}

std::string Md5Hex(const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_md5(), nullptr);
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 15];
  }
  return out;
}

}  // namespace

base::Result<json> YamlToJson(const std::string& text) {
  try {
    return Convert(YAML::Load(text));
  } catch (const std::exception& e) {
    return base::Fail(e.what());
  }
}

base::Result<json> DecodeStaticPod(const std::string& text, const std::string& path,
                                   const std::string& node_name, const std::string& seen) {
  auto doc = YamlToJson(text);
  if (!doc) return base::Fail("static pod " + path + ": " + doc.error().message);
  json pod = std::move(*doc);
  auto fail = [&](const std::string& why) { return base::Fail("static pod " + path + ": " + why); };
  if (!pod.is_object()) return fail("not a Pod object");
  if (pod.value("kind", "") != "Pod") return fail("kind is \"" + pod.value("kind", "") + "\", not Pod");
  if (pod.contains("apiVersion") && pod.value("apiVersion", "") != "v1") {
    return fail("apiVersion is \"" + pod.value("apiVersion", "") + "\", not v1");
  }
  json& md = pod["metadata"];
  if (!md.is_object()) return fail("metadata missing");
  std::string name = md.value("name", "");
  if (name.empty()) return fail("metadata.name missing");
  if (!pod.contains("spec") || !pod["spec"].is_object() || !pod["spec"].contains("containers") ||
      !pod["spec"]["containers"].is_array() || pod["spec"]["containers"].empty()) {
    return fail("spec.containers missing");
  }
  // K:pkg/kubelet/config/common.go applyDefaults
  if (!md.contains("namespace") || md.value("namespace", "").empty()) md["namespace"] = "default";
  md["name"] = name + "-" + node_name;
  md.erase("uid");
  md.erase("resourceVersion");
  pod.erase("status");
  pod["spec"]["nodeName"] = node_name;
  // The UID hashes the pod as written, the node and the source, so any change is a new pod.
  std::string uid = Md5Hex(pod.dump() + "host:" + node_name + "file:" + path);
  md["uid"] = uid;
  if (!md.contains("annotations") || !md["annotations"].is_object()) md["annotations"] = json::object();
  md["annotations"]["kubernetes.io/config.hash"] = uid;
  md["annotations"]["kubernetes.io/config.seen"] = seen;
  md["annotations"]["kubernetes.io/config.source"] = "file";
  // Static pods tolerate every NoExecute taint (the node's own not-ready taints included).
  json& tol = pod["spec"]["tolerations"];
  if (!tol.is_array()) tol = json::array();
  tol.push_back({{"operator", "Exists"}, {"effect", "NoExecute"}});
  pod["status"] = {{"phase", "Pending"}};
  return pod;
}

StaticPodSource::StaticPodSource(std::string dir, std::string node_name, Handlers h)
    : dir_(std::move(dir)), node_(std::move(node_name)), h_(std::move(h)) {}

void StaticPodSource::Start(std::chrono::seconds period) {
  if (thread_.joinable()) return;
  stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  thread_ = std::thread([this, period] { Loop(period); });
}

void StaticPodSource::Stop() {
  if (!thread_.joinable()) return;
  uint64_t one = 1;
  (void)!write(stop_fd_, &one, sizeof one);
  thread_.join();
  close(stop_fd_);
  stop_fd_ = -1;
}

void StaticPodSource::Loop(std::chrono::seconds period) {
  int in = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  int wd = -1;
  for (;;) {
    if (in >= 0 && wd < 0) {  // (again) once the directory exists
      wd = inotify_add_watch(in, dir_.c_str(),
                             IN_CREATE | IN_DELETE | IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM |
                                 IN_MODIFY | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF);
      if (wd >= 0) Scan();  // what changed before the watch was there
    }
    pollfd p[2] = {{stop_fd_, POLLIN, 0}, {in, POLLIN, 0}};
    int r = poll(p, in >= 0 ? 2 : 1, static_cast<int>(period.count() * 1000));
    if (r < 0 && errno == EINTR) continue;
    if (r > 0 && p[0].revents) break;
    if (r > 0 && in >= 0 && p[1].revents) {
      // Drain the events; a burst of writes (an editor's save) is one scan after a short pause.
      char buf[4096];
      bool gone = false;
      for (;;) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n <= 0) break;
        for (ssize_t off = 0; off < n;) {
          auto* ev = reinterpret_cast<inotify_event*>(buf + off);
          if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) gone = true;
          off += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
        }
      }
      if (gone) {
        inotify_rm_watch(in, wd);
        wd = -1;
      }
      pollfd s{stop_fd_, POLLIN, 0};
      if (poll(&s, 1, 100) > 0) break;
    }
    Scan();
  }
  if (in >= 0) close(in);
}

void StaticPodSource::Scan() {
  std::lock_guard<std::mutex> lock(mu_);
  DIR* d = opendir(dir_.c_str());
  if (!d) {
    if (!warned_missing_) {
      base::log::Warn("static pod path not readable", {{"path", dir_}, {"error", strerror(errno)}});
      warned_missing_ = true;
    }
    // K:pkg/kubelet/config/file.go: a missing directory is "no pods".
    for (const auto& [path, pod] : by_file_) h_.remove(pod);
    by_file_.clear();
    return;
  }
  warned_missing_ = false;
  std::vector<std::string> files;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::string p = dir_ + "/" + e->d_name;
    struct stat st {};
    if (stat(p.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    files.push_back(p);
  }
  closedir(d);
  std::sort(files.begin(), files.end());
  std::set<std::string> present(files.begin(), files.end());
  for (auto it = by_file_.begin(); it != by_file_.end();) {
    if (!present.count(it->first)) {
      base::log::Info("static pod removed", {{"path", it->first}});
      h_.remove(it->second);
      it = by_file_.erase(it);
    } else {
      ++it;
    }
  }
  for (const auto& p : files) {
    auto text = base::ReadFile(p);
    if (!text) continue;
    std::string seen = base::FormatRfc3339Nano(std::chrono::system_clock::now());
    auto it = by_file_.find(p);
    if (it != by_file_.end()) {
      seen = it->second["metadata"]["annotations"].value("kubernetes.io/config.seen", seen);
    }
    auto pod = DecodeStaticPod(*text, p, node_, seen);
    if (!pod) {
      base::log::Warn("static pod not read", {{"path", p}, {"error", pod.error().message}});
      continue;
    }
    std::string uid = (*pod)["metadata"].value("uid", "");
    if (it != by_file_.end() && it->second["metadata"].value("uid", "") == uid) continue;
    if (it != by_file_.end()) {
      // A changed manifest is a new pod (new UID); a fresh config.seen.
      seen = base::FormatRfc3339Nano(std::chrono::system_clock::now());
      (*pod)["metadata"]["annotations"]["kubernetes.io/config.seen"] = seen;
      h_.remove(it->second);
    }
    base::log::Info("static pod", {{"path", p},
                                   {"pod", (*pod)["metadata"].value("namespace", "") + "/" +
                                               (*pod)["metadata"].value("name", "")},
                                   {"uid", uid}});
    by_file_[p] = *pod;
    h_.upsert(*pod);
  }
}

}  // namespace agent

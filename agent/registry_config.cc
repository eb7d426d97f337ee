#include "agent/registry_config.h"

#include <fnmatch.h>
#include <openssl/evp.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "base/file.h"
#include "base/log.h"
#include "base/strings.h"

namespace agent {

using nlohmann::json;

namespace {

struct HostPortPath {
  std::string host, port, path;
};

HostPortPath SplitKey(std::string key) {
  for (const char* scheme : {"https://", "http://"}) {
    if (base::StartsWith(key, scheme)) key = key.substr(strlen(scheme));
  }
  while (!key.empty() && key.back() == '/') key.pop_back();
  HostPortPath out;
  size_t slash = key.find('/');
  std::string hostport = key.substr(0, slash);
  out.path = slash == std::string::npos ? "" : key.substr(slash + 1);
  size_t colon = hostport.rfind(':');
  out.host = base::ToLower(hostport.substr(0, colon));
  if (colon != std::string::npos) out.port = hostport.substr(colon + 1);
  return out;
}

bool IsDockerHub(const std::string& host) {
  return host == "docker.io" || host == "index.docker.io" || host == "registry-1.docker.io" ||
         host == "registry.hub.docker.com";
}

// "busybox" -> docker.io / library/busybox; "r.example:5000/a/b:tag" -> r.example:5000 / a/b.
std::pair<std::string, std::string> RegistryAndPath(const std::string& image) {
  std::string name = image.substr(0, image.find('@'));
  size_t slash = name.find('/');
  std::string first = name.substr(0, slash);
  std::string domain = "docker.io";
  std::string rest = name;
  if (slash != std::string::npos &&
      (first.find('.') != std::string::npos || first.find(':') != std::string::npos ||
       first == "localhost")) {
    domain = first;
    rest = name.substr(slash + 1);
  }
  size_t colon = rest.rfind(':');
  if (colon != std::string::npos) rest = rest.substr(0, colon);  // the tag
  if (IsDockerHub(base::ToLower(domain))) {
    domain = "docker.io";
    if (rest.find('/') == std::string::npos) rest = "library/" + rest;
  }
  return {domain, rest};
}

bool HostMatches(const std::string& pattern, const std::string& host) {
  std::vector<std::string> p = base::Split(pattern, '.'), h = base::Split(host, '.');
  if (p.size() != h.size()) return false;
  for (size_t i = 0; i < p.size(); ++i) {
    if (fnmatch(p[i].c_str(), h[i].c_str(), 0) != 0) return false;
  }
  return true;
}

base::Result<cri::AuthConfig> DecodeAuthEntry(const json& e, const std::string& what) {
  if (!e.is_object()) return base::Fail(what + ": not an object");
  cri::AuthConfig a;
  auto str = [&](const char* k) {
    auto it = e.find(k);
    return it != e.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  a.username = str("username");
  a.password = str("password");
  a.auth = str("auth");
  a.identity_token = str("identitytoken");
  a.registry_token = str("registrytoken");
  return a;
}

}  // namespace

base::Result<> DockerKeyring::AddEntry(const std::string& key, cri::AuthConfig auth) {
  if (!auth.auth.empty()) {
    // base64("user:pass") as docker writes it; it wins over username/password like docker's.
    std::string decoded(auth.auth.size(), '\0');
    int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(decoded.data()),
                            reinterpret_cast<const unsigned char*>(auth.auth.data()),
                            static_cast<int>(auth.auth.size()));
    if (n < 0)
      return base::Fail("registry credentials for \"" + key + "\": \"auth\" is not base64");
    decoded.resize(static_cast<size_t>(n));
    size_t pad = 0;
    for (auto it = auth.auth.rbegin(); it != auth.auth.rend() && *it == '='; ++it) ++pad;
    decoded.resize(decoded.size() - std::min(pad, decoded.size()));
    size_t colon = decoded.find(':');
    if (colon == std::string::npos) {
      return base::Fail("registry credentials for \"" + key + "\": \"auth\" is not user:password");
    }
    auth.username = decoded.substr(0, colon);
    auth.password = decoded.substr(colon + 1);
    auth.auth.clear();
  }
  HostPortPath k = SplitKey(key);
  if (k.host.empty()) return base::Fail("registry credentials: empty registry key \"" + key + "\"");
  if (IsDockerHub(k.host)) {
    k.host = "docker.io";
    if (k.path == "v1" || k.path == "v2") k.path.clear();  // "https://index.docker.io/v1/"
  }
  auth.server_address = key;
  entries_.push_back(Entry{k.host, k.port, k.path, std::move(auth)});
  return {};
}

base::Result<> DockerKeyring::Add(std::string_view text, const std::string& source) {
  json j = json::parse(text, nullptr, false);
  if (!j.is_object()) return base::Fail("docker config " + source + ": not a JSON object");
  const json& auths = j.contains("auths") ? j["auths"] : j;
  if (!auths.is_object())
    return base::Fail("docker config " + source + ": \"auths\" is not an object");
  for (const auto& [key, entry] : auths.items()) {
    if (!j.contains("auths") && !entry.is_object()) continue;  // other top-level settings
    auto a = DecodeAuthEntry(entry, "docker config " + source + ": auths[\"" + key + "\"]");
    if (!a) return tl::unexpected(a.error());
    auto r = AddEntry(key, std::move(*a));
    if (!r) return tl::unexpected(r.error().Wrap("docker config " + source));
  }
  return {};
}

std::optional<cri::AuthConfig> DockerKeyring::Lookup(const std::string& image) const {
  auto [registry, path] = RegistryAndPath(image);
  HostPortPath img = SplitKey(registry);
  const Entry* best = nullptr;
  auto score = [](const Entry& e) {
    // More specific first: longer path, then no wildcard in the host.
    return std::make_pair(e.path.size(), e.host.find('*') == std::string::npos);
  };
  for (const auto& e : entries_) {
    if (e.port != img.port || !HostMatches(e.host, img.host)) continue;
    if (!e.path.empty() && path != e.path && !base::StartsWith(path, e.path + "/")) continue;
    if (!best || score(e) > score(*best)) best = &e;
  }
  if (!best) return std::nullopt;
  return best->auth;
}

std::string RegistryConfig::RegistryOf(const std::string& image) {
  return RegistryAndPath(image).first;
}

std::optional<cri::AuthConfig> RegistryConfig::NodeCredentials(const std::string& image) const {
  if (auto a = credentials.Lookup(image)) return a;
  auto m = mirrors.find(RegistryOf(image));
  if (m == mirrors.end()) return std::nullopt;
  // The image as the mirror serves it: same repository on the mirror's host.
  HostPortPath mirror = SplitKey(m->second);
  std::string host = mirror.host + (mirror.port.empty() ? "" : ":" + mirror.port);
  return credentials.Lookup(host + "/" + RegistryAndPath(image).second);
}

cri::AuthConfig SelectPullAuth(const DockerKeyring& pod_secrets, const RegistryConfig* node,
                               const std::string& image) {
  if (auto a = pod_secrets.Lookup(image)) return *a;
  if (node) {
    if (auto a = node->NodeCredentials(image)) return *a;
  }
  return {};
}

base::Result<RegistryConfig> ParseRegistryConfig(std::string_view text, const std::string& source) {
  std::string what = "registry config " + source;
  json j = json::parse(text, nullptr, false);
  if (!j.is_object()) return base::Fail(what + ": not a JSON object");
  RegistryConfig c;
  for (const auto& [key, value] : j.items()) {
    // Other docker config.json settings (credsStore, credHelpers, ...) are not used here.
    if (key != "mirrors" && key != "insecureRegistries" && key != "auths") {
      base::log::Warn("registry config: ignoring unknown field",
                      {{"file", source}, {"field", key}});
    }
  }
  if (j.contains("mirrors")) {
    if (!j["mirrors"].is_object()) return base::Fail(what + ": \"mirrors\" is not an object");
    for (const auto& [reg, url] : j["mirrors"].items()) {
      if (!url.is_string()) return base::Fail(what + ": mirror of \"" + reg + "\" is not a string");
      std::string u = url.get<std::string>();
      while (!u.empty() && u.back() == '/') u.pop_back();
      if (!base::StartsWith(u, "http://") && !base::StartsWith(u, "https://")) {
        return base::Fail(what + ": mirror of \"" + reg +
                          "\" must be an http:// or https:// URL, got \"" + u + "\"");
      }
      if (u.find('/', u.find("//") + 2) != std::string::npos) {
        return base::Fail(what + ": mirror of \"" + reg + "\" must have no path, got \"" + u +
                          "\"");
      }
      c.mirrors[IsDockerHub(reg) ? "docker.io" : reg] = u;
    }
  }
  if (j.contains("insecureRegistries")) {
    if (!j["insecureRegistries"].is_array()) {
      return base::Fail(what + ": \"insecureRegistries\" is not a list");
    }
    for (const auto& r : j["insecureRegistries"]) {
      if (!r.is_string() || r.get<std::string>().empty()) {
        return base::Fail(what + ": \"insecureRegistries\" holds a non-string or empty entry");
      }
      c.insecure_registries.insert(r.get<std::string>());
    }
  }
  if (j.contains("auths")) CUBELET_TRY(c.credentials.Add(j.dump(), source));
  return c;
}

base::Result<RegistryConfig> LoadRegistryConfig(const std::string& path) {
  auto text = base::ReadFile(path);
  if (!text) return tl::unexpected(text.error().Wrap("registry config " + path));
  return ParseRegistryConfig(*text, path);
}

}  // namespace agent

#include "agent/kubeconfig.h"

#include <yaml-cpp/yaml.h>

#include "base/file.h"
#include "base/strings.h"

namespace agent {
namespace {

std::string Base64Decode(const std::string& in, bool* ok) {
  static const std::string kChars =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  int val = 0, bits = -8;
  *ok = true;
  for (unsigned char c : in) {
    if (c == '=' || c == '\n' || c == '\r' || c == ' ') continue;
    auto pos = kChars.find(static_cast<char>(c));
    if (pos == std::string::npos) {
      *ok = false;
      return {};
    }
    val = (val << 6) + static_cast<int>(pos);
    bits += 6;
    if (bits >= 0) {
      out.push_back(static_cast<char>((val >> bits) & 0xFF));
      bits -= 8;
    }
  }
  return out;
}

std::string Resolve(const std::string& dir, const std::string& p) {
  if (p.empty() || p[0] == '/') return p;
  return dir + "/" + p;
}

YAML::Node FindNamed(const YAML::Node& list, const std::string& name, const char* inner) {
  if (!list || !list.IsSequence()) return YAML::Node();
  for (const auto& item : list) {
    if (item["name"] && item["name"].as<std::string>() == name) return item[inner];
  }
  return YAML::Node();
}

// Reads "<field>-data" (base64) or "<field>" (a path) into *out.
base::Result<> ReadPem(const YAML::Node& n, const std::string& field, const std::string& dir,
                       const std::string& src, std::string* out) {
  if (n[field + "-data"]) {
    bool ok;
    *out = Base64Decode(n[field + "-data"].as<std::string>(), &ok);
    if (!ok) return base::Fail(src + ": " + field + "-data is not valid base64");
    return {};
  }
  if (n[field]) {
    std::string path = Resolve(dir, n[field].as<std::string>());
    auto data = base::ReadFile(path);
    if (!data) return tl::unexpected(data.error().Wrap(src + ": " + field));
    *out = *data;
  }
  return {};
}

}  // namespace

base::Result<Kubeconfig> LoadKubeconfig(const std::string& path, const std::string& context_name) {
  Kubeconfig kc;
  kc.source = path;
  std::string dir = ".";
  if (auto slash = path.rfind('/'); slash != std::string::npos) dir = path.substr(0, slash);
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    return base::Fail("kubeconfig " + path + ": cannot read file", ENOENT);
  } catch (const std::exception& e) {
    return base::Fail("kubeconfig " + path + ": invalid YAML: " + e.what());
  }
  try {
    std::string ctx_name = context_name;
    if (ctx_name.empty() && root["current-context"]) ctx_name = root["current-context"].as<std::string>();
    YAML::Node ctx;
    if (!ctx_name.empty()) {
      ctx = FindNamed(root["contexts"], ctx_name, "context");
      if (!ctx) return base::Fail("kubeconfig " + path + ": context \"" + ctx_name + "\" not found");
    } else if (root["contexts"] && root["contexts"].IsSequence() && root["contexts"].size() == 1) {
      ctx = root["contexts"][0]["context"];
    } else {
      return base::Fail("kubeconfig " + path + ": no current-context set");
    }
    std::string cluster_name = ctx["cluster"] ? ctx["cluster"].as<std::string>() : "";
    std::string user_name = ctx["user"] ? ctx["user"].as<std::string>() : "";
    if (ctx["namespace"]) kc.namespace_ = ctx["namespace"].as<std::string>();
    YAML::Node cluster = FindNamed(root["clusters"], cluster_name, "cluster");
    if (!cluster) return base::Fail("kubeconfig " + path + ": cluster \"" + cluster_name + "\" not found");
    if (!cluster["server"]) return base::Fail("kubeconfig " + path + ": cluster \"" + cluster_name + "\" has no server");
    kc.server = cluster["server"].as<std::string>();
    while (!kc.server.empty() && kc.server.back() == '/') kc.server.pop_back();
    if (cluster["insecure-skip-tls-verify"]) kc.insecure_skip_tls_verify = cluster["insecure-skip-tls-verify"].as<bool>();
    if (cluster["tls-server-name"]) kc.tls_server_name = cluster["tls-server-name"].as<std::string>();
    CUBELET_TRY(ReadPem(cluster, "certificate-authority", dir, path, &kc.ca_pem));
    if (!user_name.empty()) {
      YAML::Node user = FindNamed(root["users"], user_name, "user");
      if (!user) return base::Fail("kubeconfig " + path + ": user \"" + user_name + "\" not found");
      if (user["token"]) kc.token = user["token"].as<std::string>();
      if (user["tokenFile"]) {
        kc.token_file = Resolve(dir, user["tokenFile"].as<std::string>());
        auto t = base::ReadFile(kc.token_file);
        if (!t) return tl::unexpected(t.error().Wrap("kubeconfig " + path + ": tokenFile"));
        kc.token = std::string(base::Trim(*t));
      }
      CUBELET_TRY(ReadPem(user, "client-certificate", dir, path, &kc.client_cert_pem));
      CUBELET_TRY(ReadPem(user, "client-key", dir, path, &kc.client_key_pem));
      if (kc.client_cert_pem.empty() != kc.client_key_pem.empty())
        return base::Fail("kubeconfig " + path + ": user \"" + user_name +
                          "\" needs both client-certificate and client-key");
      if (user["username"]) kc.username = user["username"].as<std::string>();
      if (user["password"]) kc.password = user["password"].as<std::string>();
      if (user["exec"] || user["auth-provider"])
        return base::Fail("kubeconfig " + path + ": user \"" + user_name +
                          "\" uses exec/auth-provider credentials, which cubelet does not support");
    }
  } catch (const std::exception& e) {
    return base::Fail("kubeconfig " + path + ": " + e.what());
  }
  if (kc.server.rfind("https://", 0) != 0 && kc.server.rfind("http://", 0) != 0)
    return base::Fail("kubeconfig " + path + ": server \"" + kc.server + "\" is not an http(s) URL");
  return kc;
}

}  // namespace agent

#include "agent/kubelet_config_file.h"

#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include <map>
#include <set>
#include <type_traits>

#include "agent/eviction.h"
#include "base/strings.h"
#include "base/time.h"

namespace agent {
namespace {

using base::Result;

// Scalar readers: an error names the field path ("authentication.x509.clientCAFile").
Result<std::string> Str(const YAML::Node& n, const std::string& field) {
  if (!n.IsScalar()) return base::Fail(field + ": expected a string");
  return n.as<std::string>();
}
Result<long> Int(const YAML::Node& n, const std::string& field) {
  if (!n.IsScalar()) return base::Fail(field + ": expected an integer");
  std::string s = n.as<std::string>();
  char* end = nullptr;
  long v = std::strtol(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0') return base::Fail(field + ": expected an integer, got \"" + s + "\"");
  return v;
}
Result<bool> Bool(const YAML::Node& n, const std::string& field) {
  if (!n.IsScalar()) return base::Fail(field + ": expected true or false");
  std::string s = n.as<std::string>();
  if (s == "true") return true;
  if (s == "false") return false;
  return base::Fail(field + ": expected true or false, got \"" + s + "\"");
}
Result<std::chrono::milliseconds> Duration(const YAML::Node& n, const std::string& field) {
  auto s = Str(n, field);
  if (!s) return tl::unexpected(s.error());
  std::chrono::milliseconds d;
  if (!ParseGoDuration(*s, &d)) {
    return base::Fail(field + ": invalid duration \"" + *s + "\" (expected e.g. 2m0s, 90s, 1h)");
  }
  return d;
}
Result<std::vector<std::string>> StrList(const YAML::Node& n, const std::string& field) {
  if (n.IsNull()) return std::vector<std::string>{};
  if (!n.IsSequence()) return base::Fail(field + ": expected a list of strings");
  std::vector<std::string> out;
  for (const auto& e : n) {
    auto s = Str(e, field + "[]");
    if (!s) return tl::unexpected(s.error());
    out.push_back(*s);
  }
  return out;
}

// One field cubelet applies: the flag it stands for, and how to set it.
struct Field {
  std::string flag;  // "" = config only (no kubelet flag)
  std::function<Result<>(const YAML::Node&, const std::string& path, CubeletFlags*)> set;
};

// As the kubelet's v1beta1 defaulting: for fields that are plain values there (not pointers),
// the zero value ("", 0, 0s) means "not set" and the default stays; for pointer fields a zero
// is a value. kubeadm writes such zeros (e.g. nodeStatusUpdateFrequency: 0s).
enum class Zero { kUnset, kValue };

template <typename V>
bool IsZero(const V& v) {
  if constexpr (std::is_same_v<V, std::string>) {
    return v.empty();
  } else if constexpr (std::is_same_v<V, std::chrono::milliseconds>) {
    return v.count() == 0;
  } else if constexpr (std::is_arithmetic_v<V>) {
    return v == 0;
  } else {
    return false;
  }
}

template <typename T, typename Read>
Field Make(std::string flag, Read read, T CubeletFlags::*member, Zero zero = Zero::kValue) {
  return {std::move(flag), [read, member, zero](const YAML::Node& n, const std::string& path,
                                                CubeletFlags* f) -> Result<> {
            auto v = read(n, path);
            if (!v) return tl::unexpected(v.error());
            if (zero == Zero::kUnset && IsZero(*v)) return {};
            f->*member = static_cast<T>(*v);
            return {};
          }};
}

const std::map<std::string, Field>& Fields() {
  static const std::map<std::string, Field> kFields = [] {
    std::map<std::string, Field> m;
    m["address"] = Make("address", Str, &CubeletFlags::address, Zero::kUnset);
    m["port"] = Make("port", Int, &CubeletFlags::port, Zero::kUnset);
    m["healthzBindAddress"] =
        Make("healthz-bind-address", Str, &CubeletFlags::healthz_bind_address, Zero::kUnset);
    m["healthzPort"] = Make("healthz-port", Int, &CubeletFlags::healthz_port);
    m["tlsCertFile"] = Make("tls-cert-file", Str, &CubeletFlags::tls_cert_file);
    m["tlsPrivateKeyFile"] = Make("tls-private-key-file", Str, &CubeletFlags::tls_private_key_file);
    m["authentication.x509.clientCAFile"] =
        Make("client-ca-file", Str, &CubeletFlags::client_ca_file);
    m["authentication.webhook.enabled"] =
        Make("authentication-token-webhook", Bool, &CubeletFlags::authentication_token_webhook);
    m["authentication.webhook.cacheTTL"] =
        Make("authentication-token-webhook-cache-ttl", Duration,
             &CubeletFlags::authentication_token_webhook_cache_ttl, Zero::kUnset);
    m["authorization.mode"] = {
        "authorization-mode", [](const YAML::Node& n, const std::string& path, CubeletFlags* f) -> Result<> {
          auto s = Str(n, path);
          if (!s) return tl::unexpected(s.error());
          if (*s != "Webhook" && *s != "AlwaysAllow") {
            return base::Fail(path + ": \"" + *s + "\" is not supported (Webhook or AlwaysAllow)");
          }
          f->authorization_mode = *s;
          return {};
        }};
    m["authorization.webhook.cacheAuthorizedTTL"] =
        Make("authorization-webhook-cache-authorized-ttl", Duration,
             &CubeletFlags::authorization_webhook_cache_authorized_ttl, Zero::kUnset);
    m["authorization.webhook.cacheUnauthorizedTTL"] =
        Make("authorization-webhook-cache-unauthorized-ttl", Duration,
             &CubeletFlags::authorization_webhook_cache_unauthorized_ttl, Zero::kUnset);
    m["clusterDomain"] = Make("cluster-domain", Str, &CubeletFlags::cluster_domain);
    m["clusterDNS"] = Make("cluster-dns", StrList, &CubeletFlags::cluster_dns);
    m["resolvConf"] = Make("resolv-conf", Str, &CubeletFlags::resolv_conf);  // *string: "" = none
    m["podCIDR"] = Make("pod-cidr", Str, &CubeletFlags::pod_cidr);
    m["maxPods"] = Make("max-pods", Int, &CubeletFlags::max_pods, Zero::kUnset);
    m["podPidsLimit"] = Make("pod-max-pids", Int, &CubeletFlags::pod_max_pids);
    m["cgroupRoot"] = Make("cgroup-root", Str, &CubeletFlags::cgroup_root);
    m["cgroupsPerQOS"] = Make("cgroups-per-qos", Bool, &CubeletFlags::cgroups_per_qos);
    m["registerNode"] = Make("register-node", Bool, &CubeletFlags::register_node);
    m["registerWithTaints"] = {
        "register-with-taints", [](const YAML::Node& n, const std::string& path, CubeletFlags* f) -> Result<> {
          if (n.IsNull()) return {};
          if (!n.IsSequence()) return base::Fail(path + ": expected a list of taints");
          std::vector<std::string> taints;
          for (const auto& t : n) {
            if (!t.IsMap() || !t["key"] || !t["effect"]) {
              return base::Fail(path + ": each taint needs a key and an effect");
            }
            auto key = Str(t["key"], path + "[].key");
            auto effect = Str(t["effect"], path + "[].effect");
            if (!key || !effect) return tl::unexpected(!key ? key.error() : effect.error());
            std::string value;
            if (t["value"]) {
              auto v = Str(t["value"], path + "[].value");
              if (!v) return tl::unexpected(v.error());
              value = *v;
            }
            taints.push_back(*key + (value.empty() ? "" : "=" + value) + ":" + *effect);
          }
          f->register_with_taints = taints;
          return {};
        }};
    m["nodeStatusUpdateFrequency"] = {
        "node-status-update-frequency",
        [](const YAML::Node& n, const std::string& path, CubeletFlags* f) -> Result<> {
          auto d = Duration(n, path);
          if (!d) return tl::unexpected(d.error());
          if (d->count() == 0) return {};  // unset: the default (10s) stays
          if (d->count() < 1000) return base::Fail(path + ": must be at least 1s");
          f->node_status_update_frequency = static_cast<int>(d->count() / 1000);
          return {};
        }};
    // evictionHard / evictionSoft: {signal: value} -> "signal<value,..."; evictionSoftGracePeriod:
    // {signal: duration} -> "signal=duration,...".
    auto map_field = [](const char* flag, const char* sep, std::string CubeletFlags::*member) {
      return Field{flag, [sep, member](const YAML::Node& n, const std::string& path,
                                       CubeletFlags* f) -> Result<> {
                     if (!n.IsMap()) return base::Fail(path + ": must be a map of signal to value");
                     std::vector<std::string> parts;
                     for (const auto& kv : n) {
                       auto v = Str(kv.second, path + "." + kv.first.as<std::string>());
                       if (!v) return tl::unexpected(v.error());
                       parts.push_back(kv.first.as<std::string>() + sep + *v);
                     }
                     f->*member = base::Join(parts, ",");
                     return {};
                   }};
    };
    m["evictionHard"] = map_field("eviction-hard", "<", &CubeletFlags::eviction_hard);
    m["evictionSoft"] = map_field("eviction-soft", "<", &CubeletFlags::eviction_soft);
    m["evictionSoftGracePeriod"] =
        map_field("eviction-soft-grace-period", "=", &CubeletFlags::eviction_soft_grace_period);
    m["evictionMaxPodGracePeriod"] =
        Make("eviction-max-pod-grace-period", Int, &CubeletFlags::eviction_max_pod_grace_period);
    m["evictionPressureTransitionPeriod"] =
        Make("eviction-pressure-transition-period", Duration,
             &CubeletFlags::eviction_pressure_transition_period, Zero::kUnset);
    m["imageGCHighThresholdPercent"] =
        Make("image-gc-high-threshold", Int, &CubeletFlags::image_gc_high_threshold);
    m["imageGCLowThresholdPercent"] =
        Make("image-gc-low-threshold", Int, &CubeletFlags::image_gc_low_threshold);
    m["imageMinimumGCAge"] =
        Make("minimum-image-gc-age", Duration, &CubeletFlags::minimum_image_gc_age, Zero::kUnset);
    m["imageMaximumGCAge"] = Make("", Duration, &CubeletFlags::image_maximum_gc_age);
    m["containerLogMaxSize"] =
        Make("container-log-max-size", Str, &CubeletFlags::container_log_max_size, Zero::kUnset);
    m["containerLogMaxFiles"] =
        Make("container-log-max-files", Int, &CubeletFlags::container_log_max_files);
    m["staticPodPath"] =
        Make("pod-manifest-path", Str, &CubeletFlags::pod_manifest_path, Zero::kUnset);
    m["podLogsDir"] = Make("pod-logs-dir", Str, &CubeletFlags::pod_logs_dir, Zero::kUnset);
    return m;
  }();
  return kFields;
}

// Fields cubelet does not read but already behaves as when they hold these values (what
// kubeadm writes, where it matches): no warning for them.
const std::map<std::string, std::set<std::string>>& Matching() {
  static const std::map<std::string, std::set<std::string>> kMatching = {
      {"cgroupDriver", {"cgroupfs"}},
      {"authentication.anonymous.enabled", {"false"}},  // anonymous requests are always 401
      {"failSwapOn", {"true", "false"}},
      {"rotateCertificates", {"false"}},
      {"enableServer", {"true"}},  // cubelet always serves the kubelet API
  };
  return kMatching;
}

// A value that leaves a field at its default ("", 0, 0s, {}, [] and maps of only those), as
// kubeadm writes for everything it does not set: nothing is ignored by not reading it.
bool Unset(const YAML::Node& n) {
  if (n.IsNull()) return true;
  if (n.IsScalar()) {
    std::string v = n.as<std::string>();
    return v.empty() || v == "0" || v == "0s";
  }
  for (const auto& e : n) {
    if (!Unset(n.IsMap() ? e.second : e)) return false;
  }
  return true;
}

bool Prefixes(const std::string& path, const std::string& of) {
  return base::StartsWith(of, path + ".");
}

// Leaf paths ("authentication.x509.clientCAFile"): maps are descended into where a field cubelet
// knows lies below; anything else is one leaf, reported as a whole if unknown.
void Leaves(const YAML::Node& n, const std::string& prefix,
            std::vector<std::pair<std::string, YAML::Node>>* out) {
  for (const auto& kv : n) {
    std::string key = kv.first.as<std::string>();
    std::string path = prefix.empty() ? key : prefix + "." + key;
    bool below = false;
    for (const auto& [name, field] : Fields()) below = below || Prefixes(path, name);
    for (const auto& [name, values] : Matching()) below = below || Prefixes(path, name);
    if (kv.second.IsMap() && below) {
      Leaves(kv.second, path, out);
    } else {
      out->emplace_back(path, kv.second);
    }
  }
}

}  // namespace

Result<std::vector<std::string>> ApplyKubeletConfig(
    const std::string& yaml_text, const std::function<bool(const std::string& flag)>& given,
    CubeletFlags* f) {
  YAML::Node doc;
  try {
    doc = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    return base::Fail(std::string("not YAML: ") + e.what());
  }
  if (!doc.IsMap()) return base::Fail("expected a KubeletConfiguration object");
  std::string api_version = doc["apiVersion"] && doc["apiVersion"].IsScalar()
                                ? doc["apiVersion"].as<std::string>() : "";
  std::string kind = doc["kind"] && doc["kind"].IsScalar() ? doc["kind"].as<std::string>() : "";
  if (kind != "KubeletConfiguration" || api_version != "kubelet.config.k8s.io/v1beta1") {
    return base::Fail("expected apiVersion kubelet.config.k8s.io/v1beta1 and kind "
                      "KubeletConfiguration, got apiVersion \"" + api_version + "\" kind \"" +
                      kind + "\"");
  }
  std::vector<std::pair<std::string, YAML::Node>> leaves;
  Leaves(doc, "", &leaves);
  std::vector<std::string> warnings, ignored;
  for (const auto& [path, node] : leaves) {
    if (path == "apiVersion" || path == "kind") continue;
    auto it = Fields().find(path);
    if (it == Fields().end()) {
      auto m = Matching().find(path);
      std::string value = node.IsScalar() ? node.as<std::string>() : "";
      bool matches = m != Matching().end() && node.IsScalar() && m->second.count(value);
      if (!matches && !Unset(node)) ignored.push_back(path);
      continue;
    }
    const Field& field = it->second;
    if (!field.flag.empty() && given(field.flag)) continue;  // the command line wins
    if (auto r = field.set(node, path, f); !r) return tl::unexpected(r.error());
  }
  if (!ignored.empty()) {
    warnings.push_back("KubeletConfiguration fields cubelet does not implement (ignored): " +
                       base::Join(ignored, ", "));
  }
  return warnings;
}

std::string KubeletConfigzJson(const CubeletFlags& f) {
  using nlohmann::json;
  auto dur = [](std::chrono::milliseconds d) { return base::FormatGoDuration(d); };
  // "signal<value,..." -> {signal: value}; unparsable parts are left out (the flags were
  // validated at start-up).
  auto thresholds = [](const std::vector<eviction::Threshold>& ts) {
    json m = json::object();
    for (const auto& t : ts) m[eviction::SignalName(t.signal)] = t.text;
    return m;
  };
  json hard = json::object();
  if (f.eviction_hard.empty()) {
    hard = thresholds(eviction::DefaultThresholds());
  } else if (auto ts = eviction::ParseThresholds(f.eviction_hard)) {
    hard = thresholds(*ts);
  }
  json soft = json::object();
  if (!f.eviction_soft.empty()) {
    if (auto ts = eviction::ParseThresholds(f.eviction_soft)) soft = thresholds(*ts);
  }
  json soft_grace = json::object();
  for (const auto& part : base::Split(f.eviction_soft_grace_period, ',')) {
    auto eq = part.find('=');
    if (eq != std::string::npos) soft_grace[std::string(part.substr(0, eq))] = part.substr(eq + 1);
  }
  json taints = json::array();
  for (const auto& t : f.register_with_taints) {  // key[=value]:effect
    auto colon = t.rfind(':');
    std::string kv = t.substr(0, colon);
    json o;
    auto eq = kv.find('=');
    o["key"] = kv.substr(0, eq);
    if (eq != std::string::npos) o["value"] = kv.substr(eq + 1);
    o["effect"] = colon == std::string::npos ? "" : t.substr(colon + 1);
    taints.push_back(o);
  }
  json c;
  c["enableServer"] = true;
  if (!f.pod_manifest_path.empty()) c["staticPodPath"] = f.pod_manifest_path;
  c["podLogsDir"] = f.pod_logs_dir;
  c["address"] = f.address;
  c["port"] = f.port;
  if (!f.tls_cert_file.empty()) c["tlsCertFile"] = f.tls_cert_file;
  if (!f.tls_private_key_file.empty()) c["tlsPrivateKeyFile"] = f.tls_private_key_file;
  c["rotateCertificates"] = false;
  json authn;
  authn["x509"] = json::object();
  if (!f.client_ca_file.empty()) authn["x509"]["clientCAFile"] = f.client_ca_file;
  authn["webhook"] = {{"enabled", f.authentication_token_webhook},
                      {"cacheTTL", dur(f.authentication_token_webhook_cache_ttl)}};
  authn["anonymous"] = {{"enabled", false}};
  c["authentication"] = authn;
  c["authorization"] = {
      {"mode", f.authorization_mode},
      {"webhook",
       {{"cacheAuthorizedTTL", dur(f.authorization_webhook_cache_authorized_ttl)},
        {"cacheUnauthorizedTTL", dur(f.authorization_webhook_cache_unauthorized_ttl)}}}};
  c["healthzPort"] = f.healthz_port;
  c["healthzBindAddress"] = f.healthz_bind_address;
  c["clusterDomain"] = f.cluster_domain;
  if (!f.cluster_dns.empty()) c["clusterDNS"] = f.cluster_dns;
  c["nodeStatusUpdateFrequency"] = dur(std::chrono::seconds(f.node_status_update_frequency));
  c["imageMinimumGCAge"] = dur(f.minimum_image_gc_age);
  c["imageMaximumGCAge"] = dur(f.image_maximum_gc_age);
  c["imageGCHighThresholdPercent"] = f.image_gc_high_threshold;
  c["imageGCLowThresholdPercent"] = f.image_gc_low_threshold;
  c["cgroupRoot"] = f.cgroup_root.empty() ? "/" : f.cgroup_root;
  c["cgroupsPerQOS"] = f.cgroups_per_qos;
  c["cgroupDriver"] = "cgroupfs";
  c["resolvConf"] = f.resolv_conf;
  if (!f.pod_cidr.empty()) c["podCIDR"] = f.pod_cidr;
  c["maxPods"] = f.max_pods;
  c["podPidsLimit"] = f.pod_max_pids;
  c["evictionHard"] = hard;
  if (!soft.empty()) c["evictionSoft"] = soft;
  if (!soft_grace.empty()) c["evictionSoftGracePeriod"] = soft_grace;
  c["evictionPressureTransitionPeriod"] = dur(f.eviction_pressure_transition_period);
  c["evictionMaxPodGracePeriod"] = f.eviction_max_pod_grace_period;
  c["containerLogMaxSize"] = f.container_log_max_size;
  c["containerLogMaxFiles"] = f.container_log_max_files;
  c["registerNode"] = f.register_node;
  if (!taints.empty()) c["registerWithTaints"] = taints;
  return json{{"kubeletconfig", c}}.dump();
}

}  // namespace agent

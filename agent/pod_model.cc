#include "agent/pod_model.h"

#include <openssl/sha.h>

#include <nlohmann/json.hpp>

#include "base/quantity.h"

namespace agent {
namespace {

using nlohmann::json;

std::string Str(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return "";
  return it->get<std::string>();
}

std::optional<int64_t> Int(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number_integer()) return std::nullopt;
  return it->get<int64_t>();
}

std::optional<bool> Bool(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_boolean()) return std::nullopt;
  return it->get<bool>();
}

std::vector<std::string> Strings(const json& j, const char* key) {
  std::vector<std::string> out;
  auto it = j.find(key);
  if (it == j.end() || !it->is_array()) return out;
  for (const auto& v : *it) {
    if (v.is_string()) out.push_back(v.get<std::string>());
  }
  return out;
}

std::map<std::string, std::string> StringMap(const json& j, const char* key) {
  std::map<std::string, std::string> out;
  auto it = j.find(key);
  if (it == j.end() || !it->is_object()) return out;
  for (auto& [k, v] : it->items()) {
    if (v.is_string()) out[k] = v.get<std::string>();
  }
  return out;
}

const json& Obj(const json& j, const char* key) {
  static const json kEmpty = json::object();
  auto it = j.find(key);
  if (it == j.end() || !it->is_object()) return kEmpty;
  return *it;
}

const json& Arr(const json& j, const char* key) {
  static const json kEmpty = json::array();
  auto it = j.find(key);
  if (it == j.end() || !it->is_array()) return kEmpty;
  return *it;
}

// IntOrString as text ("8080" or "http").
std::string IntOrString(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end()) return "";
  if (it->is_number_integer()) return std::to_string(it->get<int64_t>());
  if (it->is_string()) return it->get<std::string>();
  return "";
}

base::Result<ResourceList> DecodeResourceList(const json& j, const std::string& where) {
  ResourceList r;
  for (auto& [k, v] : j.items()) {
    std::string q = v.is_string() ? v.get<std::string>()
                                  : (v.is_number() ? v.dump() : std::string());
    if (k == "cpu") {
      auto m = base::ParseQuantityMilli(q);
      if (!m) return base::Fail(where + ".cpu: " + m.error().message);
      r.cpu_milli = *m;
    } else if (k == "memory") {
      auto m = base::ParseQuantity(q);
      if (!m) return base::Fail(where + ".memory: " + m.error().message);
      r.memory_bytes = *m;
    } else if (k == "ephemeral-storage") {
      auto m = base::ParseQuantity(q);
      if (!m) return base::Fail(where + ".ephemeral-storage: " + m.error().message);
      r.ephemeral_storage_bytes = *m;
    }
  }
  return r;
}

std::optional<ExecAction> DecodeExec(const json& j) {
  if (!j.contains("exec")) return std::nullopt;
  return ExecAction{Strings(j["exec"], "command")};
}

std::optional<HttpGetAction> DecodeHttpGet(const json& j) {
  if (!j.contains("httpGet")) return std::nullopt;
  const json& h = j["httpGet"];
  HttpGetAction a;
  if (h.contains("path")) a.path = Str(h, "path");
  a.port = IntOrString(h, "port");
  a.host = Str(h, "host");
  if (h.contains("scheme")) a.scheme = Str(h, "scheme");
  for (const auto& hd : Arr(h, "httpHeaders")) a.headers.emplace_back(Str(hd, "name"), Str(hd, "value"));
  return a;
}

std::optional<TcpSocketAction> DecodeTcp(const json& j) {
  if (!j.contains("tcpSocket")) return std::nullopt;
  return TcpSocketAction{IntOrString(j["tcpSocket"], "port"), Str(j["tcpSocket"], "host")};
}

std::optional<Probe> DecodeProbe(const json& c, const char* key) {
  auto it = c.find(key);
  if (it == c.end() || !it->is_object()) return std::nullopt;
  const json& p = *it;
  Probe pr;
  pr.exec = DecodeExec(p);
  pr.http_get = DecodeHttpGet(p);
  pr.tcp_socket = DecodeTcp(p);
  pr.initial_delay_seconds = static_cast<int32_t>(Int(p, "initialDelaySeconds").value_or(0));
  pr.timeout_seconds = static_cast<int32_t>(Int(p, "timeoutSeconds").value_or(1));
  pr.period_seconds = static_cast<int32_t>(Int(p, "periodSeconds").value_or(10));
  pr.success_threshold = static_cast<int32_t>(Int(p, "successThreshold").value_or(1));
  pr.failure_threshold = static_cast<int32_t>(Int(p, "failureThreshold").value_or(3));
  return pr;
}

std::optional<Handler> DecodeHandler(const json& lc, const char* key) {
  auto it = lc.find(key);
  if (it == lc.end() || !it->is_object()) return std::nullopt;
  Handler h;
  h.exec = DecodeExec(*it);
  h.http_get = DecodeHttpGet(*it);
  h.tcp_socket = DecodeTcp(*it);
  if (it->contains("sleep")) h.sleep_seconds = Int((*it)["sleep"], "seconds");
  return h;
}

void DecodeSeccomp(const json& sc, std::string* type, std::string* profile) {
  const json& sp = Obj(sc, "seccompProfile");
  *type = Str(sp, "type");
  *profile = Str(sp, "localhostProfile");
}

std::string SpecHash(const json& c) {
  // Hash of the container spec as the API returned it: a change of anything but the image-less
  // fields the kubelet ignores means restart, like the kubelet's container hash.
  std::string text = c.dump();
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), md);
  char out[17];
  for (int i = 0; i < 8; ++i) snprintf(out + i * 2, 3, "%02x", md[i]);
  return std::string(out, 16);
}

base::Result<Container> DecodeContainer(const json& c, const std::string& where) {
  Container out;
  out.name = Str(c, "name");
  if (out.name.empty()) return base::Fail(where + ".name is empty");
  out.image = Str(c, "image");
  out.command = Strings(c, "command");
  out.args = Strings(c, "args");
  out.working_dir = Str(c, "workingDir");
  for (const auto& e : Arr(c, "env")) {
    EnvVar v;
    v.name = Str(e, "name");
    v.value = Str(e, "value");
    if (e.contains("valueFrom") && e["valueFrom"].is_object()) {
      const json& vf = e["valueFrom"];
      v.has_value_from = true;
      if (vf.contains("fieldRef")) v.field_path = Str(vf["fieldRef"], "fieldPath");
      if (vf.contains("resourceFieldRef")) {
        v.resource = Str(vf["resourceFieldRef"], "resource");
        v.resource_container = Str(vf["resourceFieldRef"], "containerName");
        v.resource_divisor = IntOrString(vf["resourceFieldRef"], "divisor");
      }
      if (vf.contains("configMapKeyRef")) {
        v.configmap_name = Str(vf["configMapKeyRef"], "name");
        v.configmap_key = Str(vf["configMapKeyRef"], "key");
        v.optional = Bool(vf["configMapKeyRef"], "optional").value_or(false);
      }
      if (vf.contains("secretKeyRef")) {
        v.secret_name = Str(vf["secretKeyRef"], "name");
        v.secret_key = Str(vf["secretKeyRef"], "key");
        v.optional = Bool(vf["secretKeyRef"], "optional").value_or(false);
      }
    }
    out.env.push_back(std::move(v));
  }
  for (const auto& e : Arr(c, "envFrom")) {
    EnvFromSource s;
    s.prefix = Str(e, "prefix");
    if (e.contains("configMapRef")) {
      s.configmap_name = Str(e["configMapRef"], "name");
      s.optional = Bool(e["configMapRef"], "optional").value_or(false);
    }
    if (e.contains("secretRef")) {
      s.secret_name = Str(e["secretRef"], "name");
      s.optional = Bool(e["secretRef"], "optional").value_or(false);
    }
    out.env_from.push_back(std::move(s));
  }
  for (const auto& p : Arr(c, "ports")) {
    ContainerPort cp;
    cp.name = Str(p, "name");
    cp.container_port = static_cast<int32_t>(Int(p, "containerPort").value_or(0));
    cp.host_port = static_cast<int32_t>(Int(p, "hostPort").value_or(0));
    cp.host_ip = Str(p, "hostIP");
    if (p.contains("protocol")) cp.protocol = Str(p, "protocol");
    out.ports.push_back(std::move(cp));
  }
  for (const auto& m : Arr(c, "volumeMounts")) {
    VolumeMount vm;
    vm.name = Str(m, "name");
    vm.mount_path = Str(m, "mountPath");
    vm.sub_path = Str(m, "subPath");
    vm.read_only = Bool(m, "readOnly").value_or(false);
    out.volume_mounts.push_back(std::move(vm));
  }
  const json& res = Obj(c, "resources");
  auto req = DecodeResourceList(Obj(res, "requests"), where + ".resources.requests");
  if (!req) return tl::unexpected(req.error());
  auto lim = DecodeResourceList(Obj(res, "limits"), where + ".resources.limits");
  if (!lim) return tl::unexpected(lim.error());
  out.resources.requests = *req;
  out.resources.limits = *lim;
  // Requests default to limits (API defaulting does this too; be robust to undefaulted input).
  if (!out.resources.requests.cpu_milli) out.resources.requests.cpu_milli = out.resources.limits.cpu_milli;
  if (!out.resources.requests.memory_bytes) out.resources.requests.memory_bytes = out.resources.limits.memory_bytes;
  out.image_pull_policy = Str(c, "imagePullPolicy");
  if (c.contains("terminationMessagePath")) out.termination_message_path = Str(c, "terminationMessagePath");
  if (c.contains("terminationMessagePolicy")) out.termination_message_policy = Str(c, "terminationMessagePolicy");
  out.liveness_probe = DecodeProbe(c, "livenessProbe");
  out.readiness_probe = DecodeProbe(c, "readinessProbe");
  out.startup_probe = DecodeProbe(c, "startupProbe");
  const json& lc = Obj(c, "lifecycle");
  out.post_start = DecodeHandler(lc, "postStart");
  out.pre_stop = DecodeHandler(lc, "preStop");
  if (c.contains("securityContext") && c["securityContext"].is_object()) {
    out.has_security_context = true;
    const json& sc = c["securityContext"];
    SecurityContext& s = out.security_context;
    s.run_as_user = Int(sc, "runAsUser");
    s.run_as_group = Int(sc, "runAsGroup");
    s.run_as_non_root = Bool(sc, "runAsNonRoot");
    s.privileged = Bool(sc, "privileged");
    s.read_only_root_filesystem = Bool(sc, "readOnlyRootFilesystem");
    s.allow_privilege_escalation = Bool(sc, "allowPrivilegeEscalation");
    s.cap_add = Strings(Obj(sc, "capabilities"), "add");
    s.cap_drop = Strings(Obj(sc, "capabilities"), "drop");
    DecodeSeccomp(sc, &s.seccomp_type, &s.seccomp_localhost_profile);
  }
  out.restart_policy = Str(c, "restartPolicy");
  out.stdin_ = Bool(c, "stdin").value_or(false);
  out.tty = Bool(c, "tty").value_or(false);
  out.hash = SpecHash(c);
  return out;
}

std::vector<KeyToPath> DecodeItems(const json& j) {
  std::vector<KeyToPath> out;
  for (const auto& it : Arr(j, "items")) {
    KeyToPath k;
    k.key = Str(it, "key");
    k.path = Str(it, "path");
    if (auto m = Int(it, "mode")) k.mode = static_cast<int32_t>(*m);
    out.push_back(std::move(k));
  }
  return out;
}

ProjectionSource DecodeDownward(const json& d) {
  ProjectionSource s;
  s.kind = ProjectionSource::Kind::kDownwardAPI;
  for (const auto& it : Arr(d, "items")) {
    std::string fp = it.contains("fieldRef") ? Str(it["fieldRef"], "fieldPath") : "";
    if (fp.empty() && it.contains("resourceFieldRef"))
      fp = "resource:" + Str(it["resourceFieldRef"], "containerName") + ":" +
           Str(it["resourceFieldRef"], "resource");
    s.fields.emplace_back(Str(it, "path"), fp);
  }
  return s;
}

Volume DecodeVolume(const json& v) {
  Volume out;
  out.name = Str(v, "name");
  if (v.contains("emptyDir")) {
    out.kind = Volume::Kind::kEmptyDir;
    out.medium = Str(v["emptyDir"], "medium");
    std::string sl = IntOrString(v["emptyDir"], "sizeLimit");
    if (!sl.empty()) {
      if (auto q = base::ParseQuantity(sl)) out.size_limit = *q;
    }
  } else if (v.contains("hostPath")) {
    out.kind = Volume::Kind::kHostPath;
    out.host_path = Str(v["hostPath"], "path");
    out.host_path_type = Str(v["hostPath"], "type");
  } else if (v.contains("configMap")) {
    out.kind = Volume::Kind::kConfigMap;
    out.source_name = Str(v["configMap"], "name");
    out.items = DecodeItems(v["configMap"]);
    out.default_mode = static_cast<int32_t>(Int(v["configMap"], "defaultMode").value_or(0644));
    out.optional = Bool(v["configMap"], "optional").value_or(false);
  } else if (v.contains("secret")) {
    out.kind = Volume::Kind::kSecret;
    out.source_name = Str(v["secret"], "secretName");
    out.items = DecodeItems(v["secret"]);
    out.default_mode = static_cast<int32_t>(Int(v["secret"], "defaultMode").value_or(0644));
    out.optional = Bool(v["secret"], "optional").value_or(false);
  } else if (v.contains("downwardAPI")) {
    out.kind = Volume::Kind::kDownwardAPI;
    out.sources.push_back(DecodeDownward(v["downwardAPI"]));
    out.default_mode = static_cast<int32_t>(Int(v["downwardAPI"], "defaultMode").value_or(0644));
  } else if (v.contains("projected")) {
    out.kind = Volume::Kind::kProjected;
    const json& p = v["projected"];
    out.default_mode = static_cast<int32_t>(Int(p, "defaultMode").value_or(0644));
    for (const auto& src : Arr(p, "sources")) {
      ProjectionSource s;
      if (src.contains("serviceAccountToken")) {
        const json& t = src["serviceAccountToken"];
        s.kind = ProjectionSource::Kind::kServiceAccountToken;
        s.audience = Str(t, "audience");
        s.expiration_seconds = Int(t, "expirationSeconds").value_or(3607);
        s.path = Str(t, "path");
      } else if (src.contains("configMap")) {
        s.kind = ProjectionSource::Kind::kConfigMap;
        s.name = Str(src["configMap"], "name");
        s.items = DecodeItems(src["configMap"]);
        s.optional = Bool(src["configMap"], "optional").value_or(false);
      } else if (src.contains("secret")) {
        s.kind = ProjectionSource::Kind::kSecret;
        s.name = Str(src["secret"], "name");
        s.items = DecodeItems(src["secret"]);
        s.optional = Bool(src["secret"], "optional").value_or(false);
      } else if (src.contains("downwardAPI")) {
        s = DecodeDownward(src["downwardAPI"]);
      }
      out.sources.push_back(std::move(s));
    }
  } else {
    out.kind = Volume::Kind::kUnsupported;
    for (auto& [k, val] : v.items()) {
      if (k != "name") out.unsupported_type = k;
    }
  }
  return out;
}

}  // namespace

base::Result<Pod> DecodePod(const json& j) {
  if (!j.is_object()) return base::Fail("pod is not a JSON object");
  Pod p;
  const json& md = Obj(j, "metadata");
  p.ns = Str(md, "namespace");
  p.name = Str(md, "name");
  p.uid = Str(md, "uid");
  p.resource_version = Str(md, "resourceVersion");
  p.labels = StringMap(md, "labels");
  p.annotations = StringMap(md, "annotations");
  if (md.contains("deletionTimestamp") && md["deletionTimestamp"].is_string())
    p.deletion_timestamp = Str(md, "deletionTimestamp");
  p.deletion_grace_period_seconds = Int(md, "deletionGracePeriodSeconds");
  std::string where = "pod \"" + p.ns + "/" + p.name + "\"";
  if (p.name.empty() || p.uid.empty()) return base::Fail(where + ": metadata.name or metadata.uid missing");

  const json& spec = Obj(j, "spec");
  p.node_name = Str(spec, "nodeName");
  int i = 0;
  for (const auto& c : Arr(spec, "initContainers")) {
    auto r = DecodeContainer(c, where + ": spec.initContainers[" + std::to_string(i++) + "]");
    if (!r) return tl::unexpected(r.error());
    p.init_containers.push_back(std::move(*r));
  }
  i = 0;
  for (const auto& c : Arr(spec, "containers")) {
    auto r = DecodeContainer(c, where + ": spec.containers[" + std::to_string(i++) + "]");
    if (!r) return tl::unexpected(r.error());
    p.containers.push_back(std::move(*r));
  }
  for (const auto& v : Arr(spec, "volumes")) p.volumes.push_back(DecodeVolume(v));
  if (spec.contains("restartPolicy")) p.restart_policy = Str(spec, "restartPolicy");
  p.termination_grace_period_seconds = Int(spec, "terminationGracePeriodSeconds").value_or(30);
  p.active_deadline_seconds = Int(spec, "activeDeadlineSeconds");
  if (spec.contains("dnsPolicy")) p.dns_policy = Str(spec, "dnsPolicy");
  if (spec.contains("dnsConfig") && spec["dnsConfig"].is_object()) {
    DnsConfig d;
    d.nameservers = Strings(spec["dnsConfig"], "nameservers");
    d.searches = Strings(spec["dnsConfig"], "searches");
    for (const auto& o : Arr(spec["dnsConfig"], "options")) d.options.emplace_back(Str(o, "name"), Str(o, "value"));
    p.dns_config = std::move(d);
  }
  p.host_network = Bool(spec, "hostNetwork").value_or(false);
  p.host_pid = Bool(spec, "hostPID").value_or(false);
  p.host_ipc = Bool(spec, "hostIPC").value_or(false);
  p.share_process_namespace = Bool(spec, "shareProcessNamespace").value_or(false);
  p.hostname = Str(spec, "hostname");
  p.subdomain = Str(spec, "subdomain");
  p.service_account_name = Str(spec, "serviceAccountName");
  p.automount_service_account_token = Bool(spec, "automountServiceAccountToken");
  const json& psc = Obj(spec, "securityContext");
  p.security_context.run_as_user = Int(psc, "runAsUser");
  p.security_context.run_as_group = Int(psc, "runAsGroup");
  p.security_context.run_as_non_root = Bool(psc, "runAsNonRoot");
  p.security_context.fs_group = Int(psc, "fsGroup");
  for (const auto& g : Arr(psc, "supplementalGroups")) {
    if (g.is_number_integer()) p.security_context.supplemental_groups.push_back(g.get<int64_t>());
  }
  DecodeSeccomp(psc, &p.security_context.seccomp_type, &p.security_context.seccomp_localhost_profile);
  for (const auto& s : Arr(psc, "sysctls")) p.security_context.sysctls[Str(s, "name")] = Str(s, "value");
  for (const auto& s : Arr(spec, "imagePullSecrets")) p.image_pull_secrets.push_back(Str(s, "name"));
  p.priority_class_name = Str(spec, "priorityClassName");
  if (auto pr = Int(spec, "priority")) p.priority = static_cast<int32_t>(*pr);
  for (const auto& ha : Arr(spec, "hostAliases")) {
    for (const auto& hn : Strings(ha, "hostnames")) p.host_aliases.emplace_back(Str(ha, "ip"), hn);
  }
  const json& st = Obj(j, "status");
  p.phase = Str(st, "phase");
  p.qos_class = Str(st, "qosClass");
  return p;
}

QosClass ComputeQos(const Pod& pod) {
  // K:pkg/apis/core/v1/helper/qos/qos.go: only cpu and memory count; init containers included.
  bool any = false;
  bool guaranteed = true;
  auto visit = [&](const Container& c) {
    const auto& req = c.resources.requests;
    const auto& lim = c.resources.limits;
    if (req.cpu_milli || req.memory_bytes || lim.cpu_milli || lim.memory_bytes) any = true;
    if (!lim.cpu_milli || !lim.memory_bytes) guaranteed = false;
    if (req.cpu_milli && lim.cpu_milli && *req.cpu_milli != *lim.cpu_milli) guaranteed = false;
    if (req.memory_bytes && lim.memory_bytes && *req.memory_bytes != *lim.memory_bytes) guaranteed = false;
  };
  for (const auto& c : pod.init_containers) visit(c);
  for (const auto& c : pod.containers) visit(c);
  if (!any) return QosClass::kBestEffort;
  return guaranteed ? QosClass::kGuaranteed : QosClass::kBurstable;
}

const char* QosName(QosClass q) {
  switch (q) {
    case QosClass::kGuaranteed: return "Guaranteed";
    case QosClass::kBurstable: return "Burstable";
    case QosClass::kBestEffort: return "BestEffort";
  }
  return "BestEffort";
}

}  // namespace agent

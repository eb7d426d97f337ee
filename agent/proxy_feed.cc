#include "agent/proxy_feed.h"

#include <nlohmann/json.hpp>

#include "base/log.h"
#include "base/time.h"

namespace agent {

using nlohmann::json;

namespace {

std::string Str(const json& j, const char* k) {
  auto it = j.find(k);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

std::vector<std::string> Strings(const json& j, const char* k) {
  std::vector<std::string> out;
  auto it = j.find(k);
  if (it == j.end() || !it->is_array()) return out;
  for (const auto& v : *it) {
    if (v.is_string()) out.push_back(v.get<std::string>());
  }
  return out;
}

std::optional<bool> OptBool(const json& j, const char* k) {
  auto it = j.find(k);
  if (it == j.end() || !it->is_boolean()) return std::nullopt;
  return it->get<bool>();
}

}  // namespace

base::Result<netproxy::Service> DecodeService(const json& j) {
  netproxy::Service s;
  const json& md = j.value("metadata", json::object());
  const json& spec = j.value("spec", json::object());
  s.ns = Str(md, "namespace");
  s.name = Str(md, "name");
  std::string where = "service \"" + s.ns + "/" + s.name + "\"";
  std::string type = Str(spec, "type");
  if (type.empty()) type = "ClusterIP";
  auto t = netproxy::ParseServiceType(type);
  if (!t) return base::Fail(where + ": unknown spec.type \"" + type + "\"");
  s.type = *t;
  s.cluster_ip = Str(spec, "clusterIP");
  s.cluster_ips = Strings(spec, "clusterIPs");
  s.external_ips = Strings(spec, "externalIPs");
  s.load_balancer_source_ranges = Strings(spec, "loadBalancerSourceRanges");
  if (Str(spec, "sessionAffinity") == "ClientIP") {
    s.session_affinity = netproxy::SessionAffinity::kClientIP;
    if (spec.contains("sessionAffinityConfig")) {
      const json& c = spec["sessionAffinityConfig"];
      if (c.contains("clientIP") && c["clientIP"].contains("timeoutSeconds"))
        s.session_affinity_timeout_seconds = c["clientIP"]["timeoutSeconds"].get<int32_t>();
    }
  }
  if (Str(spec, "externalTrafficPolicy") == "Local") s.external_traffic_policy = netproxy::TrafficPolicy::kLocal;
  if (Str(spec, "internalTrafficPolicy") == "Local") s.internal_traffic_policy = netproxy::TrafficPolicy::kLocal;
  if (spec.contains("healthCheckNodePort") && spec["healthCheckNodePort"].is_number_integer())
    s.health_check_node_port = spec["healthCheckNodePort"].get<int32_t>();
  if (spec.contains("ports") && spec["ports"].is_array()) {
    for (const auto& p : spec["ports"]) {
      netproxy::ServicePortSpec ps;
      ps.name = Str(p, "name");
      std::string proto = Str(p, "protocol");
      auto pr = netproxy::ParseProtocol(proto.empty() ? "TCP" : proto);
      if (!pr) return base::Fail(where + ": unknown protocol \"" + proto + "\"");
      ps.protocol = *pr;
      ps.port = p.value("port", 0);
      if (p.contains("targetPort")) {
        if (p["targetPort"].is_number_integer()) ps.target_port.number = p["targetPort"].get<int32_t>();
        else if (p["targetPort"].is_string()) ps.target_port.name = p["targetPort"].get<std::string>();
      } else {
        ps.target_port.number = ps.port;
      }
      ps.node_port = p.value("nodePort", 0);
      s.ports.push_back(std::move(ps));
    }
  }
  const json& st = j.value("status", json::object());
  if (st.contains("loadBalancer") && st["loadBalancer"].contains("ingress") && st["loadBalancer"]["ingress"].is_array()) {
    for (const auto& ing : st["loadBalancer"]["ingress"]) {
      std::string ip = Str(ing, "ip");
      std::string mode = Str(ing, "ipMode");
      if (!ip.empty() && (mode.empty() || mode == "VIP")) s.load_balancer_ips.push_back(ip);
    }
  }
  return s;
}

base::Result<netproxy::EndpointSlice> DecodeEndpointSlice(const json& j) {
  netproxy::EndpointSlice e;
  const json& md = j.value("metadata", json::object());
  e.ns = Str(md, "namespace");
  e.name = Str(md, "name");
  if (md.contains("labels") && md["labels"].is_object()) e.service_name = Str(md["labels"], "kubernetes.io/service-name");
  if (md.contains("annotations") && md["annotations"].is_object()) {
    std::string t = Str(md["annotations"], "endpoints.kubernetes.io/last-change-trigger-time");
    if (auto parsed = base::ParseRfc3339(t)) e.last_change_trigger_time = *parsed;
  }
  std::string at = Str(j, "addressType");
  if (at == "IPv6") e.address_type = netproxy::AddressType::kIPv6;
  else if (at == "FQDN") e.address_type = netproxy::AddressType::kFQDN;
  if (j.contains("endpoints") && j["endpoints"].is_array()) {
    for (const auto& ep : j["endpoints"]) {
      netproxy::Endpoint out;
      out.addresses = Strings(ep, "addresses");
      if (ep.contains("conditions") && ep["conditions"].is_object()) {
        out.conditions.ready = OptBool(ep["conditions"], "ready");
        out.conditions.serving = OptBool(ep["conditions"], "serving");
        out.conditions.terminating = OptBool(ep["conditions"], "terminating");
      }
      if (ep.contains("nodeName") && ep["nodeName"].is_string()) out.node_name = ep["nodeName"].get<std::string>();
      if (ep.contains("zone") && ep["zone"].is_string()) out.zone = ep["zone"].get<std::string>();
      if (ep.contains("hints") && ep["hints"].contains("forZones") && ep["hints"]["forZones"].is_array()) {
        for (const auto& z : ep["hints"]["forZones"]) out.hints_for_zones.push_back(Str(z, "name"));
      }
      e.endpoints.push_back(std::move(out));
    }
  }
  if (j.contains("ports") && j["ports"].is_array()) {
    for (const auto& p : j["ports"]) {
      netproxy::EndpointPort port;
      if (p.contains("name") && p["name"].is_string()) port.name = p["name"].get<std::string>();
      if (p.contains("port") && p["port"].is_number_integer()) port.port = p["port"].get<int32_t>();
      std::string proto = Str(p, "protocol");
      if (auto pr = netproxy::ParseProtocol(proto.empty() ? "TCP" : proto)) port.protocol = *pr;
      e.ports.push_back(std::move(port));
    }
  }
  return e;
}

ProxyFeed::ProxyFeed(ApiClientPtr api, netproxy::Proxier* proxier) : api_(std::move(api)), proxier_(proxier) {
  // kube-proxy's selector: skip headless services and services handled by another proxy.
  const std::string selector = "!service.kubernetes.io/headless,!service.kubernetes.io/service-proxy-name";
  auto log_bad = [](const char* what, const base::Error& e) {
    base::log::Warn("skipping undecodable object", {{"kind", what}, {"err", e.message}});
  };
  InformerHandlers sh;
  sh.on_add = [this, log_bad](const Json& o) {
    if (auto s = DecodeService(o)) proxier_->OnServiceAdd(*s);
    else log_bad("Service", s.error());
  };
  sh.on_update = [this, log_bad](const Json& a, const Json& b) {
    auto sa = DecodeService(a);
    auto sb = DecodeService(b);
    if (sa && sb) proxier_->OnServiceUpdate(*sa, *sb);
    else if (sb) proxier_->OnServiceAdd(*sb);
    else log_bad("Service", sb.error());
  };
  sh.on_delete = [this](const Json& o) {
    if (auto s = DecodeService(o)) proxier_->OnServiceDelete(*s);
  };
  sh.on_synced = [this] { proxier_->OnServicesSynced(); };
  InformerOptions so;
  so.resource_path = "/api/v1/services";
  so.label_selector = selector;
  so.name = "services";
  services_ = std::make_unique<Informer>(api_, so, sh);

  InformerHandlers eh;
  eh.on_add = [this, log_bad](const Json& o) {
    if (auto s = DecodeEndpointSlice(o)) proxier_->OnEndpointSliceAdd(*s);
    else log_bad("EndpointSlice", s.error());
  };
  eh.on_update = [this](const Json& a, const Json& b) {
    auto sa = DecodeEndpointSlice(a);
    auto sb = DecodeEndpointSlice(b);
    if (sa && sb) proxier_->OnEndpointSliceUpdate(*sa, *sb);
  };
  eh.on_delete = [this](const Json& o) {
    if (auto s = DecodeEndpointSlice(o)) proxier_->OnEndpointSliceDelete(*s);
  };
  eh.on_synced = [this] { proxier_->OnEndpointSlicesSynced(); };
  InformerOptions eo;
  eo.resource_path = "/apis/discovery.k8s.io/v1/endpointslices";
  eo.label_selector = "!service.kubernetes.io/headless,!service.kubernetes.io/service-proxy-name";
  eo.name = "endpointslices";
  slices_ = std::make_unique<Informer>(api_, eo, eh);
}

ProxyFeed::~ProxyFeed() { Stop(); }

void ProxyFeed::Start() {
  services_->Start();
  slices_->Start();
}

void ProxyFeed::Stop() {
  if (services_) services_->Stop();
  if (slices_) slices_->Stop();
}

bool ProxyFeed::Synced() const { return services_->HasSynced() && slices_->HasSynced(); }

}  // namespace agent

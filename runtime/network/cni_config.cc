#include "runtime/network/cni_config.h"

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "base/file.h"
#include "base/log.h"
#include "base/strings.h"

namespace runtime::net {

using nlohmann::json;

Result<CniNetworkConfig> ParseCniConfig(const std::string& text, const std::string& source) {
  const std::string what = "CNI configuration " + source;
  json j;
  try {
    j = json::parse(text);
  } catch (const std::exception& e) {
    return base::Fail(what + ": invalid JSON: " + e.what());
  }
  if (!j.is_object()) return base::Fail(what + ": not a JSON object");
  CniNetworkConfig net;
  net.source = source;
  net.text = text;
  net.name = j.value("name", "");
  net.cni_version = j.value("cniVersion", "");
  net.disable_check = j.value("disableCheck", false);
  if (net.name.empty()) return base::Fail(what + ": missing \"name\"");
  std::vector<json> plugins;
  if (j.contains("plugins")) {
    if (!j["plugins"].is_array() || j["plugins"].empty()) {
      return base::Fail(what + ": \"plugins\" must be a non-empty list");
    }
    for (const auto& p : j["plugins"]) plugins.push_back(p);
  } else {
    plugins.push_back(j);  // single-plugin .conf
  }
  for (const auto& p : plugins) {
    if (!p.is_object() || !p.contains("type") || !p["type"].is_string() ||
        p["type"].get<std::string>().empty()) {
      return base::Fail(what + ": a plugin has no \"type\"");
    }
    CniPluginConfig pc;
    pc.type = p["type"].get<std::string>();
    if (pc.type.find('/') != std::string::npos) {
      return base::Fail(what + ": invalid plugin type \"" + pc.type + "\"");
    }
    pc.json = p.dump();
    if (p.contains("capabilities") && p["capabilities"].is_object()) {
      pc.port_mappings = p["capabilities"].value("portMappings", false);
    }
    net.plugins.push_back(std::move(pc));
  }
  return net;
}

Result<std::optional<CniNetworkConfig>> LoadCniConfig(const std::string& dir) {
  std::error_code ec;
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    std::string n = e.path().filename();
    if (base::EndsWith(n, ".conf") || base::EndsWith(n, ".conflist") ||
        base::EndsWith(n, ".json")) {
      files.push_back(e.path());
    }
  }
  if (ec && ec != std::errc::no_such_file_or_directory) {
    return base::Fail("read CNI configuration directory " + dir + ": " + ec.message(), ec.value());
  }
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    auto text = base::ReadFile(f);
    if (!text) {
      base::log::Warn("skipping unreadable CNI config",
                      {{"file", f}, {"err", text.error().message}});
      continue;
    }
    auto net = ParseCniConfig(*text, f);
    if (!net) {
      base::log::Warn("skipping invalid CNI config", {{"file", f}, {"err", net.error().message}});
      continue;
    }
    return std::optional<CniNetworkConfig>(std::move(*net));
  }
  return std::optional<CniNetworkConfig>();
}

Result<std::string> BuildPluginInput(const CniNetworkConfig& net, size_t i,
                                     const CniInvocation& inv, const std::string* prev_result) {
  json p;
  try {
    p = json::parse(net.plugins.at(i).json);
    p["name"] = net.name;
    p["cniVersion"] = net.cni_version;
    if (net.plugins[i].port_mappings) {
      json maps = json::array();
      for (const auto& m : inv.port_mappings) {
        if (m.host_port == 0) continue;
        maps.push_back({{"hostPort", m.host_port},
                        {"containerPort", m.container_port},
                        {"protocol", base::ToLower(m.protocol.empty() ? "tcp" : m.protocol)},
                        {"hostIP", m.host_ip}});
      }
      if (!maps.empty()) p["runtimeConfig"]["portMappings"] = maps;
    }
    if (prev_result && !prev_result->empty()) p["prevResult"] = json::parse(*prev_result);
  } catch (const std::exception& e) {
    return base::Fail("build input of CNI plugin " + net.plugins.at(i).type + ": " + e.what());
  }
  return p.dump();
}

Result<SandboxNetStatus> ParseCniResult(const std::string& result_json, const std::string& ifname) {
  json r;
  try {
    r = json::parse(result_json);
  } catch (const std::exception& e) {
    return base::Fail(std::string("invalid CNI result: ") + e.what());
  }
  if (!r.is_object()) return base::Fail("invalid CNI result: not an object");
  SandboxNetStatus st;
  st.interface = ifname;
  auto strip = [](const std::string& cidr) { return cidr.substr(0, cidr.find('/')); };
  std::vector<std::pair<std::string, std::string>> ips;  // address, gateway
  std::vector<bool> on_if;
  if (r.contains("ips") && r["ips"].is_array()) {
    const json* ifaces =
        r.contains("interfaces") && r["interfaces"].is_array() ? &r["interfaces"] : nullptr;
    for (const auto& ip : r["ips"]) {
      std::string addr = ip.value("address", "");
      if (addr.empty()) continue;
      bool mine = true;
      if (ifaces && ip.contains("interface") && ip["interface"].is_number_integer()) {
        size_t idx = ip["interface"].get<size_t>();
        mine = idx < ifaces->size() && (*ifaces)[idx].value("name", "") == ifname;
      }
      ips.emplace_back(strip(addr), ip.value("gateway", ""));
      on_if.push_back(mine);
    }
  } else {  // 0.1.0 / 0.2.0
    for (const char* fam : {"ip4", "ip6"}) {
      if (r.contains(fam) && r[fam].is_object() && !r[fam].value("ip", "").empty()) {
        ips.emplace_back(strip(r[fam].value("ip", "")), r[fam].value("gateway", ""));
        on_if.push_back(true);
      }
    }
  }
  int primary = -1;
  for (int pass = 0; pass < 2 && primary < 0; ++pass) {
    for (size_t i = 0; i < ips.size(); ++i) {
      bool v4 = ips[i].first.find(':') == std::string::npos;
      if (v4 && (pass == 1 || on_if[i])) {
        primary = static_cast<int>(i);
        break;
      }
    }
  }
  if (primary < 0 && !ips.empty()) primary = 0;  // IPv6-only
  if (primary < 0) return base::Fail("CNI result has no IP address");
  st.ip = ips[primary].first;
  st.gateway = ips[primary].second;
  for (size_t i = 0; i < ips.size(); ++i) {
    if (static_cast<int>(i) != primary) st.additional_ips.push_back(ips[i].first);
  }
  return st;
}

std::string DescribeCniError(const std::string& out, const std::string& err) {
  try {
    json e = json::parse(out);
    if (e.is_object() && e.contains("msg")) {
      std::string s = e.value("msg", "");
      std::string details = e.value("details", "");
      if (!details.empty()) s += ": " + details;
      if (e.contains("code")) s += " (code " + std::to_string(e.value("code", 0)) + ")";
      return s;
    }
  } catch (const std::exception&) {
  }
  std::string raw(base::Trim(out.empty() ? err : out));
  if (raw.size() > 2000) raw = raw.substr(0, 2000) + "...";
  return raw.empty() ? "no output" : raw;
}

std::string KubernetesCniArgs(const SandboxNetRequest& req) {
  return "IgnoreUnknown=1;K8S_POD_NAMESPACE=" + req.pod_namespace +
         ";K8S_POD_NAME=" + req.pod_name + ";K8S_POD_INFRA_CONTAINER_ID=" + req.sandbox_id +
         ";K8S_POD_UID=" + req.pod_uid;
}

bool CniSupportsCheck(const std::string& version) {
  int major = 0, minor = 0;
  if (sscanf(version.c_str(), "%d.%d", &major, &minor) < 1) return false;
  return major >= 1 || (major == 0 && minor >= 4);
}

}  // namespace runtime::net

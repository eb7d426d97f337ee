#include "runtime/network/cni_network.h"

#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "base/file.h"
#include "base/log.h"
#include "base/strings.h"
#include "runtime/network/exec.h"

namespace runtime::net {
namespace {

using nlohmann::json;

// temp + rename: atomic against a crash of cubelet (a machine crash kills the pods anyway).
Result<> ReplaceFile(const std::string& path, const std::string& data) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  CUBELET_TRY(base::WriteFile(tmp, data));
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    return base::Errno("rename " + tmp + " to " + path, e);
  }
  return {};
}

}  // namespace

CniNetwork::CniNetwork(CniNetworkOptions options) : options_(std::move(options)) {
  auto ns = NetNamespace::Current();
  if (ns) {
    node_ns_.emplace(std::move(*ns));
  } else {
    node_ns_error_ = ns.error().message;
  }
}

CniNetwork::~CniNetwork() = default;

void CniNetwork::SetNotReady(std::string message) {
  std::lock_guard<std::mutex> l(mu_);
  ready_ = false;
  not_ready_message_ = std::move(message);
}

bool CniNetwork::Ready(std::string* reason, std::string* message) const {
  std::lock_guard<std::mutex> l(mu_);
  if (reason) *reason = ready_ ? "" : "NetworkPluginNotReady";
  if (message) *message = ready_ ? "" : not_ready_message_;
  return ready_;
}

Result<CniNetworkConfig> CniNetwork::LoadConfig() const {
  auto net = LoadCniConfig(options_.conf_dir);
  if (!net) return tl::unexpected(net.error());
  if (!*net) return base::Fail("no CNI configuration in " + options_.conf_dir);
  return std::move(**net);
}

Result<std::string> CniNetwork::FindPlugin(const std::string& type) const {
  for (const auto& dir : options_.bin_dirs) {
    std::string p = dir + "/" + type;
    if (::access(p.c_str(), X_OK) == 0) return p;
  }
  return base::Fail(
      "CNI plugin \"" + type + "\" not found in " + base::Join(options_.bin_dirs, ":"), ENOENT);
}

Result<> CniNetwork::EnsureNodeNetwork(const std::string& pod_cidr) {
  auto r = [&]() -> Result<> {
    if (!options_.conf_template.empty()) {
      if (pod_cidr.empty()) return base::Fail("no pod CIDR");
      auto tmpl = base::ReadFile(options_.conf_template);
      if (!tmpl) return tl::unexpected(tmpl.error().Wrap("read CNI config template"));
      std::string text = *tmpl;
      const std::string key = "{{.PodCIDR}}";
      for (size_t pos; (pos = text.find(key)) != std::string::npos;) {
        text.replace(pos, key.size(), pod_cidr);
      }
      CUBELET_TRY_CTX(ParseCniConfig(text, options_.conf_template), "render CNI config template");
      CUBELET_TRY_CTX(base::MkdirAll(options_.conf_dir), "write CNI config");
      CUBELET_TRY_CTX(ReplaceFile(options_.conf_dir + "/" + options_.conf_template_output, text),
                      "write CNI config");
    }
    auto net = LoadConfig();
    if (!net) return tl::unexpected(net.error());
    for (const auto& p : net->plugins) {
      auto found = FindPlugin(p.type);
      if (!found) return tl::unexpected(found.error());
    }
    base::log::Info(
        "CNI network ready",
        {{"network", net->name}, {"config", net->source}, {"plugins", net->plugins.size()}});
    return {};
  }();
  if (!r) {
    SetNotReady(r.error().message);
    return tl::unexpected(r.error().Wrap("set up CNI network"));
  }
  std::lock_guard<std::mutex> l(mu_);
  ready_ = true;
  not_ready_message_.clear();
  return {};
}

CniInvocation CniNetwork::Invocation(const SandboxNetRequest& req) const {
  CniInvocation inv;
  inv.container_id = req.sandbox_id;
  inv.netns = req.netns_path;
  inv.ifname = options_.interface_name;
  inv.args = KubernetesCniArgs(req);
  inv.port_mappings = req.port_mappings;
  return inv;
}

Result<std::string> CniNetwork::RunPlugin(const CniNetworkConfig& net, size_t i,
                                          const std::string& command, const CniInvocation& inv,
                                          const std::string* prev) const {
  const std::string& type = net.plugins[i].type;
  const std::string what = "CNI plugin " + type + " " + command;
  auto path = FindPlugin(type);
  if (!path) return tl::unexpected(path.error().Wrap(what));
  auto input = BuildPluginInput(net, i, inv, prev);
  if (!input) return tl::unexpected(input.error());
  ExecSpec spec;
  spec.argv = {*path};
  spec.stdin_data = *input;
  spec.env = {{"CNI_COMMAND", command}, {"CNI_CONTAINERID", inv.container_id},
              {"CNI_NETNS", inv.netns}, {"CNI_IFNAME", inv.ifname},
              {"CNI_ARGS", inv.args},   {"CNI_PATH", base::Join(options_.bin_dirs, ":")}};
  if (!node_ns_)
    return base::Fail(what + ": node network namespace unavailable: " + node_ns_error_);
  Result<ExecResult> res;
  {
    auto guard = node_ns_->Enter();  // plugins act in the node's namespace
    if (!guard) return tl::unexpected(guard.error().Wrap(what));
    res = Exec(spec);
  }
  if (!res) return tl::unexpected(res.error().Wrap(what));
  if (!res->err.empty()) {
    base::log::Debug(
        "CNI plugin stderr",
        {{"plugin", type}, {"command", command}, {"stderr", std::string(base::Trim(res->err))}});
  }
  if (res->status != 0) {
    return base::Fail(what + " failed (exit " + std::to_string(res->status) +
                      "): " + DescribeCniError(res->out, res->err));
  }
  return res->out;
}

Result<std::string> CniNetwork::AddList(const CniNetworkConfig& net,
                                        const CniInvocation& inv) const {
  std::string prev;
  for (size_t i = 0; i < net.plugins.size(); ++i) {
    auto out = RunPlugin(net, i, "ADD", inv, i == 0 ? nullptr : &prev);
    if (!out) return out;
    // A plugin may print nothing (e.g. some meta plugins): the previous result stands.
    if (!base::Trim(*out).empty()) prev = *out;
  }
  return prev;
}

Result<> CniNetwork::DelList(const CniNetworkConfig& net, const CniInvocation& inv,
                             const std::string* prev) const {
  // Every plugin gets its DEL even if one fails (they must be idempotent); first error reported.
  std::optional<base::Error> first;
  for (size_t i = net.plugins.size(); i-- > 0;) {
    auto out = RunPlugin(net, i, "DEL", inv, prev);
    if (!out && !first) first = out.error();
  }
  if (first) return tl::unexpected(*first);
  return {};
}

Result<> CniNetwork::CheckList(const CniNetworkConfig& net, const CniInvocation& inv,
                               const std::string& prev) const {
  for (size_t i = 0; i < net.plugins.size(); ++i) {
    auto out = RunPlugin(net, i, "CHECK", inv, &prev);
    if (!out) return tl::unexpected(out.error());
  }
  return {};
}

std::string CniNetwork::CachePath(const std::string& sandbox_id) const {
  return options_.cache_dir + "/" + sandbox_id + "-" + options_.interface_name + ".json";
}

Result<std::optional<CniNetwork::Cached>> CniNetwork::LoadCache(const std::string& id) const {
  std::string path = CachePath(id);
  auto text = base::ReadFile(path);
  if (!text) {
    if (text.error().code == ENOENT) return std::optional<Cached>();
    return tl::unexpected(text.error().Wrap("read CNI cache"));
  }
  try {
    json j = json::parse(*text);
    Cached c;
    c.config_text = j.at("config").get<std::string>();
    c.config_source = j.value("configSource", path);
    if (j.contains("result") && !j["result"].is_null()) c.result = j["result"].dump();
    c.inv.container_id = j.value("containerId", id);
    c.inv.ifname = j.value("ifName", options_.interface_name);
    c.inv.args = j.value("cniArgs", "");
    c.inv.netns = j.value("netns", "");
    if (j.contains("portMappings")) {
      for (const auto& m : j["portMappings"]) {
        c.inv.port_mappings.push_back({m.value("protocol", "tcp"), m.value("containerPort", 0),
                                       m.value("hostPort", 0), m.value("hostIP", "")});
      }
    }
    return std::optional<Cached>(std::move(c));
  } catch (const std::exception& e) {
    return base::Fail("read CNI cache " + path + ": " + e.what());
  }
}

Result<> CniNetwork::SaveCache(const std::string& id, const CniNetworkConfig& net,
                               const CniInvocation& inv, const std::string* result) const {
  json j = {{"kind", "cubeletCniCacheV1"}, {"containerId", inv.container_id},
            {"ifName", inv.ifname},        {"networkName", net.name},
            {"netns", inv.netns},          {"cniArgs", inv.args},
            {"config", net.text},          {"configSource", net.source}};
  json maps = json::array();
  for (const auto& m : inv.port_mappings) {
    maps.push_back({{"protocol", m.protocol},
                    {"containerPort", m.container_port},
                    {"hostPort", m.host_port},
                    {"hostIP", m.host_ip}});
  }
  j["portMappings"] = maps;
  try {
    j["result"] = result && !result->empty() ? json::parse(*result) : json(nullptr);
  } catch (const std::exception& e) {
    return base::Fail(std::string("CNI result is not JSON: ") + e.what());
  }
  CUBELET_TRY_CTX(base::MkdirAll(options_.cache_dir, 0700), "write CNI cache");
  CUBELET_TRY_CTX(ReplaceFile(CachePath(id), j.dump()), "write CNI cache");
  return {};
}

Result<> CniNetwork::RemoveCache(const std::string& id) const {
  std::string path = CachePath(id);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT)
    return base::Errno("remove CNI cache " + path);
  return {};
}

Result<SandboxNetStatus> CniNetwork::Setup(const SandboxNetRequest& req) {
  const std::string what = "set up network of sandbox " + req.sandbox_id;
  if (req.sandbox_id.empty() || req.sandbox_id.find('/') != std::string::npos) {
    return base::Fail(what + ": invalid sandbox id", EINVAL);
  }
  CniInvocation inv = Invocation(req);
  auto cached = LoadCache(req.sandbox_id);
  if (!cached) return tl::unexpected(cached.error().Wrap(what));
  if (*cached) {
    auto& c = **cached;
    auto old = ParseCniConfig(c.config_text, c.config_source);
    if (!old) return tl::unexpected(old.error().Wrap(what + ": cached config"));
    if (c.result) {
      bool fine = true;
      if (options_.check_on_resetup && !old->disable_check && CniSupportsCheck(old->cni_version)) {
        auto chk = CheckList(*old, c.inv, *c.result);
        if (!chk) {
          base::log::Warn("CNI CHECK failed; adding the network again",
                          {{"sandbox", req.sandbox_id}, {"err", chk.error().message}});
          fine = false;
        }
      }
      if (fine) {
        auto st = ParseCniResult(*c.result, inv.ifname);
        if (!st) return tl::unexpected(st.error().Wrap(what));
        return st;
      }
    }
    // Interrupted ADD or a broken network: DEL with what ADD had, then add from scratch.
    auto del = DelList(*old, c.inv, c.result ? &*c.result : nullptr);
    if (!del) return tl::unexpected(del.error().Wrap(what + ": clean up earlier attempt"));
    CUBELET_TRY_CTX(RemoveCache(req.sandbox_id), what);
  }

  auto net = LoadConfig();
  if (!net) {
    SetNotReady(net.error().message);
    return tl::unexpected(net.error().Wrap(what));
  }
  // Marker first: a crash during ADD leaves a cache without result, so the retry DELs first.
  CUBELET_TRY_CTX(SaveCache(req.sandbox_id, *net, inv, nullptr), what);
  auto result = AddList(*net, inv);
  if (!result) {
    // Undo the plugins that did succeed, as containerd does. The marker is for an ADD cut short
    // by a crash; after a failed ADD it goes even when DEL fails too (an invalid configuration
    // fails both the same way): keeping it would only leak an entry that no DEL can clear, and
    // what the plugins made inside the sandbox's namespace goes with the namespace.
    auto del = DelList(*net, inv, nullptr);
    if (!del) {
      base::log::Warn("CNI DEL after a failed ADD failed too",
                      {{"sandbox", req.sandbox_id}, {"err", del.error().message}});
    }
    (void)RemoveCache(req.sandbox_id);
    return tl::unexpected(result.error().Wrap(what));
  }
  auto st = ParseCniResult(*result, inv.ifname);
  if (!st) {
    auto del = DelList(*net, inv, &*result);
    if (del) (void)RemoveCache(req.sandbox_id);
    return tl::unexpected(st.error().Wrap(what));
  }
  CUBELET_TRY_CTX(SaveCache(req.sandbox_id, *net, inv, &*result), what);
  return st;
}

Result<> CniNetwork::Teardown(const SandboxNetRequest& req) {
  const std::string what = "tear down network of sandbox " + req.sandbox_id;
  if (req.sandbox_id.empty() || req.sandbox_id.find('/') != std::string::npos) {
    return base::Fail(what + ": invalid sandbox id", EINVAL);
  }
  auto cached = LoadCache(req.sandbox_id);
  if (!cached) return tl::unexpected(cached.error().Wrap(what));
  CniNetworkConfig net;
  CniInvocation inv = Invocation(req);
  std::optional<std::string> prev;
  if (*cached) {
    auto parsed = ParseCniConfig((*cached)->config_text, (*cached)->config_source);
    if (!parsed) return tl::unexpected(parsed.error().Wrap(what + ": cached config"));
    net = std::move(*parsed);
    inv = (*cached)->inv;
    prev = (*cached)->result;
  } else {
    // Never set up by this runtime (or cache lost): DEL with the current config is still the
    // idempotent way to make sure nothing is left.
    auto cur = LoadCniConfig(options_.conf_dir);
    if (!cur) return tl::unexpected(cur.error().Wrap(what));
    if (!*cur) return {};  // no network configured: nothing can have been set up
    net = std::move(**cur);
  }
  // A namespace already removed is passed as "", which plugins take as "only release the rest".
  inv.netns =
      !req.netns_path.empty() && NetNamespace::IsPinned(req.netns_path) ? req.netns_path : "";
  auto del = DelList(net, inv, prev ? &*prev : nullptr);
  if (!del) return tl::unexpected(del.error().Wrap(what));
  CUBELET_TRY_CTX(RemoveCache(req.sandbox_id), what);
  return {};
}

Result<size_t> CniNetwork::GarbageCollect(const std::set<std::string>& live) {
  const std::string suffix = "-" + options_.interface_name + ".json";
  std::vector<std::string> dead;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(options_.cache_dir, ec)) {
    std::string n = e.path().filename();
    if (!base::EndsWith(n, suffix)) continue;
    std::string id = n.substr(0, n.size() - suffix.size());
    if (!live.count(id)) dead.push_back(id);
  }
  if (ec && ec != std::errc::no_such_file_or_directory) {
    return base::Fail(
        "garbage-collect CNI networks: read " + options_.cache_dir + ": " + ec.message(),
        ec.value());
  }
  size_t n = 0;
  for (const auto& id : dead) {
    SandboxNetRequest req;
    req.sandbox_id = id;
    auto cached = LoadCache(id);
    if (cached && *cached) req.netns_path = (*cached)->inv.netns;
    CUBELET_TRY_CTX(Teardown(req), "garbage-collect CNI networks");
    base::log::Info("released CNI network of vanished sandbox", {{"sandbox", id}});
    ++n;
  }
  return n;
}

Result<> CniNetwork::Check(const SandboxNetRequest& req) {
  const std::string what = "check network of sandbox " + req.sandbox_id;
  auto cached = LoadCache(req.sandbox_id);
  if (!cached) return tl::unexpected(cached.error().Wrap(what));
  if (!*cached || !(*cached)->result) return base::Fail(what + ": not set up", ENOENT);
  auto net = ParseCniConfig((*cached)->config_text, (*cached)->config_source);
  if (!net) return tl::unexpected(net.error().Wrap(what));
  if (net->disable_check) return {};
  if (!CniSupportsCheck(net->cni_version)) {
    return base::Fail(what + ": CNI version " + net->cni_version + " has no CHECK", ENOTSUP);
  }
  CUBELET_TRY_CTX(CheckList(*net, (*cached)->inv, *(*cached)->result), what);
  return {};
}

}  // namespace runtime::net

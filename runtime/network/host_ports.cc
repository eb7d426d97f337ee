#include "runtime/network/host_ports.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <sstream>

#include "base/file.h"
#include "base/strings.h"

namespace runtime::net {
namespace {

constexpr const char* kJumpComment = "cubelet: host ports";

bool Overlap(const HostPortEntry& a, const HostPortEntry& b) {
  return a.protocol == b.protocol && a.host_port == b.host_port &&
         (a.host_ip.empty() || b.host_ip.empty() || a.host_ip == b.host_ip);
}

std::string Serialize(const std::vector<HostPortEntry>& entries) {
  std::string out;
  for (const auto& e : entries) {
    out += e.protocol + " " + (e.host_ip.empty() ? "-" : e.host_ip) + " " +
           std::to_string(e.host_port) + " " + e.pod_ip.ToString() + " " +
           std::to_string(e.container_port) + "\n";
  }
  return out;
}

Result<std::vector<HostPortEntry>> Parse(const std::string& id, const std::string& text) {
  std::vector<HostPortEntry> out;
  for (const auto& line : base::Split(text, '\n', true)) {
    std::istringstream in(line);
    HostPortEntry e;
    std::string host_ip, pod_ip;
    if (!(in >> e.protocol >> host_ip >> e.host_port >> pod_ip >> e.container_port)) {
      return base::Fail("bad host port line \"" + line + "\"");
    }
    auto ip = Ipv4::Parse(pod_ip);
    if (!ip) return tl::unexpected(ip.error());
    e.sandbox_id = id;
    e.host_ip = host_ip == "-" ? "" : host_ip;
    e.pod_ip = *ip;
    out.push_back(e);
  }
  return out;
}

}  // namespace

std::string HostPortEntry::Describe() const {
  return (host_ip.empty() ? "" : host_ip + ":") + std::to_string(host_port) + "/" + protocol;
}

Result<std::vector<HostPortEntry>> HostPortEntries(const std::string& sandbox_id, Ipv4 pod_ip,
                                                   const std::vector<PortMapping>& mappings) {
  std::vector<HostPortEntry> out;
  for (const auto& m : mappings) {
    if (m.host_port == 0) continue;
    HostPortEntry e;
    e.sandbox_id = sandbox_id;
    e.protocol = base::ToLower(m.protocol.empty() ? "tcp" : m.protocol);
    if (e.protocol != "tcp" && e.protocol != "udp" && e.protocol != "sctp") {
      return base::Fail("host port " + std::to_string(m.host_port) + ": unsupported protocol \"" +
                        m.protocol + "\"");
    }
    if (m.host_port < 1 || m.host_port > 65535 || m.container_port < 1 ||
        m.container_port > 65535) {
      return base::Fail("host port " + std::to_string(m.host_port) + " -> container port " +
                        std::to_string(m.container_port) + ": port out of range");
    }
    e.host_port = m.host_port;
    e.container_port = m.container_port;
    e.pod_ip = pod_ip;
    if (!m.host_ip.empty() && m.host_ip != "0.0.0.0") {
      auto ip = Ipv4::Parse(m.host_ip);
      if (!ip) return tl::unexpected(ip.error().Wrap("host port " + std::to_string(m.host_port)));
      e.host_ip = ip->ToString();
    }
    for (const auto& prev : out) {
      if (Overlap(prev, e)) {
        return base::Fail("host port " + e.Describe() + " is mapped twice in the same pod");
      }
    }
    out.push_back(e);
  }
  return out;
}

Result<> CheckHostPortConflicts(const std::vector<HostPortEntry>& mine,
                                const std::vector<HostPortEntry>& others) {
  for (const auto& m : mine) {
    for (const auto& o : others) {
      if (Overlap(m, o)) {
        return base::Fail(
            "host port " + m.Describe() + " is already used by sandbox " + o.sandbox_id,
            EADDRINUSE);
      }
    }
  }
  return {};
}

std::string RenderHostPortRules(const std::vector<HostPortEntry>& entries,
                                const HostPortJumps& add) {
  std::vector<HostPortEntry> sorted = entries;
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) {
    return std::tie(a.host_port, a.protocol, a.host_ip, a.sandbox_id) <
           std::tie(b.host_port, b.protocol, b.host_ip, b.sandbox_id);
  });
  std::string out = "*nat\n";
  out += std::string(":") + kHostPortsChain + " - [0:0]\n";
  out += std::string(":") + kHostPortsMasqChain + " - [0:0]\n";
  for (const auto& e : sorted) {
    std::string comment = " -m comment --comment \"sandbox " + e.sandbox_id.substr(0, 12) +
                          " hostPort " + e.Describe() + "\"";
    out += std::string("-A ") + kHostPortsChain + " -p " + e.protocol +
           (e.host_ip.empty() ? "" : " -d " + e.host_ip + "/32") + " -m " + e.protocol +
           " --dport " + std::to_string(e.host_port) + comment + " -j DNAT --to-destination " +
           e.pod_ip.ToString() + ":" + std::to_string(e.container_port) + "\n";
  }
  // Hairpin: once per pod IP.
  std::vector<std::string> seen;
  for (const auto& e : sorted) {
    std::string ip = e.pod_ip.ToString();
    if (std::find(seen.begin(), seen.end(), ip) != seen.end()) continue;
    seen.push_back(ip);
    out += std::string("-A ") + kHostPortsMasqChain + " -s " + ip + "/32 -d " + ip +
           "/32 -m comment --comment \"sandbox " + e.sandbox_id.substr(0, 12) +
           " hairpin\" -j MASQUERADE\n";
  }
  const std::string local = " -m addrtype --dst-type LOCAL";
  const std::string comment = std::string(" -m comment --comment \"") + kJumpComment + "\"";
  if (add.prerouting) {
    out += "-I PREROUTING" + local + comment + " -j " + kHostPortsChain + "\n";
  }
  if (add.output) out += "-I OUTPUT" + local + comment + " -j " + kHostPortsChain + "\n";
  if (add.postrouting) out += "-I POSTROUTING" + comment + " -j " + kHostPortsMasqChain + "\n";
  out += "COMMIT\n";
  return out;
}

HostPortManager::HostPortManager(std::string dir, IptablesCommands commands)
    : dir_(std::move(dir)), commands_(std::move(commands)) {}

bool HostPortManager::Has(const std::string& sandbox_id) const {
  return base::PathExists(dir_ + "/" + sandbox_id);
}

Result<std::vector<HostPortEntry>> HostPortManager::LoadAll(const std::string& except) const {
  std::vector<HostPortEntry> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir_, ec)) {
    std::string id = e.path().filename();
    if (id == except || id.find(".tmp.") != std::string::npos) continue;
    auto text = base::ReadFile(e.path());
    if (!text) {
      if (text.error().code == ENOENT) continue;
      return tl::unexpected(text.error().Wrap("load host ports"));
    }
    auto entries = Parse(id, *text);
    if (!entries) return tl::unexpected(entries.error().Wrap("load host ports of sandbox " + id));
    out.insert(out.end(), entries->begin(), entries->end());
  }
  if (ec && ec != std::errc::no_such_file_or_directory) {
    return base::Fail("load host ports from " + dir_ + ": " + ec.message(), ec.value());
  }
  return out;
}

Result<> HostPortManager::Set(const std::string& sandbox_id,
                              const std::vector<HostPortEntry>& entries) {
  std::lock_guard<std::mutex> l(mu_);
  std::string path = dir_ + "/" + sandbox_id;
  if (!entries.empty()) {
    auto others = LoadAll(sandbox_id);
    if (!others) return tl::unexpected(others.error());
    CUBELET_TRY(CheckHostPortConflicts(entries, *others));
  }
  if (entries.empty()) {
    if (!base::PathExists(path)) return {};
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      return base::Errno("forget host ports of sandbox " + sandbox_id);
    }
  } else {
    CUBELET_TRY_CTX(base::MkdirAll(dir_, 0700), "save host ports");
    CUBELET_TRY_CTX(base::WriteFileAtomic(path, Serialize(entries), 0600),
                    "save host ports of sandbox " + sandbox_id);
  }
  return ApplyLocked();
}

Result<> HostPortManager::Apply() {
  std::lock_guard<std::mutex> l(mu_);
  return ApplyLocked();
}

Result<> HostPortManager::ApplyLocked() {
  auto all = LoadAll();
  if (!all) return tl::unexpected(all.error());
  // `-C` fails both when the jump is missing and when the chain does not exist yet.
  auto missing = [&](std::vector<std::string> rule) -> Result<bool> {
    std::vector<std::string> argv = {commands_.iptables, "-w", "-t", "nat", "-C"};
    argv.insert(argv.end(), rule.begin(), rule.end());
    std::string ignored;
    auto rc = RunProgram(argv, "", &ignored);
    if (!rc) return tl::unexpected(rc.error().Wrap("check host port jumps"));
    return *rc != 0;
  };
  HostPortJumps add;
  for (auto [chain, flag] :
       {std::pair{"PREROUTING", &add.prerouting}, std::pair{"OUTPUT", &add.output}}) {
    auto m = missing({chain, "-m", "addrtype", "--dst-type", "LOCAL", "-m", "comment", "--comment",
                      kJumpComment, "-j", kHostPortsChain});
    if (!m) return tl::unexpected(m.error());
    *flag = *m;
  }
  auto m = missing(
      {"POSTROUTING", "-m", "comment", "--comment", kJumpComment, "-j", kHostPortsMasqChain});
  if (!m) return tl::unexpected(m.error());
  add.postrouting = *m;
  std::string rules = RenderHostPortRules(*all, add);
  std::string out;
  auto rc = RunProgram({commands_.iptables_restore, "-w", "--noflush"}, rules, &out);
  if (!rc) return tl::unexpected(rc.error().Wrap("apply host port rules"));
  if (*rc != 0) {
    return base::Fail("apply host port rules: " + commands_.iptables_restore +
                      " exited with status " + std::to_string(*rc) + ": " +
                      std::string(base::Trim(out)));
  }
  return {};
}

}  // namespace runtime::net

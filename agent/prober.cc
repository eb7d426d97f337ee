#include "agent/prober.h"

#include <cerrno>
#include <cstdlib>
#include <thread>

#include "agent/probe_http.h"
#include "base/strings.h"

namespace agent {

namespace {

// K:pkg/probe: at most 10 KiB of output or body reach events and logs.
constexpr size_t kMaxOutput = 10 * 1024;
constexpr int kMaxProbeRetries = 3;

// Go's %q for plain strings.
std::string Quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default: out += c;
    }
  }
  return out + "\"";
}

// Go's %v of a []string: "[sh -c exit 1]".
std::string GoList(const std::vector<std::string>& v) { return "[" + base::Join(v, " ") + "]"; }

// format.Pod: "name_namespace(uid)".
std::string PodDesc(const Pod& pod) { return pod.name + "_" + pod.ns + "(" + pod.uid + ")"; }

std::string Combined(const cri::ExecSyncResponse& r) {
  std::string out = r.stdout_ + r.stderr_;
  if (out.size() > kMaxOutput) out.resize(kMaxOutput);
  return out;
}

std::chrono::milliseconds ProbeTimeout(const Probe& p) {
  return std::chrono::seconds(p.timeout_seconds > 0 ? p.timeout_seconds : 1);
}

base::Result<HttpProbeRequest> BuildHttpRequest(const HttpGetAction& a, const ProbeTarget& t,
                                                std::string_view purpose) {
  auto port = ResolveContainerPort(a.port, t.ports);
  if (!port) return tl::unexpected(port.error());
  std::string host = a.host.empty() ? t.pod_ip : a.host;
  if (host.empty()) return base::Fail("pod has no IP yet");
  return NewProbeRequest(FormatProbeUrl(a.scheme, host, *port, a.path), a.headers, purpose);
}

}  // namespace

const char* ProbeTypeName(ProbeType t) {
  switch (t) {
    case ProbeType::kLiveness: return "Liveness";
    case ProbeType::kReadiness: return "Readiness";
    case ProbeType::kStartup: return "Startup";
  }
  return "Unknown";
}

base::Result<int> ResolveContainerPort(const std::string& port, const std::vector<ContainerPort>& ports) {
  int n = -1;
  bool found = false;
  for (const auto& p : ports) {
    if (!p.name.empty() && p.name == port) {
      n = p.container_port;
      found = true;
      break;
    }
  }
  if (!found) {
    // "Last ditch effort - maybe it was an int stored as string?"
    bool digits = !port.empty() && port.size() < 10;
    for (size_t i = 0; i < port.size(); ++i) {
      char c = port[i];
      if (!(c >= '0' && c <= '9') && !(i == 0 && (c == '-' || c == '+') && port.size() > 1)) digits = false;
    }
    if (!digits) return base::Fail("strconv.Atoi: parsing " + Quote(port) + ": invalid syntax", EINVAL);
    n = std::atoi(port.c_str());
  }
  if (n > 0 && n < 65536) return n;
  return base::Fail("invalid port number: " + std::to_string(n), EINVAL);
}

ProbeOutcome HttpProbeVerdict(int code, const std::string& body) {
  if (code >= 200 && code < 400) {
    if (code >= 300) return {ProbeResult::kWarning, "Probe terminated redirects, Response body: " + body, ""};
    return {ProbeResult::kSuccess, body, ""};
  }
  // The kubelet keeps the response body out of the message (it may hold secrets).
  return {ProbeResult::kFailure, "HTTP probe failed with statuscode: " + std::to_string(code), ""};
}

ProbeOutcome ExecProbeVerdict(const base::Result<cri::ExecSyncResponse>& r, const std::vector<std::string>& cmd) {
  if (!r) {
    if (r.error().code == ETIMEDOUT)
      return {ProbeResult::kFailure, "command " + Quote(base::Join(cmd, " ")) + " timed out", ""};
    return {ProbeResult::kUnknown, "", r.error().message};
  }
  return {r->exit_code == 0 ? ProbeResult::kSuccess : ProbeResult::kFailure, Combined(*r), ""};
}

ProbeOutcome Prober::RunOnce(const Probe& probe, const ProbeTarget& t) const {
  if (probe.exec) {
    auto timeout = std::chrono::seconds(probe.timeout_seconds > 0 ? probe.timeout_seconds : 1);
    return ExecProbeVerdict(runtime_->ExecSync(t.container_id, probe.exec->command, timeout), probe.exec->command);
  }
  if (probe.http_get) {
    auto req = BuildHttpRequest(*probe.http_get, t, "probe");
    if (!req) return {ProbeResult::kUnknown, "", req.error().message};
    HttpGetOptions o;
    o.timeout = ProbeTimeout(probe);
    HttpGetResult r = HttpGet(*req, o);
    // Transport errors and timeouts are failures, with Go's error text as the output.
    if (!r.response) return {ProbeResult::kFailure, r.error, ""};
    return HttpProbeVerdict(r.response->code, r.response->body);
  }
  if (probe.tcp_socket) {
    auto port = ResolveContainerPort(probe.tcp_socket->port, t.ports);
    if (!port) return {ProbeResult::kUnknown, "", port.error().message};
    std::string host = probe.tcp_socket->host.empty() ? t.pod_ip : probe.tcp_socket->host;
    if (host.empty()) return {ProbeResult::kUnknown, "", "pod has no IP yet"};
    std::string err = TcpDial(host, *port, ProbeTimeout(probe));
    if (err.empty()) return {ProbeResult::kSuccess, "", ""};
    return {ProbeResult::kFailure, err, ""};
  }
  return {ProbeResult::kUnknown, "", "missing probe handler"};
}

ProbeOutcome Prober::Run(const Probe& probe, const ProbeTarget& target) const {
  ProbeOutcome out;
  for (int i = 0; i < kMaxProbeRetries; ++i) {
    out = RunOnce(probe, target);
    if (out.error.empty()) return out;
  }
  return out;
}

base::Result<> Prober::RunHandler(const Handler& h, const Pod& pod, const Container& c, const ProbeTarget& t,
                                  std::chrono::seconds timeout) const {
  std::string who = "for Container " + Quote(c.name) + " in Pod " + Quote(PodDesc(pod)) + " failed - error: ";
  if (h.exec) {
    auto r = runtime_->ExecSync(t.container_id, h.exec->command, timeout);
    std::string err, output;
    if (!r) {
      err = r.error().message;
    } else if (r->exit_code != 0) {
      // The CRI client's CodeExitError.
      err = "command '" + base::Join(h.exec->command, " ") + "' exited with " + std::to_string(r->exit_code) +
            ": " + r->stderr_;
      output = Combined(*r);
    }
    if (err.empty()) return {};
    return base::Fail("Exec lifecycle hook (" + GoList(h.exec->command) + ") " + who + err + ", message: " +
                      Quote(output));
  }
  if (h.http_get) {
    auto req = BuildHttpRequest(*h.http_get, t, "lifecycle");
    std::string err;
    if (!req) {
      err = req.error().message;
    } else {
      HttpGetOptions o;
      o.follow_non_local_redirects = true;
      o.timeout = timeout.count() > 0 ? std::chrono::duration_cast<std::chrono::milliseconds>(timeout)
                                      : std::chrono::minutes(5);
      // As the kubelet, a hook only fails when no response came; the status code is not judged.
      HttpGetResult r = HttpGet(*req, o);
      if (!r.response) err = r.error;
    }
    if (err.empty()) return {};
    return base::Fail("HTTP lifecycle hook (" + h.http_get->path + ") " + who + err);
  }
  if (h.sleep_seconds) {
    auto d = std::chrono::seconds(std::max<int64_t>(*h.sleep_seconds, 0));
    if (timeout.count() > 0 && d > timeout) d = timeout;
    std::this_thread::sleep_for(d);
    return {};
  }
  return base::Fail("Cannot run handler: invalid handler: container " + Quote(c.name) +
                    " has a lifecycle hook without exec, httpGet or sleep");
}

}  // namespace agent

#include "agent/kubelet_server.h"

#include <poll.h>
#include <sys/stat.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>

#include "agent/cri_log_reader.h"
#include "agent/exec_protocol.h"
#include "agent/kubelet_exec.h"
#include "agent/kubelet_portforward.h"
#include "agent/resource_metrics.h"
#include "agent/kubelet_server_http.h"
#include "agent/kubelet_server_tls.h"
#include "base/file.h"
#include "base/log.h"
#include "base/strings.h"

namespace agent {
namespace {

using kserver::HttpRequest;
using kserver::Peer;
using kserver::ResponseWriter;

constexpr std::string_view kText = "text/plain; charset=utf-8";
constexpr std::string_view kJson = "application/json";
constexpr std::string_view kMetrics = "text/plain; version=0.0.4; charset=utf-8";
// How often a followed log asks the backend whether its container still runs (the kubelet's
// logForceCheckPeriod is 1 s as well).
constexpr auto kFollowStatusPeriod = std::chrono::seconds(1);

// What a backend may not provide ("" = not here): 404 as for an unknown path.
void ReplyOr404(ResponseWriter& w, std::string_view content_type, const std::string& body) {
  if (body.empty()) {
    w.Reply(404, kText, "404 page not found\n");
  } else {
    w.Reply(200, content_type, body);
  }
}

bool IsSubpath(std::string_view path, std::string_view prefix) {
  while (prefix.size() > 1 && prefix.back() == '/') prefix.remove_suffix(1);
  return path == prefix || base::StartsWith(path, std::string(prefix) + "/");
}

// The kubelet's authorizer attributes (K:pkg/kubelet/server/auth.go GetRequestAttributes).
AuthorizationRequest AttributesFor(const HttpRequest& req, const UserInfo& user,
                                   const std::string& node_name) {
  AuthorizationRequest a;
  a.user = user;
  a.name = node_name;
  a.path = req.path;
  if (req.method == "GET" || req.method == "HEAD") {
    a.verb = "get";
  } else if (req.method == "POST") {
    a.verb = "create";
  } else if (req.method == "PUT") {
    a.verb = "update";
  } else if (req.method == "PATCH") {
    a.verb = "patch";
  } else if (req.method == "DELETE") {
    a.verb = "delete";
  }
  if (IsSubpath(req.path, "/stats")) {
    a.subresource = "stats";
  } else if (IsSubpath(req.path, "/metrics")) {
    a.subresource = "metrics";
  } else if (IsSubpath(req.path, "/logs")) {
    a.subresource = "log";
  } else {
    a.subresource = "proxy";
  }
  return a;
}

// Query decoding as the API machinery does for PodLogOptions: bools are true unless "0" or
// "false"; integers must parse (400 "Unable to decode query."); then validation (422).
struct LogQuery {
  LogReadOptions options;
  bool previous = false;
  int status = 200;
  std::string error;
};

bool ParseBool(const std::string& v) { return !(v == "0" || base::ToLower(v) == "false"); }

bool ParseInt64(const std::string& v, int64_t* out) {
  const char* end = v.data() + v.size();
  auto [p, ec] = std::from_chars(v.data(), end, *out);
  return ec == std::errc() && p == end && !v.empty();
}

LogQuery ParseLogQuery(const HttpRequest& req) {
  LogQuery q;
  auto bad = [&](int status, std::string msg) {
    q.status = status;
    q.error = std::move(msg);
    return q;
  };
  if (auto* v = req.Query("follow")) q.options.follow = ParseBool(*v);
  if (auto* v = req.Query("previous")) q.previous = ParseBool(*v);
  if (auto* v = req.Query("timestamps")) q.options.timestamps = ParseBool(*v);
  // Backwards compatibility: "tail" (with "all" = no limit) overrides tailLines.
  const std::string* tail = req.Query("tailLines");
  if (auto* t = req.Query("tail"); t && !t->empty()) tail = *t == "all" ? nullptr : t;
  std::optional<int64_t> tail_lines, limit_bytes, since_seconds;
  std::optional<base::WallTime> since_time;
  int64_t n;
  if (tail) {
    if (!ParseInt64(*tail, &n)) return bad(400, R"({"message": "Unable to decode query."})");
    tail_lines = n;
  }
  if (auto* v = req.Query("limitBytes")) {
    if (!ParseInt64(*v, &n)) return bad(400, R"({"message": "Unable to decode query."})");
    limit_bytes = n;
  }
  if (auto* v = req.Query("sinceSeconds")) {
    if (!ParseInt64(*v, &n)) return bad(400, R"({"message": "Unable to decode query."})");
    since_seconds = n;
  }
  if (auto* v = req.Query("sinceTime")) {
    since_time = base::ParseRfc3339(*v);
    if (!since_time) return bad(400, R"({"message": "Unable to decode query."})");
  }
  if ((tail_lines && *tail_lines < 0) || (limit_bytes && *limit_bytes < 1) ||
      (since_seconds && since_time) || (since_seconds && *since_seconds < 1)) {
    return bad(422, R"({"message": "Invalid request."})");
  }
  if (tail_lines) q.options.tail_lines = *tail_lines;
  if (limit_bytes) q.options.limit_bytes = *limit_bytes;
  if (since_seconds) {
    q.options.since = std::chrono::system_clock::now() - std::chrono::seconds(*since_seconds);
  }
  if (since_time) q.options.since = *since_time;
  return q;
}

}  // namespace

class KubeletServer::Impl {
 public:
  Impl(KubeletServerOptions options, KubeletServerBackend* backend)
      : options_(std::move(options)),
        backend_(backend),
        authorizer_(options_.authorizer ? options_.authorizer : &allow_authenticated_) {}

  base::Result<> Start();
  void Stop();

  int port = 0;
  int healthz_port = 0;

 private:
  base::Result<> PrepareServingCert(std::string* cert, std::string* key);
  void HandleSecure(const HttpRequest& req, const Peer& peer, ResponseWriter& w);
  void HandleHealthzPort(const HttpRequest& req, const Peer& peer, ResponseWriter& w);
  void HandleDebug(const HttpRequest& req, const Peer& peer, ResponseWriter& w);
  // Routes shared by :10250 and the debug socket, after authentication/authorization.
  void Route(const HttpRequest& req, ResponseWriter& w, bool debug);
  void ServeHealthz(ResponseWriter& w);
  void ServeContainerLogs(const HttpRequest& req, ResponseWriter& w);
  void ServeExec(const HttpRequest& req, ResponseWriter& w);
  void ServePortForward(const HttpRequest& req, ResponseWriter& w);
  void StreamLog(const std::string& ns, const std::string& pod, const std::string& container,
                 bool previous, const ContainerLogRef& ref, CriLogReader& reader, bool follow,
                 ResponseWriter& w);

  KubeletServerOptions options_;
  KubeletServerBackend* backend_;
  AllowAuthenticatedAuthorizer allow_authenticated_;
  Authorizer* authorizer_;
  kserver::SslCtxPtr ssl_;
  std::unique_ptr<kserver::HttpServer> http_;
  std::atomic<bool> stopping_{false};
};

base::Result<> KubeletServer::Impl::PrepareServingCert(std::string* cert, std::string* key) {
  if (!options_.tls_cert_file.empty() || !options_.tls_private_key_file.empty()) {
    if (options_.tls_cert_file.empty() || options_.tls_private_key_file.empty()) {
      return base::Fail("kubelet server: --tls-cert-file and --tls-private-key-file go together",
                        EINVAL);
    }
    *cert = options_.tls_cert_file;
    *key = options_.tls_private_key_file;
    return {};
  }
  if (options_.cert_dir.empty()) {
    return base::Fail("kubelet server: no --tls-cert-file and no cert dir for a self-signed one",
                      EINVAL);
  }
  *cert = options_.cert_dir + "/kubelet.crt";
  *key = options_.cert_dir + "/kubelet.key";
  if (base::PathExists(*cert) && base::PathExists(*key)) return {};
  CUBELET_TRY_CTX(base::MkdirAll(options_.cert_dir, 0755), "kubelet server: cert dir");
  std::vector<std::string> sans = options_.cert_sans;
  std::string cn = options_.node_name.empty() ? "cubelet" : options_.node_name;
  if (sans.empty()) sans.push_back(cn);
  CUBELET_TRY_CTX(kserver::WriteSelfSignedCert(*cert, *key, cn, sans),
                  "kubelet server: self-signed serving cert");
  base::log::Info("generated self-signed kubelet serving certificate",
                  {{"cert", *cert}, {"sans", base::Join(sans, ",")}});
  return {};
}

base::Result<> KubeletServer::Impl::Start() {
  std::string cert, key;
  CUBELET_TRY(PrepareServingCert(&cert, &key));
  auto ctx = kserver::MakeServerContext(cert, key, options_.client_ca_file);
  if (!ctx) return tl::unexpected(ctx.error().Wrap("kubelet server"));
  ssl_ = std::move(*ctx);
  if (options_.client_ca_file.empty()) {
    base::log::Warn(
        "kubelet server: no --client-ca-file, every request to the kubelet API "
        "will be refused (401)");
  }
  auto http = std::make_unique<kserver::HttpServer>();
  auto p = http->ListenTcp(
      options_.address, options_.port, ssl_.get(),
      [this](const HttpRequest& r, const Peer& p, ResponseWriter& w) { HandleSecure(r, p, w); });
  if (!p) return tl::unexpected(p.error().Wrap("kubelet server"));
  port = *p;
  if (options_.healthz_port != 0) {
    auto hp = http->ListenTcp(options_.healthz_address,
                              options_.healthz_port < 0 ? 0 : options_.healthz_port, nullptr,
                              [this](const HttpRequest& r, const Peer& p, ResponseWriter& w) {
                                HandleHealthzPort(r, p, w);
                              });
    if (!hp) return tl::unexpected(hp.error().Wrap("kubelet healthz server"));
    healthz_port = *hp;
  }
  if (!options_.debug_socket.empty()) {
    auto d = http->ListenUnix(
        options_.debug_socket,
        [this](const HttpRequest& r, const Peer& p, ResponseWriter& w) { HandleDebug(r, p, w); });
    if (!d) return tl::unexpected(d.error().Wrap("cubelet debug socket"));
  }
  CUBELET_TRY(http->Start());
  http_ = std::move(http);
  base::log::Info("kubelet server listening", {{"address", options_.address},
                                               {"port", port},
                                               {"healthz_port", healthz_port},
                                               {"debug_socket", options_.debug_socket}});
  return {};
}

void KubeletServer::Impl::Stop() {
  stopping_ = true;
  if (http_) http_->Stop();
  http_.reset();
}

void KubeletServer::Impl::HandleSecure(const HttpRequest& req, const Peer& peer,
                                       ResponseWriter& w) {
  UserInfo user = peer.user;
  if (user.name.empty() && options_.token_authenticator &&
      base::StartsWith(req.authorization, "Bearer ")) {
    std::string token(base::Trim(req.authorization.substr(7)));
    auto who = options_.token_authenticator->Authenticate(token);
    if (!who) {
      base::log::Error("kubelet API: token authentication error",
                       {{"path", req.path}, {"error", who.error().message}});
    } else if (*who) {
      user = **who;
    }
  }
  if (user.name.empty()) {
    // Anonymous auth is off (the kubelet's default with a kubeadm configuration).
    base::log::Debug("kubelet API: unauthenticated request",
                     {{"path", req.path},
                      {"cert", peer.why_anon},
                      {"bearer", base::StartsWith(req.authorization, "Bearer ") ? "yes" : "no"}});
    w.Reply(401, kText, "Unauthorized");
    return;
  }
  AuthorizationRequest attrs = AttributesFor(req, user, options_.node_name);
  std::string reason;
  std::string who = "(user=" + attrs.user.name + ", verb=" + attrs.verb +
                    ", resource=" + attrs.resource + ", subresource=" + attrs.subresource + ")";
  auto allowed = authorizer_->Authorize(attrs, &reason);
  if (!allowed) {
    base::log::Error("kubelet API: authorization error", {{"user", attrs.user.name},
                                                          {"verb", attrs.verb},
                                                          {"subresource", attrs.subresource},
                                                          {"path", req.path},
                                                          {"error", allowed.error().message}});
    w.Reply(500, kText, "Authorization error " + who);
    return;
  }
  if (!*allowed) {
    base::log::Info("kubelet API: forbidden", {{"user", attrs.user.name},
                                               {"verb", attrs.verb},
                                               {"subresource", attrs.subresource},
                                               {"path", req.path},
                                               {"reason", reason}});
    std::string msg = "Forbidden " + who;
    if (!reason.empty()) msg += ": " + reason;
    w.Reply(403, kText, msg);
    return;
  }
  Route(req, w, false);
}

void KubeletServer::Impl::HandleHealthzPort(const HttpRequest& req, const Peer&,
                                            ResponseWriter& w) {
  if (req.path == "/healthz") {
    if (req.method != "GET" && req.method != "HEAD") {
      w.Reply(405, kText, "Method Not Allowed");
      return;
    }
    ServeHealthz(w);
    return;
  }
  w.Reply(404, kText, "404 page not found\n");
}

void KubeletServer::Impl::HandleDebug(const HttpRequest& req, const Peer&, ResponseWriter& w) {
  Route(req, w, true);  // the socket is root-only (0600 + SO_PEERCRED): no further checks
}

void KubeletServer::Impl::Route(const HttpRequest& req, ResponseWriter& w, bool debug) {
  if (base::StartsWith(req.path, "/exec/")) {
    if (req.method != "GET" && req.method != "POST") {
      w.Reply(405, kText, "Method Not Allowed");
      return;
    }
    ServeExec(req, w);
    return;
  }
  if (base::StartsWith(req.path, "/portForward/")) {
    if (req.method != "GET" && req.method != "POST") {
      w.Reply(405, kText, "Method Not Allowed");
      return;
    }
    ServePortForward(req, w);
    return;
  }
  bool known = req.path == "/healthz" || req.path == "/pods" || req.path == "/pods/" ||
               req.path == "/stats/summary" || req.path == "/metrics" ||
               req.path == "/metrics/resource" || req.path == "/metrics/cadvisor" ||
               req.path == "/configz" ||
               req.path == "/runningpods" || req.path == "/runningpods/" ||
               base::StartsWith(req.path, "/containerLogs/") ||
               (debug && req.path == "/debug/pods");
  if (!known) {
    w.Reply(404, kText, "404 page not found\n");
    return;
  }
  if (req.method != "GET") {
    w.Reply(405, kText, "Method Not Allowed");
    return;
  }
  if (req.path == "/healthz") {
    ServeHealthz(w);
  } else if (req.path == "/pods" || req.path == "/pods/") {
    w.Reply(200, kJson, backend_->PodsJson());
  } else if (req.path == "/stats/summary") {
    w.Reply(200, kJson, backend_->StatsSummaryJson());
  } else if (req.path == "/metrics") {
    w.Reply(200, kMetrics, backend_->MetricsText());
  } else if (req.path == "/metrics/resource") {
    w.Reply(200, kMetrics, ResourceMetricsText(backend_->StatsSummaryJson()));
  } else if (req.path == "/metrics/cadvisor") {
    ReplyOr404(w, kMetrics, backend_->CadvisorMetricsText());
  } else if (req.path == "/configz") {
    ReplyOr404(w, kJson, backend_->ConfigzJson());
  } else if (req.path == "/runningpods" || req.path == "/runningpods/") {
    ReplyOr404(w, kJson, backend_->RunningPodsJson());
  } else if (req.path == "/debug/pods") {
    w.Reply(200, kJson, backend_->DebugPodsJson());
  } else {
    ServeContainerLogs(req, w);
  }
}

void KubeletServer::Impl::ServeHealthz(ResponseWriter& w) {
  std::string reason;
  if (backend_->Healthy(&reason)) {
    w.Reply(200, kText, "ok");
  } else {
    w.Reply(
        500, kText,
        "[-]" + (reason.empty() ? std::string("unhealthy") : reason) + "\nhealthz check failed\n");
  }
}

void KubeletServer::Impl::ServeContainerLogs(const HttpRequest& req, ResponseWriter& w) {
  // /containerLogs/{podNamespace}/{podID}/{containerName}
  auto parts = base::Split(std::string_view(req.path).substr(strlen("/containerLogs/")), '/');
  if (parts.size() != 3) {
    w.Reply(404, kText, "404 page not found\n");
    return;
  }
  const std::string& ns = parts[0];
  const std::string& pod = parts[1];
  const std::string& container = parts[2];
  if (pod.empty()) return (void)w.Reply(400, kText, R"({"message": "Missing podID."})");
  if (container.empty()) {
    return (void)w.Reply(400, kText, R"({"message": "Missing container name."})");
  }
  if (ns.empty()) return (void)w.Reply(400, kText, R"({"message": "Missing podNamespace."})");
  LogQuery q = ParseLogQuery(req);
  if (q.status != 200) return (void)w.Reply(q.status, kText, q.error);

  auto ref = backend_->FindContainerLog(ns, pod, container, q.previous);
  if (!ref) {
    w.Reply(ref.error().code == ENOENT ? 404 : 400, kText, ref.error().message);
    return;
  }
  auto reader = CriLogReader::Open(ref->path, q.options);
  if (!reader) {
    w.Reply(400, kText,
            "failed to read logs of container \"" + container + "\" in pod \"" + ns + "/" + pod +
                "\": " + reader.error().message);
    return;
  }
  if (!w.BeginStream(200, kText)) return;
  StreamLog(ns, pod, container, q.previous, *ref, **reader, q.options.follow, w);
}

void KubeletServer::Impl::ServeExec(const HttpRequest& req, ResponseWriter& w) {
  // /exec/{podNamespace}/{podID}/{containerName} or /exec/{podNamespace}/{podID}/{uid}/{container}
  auto parts = base::Split(std::string_view(req.path).substr(strlen("/exec/")), '/');
  if (parts.size() != 3 && parts.size() != 4) {
    w.Reply(404, kText, "404 page not found\n");
    return;
  }
  const std::string& ns = parts[0];
  const std::string& pod = parts[1];
  const std::string& container = parts.back();
  auto opts = execproto::ParseExecOptions(req.query);
  if (!opts) return (void)w.Reply(400, kText, opts.error().message);
  auto id = backend_->FindExecContainer(ns, pod, container);
  if (!id) {
    w.Reply(id.error().code == ENOENT ? 404 : 500, kText, id.error().message);
    return;
  }
  if (!options_.runtime) return (void)w.Reply(500, kText, "exec is not supported on this node");
  bool websocket = kserver::IsWebSocketRequest(req);
  if (!websocket && !kserver::IsSpdyRequest(req)) {
    w.Reply(400, kText, "unable to upgrade: missing upgrade headers in request (WebSocket or "
                        "SPDY/3.1 expected)");
    return;
  }
  tl::expected<kserver::WebSocketHandshake, kserver::HandshakeError> ws;
  tl::expected<kserver::SpdyHandshake, kserver::HandshakeError> sp;
  std::vector<std::string> headers;
  std::string protocol;
  if (websocket) {
    ws = kserver::CheckWebSocketHandshake(req);
    if (!ws) return (void)w.Reply(ws.error().status, kText, ws.error().message);
    headers = kserver::WebSocketUpgradeHeaders(*ws);
    protocol = ws->protocol.name.empty() ? "websocket" : ws->protocol.name;
  } else {
    sp = kserver::CheckSpdyHandshake(req);
    if (!sp) return (void)w.Reply(sp.error().status, kText, sp.error().message);
    headers = kserver::SpdyUpgradeHeaders(*sp);
    protocol = "SPDY/3.1+" + sp->name;
  }
  auto session = options_.runtime->Exec(*id, opts->command, opts->stdin, opts->tty);
  if (!session) {
    w.Reply(500, kText, "error executing command in container: " + session.error().message);
    return;
  }
  kserver::RawConnection* conn = w.Upgrade(headers);
  if (!conn) return;  // ~ExecSession kills the command
  auto t0 = std::chrono::steady_clock::now();
  base::log::Info("exec started", {{"pod", ns + "/" + pod},
                                   {"container", container},
                                   {"command", base::Join(opts->command, " ")},
                                   {"protocol", protocol}});
  auto r = websocket ? kserver::ServeWebSocketExec(*conn, ws->protocol.protocol, *opts, **session)
                     : kserver::ServeSpdyExec(*conn, sp->protocol, *opts, **session);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::steady_clock::now() - t0)
                .count();
  if (r.exit_code) {
    base::log::Info("exec finished", {{"pod", ns + "/" + pod},
                                      {"container", container},
                                      {"exitCode", *r.exit_code},
                                      {"clientGone", r.client_gone ? "true" : "false"},
                                      {"ms", ms}});
  } else {
    base::log::Info("exec failed", {{"pod", ns + "/" + pod},
                                    {"container", container},
                                    {"error", r.exit_code.error().message}});
  }
}

void KubeletServer::Impl::ServePortForward(const HttpRequest& req, ResponseWriter& w) {
  // /portForward/{podNamespace}/{podID} or /portForward/{podNamespace}/{podID}/{uid}
  auto parts = base::Split(std::string_view(req.path).substr(strlen("/portForward/")), '/');
  if (parts.size() != 2 && parts.size() != 3) {
    w.Reply(404, kText, "404 page not found\n");
    return;
  }
  const std::string& ns = parts[0];
  const std::string& pod = parts[1];
  std::string uid = parts.size() == 3 ? parts[2] : "";
  auto sandbox = backend_->FindPodSandbox(ns, pod, uid);
  if (!sandbox) {
    w.Reply(sandbox.error().code == ENOENT ? 404 : 500, kText, sandbox.error().message);
    return;
  }
  if (!options_.runtime) {
    return (void)w.Reply(500, kText, "port forwarding is not supported on this node");
  }
  bool websocket = kserver::IsWebSocketRequest(req);
  if (!websocket && !kserver::IsSpdyRequest(req)) {
    w.Reply(400, kText, "unable to upgrade: missing upgrade headers in request (WebSocket or "
                        "SPDY/3.1 expected)");
    return;
  }
  cri::RuntimeService* rt = options_.runtime;
  std::string id = *sandbox;
  // As the kubelet's streaming server: errors name the sandbox, and no UID.
  kserver::PortForwardTarget target{
      id, "", [rt, id](uint16_t port) { return rt->PortForward(id, port); }};
  tl::expected<kserver::WsPortForwardHandshake, kserver::HandshakeError> ws;
  std::vector<std::string> headers;
  std::string protocol;
  if (websocket) {
    ws = kserver::CheckWsPortForwardHandshake(req);
    if (!ws) return (void)w.Reply(ws.error().status, kText, ws.error().message);
    headers = kserver::WebSocketUpgradeHeaders(ws->ws);
    protocol = ws->ws.protocol.name.empty() ? "websocket" : ws->ws.protocol.name;
  } else {
    auto sp = kserver::CheckSpdyPortForwardHandshake(req);
    if (!sp) return (void)w.Reply(sp.error().status, kText, sp.error().message);
    headers = {"Connection: Upgrade", "Upgrade: SPDY/3.1", "X-Stream-Protocol-Version: " + *sp};
    protocol = "SPDY/3.1+" + *sp;
  }
  kserver::RawConnection* conn = w.Upgrade(headers);
  if (!conn) return;
  base::log::Info("port forward started",
                  {{"pod", ns + "/" + pod}, {"sandbox", id}, {"protocol", protocol}});
  auto r = websocket ? kserver::ServeWebSocketPortForward(*conn, *ws, target)
                     : kserver::ServeSpdyPortForward(*conn, target);
  base::log::Info("port forward finished", {{"pod", ns + "/" + pod},
                                            {"connections", r.connections},
                                            {"failed", r.failed},
                                            {"idleTimeout", r.idle_timeout ? "true" : "false"}});
}

void KubeletServer::Impl::StreamLog(const std::string& ns, const std::string& pod,
                                    const std::string& container, bool previous,
                                    const ContainerLogRef& ref, CriLogReader& reader, bool follow,
                                    ResponseWriter& w) {
  using Clock = std::chrono::steady_clock;
  std::string out;
  // Following ends once the container is known to be gone and the file is drained: the status
  // is taken before the last drain, so nothing written before the exit is lost.
  bool container_gone = !ref.running;
  auto last_check = Clock::now();
  for (;;) {
    if (stopping_) return;
    out.clear();
    auto st = reader.Read(&out);
    if (!st) {
      base::log::Warn(
          "read container log",
          {{"pod", ns + "/" + pod}, {"container", container}, {"error", st.error().message}});
      break;
    }
    if (!out.empty() && !w.WriteChunk(out)) return;  // client gone
    if (*st == CriLogReader::Status::kDone) return (void)w.EndStream();
    if (*st == CriLogReader::Status::kData) continue;
    if (!follow) break;
    out.clear();
    auto rotated = reader.ReopenIfRotated(&out);
    if (!out.empty() && !w.WriteChunk(out)) return;
    if (rotated && *rotated) continue;
    if (container_gone) break;

    auto wait = std::chrono::ceil<std::chrono::milliseconds>(kFollowStatusPeriod -
                                                             (Clock::now() - last_check));
    if (wait.count() > 0) {
      pollfd p[3] = {{reader.watch_fd(), POLLIN, 0},
                     {w.socket_fd(), POLLRDHUP, 0},  // not POLLIN: pipelined bytes would spin
                     {w.stop_fd(), POLLIN, 0}};
      int r = poll(p, 3, static_cast<int>(wait.count()));
      if (r < 0 && errno != EINTR) break;
      if (p[1].revents || p[2].revents) return;  // client hung up, or the server is stopping
      if (p[0].revents) reader.DrainWatch();
    }
    if (Clock::now() - last_check >= kFollowStatusPeriod) {
      last_check = Clock::now();
      auto now = backend_->FindContainerLog(ns, pod, container, previous);
      container_gone = !now || !now->running ||
                       (!ref.container_id.empty() ? now->container_id != ref.container_id
                                                  : now->path != ref.path);
    }
  }
  out.clear();
  reader.Finish(&out);
  if (!out.empty() && !w.WriteChunk(out)) return;
  w.EndStream();
}

KubeletServer::KubeletServer(KubeletServerOptions options, KubeletServerBackend* backend)
    : impl_(std::make_unique<Impl>(std::move(options), backend)) {}

KubeletServer::~KubeletServer() { Stop(); }

base::Result<> KubeletServer::Start() { return impl_->Start(); }

void KubeletServer::Stop() { impl_->Stop(); }

int KubeletServer::port() const { return impl_->port; }

int KubeletServer::healthz_port() const { return impl_->healthz_port; }

}  // namespace agent

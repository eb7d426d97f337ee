#pragma once
// The kubelet HTTP API (TLS on :10250), the plain /healthz on 127.0.0.1:10248 and the local
// debug socket that cubectl talks to. One server, three listeners; the agent core supplies the
// data through KubeletServerBackend. Beast/OpenSSL stay in the .cc files.
//
// Authentication on :10250 follows the kubelet with anonymous auth off: an x509 client cert
// verified against --client-ca-file authenticates (user = CN, groups = O); without one, a bearer
// token is checked by the TokenAuthenticator (a TokenReview, --authentication-token-webhook);
// anything else is 401.
// Authorization goes through the Authorizer below: the WebhookAuthorizer (agent/
// webhook_authorizer.h: a SubjectAccessReview, as the kubelet's --authorization-mode=Webhook)
// or, with --authorization-mode=AlwaysAllow, every authenticated user.
//
// Routes: /healthz, /pods, /stats/summary, /metrics, /containerLogs/NS/POD/CTR, and
// /exec/NS/POD/CTR?command=..&stdin=1&stdout=1&stderr=1 (GET/POST with a WebSocket or SPDY/3.1
// upgrade; kubelet_exec.h), on :10250 and on the debug socket (+ /debug/pods there).
//
// DebugPodsJson() schema (produced by the agent core, read by cubectl; all fields present,
// empty string / 0 / false when unknown):
//   {"pods": [{
//      "namespace": "default", "name": "web", "uid": "8f1c...",
//      "phase": "Running",                         // Pending|Running|Succeeded|Failed|Unknown
//      "podIP": "10.244.1.5",                      // "" until the sandbox has an address
//      "startTime": "2024-01-01T00:00:00Z",        // RFC3339, "" if not started
//      "qosClass": "Burstable",
//      "containers": [{
//        "name": "nginx", "image": "nginx:1.25",
//        "containerID": "cubelet://<64 hex>",      // "" if not created yet
//        "state": "running",                       // running|waiting|terminated
//        "reason": "",                  // waiting/terminated reason: CrashLoopBackOff, Error ...
//        "exitCode": 0,                            // terminated only
//        "restartCount": 0, "ready": true,
//        "startedAt": "2024-01-01T00:00:01Z"       // RFC3339, "" if never started
//      }]
//   }]}
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"

namespace cri {
class RuntimeService;
}

namespace agent {

// A container's CRI log file (/var/log/pods/NS_NAME_UID/CTR/N.log). While following, the server
// calls FindContainerLog again about once a second when no new data arrived; the follow ends
// (after draining the file) when running is false or the container_id/path changed (restart).
struct ContainerLogRef {
  std::string path;
  bool running = false;
  std::string container_id;  // optional; used to notice that the container was replaced
};

class KubeletServerBackend {  // implemented by the agent core; called from server threads
 public:
  virtual ~KubeletServerBackend() = default;
  // v1 PodList of the pods bound to this node (the kubelet's /pods).
  virtual std::string PodsJson() = 0;
  // Errors name the object: 'container "x" in pod "ns/p" not found'. Error.code selects the
  // HTTP status: ENOENT -> 404 (unknown pod/container), anything else -> 400 (as the kubelet
  // does for 'previous terminated container "x" in pod "p" not found' or a waiting container).
  virtual base::Result<ContainerLogRef> FindContainerLog(const std::string& ns,
                                                         const std::string& pod,
                                                         const std::string& container,
                                                         bool previous) = 0;
  virtual bool Healthy(std::string* reason) = 0;  // /healthz: false -> 500 with the reason
  virtual std::string MetricsText() = 0;          // Prometheus text format 0.0.4 for /metrics
  virtual std::string StatsSummaryJson() = 0;     // /stats/summary (stats/v1alpha1 Summary)
  virtual std::string DebugPodsJson() = 0;        // schema above; for cubectl
  // /configz: {"kubeletconfig": {...}} ("" = not available: 404).
  virtual std::string ConfigzJson() { return ""; }
  // /runningpods/: the runtime's pods as a v1 PodList (agent/running_pods.h; "" = 404).
  virtual std::string RunningPodsJson() { return ""; }
  // /metrics/cadvisor: Prometheus text (agent/cadvisor_metrics.h; "" = 404).
  virtual std::string CadvisorMetricsText() { return ""; }
  // /exec: the runtime id of the running container `container` of pod ns/pod. Errors as the
  // kubelet's: code ENOENT -> 404 ("pod does not exist"); anything else -> 500, e.g.
  // 'container not found ("x")' when it is not running. Default: exec is not available.
  virtual base::Result<std::string> FindExecContainer(const std::string& ns,
                                                      const std::string& pod,
                                                      const std::string& container) {
    (void)ns, (void)pod, (void)container;
    return base::Fail("exec is not supported on this node", ENOTSUP);
  }
  // /portForward: the ready sandbox of pod ns/pod (and, when `uid` is not empty, that UID).
  // Errors as the kubelet's: ENOENT -> 404 ("pod does not exist", "pod not found" for another
  // UID); anything else -> 500 ('pod not found ("p_ns")' when it has no ready sandbox).
  virtual base::Result<std::string> FindPodSandbox(const std::string& ns, const std::string& pod,
                                                   const std::string& uid) {
    (void)ns, (void)pod, (void)uid;
    return base::Fail("port forwarding is not supported on this node", ENOTSUP);
  }
};

// Who made a request (x509: CN and O of the client cert; debug socket: "system:local-root").
struct UserInfo {
  std::string name;
  std::vector<std::string> groups;
};

// The kubelet's authorizer attributes: resource "nodes", name = node name, verb from the HTTP
// method, subresource "stats" (/stats*), "metrics" (/metrics*), "log" (/logs*), else "proxy".
struct AuthorizationRequest {
  UserInfo user;
  std::string verb;
  std::string resource = "nodes";
  std::string subresource;
  std::string name;
  std::string path;
};

class Authorizer {
 public:
  virtual ~Authorizer() = default;
  // true = allowed; on false *reason may explain (the response is 403 Forbidden). An error
  // means no decision could be made (the response is 500 "Authorization error").
  virtual base::Result<bool> Authorize(const AuthorizationRequest& request,
                                       std::string* reason) = 0;
};

class TokenAuthenticator {
 public:
  virtual ~TokenAuthenticator() = default;
  // The token's user, std::nullopt when the token does not authenticate; an error when no
  // answer could be had (the request is 401 either way).
  virtual base::Result<std::optional<UserInfo>> Authenticate(const std::string& token) = 0;
};

// --authorization-mode=AlwaysAllow: any authenticated user may do anything.
class AllowAuthenticatedAuthorizer final : public Authorizer {
 public:
  base::Result<bool> Authorize(const AuthorizationRequest&, std::string*) override {
    return true;
  }
};

struct KubeletServerOptions {
  std::string node_name;  // authorization attribute "name"; CN of the self-signed cert
  std::string address = "0.0.0.0";
  int port = 10250;  // 0 = any free port (tests; see KubeletServer::port())
  // --tls-cert-file / --tls-private-key-file. If empty, <cert_dir>/kubelet.crt and .key are
  // used, generated (self-signed for cert_sans) when they do not exist, as the kubelet does.
  std::string tls_cert_file, tls_private_key_file;
  std::string cert_dir;                // <root-dir>/pki
  std::vector<std::string> cert_sans;  // node name + node IPs for the self-signed cert
  std::string client_ca_file;          // --client-ca-file; empty = every request is 401
  std::string healthz_address = "127.0.0.1";
  int healthz_port = 10248;  // plain HTTP /healthz; 0 = off (kubelet --healthz-port=0); -1 = any
  std::string debug_socket = "/run/cubelet/cubelet.sock";  // 0600, root only; "" = off
  Authorizer* authorizer = nullptr;                        // nullptr = AllowAuthenticatedAuthorizer
  TokenAuthenticator* token_authenticator = nullptr;       // nullptr = bearer tokens are 401
  // Runs /exec sessions (RuntimeService::Exec on the id from FindExecContainer); nullptr = off.
  cri::RuntimeService* runtime = nullptr;
};

class KubeletServer {
 public:
  KubeletServer(KubeletServerOptions options, KubeletServerBackend* backend);
  ~KubeletServer();  // Stop()s
  KubeletServer(const KubeletServer&) = delete;
  KubeletServer& operator=(const KubeletServer&) = delete;

  // Binds all listeners and starts serving on background threads. Errors name the listener
  // ("listen on 0.0.0.0:10250: Address already in use") or the cert file.
  base::Result<> Start();
  // Closes listeners, ends open streams and joins all threads. Idempotent.
  void Stop();

  int port() const;          // bound TLS port (after Start)
  int healthz_port() const;  // bound healthz port, 0 if off

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace agent

// KubeletServer end to end on loopback: real TLS with certs made by the openssl CLI, requests
// made by curl (as an API server's proxy would), the debug socket driven by the real cubectl.
#include "agent/kubelet_server.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>

#include "agent/cubectl_table.h"

#ifndef CUBECTL_BINARY
#error "CUBECTL_BINARY must point at the cubectl executable"
#endif

namespace {

std::string Sh(const std::string& cmd, int* rc = nullptr) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  REQUIRE(p);
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int status = pclose(p);
  if (rc) *rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

std::string Slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void Append(const std::string& path, const std::string& data) {
  std::ofstream f(path, std::ios::app | std::ios::binary);
  f << data;
}

std::string CriLine(int i, const std::string& msg, const char* tag = "F") {
  char ts[64];
  snprintf(ts, sizeof ts, "2024-01-01T00:00:%02d.%09dZ", i % 60, 123000000 + i);
  return std::string(ts) + " stdout " + tag + " " + msg + "\n";
}

const char* kDebugPods = R"({"pods": [{"namespace": "default", "name": "web",
  "uid": "11111111-1111-1111-1111-111111111111", "phase": "Running", "podIP": "10.244.0.7",
  "startTime": "2024-01-01T00:00:00Z", "qosClass": "BestEffort",
  "containers": [{"name": "app", "image": "busybox",
    "containerID": "cubelet://0123456789abcdef0123456789abcdef", "state": "running",
    "reason": "", "exitCode": 0, "restartCount": 2, "ready": true,
    "startedAt": "2024-01-01T00:00:01Z"}]}]})";

class FakeBackend : public agent::KubeletServerBackend {
 public:
  std::string PodsJson() override {
    return R"({"kind":"PodList","apiVersion":"v1","metadata":{},"items":[{"metadata":{"name":"web","namespace":"default"}}]})";
  }
  base::Result<agent::ContainerLogRef> FindContainerLog(const std::string& ns,
                                                        const std::string& pod,
                                                        const std::string& container,
                                                        bool previous) override {
    std::lock_guard<std::mutex> lock(mu);
    ++find_calls;
    if (ns != "default" || pod != "web") {
      return base::Fail("pod \"" + ns + "/" + pod + "\" not found", ENOENT);
    }
    if (container != "app") {
      return base::Fail(
          "container \"" + container + "\" in pod \"" + ns + "/" + pod + "\" not found", ENOENT);
    }
    if (previous) {
      return base::Fail("previous terminated container \"app\" in pod \"default/web\" not found",
                        EINVAL);
    }
    return agent::ContainerLogRef{log_path, running.load(), "app-1"};
  }
  bool Healthy(std::string* reason) override {
    if (healthy) return true;
    *reason = "syncloop failed: pleg not ready";
    return false;
  }
  std::string MetricsText() override { return "# TYPE cubelet_up gauge\ncubelet_up 1\n"; }
  std::string StatsSummaryJson() override { return R"({"node":{"nodeName":"node1"},"pods":[]})"; }
  std::string DebugPodsJson() override { return kDebugPods; }
  std::string ConfigzJson() override { return configz; }
  std::string RunningPodsJson() override { return R"({"kind":"PodList","apiVersion":"v1","metadata":{},"items":[]})"; }
  std::string CadvisorMetricsText() override { return "# TYPE container_processes gauge\n"; }

  std::string configz = R"({"kubeletconfig":{"port":10250}})";
  std::mutex mu;
  std::string log_path;
  std::atomic<bool> running{true};
  std::atomic<bool> healthy{true};
  int find_calls = 0;
};

class RecordingAuthorizer : public agent::Authorizer {
 public:
  base::Result<bool> Authorize(const agent::AuthorizationRequest& r,
                               std::string* reason) override {
    std::lock_guard<std::mutex> lock(mu);
    last = r;
    if (r.path == "/stats/summary" && deny_stats) {
      *reason = "stats are off limits";
      return false;
    }
    if (r.path == "/pods" && fail_pods) return base::Fail("SubjectAccessReview: connection refused");
    return true;
  }
  std::mutex mu;
  agent::AuthorizationRequest last;
  bool deny_stats = false;
  bool fail_pods = false;
};

// CA, a client cert for the API server (as the test API server uses), a cert from another CA,
// a server-only cert from our CA (wrong EKU).
struct Pki {
  std::string dir;
  Pki() {
    char tmpl[] = "/tmp/kserver-test-XXXXXX";
    dir = mkdtemp(tmpl);
    std::string script = R"(set -e
cd ')" + dir + R"('
gen_ca() { openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -keyout $1.key -out $1.crt -subj "/CN=$1" -days 2 2>/dev/null; }
gen_cert() {  # name ca subject eku
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $1.key -out $1.csr \
    -subj "$3" 2>/dev/null
  printf 'extendedKeyUsage=%s\n' "$4" > $1.ext
  openssl x509 -req -in $1.csr -CA $2.crt -CAkey $2.key -CAcreateserial -out $1.crt -days 2 \
    -extfile $1.ext 2>/dev/null
}
gen_ca ca
gen_ca rogue-ca
gen_cert client ca "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
gen_cert rogue rogue-ca "/O=system:masters/CN=intruder" clientAuth
gen_cert serveronly ca "/CN=not-a-client" serverAuth
echo done
)";
    int rc = 0;
    std::string out = Sh("bash -c '" + Escape(script) + "' 2>&1", &rc);
    INFO(out);
    REQUIRE(rc == 0);
  }
  // Runs at exit, after Catch is gone: no REQUIRE in here.
  ~Pki() { (void)!std::system(("rm -rf '" + dir + "'").c_str()); }
  static std::string Escape(const std::string& s) {
    std::string o;
    for (char c : s) {
      if (c == '\'') {
        o += "'\\''";
      } else {
        o += c;
      }
    }
    return o;
  }
};

// Generated once per test process (the openssl CLI is slow here).
const Pki& SharedPki() {
  static Pki pki;
  return pki;
}

struct TempDir {
  std::string dir;
  TempDir() {
    char tmpl[] = "/tmp/kserver-work-XXXXXX";
    dir = mkdtemp(tmpl);
  }
  ~TempDir() { Sh("rm -rf '" + dir + "'"); }
};

struct CurlResult {
  int code = 0;
  std::string body;
  std::string content_type;
};

// Tokens as a TokenReview would answer them: "good" is metrics-server, "down" has no answer.
class FakeTokens : public agent::TokenAuthenticator {
 public:
  base::Result<std::optional<agent::UserInfo>> Authenticate(const std::string& token) override {
    std::lock_guard<std::mutex> lock(mu);
    seen.push_back(token);
    if (token == "down") return base::Fail("TokenReview: connection refused");
    if (token != "good") return std::optional<agent::UserInfo>();
    return std::optional<agent::UserInfo>(agent::UserInfo{
        "system:serviceaccount:kube-system:metrics-server", {"system:serviceaccounts"}});
  }
  std::mutex mu;
  std::vector<std::string> seen;
};

struct Fixture {
  const Pki& pki = SharedPki();
  TempDir work;
  FakeBackend backend;
  RecordingAuthorizer authz;
  FakeTokens tokens;
  std::unique_ptr<agent::KubeletServer> server;
  std::string socket_path;
  std::string base_url;

  Fixture() {
    backend.log_path = work.dir + "/pods/default_web_uid/app/0.log";
    Sh("mkdir -p '" + work.dir + "/pods/default_web_uid/app'");
    std::string lines;
    for (int i = 1; i <= 5; ++i) lines += CriLine(i, "line " + std::to_string(i));
    Append(backend.log_path, lines);
    socket_path = work.dir + "/run/cubelet.sock";
    agent::KubeletServerOptions o;
    o.node_name = "node1";
    o.address = "127.0.0.1";
    o.port = 0;
    o.cert_dir = work.dir + "/pki";
    o.cert_sans = {"node1", "127.0.0.1"};
    o.client_ca_file = pki.dir + "/ca.crt";
    o.healthz_address = "127.0.0.1";
    o.healthz_port = -1;
    o.debug_socket = socket_path;
    o.authorizer = &authz;
    o.token_authenticator = &tokens;
    server = std::make_unique<agent::KubeletServer>(o, &backend);
    auto r = server->Start();
    INFO((r ? std::string() : r.error().message));
    REQUIRE(r);
    REQUIRE(server->port() > 0);
    base_url = "https://127.0.0.1:" + std::to_string(server->port());
  }

  // curl as a client of :10250. cert: "client", "rogue", "serveronly" or "" (anonymous).
  CurlResult Curl(const std::string& path, const std::string& cert = "client",
                  const std::string& extra = "") {
    std::string cmd = "timeout 20 curl -sS --cacert '" + work.dir + "/pki/kubelet.crt'";
    if (!cert.empty()) {
      cmd += " --cert '" + pki.dir + "/" + cert + ".crt' --key '" + pki.dir + "/" + cert + ".key'";
    }
    std::string body_file = work.dir + "/body";
    cmd += " " + extra + " -o '" + body_file + "' -w '%{http_code} %{content_type}' '" + base_url +
           path + "' 2>&1";
    CurlResult r;
    std::string out = Sh(cmd);
    std::istringstream in(out);
    in >> r.code;
    std::getline(in, r.content_type);
    if (!r.content_type.empty() && r.content_type[0] == ' ') r.content_type.erase(0, 1);
    r.body = Slurp(body_file);
    INFO("curl output: " << out);
    return r;
  }
};

}  // namespace

TEST_CASE("kubelet server: authentication on :10250") {
  Fixture f;
  SECTION("anonymous requests are 401") {
    auto r = f.Curl("/healthz", "");
    CHECK(r.code == 401);
    CHECK(r.body == "Unauthorized");
    CHECK(f.Curl("/pods", "").code == 401);
    CHECK(f.Curl("/containerLogs/default/web/app", "").code == 401);
  }
  SECTION("a cert from another CA is 401") { CHECK(f.Curl("/healthz", "rogue").code == 401); }
  SECTION("a cert without clientAuth usage is 401") {
    CHECK(f.Curl("/healthz", "serveronly").code == 401);
  }
  SECTION("bearer tokens: the TokenReview's user, else 401") {
    auto r = f.Curl("/stats/summary", "", "-H 'Authorization: Bearer good'");
    CHECK(r.code == 200);
    {
      std::lock_guard<std::mutex> lock(f.authz.mu);
      CHECK(f.authz.last.user.name == "system:serviceaccount:kube-system:metrics-server");
      CHECK(f.authz.last.subresource == "stats");
    }
    CHECK(f.Curl("/healthz", "", "-H 'Authorization: Bearer abc.def.ghi'").code == 401);
    CHECK(f.Curl("/healthz", "", "-H 'Authorization: Bearer down'").code == 401);
    std::lock_guard<std::mutex> lock(f.tokens.mu);
    CHECK(f.tokens.seen == std::vector<std::string>{"good", "abc.def.ghi", "down"});
  }
  SECTION("a client certificate wins; its request never asks about a token") {
    CHECK(f.Curl("/healthz", "client", "-H 'Authorization: Bearer abc'").code == 200);
    std::lock_guard<std::mutex> lock(f.tokens.mu);
    CHECK(f.tokens.seen.empty());
  }
  SECTION("the API server's client cert is accepted and its user passed to the authorizer") {
    auto r = f.Curl("/healthz");
    CHECK(r.code == 200);
    CHECK(r.body == "ok");
    std::lock_guard<std::mutex> lock(f.authz.mu);
    CHECK(f.authz.last.user.name == "kube-apiserver-kubelet-client");
    CHECK(f.authz.last.user.groups == std::vector<std::string>{"system:masters"});
    CHECK(f.authz.last.verb == "get");
    CHECK(f.authz.last.resource == "nodes");
    CHECK(f.authz.last.name == "node1");
    CHECK(f.authz.last.subresource == "proxy");
  }
  SECTION("the authorizer's denial is 403 and subresources follow the kubelet") {
    f.authz.deny_stats = true;
    auto r = f.Curl("/stats/summary");
    CHECK(r.code == 403);
    CHECK(r.body ==
          "Forbidden (user=kube-apiserver-kubelet-client, verb=get, resource=nodes, "
          "subresource=stats): stats are off limits");
    f.Curl("/metrics");
    std::lock_guard<std::mutex> lock(f.authz.mu);
    CHECK(f.authz.last.subresource == "metrics");
  }
  SECTION("no decision (the webhook is unreachable) is a 500, never an allow") {
    f.authz.fail_pods = true;
    auto r = f.Curl("/pods");
    CHECK(r.code == 500);
    CHECK(r.body ==
          "Authorization error (user=kube-apiserver-kubelet-client, verb=get, resource=nodes, "
          "subresource=proxy)");
  }
  SECTION("the self-signed serving cert covers the node IP (curl verifies it, no -k)") {
    std::string text = Sh("openssl x509 -noout -text -in '" + f.work.dir + "/pki/kubelet.crt'");
    CHECK(text.find("IP Address:127.0.0.1") != std::string::npos);
    CHECK(text.find("DNS:node1") != std::string::npos);
    CHECK(text.find("Subject: CN = node1@") != std::string::npos);
    struct stat st;
    REQUIRE(stat((f.work.dir + "/pki/kubelet.key").c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
  }
}

TEST_CASE("kubelet server: routes") {
  Fixture f;
  auto pods = f.Curl("/pods");
  CHECK(pods.code == 200);
  CHECK(pods.content_type == "application/json");
  CHECK(pods.body == f.backend.PodsJson());

  auto metrics = f.Curl("/metrics");
  CHECK(metrics.code == 200);
  CHECK(metrics.content_type == "text/plain; version=0.0.4; charset=utf-8");
  CHECK(metrics.body == "# TYPE cubelet_up gauge\ncubelet_up 1\n");

  auto stats = f.Curl("/stats/summary");
  CHECK(stats.code == 200);
  CHECK(stats.body == f.backend.StatsSummaryJson());

  auto configz = f.Curl("/configz");
  CHECK(configz.code == 200);
  CHECK(configz.content_type == "application/json");
  CHECK(configz.body == f.backend.configz);
  CHECK(f.Curl("/configz", "client", "-X POST").code == 405);
  f.backend.configz.clear();  // a backend without it
  CHECK(f.Curl("/configz").code == 404);
  auto cadvisor = f.Curl("/metrics/cadvisor");
  CHECK(cadvisor.code == 200);
  CHECK(cadvisor.content_type == "text/plain; version=0.0.4; charset=utf-8");
  CHECK(cadvisor.body == f.backend.CadvisorMetricsText());
  for (const char* path : {"/runningpods/", "/runningpods"}) {
    auto running = f.Curl(path);
    CHECK(running.code == 200);
    CHECK(running.body == f.backend.RunningPodsJson());
  }

  CHECK(f.Curl("/nope").code == 404);
  CHECK(f.Curl("/debug/pods").code == 404);  // debug view only on the local socket
  CHECK(f.Curl("/pods", "client", "-X POST").code == 405);

  f.backend.healthy = false;
  auto h = f.Curl("/healthz");
  CHECK(h.code == 500);
  CHECK(h.body.find("syncloop failed: pleg not ready") != std::string::npos);

  // Plain /healthz on the healthz port.
  f.backend.healthy = true;
  int rc = 0;
  std::string port = std::to_string(f.server->healthz_port());
  REQUIRE(f.server->healthz_port() > 0);
  CHECK(Sh("timeout 10 curl -s http://127.0.0.1:" + port + "/healthz", &rc) == "ok");
  CHECK(Sh("timeout 10 curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:" + port +
           "/pods") == "404");
}

TEST_CASE("kubelet server: containerLogs") {
  Fixture f;
  SECTION("whole log, tailLines, timestamps, limitBytes") {
    auto all = f.Curl("/containerLogs/default/web/app");
    CHECK(all.code == 200);
    CHECK(all.content_type == "text/plain; charset=utf-8");
    CHECK(all.body == "line 1\nline 2\nline 3\nline 4\nline 5\n");

    CHECK(f.Curl("/containerLogs/default/web/app?tailLines=2").body == "line 4\nline 5\n");
    CHECK(f.Curl("/containerLogs/default/web/app?tail=1").body == "line 5\n");  // legacy name
    CHECK(f.Curl("/containerLogs/default/web/app?tailLines=2&timestamps=true").body ==
          "2024-01-01T00:00:04.123000004Z line 4\n2024-01-01T00:00:05.123000005Z line 5\n");
    CHECK(f.Curl("/containerLogs/default/web/app?limitBytes=9").body == "line 1\nli");
    CHECK(f.Curl("/containerLogs/default/web/app?sinceTime=2024-01-01T00:00:04Z").body ==
          "line 4\nline 5\n");
  }
  SECTION("errors") {
    auto nf = f.Curl("/containerLogs/default/web/nope");
    CHECK(nf.code == 404);
    CHECK(nf.body == "container \"nope\" in pod \"default/web\" not found");
    CHECK(f.Curl("/containerLogs/default/other/app").code == 404);
    auto prev = f.Curl("/containerLogs/default/web/app?previous=true");
    CHECK(prev.code == 400);
    CHECK(prev.body.find("previous terminated container") != std::string::npos);
    CHECK(f.Curl("/containerLogs/default/web/app?tailLines=-1").code == 422);
    CHECK(f.Curl("/containerLogs/default/web/app?tailLines=abc").code == 400);
    CHECK(f.Curl("/containerLogs/default/web/app?sinceSeconds=5&sinceTime=2024-01-01T00:00:04Z")
              .code == 422);
    CHECK(f.Curl("/containerLogs/default//app").code == 400);
    CHECK(f.Curl("/containerLogs/default/web").code == 404);
  }
  SECTION("follow streams appended lines, survives rotation, ends when the container stops") {
    std::string cmd =
        "timeout 30 curl -sSN --cacert '" + f.work.dir + "/pki/kubelet.crt' --cert '" + f.pki.dir +
        "/client.crt' --key '" + f.pki.dir + "/client.key' '" + f.base_url +
        "/containerLogs/default/web/app?follow=true&tailLines=1'; " + "echo \"curl-exit=$?\"";
    FILE* p = popen(cmd.c_str(), "r");
    REQUIRE(p);
    auto next_line = [&] {
      char buf[512];
      if (!fgets(buf, sizeof buf, p)) return std::string("<eof>");
      return std::string(buf);
    };
    CHECK(next_line() == "line 5\n");
    // Written after the request is in flight: must arrive through the open stream.
    Append(f.backend.log_path, CriLine(6, "line 6"));
    CHECK(next_line() == "line 6\n");
    Append(f.backend.log_path, CriLine(7, "par", "P") + CriLine(8, "tial"));
    CHECK(next_line() == "partial\n");
    // Rotation: the runtime's file is renamed and a new one starts at the same path.
    std::string rotated = f.backend.log_path + ".1";
    REQUIRE(rename(f.backend.log_path.c_str(), rotated.c_str()) == 0);
    Append(f.backend.log_path, CriLine(9, "after rotation"));
    CHECK(next_line() == "after rotation\n");
    // The container stops after a last line: it is delivered, then the stream ends cleanly
    // (curl exits 0 only if the chunked body was terminated properly).
    auto stop_at = std::chrono::steady_clock::now();
    Append(f.backend.log_path, CriLine(10, "last words"));
    f.backend.running = false;
    CHECK(next_line() == "last words\n");
    CHECK(next_line() == "curl-exit=0\n");
    CHECK(std::chrono::steady_clock::now() - stop_at < std::chrono::seconds(5));
    pclose(p);
  }
  SECTION("a follow without the container running reads to the end and stops") {
    f.backend.running = false;
    auto r = f.Curl("/containerLogs/default/web/app?follow=true&tailLines=1");
    CHECK(r.code == 200);
    CHECK(r.body == "line 5\n");
  }
  SECTION("Stop() ends an open follow stream") {
    std::string cmd = "timeout 30 curl -sSN --cacert '" + f.work.dir +
                      "/pki/kubelet.crt' --cert '" + f.pki.dir + "/client.crt' --key '" +
                      f.pki.dir + "/client.key' '" + f.base_url +
                      "/containerLogs/default/web/app?follow=true&tailLines=1' " +
                      "2>/dev/null; echo \"curl-exit=$?\"";
    FILE* p = popen(cmd.c_str(), "r");
    REQUIRE(p);
    char buf[512];
    REQUIRE(fgets(buf, sizeof buf, p));
    CHECK(std::string(buf) == "line 5\n");
    auto t0 = std::chrono::steady_clock::now();
    f.server->Stop();
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(3));
    REQUIRE(fgets(buf, sizeof buf, p));
    // The body was cut off (not a clean end): curl reports a partial transfer (18).
    CHECK(std::string(buf) == "curl-exit=18\n");
    pclose(p);
  }
}

TEST_CASE("kubelet server: a Go TLS client (kubectl) authenticates with its client cert") {
  if (access("/usr/bin/kubectl", X_OK) != 0) {
    WARN("kubectl not installed: Go TLS interop not checked");
    return;
  }
  Fixture f;
  std::string kubectl = "KUBECONFIG=/dev/null timeout 20 kubectl --server=" + f.base_url +
                        " --certificate-authority='" + f.work.dir + "/pki/kubelet.crt'" +
                        " --client-certificate='" + f.pki.dir + "/client.crt'" + " --client-key='" +
                        f.pki.dir + "/client.key' get --raw ";
  int rc = 0;
  std::string out = Sh(kubectl + "/healthz 2>&1", &rc);
  CHECK(rc == 0);
  CHECK(out == "ok");
  out = Sh(kubectl + "'/containerLogs/default/web/app?tailLines=2&timestamps=true' 2>&1", &rc);
  CHECK(rc == 0);
  CHECK(out == "2024-01-01T00:00:04.123000004Z line 4\n2024-01-01T00:00:05.123000005Z line 5\n");
}

TEST_CASE("kubelet server: debug socket and cubectl") {
  Fixture f;
  struct stat st;
  REQUIRE(stat(f.socket_path.c_str(), &st) == 0);
  CHECK(S_ISSOCK(st.st_mode));
  CHECK((st.st_mode & 0777) == 0600);

  int rc = 0;
  std::string raw = Sh(
      "timeout 10 curl -s --unix-socket '" + f.socket_path + "' http://localhost/debug/pods", &rc);
  CHECK(raw == kDebugPods);

  std::string out = Sh(
      std::string("timeout 10 ") + CUBECTL_BINARY + " --socket '" + f.socket_path + "' pods 2>&1",
      &rc);
  CHECK(rc == 0);
  auto want = agent::cubectl::RenderPodTable(kDebugPods, std::chrono::system_clock::now());
  REQUIRE(want);
  // The AGE column moves with the clock: compare all but the first line's tail.
  CHECK(out.substr(0, out.find("\n")) == want->substr(0, want->find("\n")));
  CHECK(out.find("default     web    11111111-1111-1111-1111-111111111111   Running   "
                 "10.244.0.7   1/1          2") != std::string::npos);
  CHECK(out.find("\n  app   Running   2   0123456789ab   busybox\n") != std::string::npos);

  std::string json = Sh(std::string("timeout 10 ") + CUBECTL_BINARY + " --socket '" +
                            f.socket_path + "' pods -o json",
                        &rc);
  CHECK(rc == 0);
  CHECK(json.find("\"podIP\": \"10.244.0.7\"") != std::string::npos);

  // Logs through the socket; the container is picked when the pod has only one.
  std::string logs = Sh(std::string("timeout 10 ") + CUBECTL_BINARY + " --socket '" +
                            f.socket_path + "' logs --tail 2 default/web",
                        &rc);
  CHECK(rc == 0);
  CHECK(logs == "line 4\nline 5\n");
  std::string missing = Sh(std::string("timeout 10 ") + CUBECTL_BINARY + " --socket '" +
                               f.socket_path + "' logs default/web nope 2>&1",
                           &rc);
  CHECK(rc == 1);
  CHECK(missing ==
        "error: cubelet answered 404: container \"nope\" in pod \"default/web\" not found\n");

  // And a clear message when cubelet is not there.
  std::string absent =
      Sh(std::string(CUBECTL_BINARY) + " --socket /nonexistent/cubelet.sock pods 2>&1", &rc);
  CHECK(rc == 1);
  CHECK(absent ==
        "error: cannot connect to cubelet at /nonexistent/cubelet.sock: No such file or "
        "directory; is cubelet running?\n");

  // Stop removes the socket.
  f.server->Stop();
  CHECK(access(f.socket_path.c_str(), F_OK) != 0);
}

TEST_CASE("kubelet server: start errors name the listener") {
  const Pki& pki = SharedPki();
  TempDir work;
  FakeBackend backend;
  agent::KubeletServerOptions o;
  o.address = "127.0.0.1";
  o.port = 0;
  o.cert_dir = work.dir + "/pki";
  o.client_ca_file = pki.dir + "/ca.crt";
  o.healthz_port = 0;
  o.debug_socket = "";
  agent::KubeletServer first(o, &backend);
  REQUIRE(first.Start());
  o.port = first.port();
  agent::KubeletServer second(o, &backend);
  auto r = second.Start();
  REQUIRE_FALSE(r);
  CHECK(r.error().message.find("listen on 127.0.0.1:" + std::to_string(o.port)) !=
        std::string::npos);
  CHECK(r.error().message.find("Address already in use") != std::string::npos);

  o.port = 0;
  o.tls_cert_file = work.dir + "/missing.crt";
  o.tls_private_key_file = work.dir + "/missing.key";
  agent::KubeletServer third(o, &backend);
  auto r3 = third.Start();
  REQUIRE_FALSE(r3);
  CHECK(r3.error().message.find("missing.crt") != std::string::npos);
}

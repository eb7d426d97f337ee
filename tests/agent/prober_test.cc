// Probe execution: the pure parts (ports, URLs, requests, response parsing, verdicts), exec probes
// and hooks through a fake runtime, and httpGet / tcpSocket against real sockets on 127.0.0.1.
#include <netinet/in.h>
#include <sys/socket.h>

#include <catch2/catch.hpp>
#include <chrono>

#include "agent/probe_http.h"
#include "agent/prober.h"
#include "fake_runtime_service.h"
#include "test_http_server.h"

using namespace agent;
using testsupport::FakeRuntimeService;
using testsupport::TestHttpServer;

namespace {

std::vector<ContainerPort> Ports() {
  ContainerPort http;
  http.name = "http";
  http.container_port = 8080;
  ContainerPort metrics;
  metrics.name = "metrics";
  metrics.container_port = 9090;
  return {http, metrics};
}

Probe HttpProbe(int port, const std::string& path = "/") {
  Probe p;
  p.http_get = HttpGetAction{};
  p.http_get->port = std::to_string(port);
  p.http_get->path = path;
  p.timeout_seconds = 1;
  return p;
}

ProbeTarget Loopback() { return ProbeTarget{"127.0.0.1", "c1", Ports()}; }

// A port on 127.0.0.1 that nothing listens on.
int ClosedPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  socklen_t len = sizeof sa;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  ::close(fd);
  return ntohs(sa.sin_port);
}

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

}  // namespace

TEST_CASE("ResolveContainerPort: numbers, names and the kubelet's errors") {
  CHECK(*ResolveContainerPort("8080", Ports()) == 8080);
  CHECK(*ResolveContainerPort("http", Ports()) == 8080);
  CHECK(*ResolveContainerPort("metrics", Ports()) == 9090);
  auto missing = ResolveContainerPort("grpc", Ports());
  REQUIRE(!missing);
  CHECK(missing.error().message == "strconv.Atoi: parsing \"grpc\": invalid syntax");
  CHECK(ResolveContainerPort("0", Ports()).error().message == "invalid port number: 0");
  CHECK(ResolveContainerPort("70000", Ports()).error().message == "invalid port number: 70000");
  CHECK(!ResolveContainerPort("", Ports()));
}

TEST_CASE("FormatProbeUrl: the kubelet's formatURL") {
  auto u = FormatProbeUrl("HTTP", "10.244.0.5", 8080, "/healthz?verbose=1");
  CHECK(u.String() == "http://10.244.0.5:8080/healthz?verbose=1");
  CHECK(u.target == "/healthz?verbose=1");
  CHECK(FormatProbeUrl("HTTPS", "10.0.0.1", 443, "").String() == "https://10.0.0.1:443/");
  CHECK(FormatProbeUrl("HTTP", "10.0.0.1", 80, "ready").target == "/ready");
  CHECK(FormatProbeUrl("HTTP", "10.0.0.1", 80, "/a b/%41#frag").target == "/a%20b/%41");
  auto v6 = FormatProbeUrl("HTTP", "fd00::5", 8080, "/");
  CHECK(v6.authority == "[fd00::5]:8080");
  CHECK(v6.host == "fd00::5");
}

TEST_CASE("ResolveLocation: redirect targets") {
  auto base = FormatProbeUrl("HTTP", "10.0.0.5", 8080, "/a/b/c?x=1");
  auto abs = ResolveLocation(base, "http://10.0.0.6:9090/z");
  REQUIRE(abs);
  CHECK(abs->host == "10.0.0.6");
  CHECK(abs->port == 9090);
  CHECK(abs->target == "/z");
  auto noport = ResolveLocation(base, "https://example.com");
  REQUIRE(noport);
  CHECK(noport->port == 443);
  CHECK(noport->authority == "example.com");
  CHECK(noport->target == "/");
  CHECK(ResolveLocation(base, "/ok")->String() == "http://10.0.0.5:8080/ok");
  CHECK(ResolveLocation(base, "d")->target == "/a/b/d");
  CHECK(ResolveLocation(base, "../d?y=2")->target == "/a/d?y=2");
  CHECK(ResolveLocation(base, "?y=2")->target == "/a/b/c?y=2");
  CHECK(ResolveLocation(base, "//other:81/p")->String() == "http://other:81/p");
  CHECK(!ResolveLocation(base, "ftp://x/y"));
  CHECK(!ResolveLocation(base, "http:///nohost"));
}

TEST_CASE("NewProbeRequest and RenderRequest: headers as the kubelet sends them") {
  auto url = FormatProbeUrl("HTTP", "10.0.0.5", 8080, "/healthz");
  SECTION("defaults") {
    auto req = NewProbeRequest(url, {}, "probe");
    CHECK(RenderRequest(req, req.url, req.host) ==
          "GET /healthz HTTP/1.1\r\nHost: 10.0.0.5:8080\r\nUser-Agent: kube-probe/1.32\r\nAccept: */*\r\n"
          "Connection: close\r\n\r\n");
  }
  SECTION("custom headers are canonicalized; Host, User-Agent and Accept override") {
    auto req = NewProbeRequest(
        url, {{"x-custom-header", "a"}, {"host", "svc.local"}, {"user-agent", "mine"}, {"accept", "text/plain"}},
        "probe");
    CHECK(req.host == "svc.local");
    CHECK(RenderRequest(req, req.url, req.host) ==
          "GET /healthz HTTP/1.1\r\nHost: svc.local\r\nUser-Agent: mine\r\nAccept: text/plain\r\n"
          "X-Custom-Header: a\r\nConnection: close\r\n\r\n");
  }
  SECTION("an empty Accept removes it; lifecycle purpose") {
    auto req = NewProbeRequest(url, {{"Accept", ""}}, "lifecycle");
    std::string text = RenderRequest(req, req.url, req.host);
    CHECK(text.find("Accept") == std::string::npos);
    CHECK(text.find("User-Agent: kube-lifecycle/1.32\r\n") != std::string::npos);
  }
  CHECK(CanonicalHeaderKey("x-FOO-bar") == "X-Foo-Bar");
  CHECK(CanonicalHeaderKey("bad key") == "bad key");
}

TEST_CASE("HttpResponseParser") {
  using S = HttpResponseParser::State;
  SECTION("Content-Length, fed byte by byte") {
    HttpResponseParser p;
    std::string raw = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello";
    S st = S::kNeedMore;
    for (size_t i = 0; i < raw.size(); ++i) {
      st = p.Feed(raw.substr(i, 1));
      if (i + 1 < raw.size()) REQUIRE(st == S::kNeedMore);
    }
    CHECK(st == S::kDone);
    CHECK(p.response().code == 200);
    CHECK(p.response().body == "hello");
    CHECK(p.response().Header("x-a") == "b");
  }
  SECTION("chunked across feeds, with extensions and trailers") {
    HttpResponseParser p;
    CHECK(p.Feed("HTTP/1.1 503 Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\nno") == S::kNeedMore);
    CHECK(p.Feed("pe\r\n3\r\n!!!\r\n0\r\nX-T: 1\r\n\r\n") == S::kDone);
    CHECK(p.response().code == 503);
    CHECK(p.response().body == "nope!!!");
  }
  SECTION("body to EOF; 100 Continue skipped") {
    HttpResponseParser p;
    CHECK(p.Feed("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 302 Found\r\nLocation: /x\r\n\r\nmoved") == S::kNeedMore);
    CHECK(p.Eof() == S::kDone);
    CHECK(p.response().code == 302);
    CHECK(p.response().Header("Location") == "/x");
    CHECK(p.response().body == "moved");
  }
  SECTION("204 has no body; bare LF line ends") {
    HttpResponseParser p;
    CHECK(p.Feed("HTTP/1.1 204 No Content\nServer: x\n\n") == S::kDone);
    CHECK(p.response().code == 204);
  }
  SECTION("the body stops at the limit") {
    HttpResponseParser p(4);
    CHECK(p.Feed("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789") == S::kDone);
    CHECK(p.response().body == "0123");
    CHECK(p.response().truncated);
  }
  SECTION("errors") {
    HttpResponseParser a;
    CHECK(a.Feed("SSH-2.0-OpenSSH\r\n\r\n") == S::kError);
    CHECK(a.error() == "malformed HTTP response \"SSH-2.0-OpenSSH\"");
    HttpResponseParser b;
    CHECK(b.Eof() == S::kError);
    CHECK(b.error() == "EOF");
    HttpResponseParser c;
    CHECK(c.Feed("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc") == S::kNeedMore);
    CHECK(c.Eof() == S::kError);
    CHECK(c.error() == "unexpected EOF");
    HttpResponseParser d;
    CHECK(d.Feed("HTTP/1.1 2x0 OK\r\n\r\n") == S::kError);
  }
}

TEST_CASE("Verdicts: HTTP status codes and exec results") {
  CHECK(HttpProbeVerdict(200, "ok").result == ProbeResult::kSuccess);
  CHECK(HttpProbeVerdict(399, "").result == ProbeResult::kWarning);
  CHECK(HttpProbeVerdict(302, "b").output == "Probe terminated redirects, Response body: b");
  auto bad = HttpProbeVerdict(500, "secret body");
  CHECK(bad.result == ProbeResult::kFailure);
  CHECK(bad.output == "HTTP probe failed with statuscode: 500");
  CHECK(HttpProbeVerdict(199, "").result == ProbeResult::kFailure);

  std::vector<std::string> cmd = {"sh", "-c", "test -f /tmp/ok"};
  cri::ExecSyncResponse ok{"out", "", 0};
  CHECK(ExecProbeVerdict(ok, cmd).result == ProbeResult::kSuccess);
  cri::ExecSyncResponse failed{"stdout ", "stderr", 1};
  auto f = ExecProbeVerdict(failed, cmd);
  CHECK(f.result == ProbeResult::kFailure);
  CHECK(f.output == "stdout stderr");
  auto t = ExecProbeVerdict(base::Fail("exec: timed out after 1s", ETIMEDOUT), cmd);
  CHECK(t.result == ProbeResult::kFailure);
  CHECK(t.output == "command \"sh -c test -f /tmp/ok\" timed out");
  auto e = ExecProbeVerdict(base::Fail("container is not running"), cmd);
  CHECK(e.result == ProbeResult::kUnknown);
  CHECK(e.error == "container is not running");
}

TEST_CASE("exec probes go through ExecSync with the probe's timeout") {
  FakeRuntimeService rt;
  Prober prober(&rt);
  Probe p;
  p.exec = ExecAction{{"cat", "/tmp/healthy"}};
  p.timeout_seconds = 3;
  int exit_code = 0;
  rt.SetExec([&](const FakeRuntimeService::ExecCall&) -> cri::Result<cri::ExecSyncResponse> {
    return cri::ExecSyncResponse{"", exit_code ? "cat: can't open '/tmp/healthy'" : "", exit_code};
  });
  CHECK(prober.Run(p, Loopback()).result == ProbeResult::kSuccess);
  auto calls = rt.ExecCalls();
  REQUIRE(calls.size() == 1);
  CHECK(calls[0].container_id == "c1");
  CHECK(calls[0].cmd == std::vector<std::string>{"cat", "/tmp/healthy"});
  CHECK(calls[0].timeout == std::chrono::seconds(3));

  exit_code = 1;
  auto f = prober.Run(p, Loopback());
  CHECK(f.result == ProbeResult::kFailure);
  CHECK(f.output == "cat: can't open '/tmp/healthy'");
  CHECK(rt.ExecCalls().size() == 2);  // a failure is not retried

  SECTION("a timeout is a failure, not retried") {
    rt.SetExec([](const FakeRuntimeService::ExecCall&) -> cri::Result<cri::ExecSyncResponse> {
      return base::Fail("timed out", ETIMEDOUT);
    });
    auto t = prober.Run(p, Loopback());
    CHECK(t.result == ProbeResult::kFailure);
    CHECK(t.output == "command \"cat /tmp/healthy\" timed out");
    CHECK(rt.ExecCalls().size() == 3);
  }
  SECTION("runtime errors are retried 3 times, then reported as an error") {
    rt.SetExec([](const FakeRuntimeService::ExecCall&) -> cri::Result<cri::ExecSyncResponse> {
      return base::Fail("exec in container \"c1\": container is not running");
    });
    auto e = prober.Run(p, Loopback());
    CHECK(e.result == ProbeResult::kUnknown);
    CHECK(e.error == "exec in container \"c1\": container is not running");
    CHECK(rt.ExecCalls().size() == 2 + 3);
  }
}

TEST_CASE("httpGet probes against a real server on 127.0.0.1") {
  FakeRuntimeService rt;
  Prober prober(&rt);
  TestHttpServer server([](const std::string& req) -> std::optional<std::string> {
    if (req.rfind("GET /ok ", 0) == 0) return TestHttpServer::Response(200, "fine");
    if (req.rfind("GET /fail ", 0) == 0) return TestHttpServer::Response(500, "broken");
    if (req.rfind("GET /hang ", 0) == 0) return std::nullopt;
    if (req.rfind("GET /redirect ", 0) == 0) return TestHttpServer::Response(302, "", "Location: /ok\r\n");
    if (req.rfind("GET /elsewhere ", 0) == 0)
      return TestHttpServer::Response(301, "gone", "Location: http://127.0.0.2:1/x\r\n");
    if (req.rfind("GET /loop", 0) == 0) return TestHttpServer::Response(302, "", "Location: /loop\r\n");
    if (req.rfind("GET /chunked ", 0) == 0)
      return std::string("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n");
    return TestHttpServer::Response(404, "");
  });
  int port = server.port();

  SECTION("200 passes; the request carries the kubelet's headers") {
    Probe p = HttpProbe(port, "/ok");
    p.http_get->headers = {{"X-Probe", "yes"}, {"Host", "web.local"}};
    auto r = prober.Run(p, Loopback());
    CHECK(r.result == ProbeResult::kSuccess);
    CHECK(r.output == "fine");
    auto reqs = server.Requests();
    REQUIRE(reqs.size() == 1);
    CHECK(reqs[0].rfind("GET /ok HTTP/1.1\r\n", 0) == 0);
    CHECK(reqs[0].find("\r\nHost: web.local\r\n") != std::string::npos);
    CHECK(reqs[0].find("\r\nUser-Agent: kube-probe/1.32\r\n") != std::string::npos);
    CHECK(reqs[0].find("\r\nAccept: */*\r\n") != std::string::npos);
    CHECK(reqs[0].find("\r\nX-Probe: yes\r\n") != std::string::npos);
  }
  SECTION("chunked 200 passes") { CHECK(prober.Run(HttpProbe(port, "/chunked"), Loopback()).result == ProbeResult::kSuccess); }
  SECTION("500 fails with the status code, not the body") {
    auto r = prober.Run(HttpProbe(port, "/fail"), Loopback());
    CHECK(r.result == ProbeResult::kFailure);
    CHECK(r.output == "HTTP probe failed with statuscode: 500");
  }
  SECTION("404 fails") { CHECK(prober.Run(HttpProbe(port, "/nothing"), Loopback()).result == ProbeResult::kFailure); }
  SECTION("a named port resolves through the container's ports") {
    ProbeTarget t = Loopback();
    t.ports[0].container_port = port;
    Probe p = HttpProbe(0, "/ok");
    p.http_get->port = "http";
    CHECK(prober.Run(p, t).result == ProbeResult::kSuccess);
  }
  SECTION("an unknown port name is a prober error") {
    Probe p = HttpProbe(0, "/ok");
    p.http_get->port = "nope";
    auto r = prober.Run(p, Loopback());
    CHECK(r.result == ProbeResult::kUnknown);
    CHECK(r.error == "strconv.Atoi: parsing \"nope\": invalid syntax");
  }
  SECTION("no answer within timeoutSeconds fails like the kubelet's client timeout") {
    auto start = std::chrono::steady_clock::now();
    auto r = prober.Run(HttpProbe(port, "/hang"), Loopback());
    double took = Seconds(start);
    CHECK(r.result == ProbeResult::kFailure);
    CHECK(r.output == "Get \"http://127.0.0.1:" + std::to_string(port) +
                          "/hang\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)");
    CHECK(took >= 0.9);
    CHECK(took < 3.0);
  }
  SECTION("connection refused fails") {
    int closed = ClosedPort();
    auto r = prober.Run(HttpProbe(closed, "/"), Loopback());
    CHECK(r.result == ProbeResult::kFailure);
    CHECK(r.output == "Get \"http://127.0.0.1:" + std::to_string(closed) + "/\": dial tcp 127.0.0.1:" +
                          std::to_string(closed) + ": connect: connection refused");
  }
  SECTION("a redirect to the same host is followed") {
    auto r = prober.Run(HttpProbe(port, "/redirect"), Loopback());
    CHECK(r.result == ProbeResult::kSuccess);
    auto reqs = server.Requests();
    REQUIRE(reqs.size() == 2);
    CHECK(reqs[1].rfind("GET /ok HTTP/1.1\r\n", 0) == 0);
  }
  SECTION("a redirect to another host is not followed: a warning, which passes") {
    auto r = prober.Run(HttpProbe(port, "/elsewhere"), Loopback());
    CHECK(r.result == ProbeResult::kWarning);
    CHECK(r.output == "Probe terminated redirects, Response body: gone");
    CHECK(server.Requests().size() == 1);
  }
  SECTION("a redirect loop stops after 10 requests and fails") {
    auto r = prober.Run(HttpProbe(port, "/loop"), Loopback());
    CHECK(r.result == ProbeResult::kFailure);
    CHECK(r.output.find("stopped after 10 redirects") != std::string::npos);
    CHECK(server.Requests().size() == 10);
  }
}

TEST_CASE("httpGet HTTPS probes skip certificate verification") {
  FakeRuntimeService rt;
  Prober prober(&rt);
  TestHttpServer server([](const std::string&) -> std::optional<std::string> {
    return TestHttpServer::Response(200, "secure");
  }, /*tls=*/true);
  Probe p = HttpProbe(server.port(), "/");
  p.http_get->scheme = "HTTPS";
  auto r = prober.Run(p, Loopback());
  CHECK(r.result == ProbeResult::kSuccess);
  CHECK(r.output == "secure");
  SECTION("plain HTTP to a TLS port fails") {
    TestHttpServer plain([](const std::string&) -> std::optional<std::string> {
      return TestHttpServer::Response(200, "plain");
    });
    Probe q = HttpProbe(plain.port(), "/");
    q.http_get->scheme = "HTTPS";
    CHECK(prober.Run(q, Loopback()).result == ProbeResult::kFailure);
  }
}

TEST_CASE("tcpSocket probes") {
  FakeRuntimeService rt;
  Prober prober(&rt);
  Probe p;
  p.tcp_socket = TcpSocketAction{};
  p.timeout_seconds = 1;
  SECTION("a listening port passes") {
    TestHttpServer server([](const std::string&) -> std::optional<std::string> { return std::nullopt; });
    p.tcp_socket->port = std::to_string(server.port());
    CHECK(prober.Run(p, Loopback()).result == ProbeResult::kSuccess);
  }
  SECTION("a closed port fails with Go's dial error") {
    int closed = ClosedPort();
    p.tcp_socket->port = std::to_string(closed);
    auto r = prober.Run(p, Loopback());
    CHECK(r.result == ProbeResult::kFailure);
    CHECK(r.output == "dial tcp 127.0.0.1:" + std::to_string(closed) + ": connect: connection refused");
  }
  SECTION("a full accept queue times out") {
    // listen(backlog 0) and never accept: once the queue is full the kernel drops new SYNs.
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
    REQUIRE(::listen(fd, 0) == 0);
    socklen_t len = sizeof sa;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
    int port = ntohs(sa.sin_port);
    std::vector<int> fillers;
    for (int i = 0; i < 4; ++i) {
      int c = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
      ::connect(c, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
      fillers.push_back(c);
    }
    p.tcp_socket->port = std::to_string(port);
    auto start = std::chrono::steady_clock::now();
    auto r = prober.Run(p, Loopback());
    CHECK(r.result == ProbeResult::kFailure);
    CHECK(r.output == "dial tcp 127.0.0.1:" + std::to_string(port) + ": i/o timeout");
    CHECK(Seconds(start) >= 0.9);
    for (int c : fillers) ::close(c);
    ::close(fd);
  }
}

TEST_CASE("lifecycle hooks: exec, httpGet, sleep") {
  FakeRuntimeService rt;
  Prober prober(&rt);
  Pod pod;
  pod.name = "web";
  pod.ns = "default";
  pod.uid = "u-1";
  Container c;
  c.name = "main";
  ProbeTarget t{"127.0.0.1", "cid", {}};
  SECTION("exec success and failure with the kubelet's message") {
    Handler h;
    h.exec = ExecAction{{"sh", "-c", "exit 3"}};
    rt.SetExec([](const FakeRuntimeService::ExecCall&) -> cri::Result<cri::ExecSyncResponse> {
      return cri::ExecSyncResponse{"partial", "oops", 3};
    });
    auto r = prober.RunHandler(h, pod, c, t, std::chrono::seconds(0));
    REQUIRE(!r);
    CHECK(r.error().message ==
          "Exec lifecycle hook ([sh -c exit 3]) for Container \"main\" in Pod \"web_default(u-1)\" failed - "
          "error: command 'sh -c exit 3' exited with 3: oops, message: \"partialoops\"");
    CHECK(rt.ExecCalls().back().timeout == std::chrono::seconds(0));
    rt.SetExec([](const FakeRuntimeService::ExecCall&) -> cri::Result<cri::ExecSyncResponse> {
      return cri::ExecSyncResponse{};
    });
    CHECK(prober.RunHandler(h, pod, c, t, std::chrono::seconds(0)));
  }
  SECTION("httpGet: any response is a success, no connection is a failure") {
    TestHttpServer server([](const std::string&) -> std::optional<std::string> {
      return TestHttpServer::Response(500, "");
    });
    Handler h;
    h.http_get = HttpGetAction{};
    h.http_get->port = std::to_string(server.port());
    h.http_get->path = "/shutdown";
    CHECK(prober.RunHandler(h, pod, c, t, std::chrono::seconds(2)));
    REQUIRE(server.Requests().size() == 1);
    CHECK(server.Requests()[0].find("User-Agent: kube-lifecycle/1.32") != std::string::npos);
    h.http_get->port = std::to_string(ClosedPort());
    auto r = prober.RunHandler(h, pod, c, t, std::chrono::seconds(2));
    REQUIRE(!r);
    CHECK(r.error().message.rfind(
              "HTTP lifecycle hook (/shutdown) for Container \"main\" in Pod \"web_default(u-1)\" failed - error: "
              "Get \"http://127.0.0.1:",
              0) == 0);
    CHECK(r.error().message.find("connect: connection refused") != std::string::npos);
  }
  SECTION("sleep is capped by the timeout") {
    Handler h;
    h.sleep_seconds = 30;
    auto start = std::chrono::steady_clock::now();
    CHECK(prober.RunHandler(h, pod, c, t, std::chrono::seconds(1)));
    CHECK(Seconds(start) >= 0.9);
    CHECK(Seconds(start) < 3);
  }
}

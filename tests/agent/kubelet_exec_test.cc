// /exec on the kubelet server end to end on loopback: real TLS (certs from the openssl CLI), a
// WebSocket client from Boost.Beast (an implementation independent of the server's framing),
// curl for the errors before the upgrade, and the real cubectl on the debug socket. The runtime
// is a fake whose ExecSession runs the command as a host process with real pipes, so the pump
// sees real EOFs, exit codes and signals.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>

#include "agent/exec_protocol.h"
#include "agent/kubelet_server.h"
#include "agent/spdy_protocol.h"
#include "base/fd.h"
#include "base/strings.h"
#include "tests/agent/fake_runtime_service.h"

#ifndef CUBECTL_BINARY
#error "CUBECTL_BINARY must point at the cubectl executable"
#endif

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
namespace ep = agent::execproto;

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

// The exit code in a Status, -1 when it carries none.
int ExitOf(const std::string& status) {
  auto r = ep::ExitCodeFromStatus(status);
  return r ? *r : -1;
}

std::string Slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// A command run on the host with real pipes, as the runtime's ExecSession does in a container.
class HostSession : public cri::ExecSession {
 public:
  static cri::Result<std::unique_ptr<cri::ExecSession>> Start(
      const std::vector<std::string>& cmd, bool with_stdin, std::atomic<int>* kills,
      std::function<void(unsigned, unsigned)> on_resize) {
    int in[2] = {-1, -1}, out[2], err[2], ex[2];
    if (with_stdin && pipe2(in, O_CLOEXEC) != 0) return base::Errno("pipe");
    if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0 || pipe2(ex, O_CLOEXEC) != 0) {
      return base::Errno("pipe");
    }
    std::vector<char*> argv;
    for (const auto& a : cmd) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    pid_t pid = fork();
    if (pid < 0) return base::Errno("fork");
    if (pid == 0) {
      int null = open("/dev/null", O_RDONLY);
      dup2(with_stdin ? in[0] : null, 0);
      dup2(out[1], 1);
      dup2(err[1], 2);
      // Asio's sockets are not close-on-exec: the command must not hold the test's client
      // connections open (the runtime's commands see only their own pipes, too).
      for (int fd = 3; fd < 1024; ++fd) {
        if (fd != ex[1]) close(fd);
      }
      execvp(argv[0], argv.data());
      int e = errno;
      (void)!write(ex[1], &e, sizeof e);
      _exit(127);
    }
    auto s = std::make_unique<HostSession>();
    s->pid_ = pid;
    s->kills_ = kills;
    if (with_stdin) {
      close(in[0]);
      s->in_.reset(in[1]);
    }
    close(out[1]);
    close(err[1]);
    close(ex[1]);
    s->out_.reset(out[0]);
    s->err_.reset(err[0]);
    s->exec_err_.reset(ex[0]);
    s->argv0_ = cmd[0];
    s->on_resize_ = std::move(on_resize);
    return std::unique_ptr<cri::ExecSession>(std::move(s));
  }
  ~HostSession() override {
    if (!reaped_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  int stdin_fd() const override { return in_.get(); }
  int stdout_fd() const override { return out_.get(); }
  int stderr_fd() const override { return err_.get(); }
  void CloseStdin() override { in_.reset(); }
  void Resize(unsigned cols, unsigned rows) override { on_resize_(cols, rows); }
  cri::Result<int> Wait() override {
    int e = 0;
    ssize_t n = read(exec_err_.get(), &e, sizeof e);
    int st = 0;
    waitpid(pid_, &st, 0);
    reaped_ = true;
    if (n == sizeof e) {
      return base::Fail("exec: \"" + argv0_ + "\": " +
                        (e == ENOENT ? std::string("executable file not found in $PATH")
                                     : std::string(strerror(e))));
    }
    if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
    return WEXITSTATUS(st);
  }
  void Kill() override {
    ++*kills_;
    if (!reaped_) kill(pid_, SIGKILL);
  }

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  std::atomic<int>* kills_ = nullptr;
  base::UniqueFd in_, out_, err_, exec_err_;
  std::string argv0_;
  std::function<void(unsigned, unsigned)> on_resize_;
};

class HostExecRuntime : public testsupport::FakeRuntimeService {
 public:
  cri::Result<std::unique_ptr<cri::ExecSession>> Exec(const std::string& id,
                                                      const std::vector<std::string>& cmd,
                                                      bool with_stdin, bool tty) override {
    {
      std::lock_guard<std::mutex> lock(mu);
      calls.push_back({id, cmd, with_stdin, tty});
    }
    if (id == "cid-broken") return base::Fail("exec in container \"app\" (" + id + "): pipe: boom");
    return HostSession::Start(cmd, with_stdin, &kills, [this](unsigned c, unsigned r) {
      std::lock_guard<std::mutex> lock(mu);
      resizes.emplace_back(c, r);
    });
  }
  // The "pod's network" is the host's loopback here.
  cri::Result<base::UniqueFd> PortForward(const std::string& sandbox, uint16_t port) override {
    {
      std::lock_guard<std::mutex> lock(mu);
      forwards.emplace_back(sandbox, port);
    }
    base::UniqueFd s(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      return base::Fail("failed to connect to localhost:" + std::to_string(port) + ": " +
                        strerror(errno));
    }
    fcntl(s.get(), F_SETFL, fcntl(s.get(), F_GETFL) | O_NONBLOCK);
    return s;
  }
  struct Call {
    std::string id;
    std::vector<std::string> cmd;
    bool with_stdin;
    bool tty;
  };
  std::vector<std::pair<std::string, uint16_t>> forwards;
  std::mutex mu;
  std::vector<Call> calls;
  std::vector<std::pair<unsigned, unsigned>> resizes;  // (cols, rows) in order
  std::atomic<int> kills{0};
};

class ExecBackend : public agent::KubeletServerBackend {
 public:
  std::string PodsJson() override { return "{}"; }
  base::Result<agent::ContainerLogRef> FindContainerLog(const std::string&, const std::string&,
                                                        const std::string&, bool) override {
    return base::Fail("no logs here", ENOENT);
  }
  bool Healthy(std::string*) override { return true; }
  std::string MetricsText() override { return ""; }
  std::string StatsSummaryJson() override { return "{}"; }
  std::string DebugPodsJson() override {
    return R"({"pods":[{"namespace":"default","name":"web","uid":"u1","phase":"Running",
      "podIP":"","startTime":"","qosClass":"BestEffort","containers":[{"name":"app",
      "image":"busybox","containerID":"cubelet://cid-app","state":"running","reason":"",
      "exitCode":0,"restartCount":0,"ready":true,"startedAt":""}]}]})";
  }
  base::Result<std::string> FindExecContainer(const std::string& ns, const std::string& pod,
                                              const std::string& container) override {
    if (ns != "default" || pod != "web") return base::Fail("pod does not exist", ENOENT);
    if (container == "app") return std::string("cid-app");
    if (container == "broken") return std::string("cid-broken");
    return base::Fail("container not found (\"" + container + "\")");
  }
  base::Result<std::string> FindPodSandbox(const std::string& ns, const std::string& pod,
                                           const std::string& uid) override {
    if (ns != "default" || (pod != "web" && pod != "stopped")) {
      return base::Fail("pod does not exist", ENOENT);
    }
    if (!uid.empty() && uid != "u1") return base::Fail("pod not found", ENOENT);
    if (pod == "stopped") return base::Fail("pod not found (\"stopped_default\")");
    return std::string("sb-web");
  }
};

class RecordingAuthorizer : public agent::Authorizer {
 public:
  base::Result<bool> Authorize(const agent::AuthorizationRequest& r, std::string*) override {
    std::lock_guard<std::mutex> lock(mu);
    seen.push_back(r);
    return true;
  }
  std::mutex mu;
  std::vector<agent::AuthorizationRequest> seen;
};

struct Pki {
  std::string dir;
  Pki() {
    char tmpl[] = "/tmp/kexec-pki-XXXXXX";
    dir = mkdtemp(tmpl);
    int rc = 0;
    std::string out = Sh("cd '" + dir + R"(' && set -e
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key \
  -out ca.crt -subj /CN=ca -days 2 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout client.key \
  -out client.csr -subj /O=system:masters/CN=kube-apiserver-kubelet-client 2>/dev/null
printf 'extendedKeyUsage=clientAuth\n' > client.ext
openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out client.crt \
  -days 2 -extfile client.ext 2>/dev/null
echo ok 2>&1)",
                         &rc);
    INFO(out);
    REQUIRE(rc == 0);
  }
  ~Pki() { (void)!std::system(("rm -rf '" + dir + "'").c_str()); }
};

const Pki& SharedPki() {
  static Pki pki;
  return pki;
}

struct Fixture {
  const Pki& pki = SharedPki();
  std::string work;
  ExecBackend backend;
  HostExecRuntime runtime;
  RecordingAuthorizer authz;
  std::unique_ptr<agent::KubeletServer> server;
  std::string socket_path;

  Fixture() {
    char tmpl[] = "/tmp/kexec-work-XXXXXX";
    work = mkdtemp(tmpl);
    socket_path = work + "/cubelet.sock";
    agent::KubeletServerOptions o;
    o.node_name = "node1";
    o.address = "127.0.0.1";
    o.port = 0;
    o.cert_dir = work + "/pki";
    o.cert_sans = {"node1", "127.0.0.1"};
    o.client_ca_file = pki.dir + "/ca.crt";
    o.healthz_port = 0;
    o.debug_socket = socket_path;
    o.authorizer = &authz;
    o.runtime = &runtime;
    server = std::make_unique<agent::KubeletServer>(o, &backend);
    auto r = server->Start();
    INFO((r ? std::string() : r.error().message));
    REQUIRE(r);
  }
  ~Fixture() {
    server->Stop();
    (void)!std::system(("rm -rf '" + work + "'").c_str());
  }

  std::string Curl(const std::string& path, int* code, const std::string& extra = "") {
    std::string body = work + "/body";
    std::string out = Sh("timeout 20 curl -sS --cacert '" + work + "/pki/kubelet.crt' --cert '" +
                         pki.dir + "/client.crt' --key '" + pki.dir + "/client.key' " + extra +
                         " -o '" + body + "' -w '%{http_code}' 'https://127.0.0.1:" +
                         std::to_string(server->port()) + path + "' 2>&1");
    *code = atoi(out.c_str());
    return Slurp(body);
  }
};

const char* kWsHeaders =
    "-H 'Connection: Upgrade' -H 'Upgrade: websocket' -H 'Sec-WebSocket-Version: 13' "
    "-H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' "
    "-H 'Sec-WebSocket-Protocol: v5.channel.k8s.io'";

struct WsOptions {
  std::vector<std::string> protocols = {"v5.channel.k8s.io"};
  std::vector<std::pair<uint8_t, std::string>> first_messages;  // (channel, data), sent first
  std::vector<std::string> stdin_chunks;
  bool close_stdin = true;
  bool ping = false;
  bool drop_after_first = false;  // hang up (TCP close) after the first message
};

struct WsResult {
  int http_status = 0;
  std::string protocol;
  std::vector<std::string> messages;  // raw payloads, in order
  std::map<int, std::string> channels;
  uint16_t close_code = 0;
  std::string pong;
  std::string error;
  bool text_frames = false;
};

// A kubectl-like client: Beast's websocket over TLS with the API server's client cert.
WsResult WsExec(Fixture& f, const std::string& target, const WsOptions& o) {
  WsResult r;
  net::io_context ioc;
  ssl::context ctx(ssl::context::tls_client);
  ctx.use_certificate_file(f.pki.dir + "/client.crt", ssl::context::pem);
  ctx.use_private_key_file(f.pki.dir + "/client.key", ssl::context::pem);
  ctx.load_verify_file(f.work + "/pki/kubelet.crt");
  ctx.set_verify_mode(ssl::verify_peer);
  websocket::stream<beast::ssl_stream<beast::tcp_stream>> ws(ioc, ctx);
  beast::get_lowest_layer(ws).connect(
      tcp::endpoint(net::ip::make_address("127.0.0.1"), static_cast<uint16_t>(f.server->port())));
  // Sync Beast ops have no deadline: a watchdog cuts the socket if the test would hang.
  int fd = beast::get_lowest_layer(ws).socket().native_handle();
  std::mutex wmu;
  std::condition_variable wcv;
  bool finished = false;
  std::thread watchdog([&] {
    std::unique_lock<std::mutex> lock(wmu);
    if (!wcv.wait_for(lock, std::chrono::seconds(30), [&] { return finished; })) {
      shutdown(fd, SHUT_RDWR);
    }
  });
  auto stop_watchdog = [&] {
    {
      std::lock_guard<std::mutex> lock(wmu);
      finished = true;
    }
    wcv.notify_all();
    watchdog.join();
  };
  ws.next_layer().handshake(ssl::stream_base::client);
  ws.set_option(websocket::stream_base::decorator([&](websocket::request_type& req) {
    std::string p;
    for (const auto& s : o.protocols) p += (p.empty() ? "" : ", ") + s;
    if (!p.empty()) req.set(http::field::sec_websocket_protocol, p);
  }));
  websocket::response_type res;
  beast::error_code ec;
  ws.handshake(res, "127.0.0.1", target, ec);
  r.http_status = static_cast<int>(res.result_int());
  if (ec) {
    r.error = ec.message();
    stop_watchdog();
    return r;
  }
  r.protocol = std::string(res[http::field::sec_websocket_protocol]);
  auto proto = ep::NegotiateSubprotocol({r.protocol});
  if (!proto) {  // no REQUIRE: this runs on other threads too
    r.error = "unknown subprotocol " + r.protocol;
    stop_watchdog();
    return r;
  }
  ws.control_callback([&](websocket::frame_type kind, beast::string_view payload) {
    if (kind == websocket::frame_type::pong) r.pong = std::string(payload);
  });
  if (o.ping) ws.ping("heartbeat");
  for (const auto& [channel, data] : o.first_messages) {
    auto m = ep::EncodeChannelMessage(proto->protocol, channel, data);
    ws.text(m.opcode == ep::Opcode::kText);
    ws.write(net::buffer(m.payload));
  }
  for (const auto& chunk : o.stdin_chunks) {
    auto m = ep::EncodeChannelMessage(proto->protocol, ep::kStdin, chunk);
    ws.text(m.opcode == ep::Opcode::kText);
    ws.write(net::buffer(m.payload));
  }
  if (o.close_stdin && ep::HasCloseSignal(proto->protocol)) {
    ws.binary(true);
    ws.write(net::buffer(ep::EncodeCloseSignal(ep::kStdin).payload));
  }
  for (;;) {
    beast::flat_buffer b;
    ws.read(b, ec);
    if (ec == websocket::error::closed) {
      r.close_code = static_cast<uint16_t>(ws.reason().code);
      break;
    }
    if (ec) {
      r.error = ec.message();
      break;
    }
    r.text_frames = ws.got_text();
    std::string payload = beast::buffers_to_string(b.data());
    r.messages.push_back(payload);
    if (!payload.empty()) {
      auto cm = ep::DecodeChannelMessage(proto->protocol, payload);
      if (cm) r.channels[cm->channel] += cm->data;
      if (!cm) r.error = "bad channel message: " + cm.error().message;
    }
    if (o.drop_after_first) {
      beast::get_lowest_layer(ws).close();
      break;
    }
  }
  stop_watchdog();
  return r;
}

struct SpdyResult {
  int http_status = 0;
  std::string protocol;  // X-Stream-Protocol-Version of the 101
  std::string body;      // of a non-101 answer
  std::map<std::string, std::string> data;  // by stream type
  std::map<std::string, bool> fin;          // FIN seen from the server, by stream type
  int replies = 0;
  bool goaway = false;
  bool pong = false;
  std::string error;
};

// A client as kubectl's SPDY fallback (and a 1.30+ API server's stream translator) speaks it:
// upgrade, one SYN_STREAM per stream (error first), stdin data then its FIN, read to GOAWAY.
SpdyResult SpdyExec(Fixture& f, const std::string& target, const std::vector<std::string>& types,
                    const std::string& stdin_data, const std::string& versions) {
  SpdyResult r;
  net::io_context ioc;
  ssl::context ctx(ssl::context::tls_client);
  ctx.use_certificate_file(f.pki.dir + "/client.crt", ssl::context::pem);
  ctx.use_private_key_file(f.pki.dir + "/client.key", ssl::context::pem);
  ctx.set_verify_mode(ssl::verify_none);
  beast::ssl_stream<beast::tcp_stream> s(ioc, ctx);
  beast::get_lowest_layer(s).connect(
      tcp::endpoint(net::ip::make_address("127.0.0.1"), static_cast<uint16_t>(f.server->port())));
  int fd = beast::get_lowest_layer(s).socket().native_handle();
  std::atomic<bool> done{false};
  std::thread watchdog([&] {
    for (int i = 0; i < 300 && !done; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (!done) shutdown(fd, SHUT_RDWR);
  });
  s.handshake(ssl::stream_base::client);
  std::string req = "POST " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\n" +
                    "Upgrade: SPDY/3.1\r\n";
  for (const auto& v : base::Split(versions, ',', true)) req += "X-Stream-Protocol-Version: " + v + "\r\n";
  req += "Content-Length: 0\r\n\r\n";
  net::write(s, net::buffer(req));
  beast::flat_buffer buf;
  http::response_parser<http::string_body> parser;
  beast::error_code ec;
  http::read_header(s, buf, parser, ec);
  r.http_status = static_cast<int>(parser.get().result_int());
  if (r.http_status != 101) {
    if (!parser.is_done()) http::read(s, buf, parser, ec);
    r.body = parser.get().body();
    done = true;
    watchdog.join();
    return r;
  }
  r.protocol = std::string(parser.get()["X-Stream-Protocol-Version"]);
  agent::spdy::HeaderCodec codec;
  std::map<uint32_t, std::string> type_of;
  uint32_t id = 1, stdin_id = 0;
  for (const auto& t : types) {
    auto syn = agent::spdy::EncodeSynStream(codec, id, {{"streamtype", t}}, false);
    net::write(s, net::buffer(*syn));
    type_of[id] = t;
    if (t == "stdin") stdin_id = id;
    id += 2;
  }
  net::write(s, net::buffer(agent::spdy::EncodePing(1)));
  if (stdin_id) {
    if (!stdin_data.empty()) net::write(s, net::buffer(agent::spdy::EncodeData(stdin_id, stdin_data, false)));
    net::write(s, net::buffer(agent::spdy::EncodeData(stdin_id, "", true)));
  }
  agent::spdy::FrameParser fp;
  fp.Feed(std::string_view(static_cast<const char*>(buf.data().data()), buf.size()));
  char chunk[16384];
  while (!r.goaway) {
    auto fr = fp.Next();
    if (!fr) {
      r.error = fr.error().message;
      break;
    }
    if (!*fr) {
      size_t n = s.read_some(net::buffer(chunk), ec);
      if (ec) {
        r.error = ec.message();
        break;
      }
      fp.Feed(std::string_view(chunk, n));
      continue;
    }
    auto& frame = **fr;
    if (!frame.control) {
      r.data[type_of[frame.stream_id]] += frame.data;
      if (frame.flags & agent::spdy::kFlagFin) r.fin[type_of[frame.stream_id]] = true;
    } else if (frame.type == agent::spdy::kSynReply) {
      ++r.replies;
    } else if (frame.type == agent::spdy::kGoAway) {
      r.goaway = true;
    } else if (frame.type == agent::spdy::kPing && frame.value == 1) {
      r.pong = true;
    }
  }
  beast::get_lowest_layer(s).close();
  done = true;
  watchdog.join();
  return r;
}

std::string Target(const std::string& container, const std::vector<std::string>& cmd,
                   const std::string& extra = "stdout=1&stderr=1") {
  std::string t = "/exec/default/web/" + container + "?";
  for (const auto& c : cmd) {
    std::string e;
    for (unsigned char ch : c) {
      if (isalnum(ch)) {
        e += static_cast<char>(ch);
      } else {
        char buf[4];
        snprintf(buf, sizeof buf, "%%%02X", ch);
        e += buf;
      }
    }
    t += "command=" + e + "&";
  }
  return t + extra;
}

}  // namespace

TEST_CASE("kubelet exec: v5 session with stdout, stderr and the exit code") {
  Fixture f;
  auto r = WsExec(f, Target("app", {"sh", "-c", "echo out; echo err >&2; exit 3"}), {});
  INFO(r.error);
  CHECK(r.http_status == 101);
  CHECK(r.protocol == "v5.channel.k8s.io");
  REQUIRE_FALSE(r.messages.empty());
  CHECK(r.messages.front() == std::string(1, '\x01'));  // "streams are ready" on stdout
  CHECK(r.channels[ep::kStdout] == "out\n");
  CHECK(r.channels[ep::kStderr] == "err\n");
  auto code = ep::ExitCodeFromStatus(r.channels[ep::kError]);
  REQUIRE(code);
  CHECK(*code == 3);
  CHECK(r.close_code == 1000);
  CHECK(r.error.empty());
  // The runtime was asked for the backend's container, without stdin.
  std::lock_guard<std::mutex> lock(f.runtime.mu);
  REQUIRE(f.runtime.calls.size() == 1);
  CHECK(f.runtime.calls[0].id == "cid-app");
  CHECK(f.runtime.calls[0].cmd ==
        std::vector<std::string>{"sh", "-c", "echo out; echo err >&2; exit 3"});
  CHECK_FALSE(f.runtime.calls[0].with_stdin);
  // Authorization as the kubelet's: nodes/proxy, verb from the method.
  std::lock_guard<std::mutex> alock(f.authz.mu);
  REQUIRE_FALSE(f.authz.seen.empty());
  CHECK(f.authz.seen.back().subresource == "proxy");
  CHECK(f.authz.seen.back().verb == "get");
  CHECK(f.authz.seen.back().user.name == "kube-apiserver-kubelet-client");
}

TEST_CASE("kubelet exec: stdin, its v5 half-close, and pings") {
  Fixture f;
  WsOptions o;
  o.stdin_chunks = {"hello ", "world\n"};
  o.ping = true;
  auto r = WsExec(f, Target("app", {"cat"}, "stdin=1&stdout=1&stderr=1"), o);
  INFO(r.error);
  CHECK(r.channels[ep::kStdout] == "hello world\n");
  CHECK(r.channels[ep::kError] == R"({"metadata":{},"status":"Success"})");
  CHECK(r.pong == "heartbeat");
  CHECK(r.close_code == 1000);
  std::lock_guard<std::mutex> lock(f.runtime.mu);
  REQUIRE(f.runtime.calls.size() == 1);
  CHECK(f.runtime.calls[0].with_stdin);
}

TEST_CASE("kubelet exec: a TTY session: no stderr stream, resizes reach the runtime") {
  Fixture f;
  WsOptions o;
  // As kubectl: the terminal's size first (one message may carry several), then stdin.
  o.first_messages = {{ep::kResize, R"({"Width":100,"Height":40})"},
                      {ep::kResize, R"({"Width":120,"Height":50}{"Width":0,"Height":9})"},
                      {ep::kResize, "{\"Width\":132,"},
                      {ep::kResize, "\"Height\":43}\n"}};
  o.stdin_chunks = {"typed\n"};
  o.close_stdin = false;  // a terminal's stdin stays open; the command ends by itself
  auto r = WsExec(f, Target("app", {"sh", "-c", "read l; echo got $l; echo err >&2"},
                            "stdin=1&stdout=1&stderr=1&tty=1"),
                  o);
  INFO(r.error);
  CHECK(r.channels[ep::kStdout] == "got typed\n");
  CHECK(r.channels.count(ep::kStderr) == 0);  // tty: the stderr stream is not there
  CHECK(ExitOf(r.channels[ep::kError]) == 0);
  std::lock_guard<std::mutex> lock(f.runtime.mu);
  REQUIRE(f.runtime.calls.size() == 1);
  CHECK(f.runtime.calls[0].tty);
  CHECK(f.runtime.calls[0].with_stdin);
  using Size = std::pair<unsigned, unsigned>;
  CHECK(f.runtime.resizes == std::vector<Size>{{100, 40}, {120, 50}, {132, 43}});
}

TEST_CASE("kubelet exec: resizes without a TTY are ignored") {
  Fixture f;
  WsOptions o;
  o.first_messages = {{ep::kResize, R"({"Width":100,"Height":40})"}};
  auto r = WsExec(f, Target("app", {"sh", "-c", "echo out"}), o);
  INFO(r.error);
  CHECK(r.channels[ep::kStdout] == "out\n");
  std::lock_guard<std::mutex> lock(f.runtime.mu);
  REQUIRE(f.runtime.calls.size() == 1);
  CHECK_FALSE(f.runtime.calls[0].tty);
  CHECK(f.runtime.resizes.empty());
}

TEST_CASE("kubelet exec: large streams both ways (fragmented client messages, backpressure)") {
  Fixture f;
  SECTION("4 MiB of stdin in 1 MiB messages (Beast fragments them) reach the command") {
    WsOptions o;
    std::string chunk(1 << 20, 'x');
    o.stdin_chunks = {chunk, chunk, chunk, chunk};
    auto r = WsExec(f, Target("app", {"wc", "-c"}, "stdin=1&stdout=1"), o);
    INFO(r.error);
    CHECK(r.channels[ep::kStdout].find("4194304") != std::string::npos);
    CHECK(ExitOf(r.channels[ep::kError]) == 0);
  }
  SECTION("8 MB of stdout arrive whole and in order") {
    auto r = WsExec(f, Target("app", {"sh", "-c", "seq 1 1000000"}), {});
    INFO(r.error);
    std::string want;
    for (int i = 1; i <= 1000000; ++i) want += std::to_string(i) + "\n";
    CHECK(r.channels[ep::kStdout].size() == want.size());
    CHECK(r.channels[ep::kStdout] == want);
    CHECK(r.close_code == 1000);
  }
}

TEST_CASE("kubelet exec: older subprotocols") {
  Fixture f;
  SECTION("v4 binary: Status JSON, no close signal (stdin stays open until the end)") {
    WsOptions o;
    o.protocols = {"v4.channel.k8s.io"};
    auto r = WsExec(f, Target("app", {"sh", "-c", "echo four; exit 4"}), o);
    CHECK(r.protocol == "v4.channel.k8s.io");
    CHECK(r.channels[ep::kStdout] == "four\n");
    CHECK(ExitOf(r.channels[ep::kError]) == 4);
  }
  SECTION("v4 base64: text frames, '0'+channel and base64") {
    WsOptions o;
    o.protocols = {"v4.base64.channel.k8s.io"};
    auto r = WsExec(f, Target("app", {"sh", "-c", "printf 'b\\001n'; exit 0"}), o);
    CHECK(r.protocol == "v4.base64.channel.k8s.io");
    CHECK(r.text_frames);
    CHECK(r.channels[ep::kStdout] == "b\001n");
    CHECK(r.channels[ep::kError] == R"({"metadata":{},"status":"Success"})");
  }
  SECTION("the client's order decides among supported protocols") {
    WsOptions o;
    o.protocols = {"v9.channel.k8s.io", "v4.channel.k8s.io", "v5.channel.k8s.io"};
    auto r = WsExec(f, Target("app", {"true"}), o);
    CHECK(r.protocol == "v4.channel.k8s.io");
  }
  SECTION("channel.k8s.io (pre-v4): the failure as text, nothing on success") {
    WsOptions o;
    o.protocols = {"channel.k8s.io"};
    auto r = WsExec(f, Target("app", {"sh", "-c", "exit 2"}), o);
    CHECK(r.channels[ep::kError] == "command terminated with non-zero exit code: exit status 2");
    auto ok = WsExec(f, Target("app", {"true"}), o);
    CHECK(ok.channels.count(ep::kError) == 0);
    CHECK(ok.close_code == 1000);
  }
  SECTION("only unknown subprotocols: 403, so a kubectl falls back") {
    WsOptions o;
    o.protocols = {"v6.channel.k8s.io"};
    auto r = WsExec(f, Target("app", {"true"}), o);
    CHECK(r.http_status != 101);
    CHECK_FALSE(r.error.empty());
    int code = 0;
    std::string body = f.Curl(Target("app", {"true"}), &code,
                              "-H 'Connection: Upgrade' -H 'Upgrade: websocket' "
                              "-H 'Sec-WebSocket-Version: 13' "
                              "-H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' "
                              "-H 'Sec-WebSocket-Protocol: v6.channel.k8s.io, chat'");
    CHECK(code == 403);
    CHECK(body.find("requested protocol(s) are not supported") != std::string::npos);
    std::lock_guard<std::mutex> lock(f.runtime.mu);
    CHECK(f.runtime.calls.empty());  // nothing ran
  }
}

TEST_CASE("kubelet exec: SPDY/3.1 sessions (kubectl's fallback, the API server's translator)") {
  Fixture f;
  SECTION("v4: streams answered, data both ways, Status JSON, FIN everywhere, GOAWAY") {
    auto r = SpdyExec(f, Target("app", {"sh", "-c", "cat; echo err >&2; exit 5"},
                                "stdin=1&stdout=1&stderr=1"),
                      {"error", "stdin", "stdout", "stderr"}, "spdy in\n",
                      "v4.channel.k8s.io,v3.channel.k8s.io,v2.channel.k8s.io,channel.k8s.io");
    INFO(r.error << r.body);
    CHECK(r.http_status == 101);
    CHECK(r.protocol == "v4.channel.k8s.io");
    CHECK(r.replies == 4);
    CHECK(r.pong);
    CHECK(r.data["stdout"] == "spdy in\n");
    CHECK(r.data["stderr"] == "err\n");
    CHECK(ExitOf(r.data["error"]) == 5);
    for (const char* t : {"error", "stdin", "stdout", "stderr"}) {
      INFO(t);
      CHECK(r.fin[t]);
    }
    CHECK(r.goaway);
  }
  SECTION("v3 (the client's order): the failure as text") {
    auto r = SpdyExec(f, Target("app", {"sh", "-c", "exit 2"}), {"error", "stdout", "stderr"}, "",
                      "v3.channel.k8s.io,v4.channel.k8s.io");
    CHECK(r.protocol == "v3.channel.k8s.io");
    CHECK(r.data["error"] == "command terminated with non-zero exit code: exit status 2");
  }
  SECTION("handshake errors as httpstream.Handshake answers them") {
    auto none = SpdyExec(f, Target("app", {"true"}), {}, "", "");
    CHECK(none.http_status == 400);
    CHECK(none.body == "unable to upgrade: X-Stream-Protocol-Version is required");
    auto v1 = SpdyExec(f, Target("app", {"true"}), {}, "", "channel.k8s.io");
    CHECK(v1.http_status == 403);
    CHECK(v1.body.find("unable to negotiate protocol") != std::string::npos);
  }
}

TEST_CASE("kubelet exec: failures inside the session and a client that leaves") {
  Fixture f;
  SECTION("a command that cannot start: InternalError Status on the error channel") {
    auto r = WsExec(f, Target("app", {"no-such-binary-xyz"}), {});
    auto code = ep::ExitCodeFromStatus(r.channels[ep::kError]);
    REQUIRE_FALSE(code);
    CHECK(code.error().message ==
          "Internal error occurred: error executing command in container: exec: "
          "\"no-such-binary-xyz\": executable file not found in $PATH");
  }
  SECTION("a signal is 128+N") {
    auto r = WsExec(f, Target("app", {"sh", "-c", "kill -9 $$"}), {});
    CHECK(ExitOf(r.channels[ep::kError]) == 137);
  }
  SECTION("the client hangs up: the command is killed at once") {
    WsOptions o;
    o.drop_after_first = true;
    auto t0 = std::chrono::steady_clock::now();
    auto r = WsExec(f, Target("app", {"sh", "-c", "echo started; exec sleep 60"}), o);
    CHECK(r.messages.size() == 1);
    while (f.runtime.kills == 0 && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(10)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    CHECK(f.runtime.kills == 1);
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5));
  }
  SECTION("Stop() ends a running session promptly") {
    std::thread client([&] {
      auto r = WsExec(f, Target("app", {"sleep", "60"}), {});
      (void)r;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    auto t0 = std::chrono::steady_clock::now();
    f.server->Stop();
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(3));
    client.join();
    CHECK(f.runtime.kills == 1);
  }
}

TEST_CASE("kubelet exec: errors before the upgrade, as the kubelet answers them") {
  Fixture f;
  int code = 0;
  std::string body = f.Curl("/exec/default/other/app?command=true&stdout=1", &code, kWsHeaders);
  CHECK(code == 404);
  CHECK(body == "pod does not exist");
  body = f.Curl("/exec/default/web/gone?command=true&stdout=1", &code, kWsHeaders);
  CHECK(code == 500);
  CHECK(body == "container not found (\"gone\")");
  body = f.Curl("/exec/default/web/app?command=true", &code, kWsHeaders);
  CHECK(code == 400);
  CHECK(body == "you must specify at least 1 of stdin, stdout, stderr");
  body = f.Curl("/exec/default/web/app?command=true&stdout=1", &code);  // no upgrade at all
  CHECK(code == 400);
  CHECK(body.find("unable to upgrade: missing upgrade headers") != std::string::npos);
  body = f.Curl("/exec/default/web/broken?command=true&stdout=1", &code, kWsHeaders);
  CHECK(code == 500);
  CHECK(body == "error executing command in container: exec in container \"app\" (cid-broken): "
                "pipe: boom");
  body = f.Curl(Target("app", {"true"}), &code, std::string(kWsHeaders) + " -X PUT");
  CHECK(code == 405);
  // Anonymous: 401 before anything else.
  std::string anon = Sh("timeout 20 curl -s -o /dev/null -w '%{http_code}' -k " +
                        std::string(kWsHeaders) + " 'https://127.0.0.1:" +
                        std::to_string(f.server->port()) + Target("app", {"true"}) + "'");
  CHECK(anon == "401");
  std::lock_guard<std::mutex> lock(f.runtime.mu);
  CHECK(f.runtime.calls.size() == 1);  // only the broken container got as far as the runtime
}

TEST_CASE("kubelet exec: cubectl exec over the debug socket") {
  Fixture f;
  std::string cubectl = std::string("timeout 30 ") + CUBECTL_BINARY + " --socket '" +
                        f.socket_path + "' exec ";
  int rc = 0;
  std::string out = Sh(cubectl + "default/web -c app -- sh -c 'echo out; echo err >&2; exit 3' "
                                 "2>'" + f.work + "/err'",
                       &rc);
  CHECK(rc == 3);
  CHECK(out == "out\n");
  CHECK(Slurp(f.work + "/err") == "err\ncommand terminated with exit code 3\n");

  // -i: stdin is copied, then half-closed (cat ends); the only container is picked.
  out = Sh("printf 'hi\\nthere\\n' | " + cubectl + "-i default/web -- cat 2>&1", &rc);
  CHECK(rc == 0);
  CHECK(out == "hi\nthere\n");

  out = Sh(cubectl + "default/web -c gone -- true 2>&1", &rc);
  CHECK(rc == 1);
  CHECK(out == "error: cubelet answered 500: container not found (\"gone\")\n");
  out = Sh(cubectl + "default/nope -c app -- true 2>&1", &rc);
  CHECK(rc == 1);
  CHECK(out == "error: cubelet answered 404: pod does not exist\n");
  out = Sh(cubectl + "default/web -- no-such-binary-xyz 2>&1", &rc);
  CHECK(rc == 1);
  CHECK(out ==
        "error: Internal error occurred: error executing command in container: exec: "
        "\"no-such-binary-xyz\": executable file not found in $PATH\n");
}

// ---- /portForward ------------------------------------------------------------------------------

namespace {

// A TCP server on 127.0.0.1 (ephemeral port): `serve` runs on a thread per connection, which
// is closed when it returns.
class LoopbackServer {
 public:
  explicit LoopbackServer(std::function<void(int)> serve) : serve_(std::move(serve)) {
    fd_.reset(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(fd_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(listen(fd_.get(), 16) == 0);
    socklen_t len = sizeof a;
    getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] {
      for (;;) {
        int c = accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) return;
        workers_.emplace_back([this, c] {
          serve_(c);
          close(c);
        });
      }
    });
  }
  ~LoopbackServer() {
    shutdown(fd_.get(), SHUT_RDWR);
    thread_.join();
    for (auto& w : workers_) w.join();
  }
  uint16_t port() const { return port_; }

 private:
  std::function<void(int)> serve_;
  base::UniqueFd fd_;
  uint16_t port_ = 0;
  std::thread thread_;
  std::vector<std::thread> workers_;
};

// A port nothing listens on.
uint16_t FreePort() {
  base::UniqueFd s(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(s.get(), reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

std::string Pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 7 + i / 4096) % 251);
  return s;
}

uint64_t Fnv(std::string_view data, uint64_t h = 1469598103934665603ull) {
  for (unsigned char c : data) h = (h ^ c) * 1099511628211ull;
  return h;
}

// Reads everything until the client's end of data, then answers "n=<bytes> h=<fnv>".
void SinkServe(int fd) {
  uint64_t n = 0, h = Fnv("");
  char buf[65536];
  for (;;) {
    ssize_t r = read(fd, buf, sizeof buf);
    if (r <= 0) break;
    n += static_cast<uint64_t>(r);
    h = Fnv(std::string_view(buf, static_cast<size_t>(r)), h);
  }
  std::string answer = "n=" + std::to_string(n) + " h=" + std::to_string(h);
  (void)!write(fd, answer.data(), answer.size());
}

void EchoServe(int fd) {
  char buf[65536];
  for (;;) {
    ssize_t r = read(fd, buf, sizeof buf);
    if (r <= 0) return;
    if (write(fd, buf, static_cast<size_t>(r)) != r) return;
  }
}

constexpr size_t kSourceBytes = 4 << 20;

void SourceServe(int fd) {
  static const std::string data = Pattern(kSourceBytes);
  size_t at = 0;
  while (at < data.size()) {
    ssize_t w = write(fd, data.data() + at, data.size() - at);
    if (w <= 0) return;
    at += static_cast<size_t>(w);
  }
}

// kubectl's port-forward client as the API server relays it to the kubelet: a SPDY/3.1 session
// with a pair of streams (error, data) per forwarded connection.
class SpdyForwardClient {
 public:
  struct Stream {
    std::string data;
    bool fin = false;
    bool reply = false;
    bool reset = false;
  };

  SpdyForwardClient(Fixture& f, const std::string& target,
                    const std::string& versions = "portforward.k8s.io")
      : ctx_(ssl::context::tls_client) {
    ctx_.use_certificate_file(f.pki.dir + "/client.crt", ssl::context::pem);
    ctx_.use_private_key_file(f.pki.dir + "/client.key", ssl::context::pem);
    ctx_.set_verify_mode(ssl::verify_none);
    sp_ = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(ioc_, ctx_);  // after the cert
    beast::get_lowest_layer((*sp_)).connect(tcp::endpoint(
        net::ip::make_address("127.0.0.1"), static_cast<uint16_t>(f.server->port())));
    int fd = beast::get_lowest_layer((*sp_)).socket().native_handle();
    watchdog_ = std::thread([this, fd] {
      std::unique_lock<std::mutex> lock(mu_);
      if (!cv_.wait_for(lock, std::chrono::seconds(60), [&] { return finished_; })) {
        shutdown(fd, SHUT_RDWR);
      }
    });
    (*sp_).handshake(ssl::stream_base::client);
    std::string req = "POST " + target +
                      " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\n"
                      "Upgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: " +
                      versions + "\r\nContent-Length: 0\r\n\r\n";
    net::write((*sp_), net::buffer(req));
    http::response_parser<http::string_body> parser;
    beast::error_code ec;
    http::read_header((*sp_), buf_, parser, ec);
    http_status = static_cast<int>(parser.get().result_int());
    if (http_status != 101) {
      if (!parser.is_done()) http::read((*sp_), buf_, parser, ec);
      body = parser.get().body();
      return;
    }
    protocol = std::string(parser.get()["X-Stream-Protocol-Version"]);
    fp_.Feed(std::string_view(static_cast<const char*>(buf_.data().data()), buf_.size()));
  }
  ~SpdyForwardClient() {
    beast::get_lowest_layer((*sp_)).close();
    {
      std::lock_guard<std::mutex> lock(mu_);
      finished_ = true;
    }
    cv_.notify_all();
    watchdog_.join();
  }

  void Open(uint32_t id, const std::string& type, uint16_t port, const std::string& request) {
    agent::spdy::Headers h = {{"streamtype", type}, {"port", std::to_string(port)}};
    if (!request.empty()) h.emplace_back("requestid", request);
    OpenRaw(id, h);
  }
  void OpenRaw(uint32_t id, const agent::spdy::Headers& h) {
    auto syn = agent::spdy::EncodeSynStream(codec_, id, h, false);
    REQUIRE(syn);
    net::write((*sp_), net::buffer(*syn));
  }
  void Data(uint32_t id, std::string_view data, bool fin) {
    net::write((*sp_), net::buffer(agent::spdy::EncodeData(id, data, fin)));
  }
  void Ping(uint32_t id) { net::write((*sp_), net::buffer(agent::spdy::EncodePing(id))); }

  // Reads frames until `done` holds; false (with `error`) on a broken session.
  bool ReadUntil(const std::function<bool()>& done) {
    char chunk[65536];
    while (!done()) {
      auto fr = fp_.Next();
      if (!fr) {
        error = fr.error().message;
        return false;
      }
      if (!*fr) {
        beast::error_code ec;
        size_t n = (*sp_).read_some(net::buffer(chunk), ec);
        if (ec) {
          error = ec.message();
          return false;
        }
        fp_.Feed(std::string_view(chunk, n));
        continue;
      }
      auto& frame = **fr;
      if (!frame.control) {
        streams[frame.stream_id].data += frame.data;
        if (frame.flags & agent::spdy::kFlagFin) streams[frame.stream_id].fin = true;
      } else if (frame.type == agent::spdy::kSynReply) {
        streams[frame.stream_id].reply = true;
      } else if (frame.type == agent::spdy::kRstStream) {
        streams[frame.stream_id].reset = true;
      } else if (frame.type == agent::spdy::kPing) {
        pongs.push_back(frame.value);
      }
    }
    return true;
  }

  int http_status = 0;
  std::string protocol, body, error;
  std::map<uint32_t, Stream> streams;
  std::vector<uint32_t> pongs;

 private:
  net::io_context ioc_;
  ssl::context ctx_;
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> sp_;
  beast::flat_buffer buf_;
  agent::spdy::HeaderCodec codec_;
  agent::spdy::FrameParser fp_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool finished_ = false;
  std::thread watchdog_;
};

}  // namespace

TEST_CASE("kubelet portforward: SPDY sessions carry many connections (kubectl via the API server)") {
  Fixture f;
  LoopbackServer sink(SinkServe), source(SourceServe);
  uint16_t nothing = FreePort();
  SpdyForwardClient c(f, "/portForward/default/web");
  INFO(c.body);
  REQUIRE(c.http_status == 101);
  CHECK(c.protocol == "portforward.k8s.io");
  auto& st = c.streams;

  // Request 0, as kubectl opens it: error stream (closed from the client's side at once), then
  // the data stream; 3 MiB go to the pod, then the client's end of data, which the pod sees as
  // EOF (half-close) and answers.
  c.Open(1, "error", sink.port(), "0");
  c.Data(1, "", true);
  c.Open(3, "data", sink.port(), "0");
  const std::string upload = Pattern(3 << 20);
  for (size_t at = 0; at < upload.size(); at += 60000) {
    c.Data(3, std::string_view(upload).substr(at, 60000), false);
  }
  c.Data(3, "", true);
  // A stream with a bad port header is refused; a ping is answered.
  c.OpenRaw(13, {{"streamtype", "data"}, {"port", "0"}, {"requestid", "9"}});
  c.Ping(7);
  REQUIRE(c.ReadUntil([&] { return st[3].fin && st[1].fin && st[13].reset && !c.pongs.empty(); }));
  CHECK(st[1].reply);
  CHECK(st[3].reply);
  CHECK(!st[13].reply);
  CHECK(st[3].data == "n=" + std::to_string(upload.size()) + " h=" + std::to_string(Fnv(upload)));
  CHECK(st[1].data.empty());
  CHECK(c.pongs == std::vector<uint32_t>{7});

  // Request 1: data stream first; 4 MiB come from the pod, then its end.
  // Request 2 at the same time: nothing listens; the error stream says so.
  c.Open(15, "data", source.port(), "1");
  c.Open(17, "data", nothing, "2");
  c.Open(19, "error", source.port(), "1");
  c.Open(21, "error", nothing, "2");
  REQUIRE(c.ReadUntil([&] { return st[15].fin && st[19].fin && st[17].fin && st[21].fin; }));
  CHECK(st[15].data.size() == kSourceBytes);
  CHECK(st[15].data == Pattern(kSourceBytes));
  CHECK(st[19].data.empty());
  CHECK(st[17].data.empty());
  CHECK(st[21].data.find("error forwarding port " + std::to_string(nothing) +
                         " to pod sb-web, uid : failed to connect to localhost:" +
                         std::to_string(nothing)) == 0);

  // A client without request ids (older kubectl): the pair is guessed from the stream ids.
  LoopbackServer echo(EchoServe);
  c.Open(23, "error", echo.port(), "");
  c.Open(25, "data", echo.port(), "");
  c.Data(25, "hello", false);
  REQUIRE(c.ReadUntil([&] { return st[25].data.size() >= 5; }));
  CHECK(st[25].data == "hello");
  c.Data(25, "", true);  // the echo ends when its input does
  REQUIRE(c.ReadUntil([&] { return st[25].fin && st[23].fin; }));
  std::lock_guard<std::mutex> lock(f.runtime.mu);
  CHECK(f.runtime.forwards.size() == 4);
  for (const auto& [sandbox, port] : f.runtime.forwards) CHECK(sandbox == "sb-web");
}

TEST_CASE("kubelet portforward: WebSocket sessions (a port per query parameter)") {
  Fixture f;
  LoopbackServer source(SourceServe), echo(EchoServe);
  uint16_t nothing = FreePort();
  auto port_bytes = [](uint16_t p) {
    return std::string{static_cast<char>(p & 0xff), static_cast<char>(p >> 8)};
  };
  SECTION("the pod's end of data ends the session (after the grace second)") {
    WsOptions o;
    o.protocols = {"v4.channel.k8s.io"};
    auto r = WsExec(f, "/portForward/default/web?port=" + std::to_string(source.port()) +
                           "&port=" + std::to_string(nothing), o);
    INFO(r.error);
    CHECK(r.http_status == 101);
    CHECK(r.protocol == "v4.channel.k8s.io");
    CHECK(r.close_code == 1000);
    REQUIRE(r.messages.size() >= 4);
    CHECK(r.channels[0] == port_bytes(source.port()) + Pattern(kSourceBytes));
    CHECK(r.channels[1] == port_bytes(source.port()));
    CHECK(r.channels[2] == port_bytes(nothing));
    CHECK(r.channels[3].find(port_bytes(nothing) + "error forwarding port " +
                             std::to_string(nothing) + " to pod sb-web") == 0);
  }
  SECTION("client data reaches the pod (base64 subprotocol)") {
    LoopbackServer once([](int fd) {  // answers one read, then closes
      char buf[256];
      ssize_t n = read(fd, buf, sizeof buf);
      if (n > 0) (void)!write(fd, buf, static_cast<size_t>(n));
    });
    WsOptions o;
    o.protocols = {"v4.base64.channel.k8s.io"};
    o.close_stdin = false;
    o.first_messages = {{0, "ping through"}};
    auto r = WsExec(f, "/portForward/default/web?port=" + std::to_string(once.port()), o);
    INFO(r.error);
    CHECK(r.protocol == "v4.base64.channel.k8s.io");
    CHECK(r.text_frames);
    CHECK(r.close_code == 1000);
    CHECK(r.channels[0] == port_bytes(once.port()) + "ping through");
    CHECK(r.channels[1] == port_bytes(once.port()));
  }
}

TEST_CASE("kubelet portforward: errors before the upgrade, as the kubelet answers them") {
  Fixture f;
  int code = 0;
  std::string spdy = "-X POST -H 'Connection: Upgrade' -H 'Upgrade: SPDY/3.1' "
                     "-H 'X-Stream-Protocol-Version: portforward.k8s.io'";
  CHECK(f.Curl("/portForward/default/nope", &code, spdy) == "pod does not exist");
  CHECK(code == 404);
  CHECK(f.Curl("/portForward/default/web/other-uid", &code, spdy) == "pod not found");
  CHECK(code == 404);
  CHECK(f.Curl("/portForward/default/stopped", &code, spdy) == "pod not found (\"stopped_default\")");
  CHECK(code == 500);
  f.Curl("/portForward/default/web", &code);
  CHECK(code == 400);
  std::string v4 = "-X POST -H 'Connection: Upgrade' -H 'Upgrade: SPDY/3.1' "
                   "-H 'X-Stream-Protocol-Version: v4.channel.k8s.io'";
  CHECK(f.Curl("/portForward/default/web", &code, v4) ==
        "unable to upgrade: unable to negotiate protocol: client supports [v4.channel.k8s.io], "
        "server accepts [portforward.k8s.io]");
  CHECK(code == 403);
  const char* ws = "-H 'Connection: Upgrade' -H 'Upgrade: websocket' -H 'Sec-WebSocket-Version: 13' "
                   "-H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' "
                   "-H 'Sec-WebSocket-Protocol: v4.channel.k8s.io'";
  CHECK(f.Curl("/portForward/default/web", &code, ws) == "query parameter \"port\" is required");
  CHECK(code == 400);
  CHECK(f.Curl("/portForward/default/web?port=0", &code, ws) == "port \"0\" must be > 0");
  CHECK(code == 400);
  {
    std::lock_guard<std::mutex> lock(f.authz.mu);
    REQUIRE(!f.authz.seen.empty());
    CHECK(f.authz.seen.back().subresource == "proxy");
  }
  std::lock_guard<std::mutex> lock(f.runtime.mu);
  CHECK(f.runtime.forwards.empty());
}

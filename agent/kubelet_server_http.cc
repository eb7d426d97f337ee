#include "agent/kubelet_server_http.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>

#include "agent/kubelet_server_streams.h"
#include "agent/kubelet_server_tls.h"
#include "base/file.h"
#include "base/log.h"

namespace agent::kserver {
namespace {

namespace http = beast::http;
using Clock = StreamClock;

constexpr auto kHandshakeTimeout = std::chrono::seconds(10);
// Idle keep-alive and slow request headers.
constexpr auto kReadTimeout = std::chrono::seconds(120);
// A client that does not read a response (or a followed log) for this long is dropped.
constexpr auto kWriteTimeout = std::chrono::seconds(60);
constexpr size_t kMaxConnections = 512;

std::string ErrnoText(int err) { return std::strerror(err); }

std::string PercentDecode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
      out += static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2]));
      i += 2;
    } else if (s[i] == '+' && plus_is_space) {
      out += ' ';
    } else {
      out += s[i];
    }
  }
  return out;
}

HttpRequest ToRequest(const http::request<http::string_body>& msg) {
  HttpRequest r;
  r.method = std::string(msg.method_string());
  r.target = std::string(msg.target());
  r.version = msg.version();
  auto auth = msg.find(http::field::authorization);
  if (auth != msg.end()) r.authorization = std::string(auth->value());
  for (const auto& f : msg) {
    std::string name(f.name_string());
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    r.headers.emplace_back(std::move(name), std::string(f.value()));
  }
  std::string_view t = r.target;
  size_t q = t.find('?');
  r.path = PercentDecode(t.substr(0, q), false);
  if (q != std::string_view::npos) {
    std::string_view qs = t.substr(q + 1);
    while (!qs.empty()) {
      size_t amp = qs.find('&');
      std::string_view kv = qs.substr(0, amp);
      qs = amp == std::string_view::npos ? std::string_view() : qs.substr(amp + 1);
      if (kv.empty()) continue;
      size_t eq = kv.find('=');
      std::string key = PercentDecode(kv.substr(0, eq), true);
      std::string value =
          eq == std::string_view::npos ? std::string() : PercentDecode(kv.substr(eq + 1), true);
      r.query.emplace_back(std::move(key), std::move(value));
    }
  }
  return r;
}

// The connection after a 101: first the bytes the HTTP parser read past the request, then the
// stream itself.
template <class Stream>
class Upgraded final : public RawConnection {
 public:
  Upgraded(Stream& s, beast::flat_buffer& leftover, int stop_fd)
      : s_(s), leftover_(leftover), stop_fd_(stop_fd) {}

  ssize_t ReadSome(char* buf, size_t len) override {
    if (leftover_.size() > 0) {
      size_t n = net::buffer_copy(net::buffer(buf, len), leftover_.data());
      leftover_.consume(n);
      return static_cast<ssize_t>(n);
    }
    return s_.TryRead(buf, len);
  }
  bool HasBuffered() const override { return leftover_.size() > 0 || s_.HasBuffered(); }
  bool WriteAll(std::string_view data) override {
    if (data.empty()) return true;
    s_.set_deadline(Clock::now() + kWriteTimeout);
    beast::error_code ec;
    net::write(s_, net::buffer(data.data(), data.size()), ec);
    return !ec;
  }
  int fd() const override { return s_.fd(); }
  int stop_fd() const override { return stop_fd_; }

 private:
  Stream& s_;
  beast::flat_buffer& leftover_;
  int stop_fd_;
};

template <class Stream>
class Writer final : public ResponseWriter {
 public:
  Writer(Stream& s, unsigned version, bool keep_alive, int stop_fd, beast::flat_buffer& buffer)
      : s_(s), version_(version), keep_alive_(keep_alive), stop_fd_(stop_fd), buffer_(buffer) {}

  bool Reply(int status, std::string_view content_type, std::string_view body) override {
    if (started_) return false;
    started_ = true;
    http::response<http::string_body> res{static_cast<http::status>(status), version_};
    res.set(http::field::content_type,
            beast::string_view(content_type.data(), content_type.size()));
    res.set("X-Content-Type-Options", "nosniff");
    res.keep_alive(keep_alive_);
    res.body() = std::string(body);
    res.prepare_payload();
    s_.set_deadline(Clock::now() + kWriteTimeout);
    beast::error_code ec;
    http::write(s_, res, ec);
    finished_ = !ec;
    broken_ = !!ec;
    return !ec;
  }

  bool BeginStream(int status, std::string_view content_type) override {
    if (started_) return false;
    started_ = true;
    http::response<http::empty_body> res{static_cast<http::status>(status), version_};
    res.set(http::field::content_type,
            beast::string_view(content_type.data(), content_type.size()));
    res.set("X-Content-Type-Options", "nosniff");
    chunked_ = version_ >= 11;
    if (chunked_) {
      res.chunked(true);
    } else {
      keep_alive_ = false;  // HTTP/1.0: the body ends when we close
    }
    res.keep_alive(keep_alive_);
    http::response_serializer<http::empty_body> sr{res};
    s_.set_deadline(Clock::now() + kWriteTimeout);
    beast::error_code ec;
    http::write_header(s_, sr, ec);
    broken_ = !!ec;
    return !ec;
  }

  bool WriteChunk(std::string_view data) override {
    if (!started_ || finished_ || broken_) return false;
    if (data.empty()) return true;  // an empty chunk would end the body
    s_.set_deadline(Clock::now() + kWriteTimeout);
    beast::error_code ec;
    if (chunked_) {
      net::write(s_, http::make_chunk(net::buffer(data.data(), data.size())), ec);
    } else {
      net::write(s_, net::buffer(data.data(), data.size()), ec);
    }
    broken_ = !!ec;
    return !ec;
  }

  bool EndStream() override {
    if (!started_ || finished_ || broken_) return false;
    finished_ = true;
    if (!chunked_) return true;
    s_.set_deadline(Clock::now() + kWriteTimeout);
    beast::error_code ec;
    net::write(s_, http::make_chunk_last(), ec);
    broken_ = !!ec;
    return !ec;
  }

  int socket_fd() const override { return s_.fd(); }
  int stop_fd() const override { return stop_fd_; }

  RawConnection* Upgrade(const std::vector<std::string>& headers) override {
    if (started_) return nullptr;
    started_ = true;
    keep_alive_ = false;  // the connection belongs to the new protocol, then closes
    std::string head = "HTTP/1.1 101 Switching Protocols\r\n";
    for (const auto& h : headers) head += h + "\r\n";
    head += "\r\n";
    upgraded_ = std::make_unique<Upgraded<Stream>>(s_, buffer_, stop_fd_);
    if (!upgraded_->WriteAll(head)) {
      broken_ = true;
      return nullptr;
    }
    return upgraded_.get();
  }

  // The connection can carry another request.
  bool Reusable() const { return started_ && finished_ && !broken_ && keep_alive_; }
  bool started() const { return started_; }

 private:
  Stream& s_;
  unsigned version_;
  bool keep_alive_;
  int stop_fd_;
  beast::flat_buffer& buffer_;
  std::unique_ptr<Upgraded<Stream>> upgraded_;
  bool started_ = false;
  bool finished_ = false;
  bool broken_ = false;
  bool chunked_ = false;
};

template <class Stream>
void RunSession(Stream& s, const Handler& handler, const Peer& peer, int stop_fd) {
  beast::flat_buffer buffer;
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(64 * 1024);
    parser.body_limit(1 << 20);
    s.set_deadline(Clock::now() + kReadTimeout);
    beast::error_code ec;
    http::read(s, buffer, parser, ec);
    if (ec) {
      bool quiet = ec == http::error::end_of_stream || ec == net::error::eof ||
                   ec == net::error::timed_out || ec == net::error::operation_aborted ||
                   ec == net::error::connection_reset;
      if (!quiet) {
        // Malformed request: answer 400 as net/http does, then close.
        Writer<Stream> w(s, 11, false, stop_fd, buffer);
        w.Reply(400, "text/plain; charset=utf-8", "400 Bad Request");
      }
      return;
    }
    const auto& msg = parser.get();
    HttpRequest req = ToRequest(msg);
    Writer<Stream> w(s, msg.version(), msg.keep_alive(), stop_fd, buffer);
    handler(req, peer, w);
    if (!w.started()) w.Reply(500, "text/plain; charset=utf-8", "no response");
    if (!w.Reusable()) return;
  }
}

}  // namespace

const std::string* HttpRequest::Query(std::string_view key) const {
  for (const auto& [k, v] : query) {
    if (k == key) return &v;
  }
  return nullptr;
}

std::string HttpRequest::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) return v;
  }
  return "";
}

std::vector<std::string> HttpRequest::Headers(std::string_view name) const {
  std::vector<std::string> out;
  for (const auto& [k, v] : headers) {
    if (k == name) out.push_back(v);
  }
  return out;
}

HttpServer::HttpServer() : stop_fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

HttpServer::~HttpServer() { Stop(); }

base::Result<int> HttpServer::ListenTcp(const std::string& address, int port, SSL_CTX* tls,
                                        Handler handler) {
  std::string name = (address.find(':') != std::string::npos ? "[" + address + "]" : address) +
                     ":" + std::to_string(port);
  sockaddr_storage ss{};
  socklen_t len = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (inet_pton(AF_INET, address.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    len = sizeof *v4;
  } else if (inet_pton(AF_INET6, address.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    len = sizeof *v6;
  } else {
    return base::Fail("listen on " + name + ": not an IP address", EINVAL);
  }
  base::UniqueFd fd(socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return base::Errno("listen on " + name + ": socket");
  int one = 1;
  setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    return base::Errno("listen on " + name);
  }
  if (listen(fd.get(), 128) != 0) return base::Errno("listen on " + name);
  sockaddr_storage bound{};
  socklen_t blen = sizeof bound;
  getsockname(fd.get(), reinterpret_cast<sockaddr*>(&bound), &blen);
  int bound_port =
      ntohs(bound.ss_family == AF_INET ? reinterpret_cast<sockaddr_in*>(&bound)->sin_port
                                       : reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
  auto l = std::make_unique<Listener>();
  l->fd = std::move(fd);
  l->tls = tls;
  l->name = name;
  l->handler = std::move(handler);
  listeners_.push_back(std::move(l));
  return bound_port;
}

base::Result<> HttpServer::ListenUnix(const std::string& path, Handler handler) {
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  if (path.size() >= sizeof sun.sun_path) {
    return base::Fail("listen on " + path + ": path longer than " +
                          std::to_string(sizeof sun.sun_path - 1) + " bytes",
                      ENAMETOOLONG);
  }
  std::memcpy(sun.sun_path, path.c_str(), path.size() + 1);
  size_t slash = path.rfind('/');
  if (slash != std::string::npos && slash > 0) {
    CUBELET_TRY_CTX(base::MkdirAll(path.substr(0, slash), 0755), "listen on " + path);
  }
  struct stat st;
  if (lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return base::Fail("listen on " + path + ": exists and is not a socket", EEXIST);
    }
    // A socket left by a previous run: refuse to steal it from a live server.
    base::UniqueFd probe(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (probe && connect(probe.get(), reinterpret_cast<sockaddr*>(&sun), sizeof sun) == 0) {
      return base::Fail("listen on " + path + ": another process is serving on it", EADDRINUSE);
    }
    if (unlink(path.c_str()) != 0) return base::Errno("listen on " + path + ": remove stale");
  }
  base::UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return base::Errno("listen on " + path + ": socket");
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&sun), sizeof sun) != 0) {
    return base::Errno("listen on " + path);
  }
  // Until listen() nobody can connect, so there is no window with wider permissions.
  if (chmod(path.c_str(), 0600) != 0) return base::Errno("listen on " + path + ": chmod 0600");
  if (listen(fd.get(), 64) != 0) return base::Errno("listen on " + path);
  auto l = std::make_unique<Listener>();
  l->fd = std::move(fd);
  l->unix_socket = true;
  l->name = path;
  l->handler = std::move(handler);
  listeners_.push_back(std::move(l));
  unix_paths_.push_back(path);
  return {};
}

base::Result<> HttpServer::Start() {
  if (!stop_fd_) return base::Errno("eventfd for the kubelet server");
  if (started_) return {};
  started_ = true;
  accept_thread_ = std::thread([this] { AcceptLoop(); });
  return {};
}

void HttpServer::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopped_) return;
    stopped_ = true;
  }
  if (stop_fd_) eventfd_write(stop_fd_.get(), 1);  // wakes every poll() in every thread
  if (accept_thread_.joinable()) accept_thread_.join();
  ReapFinished(true);
  listeners_.clear();
  for (const auto& p : unix_paths_) unlink(p.c_str());
  unix_paths_.clear();
}

void HttpServer::AcceptLoop() {
  std::vector<pollfd> pfds;
  for (const auto& l : listeners_) pfds.push_back({l->fd.get(), POLLIN, 0});
  pfds.push_back({stop_fd_.get(), POLLIN, 0});
  for (;;) {
    int r = poll(pfds.data(), pfds.size(), 1000);
    if (r < 0 && errno != EINTR) {
      base::log::Error("kubelet server: poll", {{"error", ErrnoText(errno)}});
      return;
    }
    if (pfds.back().revents) return;
    for (size_t i = 0; i + 1 < pfds.size(); ++i) {
      if (pfds[i].revents & POLLIN) Accept(*listeners_[i]);
    }
    ReapFinished(false);
  }
}

void HttpServer::Accept(Listener& l) {
  int fd = accept4(l.fd.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (fd < 0) {
    if (errno == EMFILE || errno == ENFILE) {
      base::log::Warn("kubelet server: accept",
                      {{"listener", l.name}, {"error", ErrnoText(errno)}});
      usleep(100 * 1000);  // let connections finish instead of spinning on a full fd table
    }
    return;
  }
  base::UniqueFd conn(fd);
  std::lock_guard<std::mutex> lock(mu_);
  if (connections_.size() >= kMaxConnections) {
    base::log::Warn("kubelet server: too many connections, refusing one",
                    {{"listener", l.name}, {"limit", kMaxConnections}});
    return;
  }
  auto c = std::make_unique<Connection>();
  Connection* raw = c.get();
  raw->thread = std::thread([this, &l, raw, fd = conn.release()]() mutable {
    Serve(l, base::UniqueFd(fd), raw);
    raw->done = true;
  });
  connections_.push_back(std::move(c));
}

void HttpServer::ReapFinished(bool all) {
  std::list<std::unique_ptr<Connection>> finished;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = connections_.begin(); it != connections_.end();) {
      if (all || (*it)->done) {
        finished.push_back(std::move(*it));
        it = connections_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& c : finished) c->thread.join();
}

void HttpServer::Serve(Listener& l, base::UniqueFd fd, Connection*) {
  // OpenSSL writes with write(2): a peer that went away must give EPIPE, not kill the process.
  sigset_t pipe_set;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, nullptr);
  try {
    Peer peer;
    if (l.unix_socket) {
      ucred cred{};
      socklen_t len = sizeof cred;
      if (getsockopt(fd.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
          (cred.uid != 0 && cred.uid != geteuid())) {
        base::log::Warn("debug socket: refusing a non-root client",
                        {{"socket", l.name}, {"uid", static_cast<int64_t>(cred.uid)}});
        return;
      }
      peer.kind = Peer::Kind::kLocal;
      peer.uid = cred.uid;
      peer.user.name = "system:local-root";
      PlainStream s(fd.get(), stop_fd_.get());
      RunSession(s, l.handler, peer, stop_fd_.get());
    } else if (l.tls) {
      SSL* ssl = SSL_new(l.tls);
      if (!ssl) return;
      auto free_ssl = std::unique_ptr<SSL, decltype(&SSL_free)>(ssl, SSL_free);
      SSL_set_fd(ssl, fd.get());
      TlsStream s(fd.get(), stop_fd_.get(), ssl);
      s.set_deadline(Clock::now() + kHandshakeTimeout);
      std::string detail;
      if (auto ec = s.Handshake(&detail)) {
        base::log::Debug("kubelet server: TLS handshake failed",
                         {{"listener", l.name}, {"error", ec.message()}, {"detail", detail}});
        return;
      }
      peer.kind = Peer::Kind::kTls;
      peer.user = ClientCertUser(ssl, &peer.why_anon);
      RunSession(s, l.handler, peer, stop_fd_.get());
      s.Close();
    } else {
      PlainStream s(fd.get(), stop_fd_.get());
      RunSession(s, l.handler, peer, stop_fd_.get());
    }
  } catch (const std::exception& e) {
    base::log::Error("kubelet server: connection failed",
                     {{"listener", l.name}, {"error", e.what()}});
  }
}

}  // namespace agent::kserver

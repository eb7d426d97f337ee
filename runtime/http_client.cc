#include "runtime/http_client.h"

#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/fd.h"
#include "base/strings.h"

namespace runtime {
namespace {

class Conn {
 public:
  ~Conn() {
    if (ssl_) SSL_free(ssl_);
    if (ctx_) SSL_CTX_free(ctx_);
  }
  Result<> Open(const Url& u, std::chrono::seconds timeout, bool insecure) {
    timeout_ms_ = static_cast<int>(timeout.count() * 1000);
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    int rc = getaddrinfo(u.host.c_str(), u.port.c_str(), &hints, &res);
    if (rc != 0) return base::Fail("resolve " + u.host + ": " + gai_strerror(rc));
    std::string last = "no address";
    for (addrinfo* a = res; a; a = a->ai_next) {
      base::UniqueFd s(socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol));
      if (!s) continue;
      timeval tv{static_cast<time_t>(timeout.count()), 0};
      setsockopt(s.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      setsockopt(s.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
      if (connect(s.get(), a->ai_addr, a->ai_addrlen) == 0) {
        fd_ = std::move(s);
        break;
      }
      last = strerror(errno);
    }
    freeaddrinfo(res);
    if (!fd_) return base::Fail("connect to " + u.host + ":" + u.port + ": " + last);
    if (u.scheme == "https") {
      ctx_ = SSL_CTX_new(TLS_client_method());
      if (!ctx_) return base::Fail("TLS context");
      SSL_CTX_set_default_verify_paths(ctx_);
      SSL_CTX_set_verify(ctx_, insecure ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, nullptr);
      ssl_ = SSL_new(ctx_);
      SSL_set_fd(ssl_, fd_.get());
      SSL_set_tlsext_host_name(ssl_, u.host.c_str());
      if (!insecure) SSL_set1_host(ssl_, u.host.c_str());
      if (SSL_connect(ssl_) != 1) {
        char buf[256];
        ERR_error_string_n(ERR_get_error(), buf, sizeof buf);
        return base::Fail("TLS handshake with " + u.host + ": " + buf);
      }
    }
    return {};
  }
  Result<> Write(const std::string& data) {
    size_t off = 0;
    while (off < data.size()) {
      ssize_t n = ssl_ ? SSL_write(ssl_, data.data() + off, static_cast<int>(data.size() - off))
                       : send(fd_.get(), data.data() + off, data.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return base::Errno("send request");
      off += static_cast<size_t>(n);
    }
    return {};
  }
  // Returns 0 at EOF.
  Result<size_t> Read(char* buf, size_t n) {
    if (!pending_.empty()) {
      size_t k = std::min(n, pending_.size());
      memcpy(buf, pending_.data(), k);
      pending_.erase(0, k);
      return k;
    }
    ssize_t r = ssl_ ? SSL_read(ssl_, buf, static_cast<int>(n)) : recv(fd_.get(), buf, n, 0);
    if (r < 0) {
      if (ssl_ && SSL_get_error(ssl_, static_cast<int>(r)) == SSL_ERROR_ZERO_RETURN) return 0;
      return base::Errno("read response");
    }
    return static_cast<size_t>(r);
  }
  Result<std::string> ReadLine() {
    std::string line;
    char c;
    while (true) {
      auto r = Read(&c, 1);
      if (!r) return tl::unexpected(r.error());
      if (*r == 0) return base::Fail("connection closed in the response header");
      if (c == '\n') break;
      line.push_back(c);
      if (line.size() > 65536) return base::Fail("response header line too long");
    }
    if (!line.empty() && line.back() == '\r') line.pop_back();
    return line;
  }
  void Unread(std::string data) { pending_ = std::move(data) + pending_; }

 private:
  base::UniqueFd fd_;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  int timeout_ms_ = 60000;
  std::string pending_;
};

Result<> Sink(const HttpRequest& req, HttpResponse* resp, const char* data, size_t n) {
  if (req.body_fd < 0) {
    resp->body.append(data, n);
    if (resp->body.size() > (64u << 20)) return base::Fail("response body too large");
    return {};
  }
  size_t off = 0;
  while (off < n) {
    ssize_t w = write(req.body_fd, data + off, n - off);
    if (w < 0) return base::Errno("write download");
    off += static_cast<size_t>(w);
  }
  return {};
}

Result<HttpResponse> GetOnce(const HttpRequest& req, const Url& u) {
  Conn c;
  CUBELET_TRY(c.Open(u, req.timeout, req.insecure_skip_verify));
  std::string host = u.host;
  if (!((u.scheme == "http" && u.port == "80") || (u.scheme == "https" && u.port == "443"))) {
    host += ":" + u.port;
  }
  std::string r = "GET " + u.target + " HTTP/1.1\r\nHost: " + host +
                  "\r\nUser-Agent: cubelet/0.1\r\nConnection: close\r\n";
  for (const auto& [k, v] : req.headers) r += k + ": " + v + "\r\n";
  r += "\r\n";
  CUBELET_TRY(c.Write(r));
  HttpResponse resp;
  auto status = c.ReadLine();
  if (!status) return tl::unexpected(status.error());
  auto parts = base::Split(*status, ' ', true);
  if (parts.size() < 2 || !base::StartsWith(parts[0], "HTTP/")) {
    return base::Fail("bad HTTP status line \"" + *status + "\"");
  }
  resp.status = atoi(parts[1].c_str());
  while (true) {
    auto line = c.ReadLine();
    if (!line) return tl::unexpected(line.error());
    if (line->empty()) break;
    size_t colon = line->find(':');
    if (colon == std::string::npos) continue;
    resp.headers[base::ToLower(line->substr(0, colon))] =
        std::string(base::Trim(std::string_view(*line).substr(colon + 1)));
  }
  bool is_redirect = resp.status >= 300 && resp.status < 400;
  HttpRequest sink_req = req;
  if (resp.status >= 400 || is_redirect) sink_req.body_fd = -1;  // errors: keep the message
  char buf[65536];
  if (base::ToLower(resp.Header("transfer-encoding")).find("chunked") != std::string::npos) {
    while (true) {
      auto line = c.ReadLine();
      if (!line) return tl::unexpected(line.error());
      size_t size = strtoull(line->c_str(), nullptr, 16);
      if (size == 0) break;
      while (size > 0) {
        auto n = c.Read(buf, std::min(size, sizeof buf));
        if (!n) return tl::unexpected(n.error());
        if (*n == 0) return base::Fail("connection closed in a chunk");
        CUBELET_TRY(Sink(sink_req, &resp, buf, *n));
        size -= *n;
      }
      CUBELET_TRY(c.ReadLine());  // CRLF after the chunk
    }
    return resp;
  }
  std::string cl = resp.Header("content-length");
  bool has_len = !cl.empty();
  uint64_t left = has_len ? strtoull(cl.c_str(), nullptr, 10) : ~0ull;
  while (left > 0) {
    auto n = c.Read(buf, static_cast<size_t>(std::min<uint64_t>(left, sizeof buf)));
    if (!n) return tl::unexpected(n.error());
    if (*n == 0) {
      if (has_len) return base::Fail("connection closed before the end of the body");
      break;
    }
    CUBELET_TRY(Sink(sink_req, &resp, buf, *n));
    left -= *n;
  }
  return resp;
}

}  // namespace

Result<Url> ParseUrl(const std::string& url) {
  Url u;
  size_t p = url.find("://");
  if (p == std::string::npos) return base::Fail("bad URL \"" + url + "\"");
  u.scheme = base::ToLower(url.substr(0, p));
  if (u.scheme != "http" && u.scheme != "https") return base::Fail("unsupported URL scheme in \"" + url + "\"");
  std::string rest = url.substr(p + 3);
  size_t slash = rest.find('/');
  std::string hostport = rest.substr(0, slash);
  u.target = slash == std::string::npos ? "/" : rest.substr(slash);
  size_t colon = hostport.rfind(':');
  if (colon != std::string::npos && hostport.find(']') == std::string::npos) {
    u.host = hostport.substr(0, colon);
    u.port = hostport.substr(colon + 1);
  } else {
    u.host = hostport;
    u.port = u.scheme == "https" ? "443" : "80";
  }
  if (u.host.empty()) return base::Fail("bad URL \"" + url + "\"");
  return u;
}

Result<HttpResponse> HttpGet(const HttpRequest& req) {
  std::string url = req.url;
  for (int i = 0; i <= req.max_redirects; ++i) {
    auto u = ParseUrl(url);
    if (!u) return tl::unexpected(u.error());
    HttpRequest r = req;
    if (i > 0) r.headers.erase("Authorization");  // never leak registry tokens to storage
    auto resp = GetOnce(r, *u);
    if (!resp) return tl::unexpected(resp.error().Wrap("GET " + url));
    if (resp->status >= 300 && resp->status < 400 && !resp->Header("location").empty()) {
      std::string loc = resp->Header("location");
      if (loc[0] == '/') loc = u->scheme + "://" + u->host + ":" + u->port + loc;
      url = loc;
      continue;
    }
    return resp;
  }
  return base::Fail("GET " + req.url + ": too many redirects");
}

}  // namespace runtime

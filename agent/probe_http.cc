#include "agent/probe_http.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <climits>
#include <cstring>

#include "base/fd.h"
#include "base/strings.h"

namespace agent {

namespace {

using Clock = std::chrono::steady_clock;
using Deadline = Clock::time_point;

bool IsIpLiteral(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

bool IsHex(char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; }

// Escapes what Go's url.URL.String() escapes in a path (or query): kept are unreserved characters,
// sub-delimiters, ':' '@' '/' and valid %XX sequences; `extra` lists more characters to keep.
std::string Escape(std::string_view s, std::string_view extra) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    bool keep = std::isalnum(c) || std::strchr("-._~!$&'()*+,;=:@/", c) != nullptr ||
                (c != 0 && extra.find(static_cast<char>(c)) != std::string_view::npos);
    if (c == 0) keep = false;
    if (c == '%' && i + 2 < s.size() && IsHex(s[i + 1]) && IsHex(s[i + 2])) keep = true;
    if (keep) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

// path[?query] -> escaped request target ("/" when empty); a fragment is dropped.
std::string Target(std::string_view path_query) {
  if (auto hash = path_query.find('#'); hash != std::string_view::npos) path_query = path_query.substr(0, hash);
  std::string_view path = path_query, query;
  bool has_query = false;
  if (auto q = path_query.find('?'); q != std::string_view::npos) {
    path = path_query.substr(0, q);
    query = path_query.substr(q + 1);
    has_query = true;
  }
  std::string t = Escape(path, "");
  if (t.empty() || t[0] != '/') t.insert(t.begin(), '/');
  if (has_query) t += "?" + Escape(query, "?[]");
  return t;
}

// RFC 3986 5.2.4.
std::string RemoveDotSegments(const std::string& path) {
  std::vector<std::string> out;
  auto parts = base::Split(path, '/');
  for (size_t i = 0; i < parts.size(); ++i) {
    const std::string& p = parts[i];
    bool last = i + 1 == parts.size();
    if (p == ".") {
      if (last) out.emplace_back();
      continue;
    }
    if (p == "..") {
      if (out.size() > 1) out.pop_back();
      if (last) out.emplace_back();
      continue;
    }
    out.push_back(p);
  }
  std::string r = base::Join(out, "/");
  if (r.empty() || r[0] != '/') r.insert(r.begin(), '/');
  return r;
}

bool ParseAuthority(const std::string& scheme, std::string_view auth, HttpUrl* u) {
  if (auto at = auth.rfind('@'); at != std::string_view::npos) auth = auth.substr(at + 1);  // userinfo
  u->authority = std::string(auth);
  std::string_view host = auth, port;
  if (!auth.empty() && auth[0] == '[') {
    auto close = auth.find(']');
    if (close == std::string_view::npos) return false;
    host = auth.substr(1, close - 1);
    if (close + 1 < auth.size()) {
      if (auth[close + 1] != ':') return false;
      port = auth.substr(close + 2);
    }
  } else if (auto colon = auth.rfind(':'); colon != std::string_view::npos) {
    host = auth.substr(0, colon);
    port = auth.substr(colon + 1);
  }
  if (host.empty()) return false;
  u->host = std::string(host);
  u->port = scheme == "https" ? 443 : 80;
  if (!port.empty()) {
    int p = 0;
    for (char c : port) {
      if (!std::isdigit(static_cast<unsigned char>(c)) || p > 65535) return false;
      p = p * 10 + (c - '0');
    }
    if (p <= 0 || p > 65535) return false;
    u->port = p;
  }
  return true;
}

std::string LowerFirst(std::string s) {
  if (!s.empty()) s[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(s[0])));
  return s;
}

std::string ErrnoText(int err) { return LowerFirst(std::strerror(err)); }

int MsLeft(Deadline d) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d - Clock::now()).count();
  if (ms <= 0) return 0;
  return static_cast<int>(std::min<int64_t>(ms, INT_MAX));
}

base::Error Timeout() { return base::Error{ETIMEDOUT, "i/o timeout"}; }

// SSL_write uses write(2): keep a closed peer from raising SIGPIPE in this thread.
class SigpipeBlock {
 public:
  SigpipeBlock() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    sigpending(&pending_);
    was_pending_ = sigismember(&pending_, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &set, &old_);
  }
  ~SigpipeBlock() {
    if (!was_pending_) {
      sigset_t set;
      sigemptyset(&set);
      sigaddset(&set, SIGPIPE);
      timespec zero{0, 0};
      while (sigtimedwait(&set, nullptr, &zero) > 0) {
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }

 private:
  sigset_t old_, pending_;
  bool was_pending_ = false;
};

SSL_CTX* ClientContext() {
  // The kubelet's probes use InsecureSkipVerify: pods serve self-signed certificates.
  static SSL_CTX* ctx = [] {
    SSL_CTX* c = SSL_CTX_new(TLS_client_method());
    if (c) {
      SSL_CTX_set_verify(c, SSL_VERIFY_NONE, nullptr);
      SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
      SSL_CTX_set_options(c, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
    }
    return c;
  }();
  return ctx;
}

std::string SslErrorText() {
  unsigned long e = ERR_get_error();
  if (e == 0) return "connection closed";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return buf;
}

// One TCP connection, optionally TLS, every operation bounded by a deadline.
class Conn {
 public:
  Conn() = default;
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;
  ~Conn() {
    if (ssl_) SSL_free(ssl_);
  }

  // Go's dialer: every resolved address in turn. Errors carry Go's "dial tcp ..." text.
  base::Result<> Dial(const std::string& host, int port, Deadline d) {
    std::string where = "dial tcp " + JoinHostPort(host, port);
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo* res = nullptr;
    std::string service = std::to_string(port);
    int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &res);
    if (rc != 0) {
      std::string why = rc == EAI_NONAME ? "no such host" : LowerFirst(gai_strerror(rc));
      return base::Fail("dial tcp: lookup " + host + ": " + why, EHOSTUNREACH);
    }
    base::Error last{ECONNREFUSED, where + ": connect: connection refused"};
    for (addrinfo* ai = res; ai; ai = ai->ai_next) {
      auto r = DialOne(ai, d);
      if (r) {
        freeaddrinfo(res);
        return {};
      }
      last = r.error();
      last.message = where + ": " + last.message;
      if (last.code == ETIMEDOUT) break;
    }
    freeaddrinfo(res);
    return tl::unexpected(last);
  }

  base::Result<> StartTls(const std::string& host, Deadline d) {
    SSL_CTX* ctx = ClientContext();
    if (!ctx) return base::Fail("tls: cannot create a client context: " + SslErrorText());
    ssl_ = SSL_new(ctx);
    if (!ssl_ || SSL_set_fd(ssl_, fd_.get()) != 1) return base::Fail("tls: " + SslErrorText());
    if (!IsIpLiteral(host)) SSL_set_tlsext_host_name(ssl_, host.c_str());
    for (;;) {
      ERR_clear_error();
      int r = SSL_connect(ssl_);
      if (r == 1) return {};
      int e = SSL_get_error(ssl_, r);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        if (auto w = Wait(e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, d); !w) return w;
        continue;
      }
      return base::Fail("tls: handshake failed: " + SslErrorText());
    }
  }

  base::Result<> WriteAll(std::string_view data, Deadline d) {
    while (!data.empty()) {
      ssize_t n;
      if (ssl_) {
        SigpipeBlock block;
        ERR_clear_error();
        int r = SSL_write(ssl_, data.data(), static_cast<int>(std::min<size_t>(data.size(), INT_MAX)));
        if (r <= 0) {
          int e = SSL_get_error(ssl_, r);
          if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            if (auto w = Wait(e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, d); !w) return w;
            continue;
          }
          return base::Fail("write: " + SslErrorText());
        }
        n = r;
      } else {
        n = ::send(fd_.get(), data.data(), data.size(), MSG_NOSIGNAL);
        if (n < 0) {
          if (errno == EINTR) continue;
          if (errno == EAGAIN) {
            if (auto w = Wait(POLLOUT, d); !w) return w;
            continue;
          }
          return base::Fail("write: " + ErrnoText(errno), errno);
        }
      }
      data.remove_prefix(static_cast<size_t>(n));
    }
    return {};
  }

  // 0 = EOF.
  base::Result<size_t> Read(char* buf, size_t len, Deadline d) {
    for (;;) {
      if (ssl_) {
        ERR_clear_error();
        int r = SSL_read(ssl_, buf, static_cast<int>(std::min<size_t>(len, INT_MAX)));
        if (r > 0) return static_cast<size_t>(r);
        int e = SSL_get_error(ssl_, r);
        if (e == SSL_ERROR_ZERO_RETURN) return 0;
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
          if (auto w = Wait(e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, d); !w) return tl::unexpected(w.error());
          continue;
        }
        if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) return 0;  // closed without close_notify
        return base::Fail("read: " + SslErrorText());
      }
      ssize_t n = ::recv(fd_.get(), buf, len, 0);
      if (n >= 0) return static_cast<size_t>(n);
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        if (auto w = Wait(POLLIN, d); !w) return tl::unexpected(w.error());
        continue;
      }
      return base::Fail("read: " + ErrnoText(errno), errno);
    }
  }

 private:
  base::Result<> DialOne(const addrinfo* ai, Deadline d) {
    base::UniqueFd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol));
    if (!fd) return base::Fail("socket: " + ErrnoText(errno), errno);
    // As the kubelet's probe dialer: a short linger so that probes leave no TIME_WAIT sockets.
    linger lg{1, 1};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    if (::connect(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0) {
      if (errno != EINPROGRESS) return base::Fail("connect: " + ErrnoText(errno), errno);
      fd_ = std::move(fd);
      if (auto w = Wait(POLLOUT, d); !w) {
        fd_.reset();
        return w;
      }
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(fd_.get(), SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) {
        fd_.reset();
        return base::Fail("connect: " + ErrnoText(err), err);
      }
      return {};
    }
    fd_ = std::move(fd);
    return {};
  }

  base::Result<> Wait(short events, Deadline d) {
    for (;;) {
      int ms = MsLeft(d);
      if (ms == 0) return tl::unexpected(Timeout());
      pollfd p{fd_.get(), events, 0};
      int n = ::poll(&p, 1, ms);
      if (n > 0) return {};
      if (n == 0) return tl::unexpected(Timeout());
      if (errno != EINTR) return base::Fail("poll: " + ErrnoText(errno), errno);
    }
  }

  base::UniqueFd fd_;
  SSL* ssl_ = nullptr;
};

struct OneResult {
  std::optional<HttpResponse> response;
  base::Error error;
};

OneResult GetOnce(const HttpProbeRequest& req, const HttpUrl& url, const std::string& host, Deadline d,
                  size_t max_body) {
  OneResult out;
  Conn conn;
  if (auto r = conn.Dial(url.host, url.port, d); !r) {
    out.error = r.error();
    return out;
  }
  if (url.scheme == "https") {
    if (auto r = conn.StartTls(url.host, d); !r) {
      out.error = r.error();
      return out;
    }
  }
  if (auto r = conn.WriteAll(RenderRequest(req, url, host), d); !r) {
    out.error = r.error();
    return out;
  }
  HttpResponseParser parser(max_body);
  char buf[16384];
  for (;;) {
    auto n = conn.Read(buf, sizeof buf, d);
    if (!n) {
      out.error = n.error();
      return out;
    }
    auto st = *n == 0 ? parser.Eof() : parser.Feed(std::string_view(buf, *n));
    if (st == HttpResponseParser::State::kDone) {
      out.response = parser.response();
      return out;
    }
    if (st == HttpResponseParser::State::kError) {
      out.error = base::Error{0, parser.error()};
      return out;
    }
  }
}

bool IsRedirect(int code) { return code == 301 || code == 302 || code == 303 || code == 307 || code == 308; }

}  // namespace

std::string JoinHostPort(const std::string& host, int port) {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

HttpUrl FormatProbeUrl(std::string_view scheme, const std::string& host, int port, std::string_view path) {
  HttpUrl u;
  u.scheme = base::ToLower(scheme.empty() ? std::string_view("http") : scheme);
  u.host = host;
  u.port = port;
  u.authority = JoinHostPort(host, port);
  u.target = Target(path);
  return u;
}

std::optional<HttpUrl> ResolveLocation(const HttpUrl& base_url, std::string_view loc) {
  if (auto hash = loc.find('#'); hash != std::string_view::npos) loc = loc.substr(0, hash);
  loc = base::Trim(loc);
  HttpUrl u;
  u.scheme = base_url.scheme;
  // scheme ":" — letters, digits, "+-." before the first ':' that precedes any '/', '?'.
  size_t colon = loc.find(':');
  size_t stop = loc.find_first_of("/?");
  bool has_scheme = colon != std::string_view::npos && colon > 0 && (stop == std::string_view::npos || colon < stop) &&
                    std::isalpha(static_cast<unsigned char>(loc[0]));
  for (size_t i = 0; has_scheme && i < colon; ++i) {
    char c = loc[i];
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '-' && c != '.') has_scheme = false;
  }
  std::string_view rest = loc;
  if (has_scheme) {
    u.scheme = base::ToLower(loc.substr(0, colon));
    if (u.scheme != "http" && u.scheme != "https") return std::nullopt;
    rest = loc.substr(colon + 1);
    if (!base::StartsWith(rest, "//")) return std::nullopt;
  }
  std::string path_query;
  if (base::StartsWith(rest, "//")) {
    rest.remove_prefix(2);
    size_t end = rest.find_first_of("/?");
    std::string_view auth = rest.substr(0, end);
    if (!ParseAuthority(u.scheme, auth, &u)) return std::nullopt;
    path_query = end == std::string_view::npos ? "" : std::string(rest.substr(end));
  } else {
    u.authority = base_url.authority;
    u.host = base_url.host;
    u.port = base_url.port;
    std::string base_path = base_url.target.substr(0, base_url.target.find('?'));
    if (rest.empty()) {
      path_query = base_url.target;
    } else if (rest[0] == '/') {
      path_query = std::string(rest);
    } else if (rest[0] == '?') {
      path_query = base_path + std::string(rest);
    } else {
      path_query = base_path.substr(0, base_path.rfind('/') + 1) + std::string(rest);
    }
  }
  std::string path = path_query, query;
  if (auto q = path_query.find('?'); q != std::string::npos) {
    path = path_query.substr(0, q);
    query = path_query.substr(q);
  }
  u.target = Target(RemoveDotSegments(path) + query);
  return u;
}

std::string CanonicalHeaderKey(std::string_view key) {
  for (char c : key) {
    // Go leaves keys with characters outside the token set untouched.
    if (c == ' ' || c == ':' || static_cast<unsigned char>(c) < 0x21 || static_cast<unsigned char>(c) > 0x7e)
      return std::string(key);
  }
  std::string out(key);
  bool upper = true;
  for (char& c : out) {
    c = upper ? static_cast<char>(std::toupper(static_cast<unsigned char>(c)))
              : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    upper = c == '-';
  }
  return out;
}

HttpProbeRequest NewProbeRequest(HttpUrl url, const HttpHeaders& headers, std::string_view purpose) {
  HttpProbeRequest req;
  req.url = std::move(url);
  bool has_ua = false, has_accept = false, accept_empty = false;
  for (const auto& [name, value] : headers) {
    std::string key = CanonicalHeaderKey(name);
    if (key == "Host") {
      if (req.host.empty()) req.host = value;
      continue;
    }
    if (key == "User-Agent") has_ua = true;
    if (key == "Accept") {
      if (!has_accept) accept_empty = value.empty();
      has_accept = true;
    }
    req.headers.emplace_back(key, value);
  }
  if (!has_ua) req.headers.emplace_back("User-Agent", "kube-" + std::string(purpose) + "/1.32");
  if (!has_accept) req.headers.emplace_back("Accept", "*/*");
  if (has_accept && accept_empty) {
    req.headers.erase(std::remove_if(req.headers.begin(), req.headers.end(),
                                     [](const auto& h) { return h.first == "Accept"; }),
                      req.headers.end());
  }
  return req;
}

std::string RenderRequest(const HttpProbeRequest& req, const HttpUrl& url, const std::string& host) {
  auto clean = [](std::string_view v) {
    std::string s;
    for (char c : v) {
      if (c != '\r' && c != '\n') s += c;
    }
    return s;
  };
  std::string out = "GET " + url.target + " HTTP/1.1\r\nHost: " + clean(host.empty() ? url.authority : host) + "\r\n";
  // Go writes User-Agent first, then the other headers sorted by name (stable for repeats).
  HttpHeaders sorted = req.headers;
  std::stable_sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& [k, v] : sorted) {
    if (k == "User-Agent" && !v.empty()) out += "User-Agent: " + clean(v) + "\r\n";
  }
  for (const auto& [k, v] : sorted) {
    if (k != "User-Agent") out += clean(k) + ": " + clean(v) + "\r\n";
  }
  out += "Connection: close\r\n\r\n";
  return out;
}

std::string HttpResponse::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k.size() == name.size() && base::ToLower(k) == base::ToLower(name)) return v;
  }
  return "";
}

HttpResponseParser::HttpResponseParser(size_t max_body) : max_body_(max_body) {}

HttpResponseParser::State HttpResponseParser::Fail(std::string msg) {
  error_ = std::move(msg);
  phase_ = Phase::kDone;
  return State::kError;
}

bool HttpResponseParser::AppendBody(std::string_view data) {
  size_t room = max_body_ - std::min(max_body_, resp_.body.size());
  if (data.size() > room) {
    resp_.body.append(data.substr(0, room));
    resp_.truncated = true;
    return false;
  }
  resp_.body.append(data);
  return true;
}

HttpResponseParser::State HttpResponseParser::Feed(std::string_view data) {
  if (!error_.empty()) return State::kError;
  if (phase_ == Phase::kDone) return State::kDone;
  buf_.append(data);
  return Run();
}

HttpResponseParser::State HttpResponseParser::Eof() {
  if (!error_.empty()) return State::kError;
  switch (phase_) {
    case Phase::kDone:
    case Phase::kToEof:
      phase_ = Phase::kDone;
      return State::kDone;
    case Phase::kHead:
      return Fail(buf_.empty() ? "EOF" : "unexpected EOF");
    default:
      return Fail("unexpected EOF");
  }
}

HttpResponseParser::State HttpResponseParser::Run() {
  constexpr size_t kMaxHead = 1 << 20;
  for (;;) {
    switch (phase_) {
      case Phase::kDone:
        return State::kDone;
      case Phase::kHead: {
        size_t end = buf_.find("\r\n\r\n");
        size_t skip = 4;
        if (size_t lf = buf_.find("\n\n"); lf != std::string::npos && (end == std::string::npos || lf < end)) {
          end = lf;
          skip = 2;
        }
        if (end == std::string::npos) {
          if (buf_.size() > kMaxHead) return Fail("net/http: server response headers exceeded 1048576 bytes");
          return State::kNeedMore;
        }
        std::string head = buf_.substr(0, end);
        buf_.erase(0, end + skip);
        auto lines = base::Split(head, '\n');
        for (auto& l : lines) {
          if (!l.empty() && l.back() == '\r') l.pop_back();
        }
        const std::string& status = lines[0];
        if (!base::StartsWith(status, "HTTP/")) return Fail("malformed HTTP response \"" + status + "\"");
        size_t sp = status.find(' ');
        std::string code = sp == std::string::npos ? "" : status.substr(sp + 1, 3);
        if (code.size() != 3 || !std::all_of(code.begin(), code.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }))
          return Fail("malformed HTTP status code \"" + code + "\"");
        resp_ = HttpResponse{};
        resp_.code = std::stoi(code);
        for (size_t i = 1; i < lines.size(); ++i) {
          const std::string& l = lines[i];
          if (l.empty()) continue;
          size_t c = l.find(':');
          if (c == std::string::npos) return Fail("malformed MIME header line: " + l);
          resp_.headers.emplace_back(std::string(base::Trim(l.substr(0, c))), std::string(base::Trim(l.substr(c + 1))));
        }
        if (resp_.code >= 100 && resp_.code < 200 && resp_.code != 101) continue;  // interim response
        if (resp_.code < 200 || resp_.code == 204 || resp_.code == 304) {
          phase_ = Phase::kDone;
          continue;
        }
        std::string te = base::ToLower(resp_.Header("Transfer-Encoding"));
        std::string cl = resp_.Header("Content-Length");
        if (te.find("chunked") != std::string::npos) {
          phase_ = Phase::kChunkSize;
        } else if (!cl.empty()) {
          if (!std::all_of(cl.begin(), cl.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }) ||
              cl.size() > 18)
            return Fail("bad Content-Length \"" + cl + "\"");
          left_ = std::stoull(cl);
          phase_ = left_ == 0 ? Phase::kDone : Phase::kLength;
        } else {
          phase_ = Phase::kToEof;
        }
        continue;
      }
      case Phase::kLength: {
        size_t n = static_cast<size_t>(std::min<uint64_t>(left_, buf_.size()));
        bool room = AppendBody(std::string_view(buf_).substr(0, n));
        buf_.erase(0, n);
        left_ -= n;
        if (!room) {
          phase_ = Phase::kDone;
          continue;
        }
        if (left_ == 0) {
          phase_ = Phase::kDone;
          continue;
        }
        return State::kNeedMore;
      }
      case Phase::kToEof: {
        bool room = AppendBody(buf_);
        buf_.clear();
        if (!room) {
          phase_ = Phase::kDone;
          continue;
        }
        return State::kNeedMore;
      }
      case Phase::kChunkSize: {
        size_t nl = buf_.find('\n');
        if (nl == std::string::npos) {
          if (buf_.size() > 4096) return Fail("malformed chunked encoding");
          return State::kNeedMore;
        }
        std::string line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        if (auto semi = line.find(';'); semi != std::string::npos) line.resize(semi);
        std::string hex(base::Trim(line));
        if (hex.empty() || hex.size() > 15 || !std::all_of(hex.begin(), hex.end(), IsHex))
          return Fail("malformed chunked encoding");
        left_ = std::stoull(hex, nullptr, 16);
        phase_ = left_ == 0 ? Phase::kTrailer : Phase::kChunkData;
        continue;
      }
      case Phase::kChunkData: {
        size_t n = static_cast<size_t>(std::min<uint64_t>(left_, buf_.size()));
        bool room = AppendBody(std::string_view(buf_).substr(0, n));
        buf_.erase(0, n);
        left_ -= n;
        if (!room) {
          phase_ = Phase::kDone;
          continue;
        }
        if (left_ > 0) return State::kNeedMore;
        phase_ = Phase::kChunkEnd;
        continue;
      }
      case Phase::kChunkEnd: {
        size_t nl = buf_.find('\n');
        if (nl == std::string::npos) {
          if (buf_.size() > 2) return Fail("malformed chunked encoding");
          return State::kNeedMore;
        }
        if (!base::Trim(buf_.substr(0, nl)).empty()) return Fail("malformed chunked encoding");
        buf_.erase(0, nl + 1);
        phase_ = Phase::kChunkSize;
        continue;
      }
      case Phase::kTrailer:
        // The body is complete; trailers do not matter to a probe.
        phase_ = Phase::kDone;
        continue;
    }
  }
}

HttpGetResult HttpGet(const HttpProbeRequest& req, const HttpGetOptions& opts) {
  HttpGetResult out;
  Deadline d = Clock::now() + opts.timeout;
  HttpUrl url = req.url;
  std::string host = req.host;
  for (int redirects = 0;; ++redirects) {
    OneResult r = GetOnce(req, url, host, d, opts.max_body);
    std::string prefix = "Get \"" + url.String() + "\": ";
    if (!r.response) {
      if (r.error.code == ETIMEDOUT) {
        out.timed_out = true;
        out.error = prefix + "context deadline exceeded (Client.Timeout exceeded while awaiting headers)";
      } else {
        out.error = prefix + r.error.message;
      }
      return out;
    }
    std::string loc = r.response->Header("Location");
    if (!IsRedirect(r.response->code) || loc.empty()) {
      out.response = std::move(r.response);
      return out;
    }
    auto next = ResolveLocation(url, loc);
    if (!next) {
      out.error = prefix + "failed to parse Location header \"" + loc + "\"";
      return out;
    }
    // K:pkg/probe/http RedirectChecker: a redirect to another host ends with this response.
    if (!opts.follow_non_local_redirects && next->host != req.url.host) {
      out.response = std::move(r.response);
      return out;
    }
    if (redirects + 1 >= 10) {
      out.error = "Get \"" + next->String() + "\": stopped after 10 redirects";
      return out;
    }
    // Go keeps a caller-set Host only through relative redirects.
    bool relative = loc.find("://") == std::string::npos;
    if (!relative) host.clear();
    url = std::move(*next);
  }
}

std::string TcpDial(const std::string& host, int port, std::chrono::milliseconds timeout) {
  Conn conn;
  auto r = conn.Dial(host, port, Clock::now() + timeout);
  return r ? "" : r.error().message;
}

}  // namespace agent

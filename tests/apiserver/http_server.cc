#include "tests/apiserver/http_server.h"

#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/stat.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <array>
#include <atomic>
#include <functional>
#include <limits>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "base/log.h"
#include "tests/apiserver/internal.h"
#include "tests/apiserver/util.h"

namespace apiserver {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = net::ip::tcp;

namespace {

// Bearer tokens from DIR/tokens.csv, reloaded when the file changes.
class TokenAuthenticator {
 public:
  explicit TokenAuthenticator(std::string path) : path_(std::move(path)) {}

  std::optional<UserInfo> Authenticate(const std::string& token) {
    std::lock_guard<std::mutex> lock(mu_);
    Reload();
    auto it = tokens_.find(token);
    if (it == tokens_.end()) return std::nullopt;
    return it->second;
  }

 private:
  void Reload() {
    struct stat st{};
    if (stat(path_.c_str(), &st) != 0) return;
    if (st.st_mtim.tv_sec == mtime_.tv_sec && st.st_mtim.tv_nsec == mtime_.tv_nsec &&
        st.st_size == size_)
      return;
    mtime_ = st.st_mtim;
    size_ = st.st_size;
    tokens_.clear();
    std::ifstream in(path_);
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty() || line[0] == '#') continue;
      std::vector<std::string> f;
      std::string cur;
      for (char c : line) {
        if (c == ',') {
          f.push_back(cur);
          cur.clear();
        } else if (c != '\r') {
          cur += c;
        }
      }
      f.push_back(cur);
      if (f.size() < 2) continue;
      UserInfo u;
      u.name = f[1];
      u.uid = f.size() > 2 ? f[2] : "";
      if (f.size() > 3) {
        std::string g;
        for (char c : f[3] + "|") {
          if (c == '|') {
            if (!g.empty()) u.groups.push_back(g);
            g.clear();
          } else if (c != '"') {
            g += c;
          }
        }
      }
      u.groups.push_back("system:authenticated");
      u.authenticated = true;
      tokens_[f[0]] = u;
    }
  }

  std::string path_;
  std::mutex mu_;
  timespec mtime_{};
  off_t size_ = -1;
  std::map<std::string, UserInfo> tokens_;
};

std::string ReasonFor(int code) {
  switch (code) {
    case 400: return "BadRequest";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "NotFound";
    case 409: return "Conflict";
    case 410: return "Expired";
    case 503: return "ServiceUnavailable";
    default: return "InternalError";
  }
}

// User of a verified TLS client certificate: CN is the name, O the groups.
std::optional<UserInfo> CertUser(SSL* ssl) {
  X509* cert = SSL_get1_peer_certificate(ssl);
  if (!cert) return std::nullopt;
  std::unique_ptr<X509, decltype(&X509_free)> guard(cert, X509_free);
  if (SSL_get_verify_result(ssl) != X509_V_OK) return std::nullopt;
  UserInfo u;
  X509_NAME* subject = X509_get_subject_name(cert);
  for (int i = 0; i < X509_NAME_entry_count(subject); ++i) {
    X509_NAME_ENTRY* e = X509_NAME_get_entry(subject, i);
    int nid = OBJ_obj2nid(X509_NAME_ENTRY_get_object(e));
    ASN1_STRING* data = X509_NAME_ENTRY_get_data(e);
    std::string value(reinterpret_cast<const char*>(ASN1_STRING_get0_data(data)),
                      static_cast<size_t>(ASN1_STRING_length(data)));
    if (nid == NID_commonName) u.name = value;
    if (nid == NID_organizationName) u.groups.push_back(value);
  }
  if (u.name.empty()) return std::nullopt;
  u.groups.push_back("system:authenticated");
  unsigned char* der = nullptr;
  int len = i2d_X509(cert, &der);
  if (len > 0) {
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256(der, static_cast<size_t>(len), digest);
    OPENSSL_free(der);
    std::string hex;
    char buf[3];
    for (unsigned char c : digest) {
      snprintf(buf, sizeof(buf), "%02x", c);
      hex += buf;
    }
    u.extra["authentication.kubernetes.io/credential-id"] = {"X509SHA256=" + hex};
  }
  u.authenticated = true;
  return u;
}

void ParseTarget(const std::string& target, Request* req) {
  size_t q = target.find('?');
  req->path = UrlDecode(target.substr(0, q));
  if (q == std::string::npos) return;
  std::string query = target.substr(q + 1);
  size_t start = 0;
  while (start <= query.size()) {
    size_t amp = query.find('&', start);
    if (amp == std::string::npos) amp = query.size();
    std::string kv = query.substr(start, amp - start);
    if (!kv.empty()) {
      size_t eq = kv.find('=');
      std::string k = UrlDecode(kv.substr(0, eq));
      std::string v = eq == std::string::npos ? "" : UrlDecode(kv.substr(eq + 1));
      req->query.emplace(k, v);
    }
    start = amp + 1;
  }
}

}  // namespace

struct HttpServer::Impl {
  ApiServer* api_ptr = nullptr;
  TlsAssets assets;
  net::io_context ioc;
  ssl::context server_ctx{ssl::context::tls_server};
  std::vector<std::unique_ptr<tcp::acceptor>> acceptors;
  TokenAuthenticator tokens;
  std::atomic<int> connections{0};

  explicit Impl(TlsAssets as)
      : assets(std::move(as)), tokens(assets.dir + "/tokens.csv") {
    server_ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                           ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                           ssl::context::no_tlsv1_1);
    server_ctx.use_certificate_chain_file(assets.serving_crt);
    server_ctx.use_private_key_file(assets.serving_key, ssl::context::pem);
    server_ctx.load_verify_file(assets.ca_crt);
    // Like Go's VerifyClientCertIfGiven: a client certificate is optional, but must be valid.
    server_ctx.set_verify_mode(ssl::verify_peer);
    SSL_CTX_set_client_CA_list(server_ctx.native_handle(),
                               SSL_load_client_CA_file(assets.ca_crt.c_str()));
  }

  void Serve(net::io_context& ioc, tcp::socket socket);
  void ProxyUpgrade(net::io_context& ioc, beast::ssl_stream<beast::tcp_stream>& client,
                    beast::flat_buffer& client_buf, const http::request<http::string_body>& hreq,
                    const std::string& url);
  void TunnelSpdy(net::io_context& ioc, beast::ssl_stream<beast::tcp_stream>& client,
                  beast::ssl_stream<beast::tcp_stream>& up, beast::flat_buffer& up_buf,
                  const http::request<http::string_body>& hreq,
                  const http::response<http::string_body>& upres);
  std::string KubeletClientContext(ssl::context& ctx);
  void Proxy(beast::ssl_stream<beast::tcp_stream>& stream, const Request& req,
             const std::string& url, unsigned version, bool keep_alive);
  template <class Stream>
  void WriteResponse(Stream& stream, const Response& r, unsigned version, bool keep_alive,
                     bool head);
};

template <class Stream>
void HttpServer::Impl::WriteResponse(Stream& stream, const Response& r, unsigned version,
                                     bool keep_alive, bool head) {
  http::response<http::string_body> res{static_cast<http::status>(r.status), version};
  res.set("Audit-Id", NewUid());
  res.set(http::field::cache_control, "no-cache, private");
  res.set(http::field::content_type, r.content_type);
  if (r.status >= 400 && r.status != 401) res.set("X-Content-Type-Options", "nosniff");
  res.keep_alive(keep_alive);
  if (!head) res.body() = r.body;
  res.prepare_payload();
  if (head) res.content_length(r.body.size());
  http::write(stream, res);
}

namespace {

struct KubeletUrl {
  std::string hostport, target, host, port;
};

// "https://host:port/path?query" (a node's kubelet URL as the API server builds it).
KubeletUrl SplitKubeletUrl(const std::string& url) {
  KubeletUrl u;
  std::string rest = url.substr(8);
  size_t slash = rest.find('/');
  u.hostport = rest.substr(0, slash);
  u.target = slash == std::string::npos ? "/" : rest.substr(slash);
  u.host = u.hostport;
  u.port = "443";
  size_t colon = u.hostport.rfind(':');
  if (colon != std::string::npos) {
    u.host = u.hostport.substr(0, colon);
    u.port = u.hostport.substr(colon + 1);
  }
  if (!u.host.empty() && u.host.front() == '[') u.host = u.host.substr(1, u.host.size() - 2);
  return u;
}

// TCP connect (10 s) and TLS handshake to a kubelet; the stream has no deadline afterwards.
beast::error_code DialKubelet(net::io_context& ioc, beast::ssl_stream<beast::tcp_stream>& up,
                              const std::string& host, const std::string& port) {
  beast::error_code ec;
  tcp::resolver resolver(ioc);
  auto results = resolver.resolve(host, port, ec);
  if (!ec) {
    beast::get_lowest_layer(up).expires_after(std::chrono::seconds(10));
    beast::get_lowest_layer(up).connect(results, ec);
  }
  if (!ec) {
    SSL_set_tlsext_host_name(up.native_handle(), host.c_str());
    up.handshake(ssl::stream_base::client, ec);
  }
  if (!ec) beast::get_lowest_layer(up).expires_never();
  return ec;
}

}  // namespace

// The API server's client side towards kubelets: its kubelet client certificate; the kubelet's
// own certificate is not verified (as without --kubelet-certificate-authority). "" or the error.
std::string HttpServer::Impl::KubeletClientContext(ssl::context& ctx) {
  try {
    ctx.use_certificate_chain_file(assets.kubelet_client_crt);
    ctx.use_private_key_file(assets.kubelet_client_key, ssl::context::pem);
  } catch (const std::exception& e) {
    return std::string("kubelet client certificate: ") + e.what();
  }
  ctx.set_verify_mode(ssl::verify_none);
  return "";
}

void HttpServer::Impl::Proxy(beast::ssl_stream<beast::tcp_stream>& client, const Request& req,
                             const std::string& url, unsigned version, bool keep_alive) {
  (void)req;
  // url: https://host:port/path?query
  const KubeletUrl u = SplitKubeletUrl(url);
  const std::string &hostport = u.hostport, &target = u.target, &host = u.host, &port = u.port;
  auto fail = [&](int code, const std::string& msg) {
    Response r = internal::StatusResponse(code, ReasonFor(code), msg, std::nullopt);
    WriteResponse(client, r, version, keep_alive, false);
  };
  net::io_context ioc;
  ssl::context ctx{ssl::context::tls_client};
  if (std::string err = KubeletClientContext(ctx); !err.empty()) {
    fail(500, err);
    return;
  }
  beast::ssl_stream<beast::tcp_stream> up(ioc, ctx);
  beast::error_code ec = DialKubelet(ioc, up, host, port);
  if (ec) {
    fail(500, "Get \"" + url + "\": dial tcp " + hostport + ": " + ec.message());
    return;
  }
  http::request<http::empty_body> upreq{http::verb::get, target, 11};
  upreq.set(http::field::host, hostport);
  upreq.set(http::field::user_agent, "kube-apiserver/v1.32.5 (linux/amd64) kubernetes/2e37d3b");
  http::write(up, upreq, ec);
  if (ec) {
    fail(500, "Get \"" + url + "\": " + ec.message());
    return;
  }
  beast::flat_buffer buf;
  http::response_parser<http::buffer_body> parser;
  parser.body_limit(std::numeric_limits<std::uint64_t>::max());
  http::read_header(up, buf, parser, ec);
  if (ec) {
    fail(500, "Get \"" + url + "\": " + ec.message());
    return;
  }
  int status = static_cast<int>(parser.get().result_int());
  char chunk[16384];
  if (status < 200 || status >= 300) {
    std::string body;
    while (!parser.is_done()) {
      parser.get().body().data = chunk;
      parser.get().body().size = sizeof(chunk);
      http::read(up, buf, parser, ec);
      if (ec == http::error::need_buffer) ec = {};
      if (ec) break;
      body.append(chunk, sizeof(chunk) - parser.get().body().size);
    }
    while (!body.empty() && (body.back() == '\n' || body.back() == '\r')) body.pop_back();
    fail(status, body);
    return;
  }
  // Stream the log back as it arrives (chunked), flushing each piece.
  http::response<http::empty_body> res{http::status::ok, version};
  res.set("Audit-Id", NewUid());
  res.set(http::field::cache_control, "no-cache, private");
  res.set(http::field::content_type, "text/plain");
  res.chunked(true);
  res.keep_alive(false);
  http::response_serializer<http::empty_body> sr{res};
  http::write_header(client, sr, ec);
  if (ec) return;
  while (!parser.is_done()) {
    parser.get().body().data = chunk;
    parser.get().body().size = sizeof(chunk);
    http::read(up, buf, parser, ec);
    if (ec == http::error::need_buffer) ec = {};
    if (ec) break;
    size_t n = sizeof(chunk) - parser.get().body().size;
    if (n == 0) continue;
    net::write(client, http::make_chunk(net::buffer(chunk, n)), ec);
    if (ec) return;
  }
  net::write(client, http::make_chunk_last(), ec);
}

// Ends a relay: both connections shut down and closed, once.
static void CloseBoth(beast::ssl_stream<beast::tcp_stream>& a, beast::ssl_stream<beast::tcp_stream>& b,
               bool* closed) {
  if (*closed) return;
  *closed = true;
  beast::error_code ignored;
  beast::get_lowest_layer(a).socket().shutdown(tcp::socket::shutdown_both, ignored);
  beast::get_lowest_layer(b).socket().shutdown(tcp::socket::shutdown_both, ignored);
  beast::get_lowest_layer(a).close();
  beast::get_lowest_layer(b).close();
}

void HttpServer::Impl::TunnelSpdy(net::io_context& ioc,
                                  beast::ssl_stream<beast::tcp_stream>& client,
                                  beast::ssl_stream<beast::tcp_stream>& up,
                                  beast::flat_buffer& up_buf,
                                  const http::request<http::string_body>& hreq,
                                  const http::response<http::string_body>& upres) {
  namespace websocket = beast::websocket;
  auto fail = [&](const std::string& msg) {
    Response r = internal::StatusResponse(500, ReasonFor(500), msg, std::nullopt);
    WriteResponse(client, r, hreq.version(), false, false);
  };
  std::string conn_hdr(upres[http::field::connection]), upg(upres[http::field::upgrade]);
  for (auto& c : conn_hdr) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (auto& c : upg) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (conn_hdr.find("upgrade") == std::string::npos || upg.find("spdy/3.1") == std::string::npos) {
    fail("unable to upgrade: missing upgrade headers in response");
    return;
  }
  std::string chosen(upres["X-Stream-Protocol-Version"]);
  std::string ws_proto = chosen.empty() ? "" : "SPDY/3.1+" + chosen;
  websocket::stream<beast::ssl_stream<beast::tcp_stream>&> ws(client);
  ws.set_option(websocket::stream_base::decorator([&](websocket::response_type& res) {
    if (!ws_proto.empty()) res.set(http::field::sec_websocket_protocol, ws_proto);
  }));
  ws.read_message_max(16 << 20);
  beast::error_code ec;
  ws.accept(hreq, ec);
  if (ec) return;
  base::log::Info("tunnelling SPDY through a WebSocket", {{"protocol", ws_proto}});
  ws.binary(true);
  if (up_buf.size() > 0) ws.write(up_buf.data(), ec);
  if (ec) return;
  bool closed = false;
  auto close_all = [&] { CloseBoth(client, up, &closed); };
  beast::flat_buffer from_client;
  std::array<char, 32 * 1024> to_client;
  std::function<void()> pump_up, pump_client;
  pump_up = [&] {
    ws.async_read(from_client, [&](beast::error_code e, size_t) {
      if (e) return close_all();  // the client closed (or broke) the tunnel
      net::async_write(up, from_client.data(), [&](beast::error_code we, size_t) {
        from_client.consume(from_client.size());
        if (we) return close_all();
        pump_up();
      });
    });
  };
  pump_client = [&] {
    up.async_read_some(net::buffer(to_client), [&](beast::error_code e, size_t n) {
      if (e) {  // the kubelet ended the session: close the tunnel
        ws.async_close(websocket::close_code::normal, [&](beast::error_code) { close_all(); });
        return;
      }
      ws.async_write(net::buffer(to_client.data(), n), [&](beast::error_code we, size_t) {
        if (we) return close_all();
        pump_client();
      });
    });
  };
  pump_up();
  pump_client();
  ioc.restart();
  ioc.run();
}

// pods/exec: the kubelet's answer to the forwarded upgrade request goes back to the client as
// is when it is a 101 (then the connection is a byte pipe in both directions, as the apiserver's
// UpgradeAwareHandler makes it), or as a Status carrying the kubelet's message otherwise.
// pods/portforward from kubectl 1.31+: a WebSocket whose subprotocols are "SPDY/3.1+<proto>"
// carries SPDY in its binary messages. As the API server's TunnelingHandler, the kubelet is
// asked for a SPDY/3.1 upgrade with those protocols, its 101 is swallowed, the client gets a
// WebSocket 101 naming "SPDY/3.1+" and the kubelet's protocol, and the bytes are relayed:
// each message's payload to the kubelet, each read from the kubelet as one binary message.
void HttpServer::Impl::ProxyUpgrade(net::io_context& ioc,
                                    beast::ssl_stream<beast::tcp_stream>& client,
                                    beast::flat_buffer& client_buf,
                                    const http::request<http::string_body>& hreq,
                                    const std::string& url) {
  const KubeletUrl u = SplitKubeletUrl(url);
  const std::string &hostport = u.hostport, &target = u.target, &host = u.host, &port = u.port;
  std::string what = std::string(hreq.method_string()) + " \"" + url + "\"";
  auto fail = [&](int code, const std::string& msg) {
    Response r = internal::StatusResponse(code, ReasonFor(code), msg, std::nullopt);
    WriteResponse(client, r, hreq.version(), false, false);
  };
  ssl::context ctx{ssl::context::tls_client};
  if (std::string err = KubeletClientContext(ctx); !err.empty()) {
    fail(500, err);
    return;
  }
  std::vector<std::string> tunnelled;  // SPDY protocols a tunnelling client offers
  if (beast::iequals(hreq[http::field::upgrade], "websocket")) {
    for (const auto& f : hreq) {
      if (f.name() != http::field::sec_websocket_protocol) continue;
      std::string v(f.value());
      size_t at = 0;
      while (at <= v.size()) {
        size_t comma = v.find(',', at);
        if (comma == std::string::npos) comma = v.size();
        std::string p = v.substr(at, comma - at);
        p.erase(0, p.find_first_not_of(' '));
        p.erase(p.find_last_not_of(' ') + 1);
        if (p.rfind("SPDY/3.1+", 0) == 0 && p.size() > 16 &&
            p.compare(p.size() - 7, 7, ".k8s.io") == 0) {
          tunnelled.push_back(p.substr(9));
        }
        at = comma + 1;
      }
    }
  }
  beast::ssl_stream<beast::tcp_stream> up(ioc, ctx);
  beast::error_code ec = DialKubelet(ioc, up, host, port);
  if (ec) {
    fail(500, "error dialing backend: dial tcp " + hostport + ": " + ec.message());
    return;
  }
  // The client's request with its upgrade headers (Connection, Upgrade, Sec-WebSocket-*,
  // X-Stream-Protocol-Version); the apiserver's own credentials replace the client's.
  http::request<http::empty_body> upreq{tunnelled.empty() ? hreq.method() : http::verb::post,
                                        target, 11};
  for (const auto& f : hreq) {
    if (f.name() == http::field::host || f.name() == http::field::authorization ||
        f.name() == http::field::content_length || f.name() == http::field::transfer_encoding)
      continue;
    if (!tunnelled.empty() &&
        (f.name() == http::field::upgrade || f.name() == http::field::sec_websocket_protocol ||
         f.name() == http::field::sec_websocket_key ||
         f.name() == http::field::sec_websocket_version ||
         beast::iequals(f.name_string(), "X-Stream-Protocol-Version")))
      continue;
    upreq.insert(f.name_string(), f.value());
  }
  if (!tunnelled.empty()) {
    upreq.set(http::field::upgrade, "SPDY/3.1");
    for (const auto& p : tunnelled) upreq.insert("X-Stream-Protocol-Version", p);
  }
  upreq.set(http::field::host, hostport);
  http::write(up, upreq, ec);
  if (ec) {
    fail(500, what + ": " + ec.message());
    return;
  }
  beast::flat_buffer up_buf;
  http::response_parser<http::string_body> parser;
  parser.body_limit(1 << 20);
  http::read_header(up, up_buf, parser, ec);
  if (ec) {
    fail(500, what + ": " + ec.message());
    return;
  }
  int status = static_cast<int>(parser.get().result_int());
  if (status != 101) {
    if (!parser.is_done()) http::read(up, up_buf, parser, ec);
    std::string body = parser.get().body();
    while (!body.empty() && (body.back() == '\n' || body.back() == '\r')) body.pop_back();
    if (body.empty()) body = "unable to upgrade connection: " + std::string(parser.get().reason());
    fail(status >= 400 ? status : 500, body);
    return;
  }
  if (!tunnelled.empty()) {
    TunnelSpdy(ioc, client, up, up_buf, hreq, parser.get());
    return;
  }
  std::string head = "HTTP/1.1 101 Switching Protocols\r\n";
  for (const auto& f : parser.get()) {
    head += std::string(f.name_string()) + ": " + std::string(f.value()) + "\r\n";
  }
  head += "\r\n";
  net::write(client, net::buffer(head), ec);
  if (ec) return;
  if (up_buf.size() > 0) net::write(client, up_buf.data(), ec);
  if (!ec && client_buf.size() > 0) net::write(up, client_buf.data(), ec);
  if (ec) return;
  // Relay both ways on this connection's io_context (one thread: each TLS stream has at most
  // one read and one write in flight, which asio's ssl::stream allows).
  struct Pipe {
    std::array<char, 32 * 1024> buf;
  };
  Pipe to_up, to_client;
  bool closed = false;
  auto close_all = [&] { CloseBoth(client, up, &closed); };
  std::function<void()> pump_up, pump_client;
  pump_up = [&] {
    client.async_read_some(net::buffer(to_up.buf), [&](beast::error_code e, size_t n) {
      if (e) return close_all();
      net::async_write(up, net::buffer(to_up.buf.data(), n), [&](beast::error_code we, size_t) {
        if (we) return close_all();
        pump_up();
      });
    });
  };
  pump_client = [&] {
    up.async_read_some(net::buffer(to_client.buf), [&](beast::error_code e, size_t n) {
      if (e) return close_all();
      net::async_write(client, net::buffer(to_client.buf.data(), n),
                       [&](beast::error_code we, size_t) {
                         if (we) return close_all();
                         pump_client();
                       });
    });
  };
  pump_up();
  pump_client();
  ioc.restart();
  ioc.run();
}

void HttpServer::Impl::Serve(net::io_context& ioc, tcp::socket socket) {
  ApiServer& api = *api_ptr;
  ++connections;
  beast::ssl_stream<beast::tcp_stream> stream(std::move(socket), server_ctx);
  beast::error_code ec;
  beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(30));
  stream.handshake(ssl::stream_base::server, ec);
  if (ec) {
    base::log::Debug("tls handshake failed", {{"error", ec.message()}});
    --connections;
    return;
  }
  std::optional<UserInfo> cert_user = CertUser(stream.native_handle());
  beast::flat_buffer buffer;
  for (;;) {
    beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(300));
    http::request_parser<http::string_body> parser;
    parser.body_limit(64 * 1024 * 1024);
    http::read_header(stream, buffer, parser, ec);
    if (ec) break;
    if (beast::iequals(parser.get()[http::field::expect], "100-continue")) {
      http::response<http::empty_body> cont{http::status::continue_, parser.get().version()};
      http::write(stream, cont, ec);
      if (ec) break;
    }
    if (!parser.is_done()) http::read(stream, buffer, parser, ec);
    if (ec) break;
    beast::get_lowest_layer(stream).expires_never();
    auto& hreq = parser.get();
    Request req;
    req.method = std::string(hreq.method_string());
    ParseTarget(std::string(hreq.target()), &req);
    for (const auto& f : hreq) {
      std::string name(f.name_string());
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      req.headers[name] = std::string(f.value());
    }
    req.body = std::move(hreq.body());
    // Authentication: a verified client certificate wins over a (bad) bearer token.
    if (cert_user) {
      req.user = *cert_user;
    } else {
      std::string auth = req.Header("authorization");
      if (auth.rfind("Bearer ", 0) == 0) {
        std::string token = auth.substr(7);
        while (!token.empty() && token.back() == ' ') token.pop_back();
        if (auto u = tokens.Authenticate(token)) req.user = *u;
        else req.bad_credentials = true;
      }
    }
    bool keep_alive = hreq.keep_alive();
    unsigned version = hreq.version();
    Response r;
    if (req.path == "/__test/compact" && req.method == "POST" && internal::IsMaster(req.user)) {
      auto lock = api.store().Lock();
      api.store().Compact();
      r.body = "{\"compactedResourceVersion\":\"" + std::to_string(api.store().CompactedRv()) +
               "\"}\n";
    } else {
      try {
        r = api.Handle(req);
      } catch (const std::exception& e) {
        r = internal::StatusResponse(500, "InternalError",
                                     std::string("Internal error occurred: ") + e.what(),
                                     Json{{"causes", Json::array({{{"message", e.what()}}})}});
      }
    }
    base::log::Debug("request", {{"method", req.method},
                                 {"path", req.path},
                                 {"user", req.user.name},
                                 {"status", r.status}});
    if (!r.proxy_url.empty() && r.proxy_upgrade) {
      ProxyUpgrade(ioc, stream, buffer, hreq, r.proxy_url);
      --connections;
      return;  // the relay closed both connections
    }
    if (!r.proxy_url.empty()) {
      Proxy(stream, req, r.proxy_url, version, keep_alive);
      break;
    }
    if (r.stream) {
      http::response<http::empty_body> res{http::status::ok, version};
      res.set("Audit-Id", NewUid());
      res.set(http::field::cache_control, "no-cache, private");
      res.set(http::field::content_type, r.content_type);
      res.chunked(true);
      res.keep_alive(keep_alive);
      http::response_serializer<http::empty_body> sr{res};
      http::write_header(stream, sr, ec);
      if (ec) break;
      bool ok = true;
      r.stream([&](const std::string& chunk) {
        if (!ok) return false;
        beast::error_code wec;
        net::write(stream, http::make_chunk(net::buffer(chunk)), wec);
        ok = !wec;
        return ok;
      });
      if (!ok) break;
      net::write(stream, http::make_chunk_last(), ec);
      if (ec || !keep_alive) break;
      continue;
    }
    WriteResponse(stream, r, version, keep_alive, req.method == "HEAD");
    if (!keep_alive) break;
  }
  beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(2));
  stream.shutdown(ec);
  --connections;
}

HttpServer::HttpServer(TlsAssets assets) : impl_(std::make_unique<Impl>(std::move(assets))) {}

HttpServer::~HttpServer() = default;

std::vector<std::string> HttpServer::Listen(const std::vector<std::string>& addrs) {
  std::vector<std::string> bound;
  for (const auto& a : addrs) {
    size_t colon = a.rfind(':');
    if (colon == std::string::npos) throw std::runtime_error("--listen " + a + ": want ADDR:PORT");
    std::string host = a.substr(0, colon);
    if (!host.empty() && host.front() == '[') host = host.substr(1, host.size() - 2);
    unsigned short port = static_cast<unsigned short>(std::stoi(a.substr(colon + 1)));
    auto acc = std::make_unique<tcp::acceptor>(impl_->ioc);
    tcp::endpoint ep(net::ip::make_address(host), port);
    acc->open(ep.protocol());
    acc->set_option(net::socket_base::reuse_address(true));
    boost::system::error_code ec;
    acc->bind(ep, ec);
    if (ec) throw std::runtime_error("listen " + a + ": " + ec.message());
    acc->listen(net::socket_base::max_listen_connections);
    auto local = acc->local_endpoint();
    std::string h = local.address().to_string();
    if (local.address().is_v6()) h = "[" + h + "]";
    bound.push_back(h + ":" + std::to_string(local.port()));
    impl_->acceptors.push_back(std::move(acc));
  }
  return bound;
}

void HttpServer::Run(ApiServer& api) {
  impl_->api_ptr = &api;
  api.SetTokenAuthenticator(
      [impl = impl_.get()](const std::string& token) { return impl->tokens.Authenticate(token); });
  std::vector<std::thread> loops;
  for (auto& acc : impl_->acceptors) {
    tcp::acceptor* a = acc.get();
    loops.emplace_back([this, a] {
      for (;;) {
        boost::system::error_code ec;
        tcp::socket socket(impl_->ioc);
        a->accept(socket, ec);
        if (ec) {
          base::log::Warn("accept failed", {{"error", ec.message()}});
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
          continue;
        }
        socket.set_option(tcp::no_delay(true), ec);
        // Each connection gets its own io_context, so that an upgraded one (pods/exec) can run
        // its asynchronous relay without touching the others.
        auto protocol = socket.local_endpoint(ec).protocol();
        int fd = socket.release(ec);
        if (ec) continue;
        std::thread([this, protocol, fd]() {
          net::io_context conn_ioc;
          tcp::socket s(conn_ioc, protocol, fd);
          impl_->Serve(conn_ioc, std::move(s));
        }).detach();
      }
    });
  }
  for (auto& t : loops) t.join();
}

}  // namespace apiserver

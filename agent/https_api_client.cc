#include "agent/https_api_client.h"

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <deque>
#include <mutex>
#include <optional>

#include "base/file.h"
#include "base/log.h"
#include "base/strings.h"

namespace agent {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using beast::error_code;

namespace {

struct Url {
  bool tls = true;
  std::string host;
  std::string port;
  std::string base_path;  // path prefix from the server URL (rare; e.g. behind a proxy)
};

Result<Url> ParseServer(const std::string& server) {
  Url u;
  std::string rest;
  if (base::StartsWith(server, "https://")) {
    rest = server.substr(8);
  } else if (base::StartsWith(server, "http://")) {
    u.tls = false;
    rest = server.substr(7);
  } else {
    return base::Fail("server URL \"" + server + "\" must start with https:// or http://");
  }
  auto slash = rest.find('/');
  std::string hostport = rest.substr(0, slash);
  if (slash != std::string::npos) u.base_path = rest.substr(slash);
  while (!u.base_path.empty() && u.base_path.back() == '/') u.base_path.pop_back();
  if (!hostport.empty() && hostport[0] == '[') {  // [v6]:port
    auto close = hostport.find(']');
    if (close == std::string::npos) return base::Fail("server URL \"" + server + "\": bad IPv6 host");
    u.host = hostport.substr(1, close - 1);
    if (close + 1 < hostport.size() && hostport[close + 1] == ':') u.port = hostport.substr(close + 2);
  } else {
    auto colon = hostport.rfind(':');
    u.host = hostport.substr(0, colon);
    if (colon != std::string::npos) u.port = hostport.substr(colon + 1);
  }
  if (u.host.empty()) return base::Fail("server URL \"" + server + "\" has no host");
  if (u.port.empty()) u.port = u.tls ? "443" : "80";
  return u;
}

bool IsIpLiteral(const std::string& h) {
  error_code ec;
  asio::ip::make_address(h, ec);
  return !ec;
}

// One connection = one private io_context, so each operation can run with a deadline from a
// plain blocking caller, and another thread can interrupt it by posting a close.
struct Connection {
  asio::io_context ioc;
  std::optional<ssl::stream<beast::tcp_stream>> tls;
  std::optional<beast::tcp_stream> plain;
  beast::flat_buffer buffer;
  bool reused = false;

  beast::tcp_stream& lowest() { return tls ? beast::get_lowest_layer(*tls) : *plain; }

  // Runs the io_context until the started operation completes.
  void RunUntilDone(const bool& done) {
    ioc.restart();
    while (!done && !ioc.stopped()) {
      ioc.run_one();
    }
  }

  void Close() {
    error_code ec;
    lowest().socket().shutdown(tcp::socket::shutdown_both, ec);
    lowest().socket().close(ec);
  }
};

std::string ErrText(const error_code& ec) {
  if (ec == beast::error::timeout) return "timed out";
  return ec.message();
}

}  // namespace

class HttpsApiClientImpl {
 public:
  HttpsApiClientImpl(Kubeconfig kc, Url url, HttpsApiClientOptions opts)
      : kc_(std::move(kc)), url_(std::move(url)), opts_(opts), ctx_(ssl::context::tls_client) {}

  Result<> InitTls() {
    if (!url_.tls) return {};
    ctx_.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                     ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    error_code ec;
    if (kc_.insecure_skip_tls_verify) {
      ctx_.set_verify_mode(ssl::verify_none);
    } else {
      ctx_.set_verify_mode(ssl::verify_peer);
      if (!kc_.ca_pem.empty()) {
        ctx_.add_certificate_authority(asio::buffer(kc_.ca_pem), ec);
        if (ec) return base::Fail(kc_.source + ": certificate-authority is not a valid PEM certificate: " + ec.message());
      } else {
        ctx_.set_default_verify_paths(ec);
      }
    }
    if (!kc_.client_cert_pem.empty()) {
      ctx_.use_certificate_chain(asio::buffer(kc_.client_cert_pem), ec);
      if (ec) return base::Fail(kc_.source + ": client-certificate is not valid PEM: " + ec.message());
      ctx_.use_private_key(asio::buffer(kc_.client_key_pem), ssl::context::pem, ec);
      if (ec) return base::Fail(kc_.source + ": client-key is not valid PEM or does not match: " + ec.message());
    }
    return {};
  }

  std::string Endpoint() const { return kc_.server; }

  Result<ApiResponse> Do(std::string_view method, const std::string& path, const std::string& body,
                         std::string_view content_type) {
    http::verb verb = http::string_to_verb(beast::string_view(method.data(), method.size()));
    if (verb == http::verb::unknown) return base::Fail("unknown HTTP method " + std::string(method));
    for (int attempt = 0; attempt < 2; ++attempt) {
      auto conn = Acquire();
      if (!conn) return tl::unexpected(conn.error());
      bool reused = (*conn)->reused;
      http::request<http::string_body> req{verb, url_.base_path + path, 11};
      SetHeaders(req);
      if (!body.empty() || verb == http::verb::post || verb == http::verb::put ||
          verb == http::verb::patch) {
        req.set(http::field::content_type, beast::string_view(content_type.data(), content_type.size()));
        req.body() = body;
        req.prepare_payload();
      }
      Connection& c = **conn;
      error_code ec = Write(c, req, opts_.request_timeout);
      http::response_parser<http::string_body> parser;
      parser.body_limit(1024ull * 1024 * 1024);
      if (!ec) ec = Read(c, parser, opts_.request_timeout);
      if (ec) {
        // A kept-alive connection the server closed while idle fails before any response byte:
        // the request was not processed, so one retry on a fresh connection is safe.
        if (reused && attempt == 0 && !parser.got_some()) continue;
        return base::Fail(std::string(method) + " " + kc_.server + path + ": " + ErrText(ec));
      }
      auto& res = parser.get();
      ApiResponse out;
      out.status = static_cast<int>(res.result_int());
      out.content_type = std::string(res[http::field::content_type]);
      out.body = std::move(res.body());
      if (res.keep_alive()) Release(std::move(*conn));
      return out;
    }
    return base::Fail(std::string(method) + " " + kc_.server + path + ": connection lost");
  }

  Result<int> Stream(const std::string& path, const std::function<bool(std::string_view)>& on_line,
                     StreamCancel* cancel, std::string* error_body) {
    auto conn_r = Connect();
    if (!conn_r) return tl::unexpected(conn_r.error());
    std::unique_ptr<Connection> conn = std::move(*conn_r);
    Connection& c = *conn;
    if (cancel) {
      if (cancel->cancelled()) return 0;
      cancel->SetInterrupt([&c] { asio::post(c.ioc, [&c] { c.Close(); }); });
    }
    struct ClearOnExit {
      StreamCancel* cancel;
      ~ClearOnExit() {
        if (cancel) cancel->ClearInterrupt();
      }
    } clear{cancel};

    http::request<http::empty_body> req{http::verb::get, url_.base_path + path, 11};
    SetHeaders(req);
    error_code ec = Write(c, req, opts_.request_timeout);
    if (ec) return base::Fail("GET " + kc_.server + path + ": " + ErrText(ec));

    http::response_parser<http::buffer_body> parser;
    parser.body_limit(boost::none);
    ec = RunOp(c, opts_.request_timeout, [&](auto handler) {
      if (c.tls) http::async_read_header(*c.tls, c.buffer, parser, handler);
      else http::async_read_header(*c.plain, c.buffer, parser, handler);
    });
    if (ec) {
      if (cancel && cancel->cancelled()) return 0;
      return base::Fail("GET " + kc_.server + path + ": " + ErrText(ec));
    }
    int status = static_cast<int>(parser.get().result_int());
    bool ok = status >= 200 && status < 300;
    std::string pending;
    char buf[16384];
    while (!parser.is_done()) {
      parser.get().body().data = buf;
      parser.get().body().size = sizeof buf;
      ec = RunOp(c, opts_.stream_idle_timeout, [&](auto handler) {
        if (c.tls) http::async_read_some(*c.tls, c.buffer, parser, handler);
        else http::async_read_some(*c.plain, c.buffer, parser, handler);
      });
      if (ec == http::error::need_buffer) ec = {};
      size_t n = sizeof buf - parser.get().body().size;
      if (n > 0) {
        if (!ok) {
          if (error_body) error_body->append(buf, n);
        } else {
          pending.append(buf, n);
          size_t start = 0;
          for (size_t nl; (nl = pending.find('\n', start)) != std::string::npos; start = nl + 1) {
            std::string_view line(pending.data() + start, nl - start);
            if (!line.empty() && !on_line(line)) return status;
          }
          pending.erase(0, start);
        }
      }
      if (ec) {
        if (cancel && cancel->cancelled()) return status;
        if (ec == http::error::end_of_stream || ec == asio::error::eof ||
            ec == ssl::error::stream_truncated)
          break;
        return base::Fail("watch " + kc_.server + path + ": " + ErrText(ec));
      }
    }
    if (ok && !pending.empty()) on_line(pending);
    return status;
  }

 private:
  template <class Req>
  void SetHeaders(Req& req) {
    req.set(http::field::host, url_.host);
    req.set(http::field::user_agent, opts_.user_agent);
    req.set(http::field::accept, "application/json");
    std::string token = kc_.token;
    if (!kc_.token_file.empty()) {
      if (auto t = base::ReadFile(kc_.token_file)) token = std::string(base::Trim(*t));
    }
    if (!token.empty()) {
      req.set(http::field::authorization, "Bearer " + token);
    } else if (!kc_.username.empty()) {
      req.set(http::field::authorization, "Basic " + Base64(kc_.username + ":" + kc_.password));
    }
  }

  static std::string Base64(const std::string& in) {
    static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    int val = 0, bits = -6;
    for (unsigned char c : in) {
      val = (val << 8) + c;
      bits += 8;
      while (bits >= 0) {
        out.push_back(k[(val >> bits) & 0x3F]);
        bits -= 6;
      }
    }
    if (bits > -6) out.push_back(k[((val << 8) >> (bits + 8)) & 0x3F]);
    while (out.size() % 4) out.push_back('=');
    return out;
  }

  template <class Start>
  error_code RunOp(Connection& c, std::chrono::seconds timeout, Start start) {
    error_code result;
    bool done = false;
    c.lowest().expires_after(timeout);
    auto handler = [&](error_code ec, std::size_t = 0) {
      result = ec;
      done = true;
    };
    start(handler);
    c.RunUntilDone(done);
    if (!done) return asio::error::operation_aborted;
    return result;
  }

  template <class Msg>
  error_code Write(Connection& c, Msg& msg, std::chrono::seconds timeout) {
    return RunOp(c, timeout, [&](auto handler) {
      if (c.tls) http::async_write(*c.tls, msg, handler);
      else http::async_write(*c.plain, msg, handler);
    });
  }

  template <class Parser>
  error_code Read(Connection& c, Parser& parser, std::chrono::seconds timeout) {
    return RunOp(c, timeout, [&](auto handler) {
      if (c.tls) http::async_read(*c.tls, c.buffer, parser, handler);
      else http::async_read(*c.plain, c.buffer, parser, handler);
    });
  }

  Result<std::unique_ptr<Connection>> Acquire() {
    {
      std::lock_guard lk(mu_);
      if (!idle_.empty()) {
        auto c = std::move(idle_.front());
        idle_.pop_front();
        c->reused = true;
        return c;
      }
    }
    return Connect();
  }

  void Release(std::unique_ptr<Connection> c) {
    std::lock_guard lk(mu_);
    if (static_cast<int>(idle_.size()) < opts_.max_idle_connections) idle_.push_back(std::move(c));
  }

  Result<std::unique_ptr<Connection>> Connect() {
    auto c = std::make_unique<Connection>();
    tcp::resolver resolver(c->ioc);
    error_code ec;
    auto endpoints = resolver.resolve(url_.host, url_.port, ec);
    if (ec) return base::Fail("resolve " + url_.host + ": " + ec.message());
    if (url_.tls) {
      c->tls.emplace(c->ioc, ctx_);
    } else {
      c->plain.emplace(c->ioc);
    }
    ec = RunOp(*c, opts_.connect_timeout, [&](auto handler) {
      c->lowest().async_connect(endpoints, [handler](error_code e, const tcp::endpoint&) mutable { handler(e); });
    });
    if (ec) return base::Fail("connect to " + kc_.server + ": " + ErrText(ec));
    if (url_.tls) {
      SSL* ssl = c->tls->native_handle();
      std::string name = kc_.tls_server_name.empty() ? url_.host : kc_.tls_server_name;
      if (!IsIpLiteral(name)) SSL_set_tlsext_host_name(ssl, name.c_str());
      if (!kc_.insecure_skip_tls_verify) {
        X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
        if (IsIpLiteral(name)) {
          X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str());
        } else {
          X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
          X509_VERIFY_PARAM_set1_host(param, name.c_str(), 0);
        }
      }
      ec = RunOp(*c, opts_.connect_timeout, [&](auto handler) {
        c->tls->async_handshake(ssl::stream_base::client, [handler](error_code e) mutable { handler(e); });
      });
      if (ec) {
        std::string detail = ErrText(ec);
        long vr = SSL_get_verify_result(ssl);
        if (vr != X509_V_OK) detail += " (" + std::string(X509_verify_cert_error_string(vr)) + ")";
        return base::Fail("TLS handshake with " + kc_.server + ": " + detail);
      }
    }
    return c;
  }

  Kubeconfig kc_;
  Url url_;
  HttpsApiClientOptions opts_;
  ssl::context ctx_;
  std::mutex mu_;
  std::deque<std::unique_ptr<Connection>> idle_;
};

Result<std::shared_ptr<HttpsApiClient>> HttpsApiClient::Create(const Kubeconfig& kc,
                                                               HttpsApiClientOptions opts) {
  auto url = ParseServer(kc.server);
  if (!url) return tl::unexpected(url.error().Wrap("kubeconfig " + kc.source));
  auto impl = std::make_unique<HttpsApiClientImpl>(kc, *url, opts);
  CUBELET_TRY(impl->InitTls());
  return std::shared_ptr<HttpsApiClient>(new HttpsApiClient(std::move(impl)));
}

HttpsApiClient::HttpsApiClient(std::unique_ptr<HttpsApiClientImpl> impl) : impl_(std::move(impl)) {}
HttpsApiClient::~HttpsApiClient() = default;

Result<ApiResponse> HttpsApiClient::Do(std::string_view method, const std::string& path,
                                       const std::string& body, std::string_view content_type) {
  return impl_->Do(method, path, body, content_type);
}

Result<int> HttpsApiClient::Stream(const std::string& path,
                                   const std::function<bool(std::string_view)>& on_line,
                                   StreamCancel* cancel, std::string* error_body) {
  return impl_->Stream(path, on_line, cancel, error_body);
}

std::string HttpsApiClient::Endpoint() const { return impl_->Endpoint(); }

}  // namespace agent

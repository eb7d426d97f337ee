#include "netproxy/health_server.h"

#include <boost/asio.hpp>
#include <future>
#include <mutex>
#include <thread>

#include "base/log.h"
#include "base/time.h"

namespace netproxy {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

std::string Response(int status, const std::string& body,
                     const std::string& content_type = "application/json") {
  const char* reason = status == 200 ? "OK" : status == 404 ? "Not Found" : "Service Unavailable";
  return "HTTP/1.1 " + std::to_string(status) + " " + reason + "\r\nContent-Type: " +
         content_type + "\r\nX-Content-Type-Options: nosniff\r\n"
         "Content-Length: " +
         std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
}

std::string JsonEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

// One request per connection: read the head, answer, close.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, std::function<std::string(const std::string& path)> handler)
      : socket_(std::move(socket)), handler_(std::move(handler)) {}
  void Start() {
    auto self = shared_from_this();
    asio::async_read_until(socket_, buf_, "\r\n\r\n",
                           [self](boost::system::error_code ec, size_t) { self->OnRead(ec); });
  }

 private:
  void OnRead(boost::system::error_code ec) {
    if (ec) return;
    std::istream in(&buf_);
    std::string method, path;
    in >> method >> path;
    out_ = handler_(path);
    auto self = shared_from_this();
    asio::async_write(socket_, asio::buffer(out_), [self](boost::system::error_code, size_t) {
      boost::system::error_code ignored;
      self->socket_.shutdown(tcp::socket::shutdown_both, ignored);
    });
  }
  tcp::socket socket_;
  asio::streambuf buf_;
  std::string out_;
  std::function<std::string(const std::string&)> handler_;
};

class Listener : public std::enable_shared_from_this<Listener> {
 public:
  Listener(asio::io_context& io, std::function<std::string(const std::string&)> handler)
      : acceptor_(io), handler_(std::move(handler)) {}
  boost::system::error_code Open(const tcp::endpoint& ep) {
    boost::system::error_code ec;
    acceptor_.open(ep.protocol(), ec);
    if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) acceptor_.bind(ep, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    return ec;
  }
  void Accept() {
    auto self = shared_from_this();
    acceptor_.async_accept([self](boost::system::error_code ec, tcp::socket s) {
      if (ec) return;  // closed
      std::make_shared<Session>(std::move(s), self->handler_)->Start();
      self->Accept();
    });
  }
  void Close() {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
  }
  int port() const { return acceptor_.local_endpoint().port(); }

 private:
  tcp::acceptor acceptor_;
  std::function<std::string(const std::string&)> handler_;
};

}  // namespace

struct HealthServer::Impl {
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  std::thread thread;
  std::function<ProxierHealth()> health;
  std::shared_ptr<Listener> healthz;
  int healthz_port = 0;
  std::function<std::string()> metrics;
  std::shared_ptr<Listener> metrics_listener;
  int metrics_port = 0;
  std::mutex mu;
  std::map<int, ServiceHealthInfo> services;           // under mu
  std::map<int, std::shared_ptr<Listener>> listeners;  // io thread only

  std::string Healthz(const std::string& path) {
    if (path != "/healthz" && path != "/livez") return Response(404, "404 page not found\n");
    ProxierHealth h = health();
    std::string body = "{\"lastUpdated\": \"" + base::FormatRfc3339Nano(h.last_updated) +
                       "\",\"currentTime\": \"" +
                       base::FormatRfc3339Nano(std::chrono::system_clock::now()) + "\"}";
    return Response(h.healthy ? 200 : 503, body);
  }

  std::string Metrics(const std::string& path) {
    if (path != "/metrics") return Response(404, "404 page not found\n", "text/plain");
    return Response(200, metrics(), "text/plain; version=0.0.4; charset=utf-8");
  }

  std::string ServiceCheck(int port) {
    ServiceHealthInfo info;
    {
      std::lock_guard lock(mu);
      auto it = services.find(port);
      if (it == services.end()) return Response(503, "{}");
      info = it->second;
    }
    bool proxy_healthy = health().healthy;
    std::string body = "{\"service\": {\"namespace\": \"" + JsonEscape(info.ns) +
                       "\", \"name\": \"" + JsonEscape(info.name) +
                       "\"}, \"localEndpoints\": " + std::to_string(info.local_endpoints) +
                       ", \"serviceProxyHealthy\": " + (proxy_healthy ? "true" : "false") + "}";
    return Response(info.local_endpoints > 0 && proxy_healthy ? 200 : 503, body);
  }
};

HealthServer::HealthServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

namespace {

// "IP:PORT" -> endpoint, or an error naming what it is for.
base::Result<tcp::endpoint> ParseAddress(const std::string& address, const std::string& what) {
  auto colon = address.rfind(':');
  if (colon == std::string::npos) return base::Fail(what + " address '" + address + "' is not IP:PORT");
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(address.substr(0, colon), ec);
  if (ec) return base::Fail(what + " address '" + address + "': " + ec.message());
  int port = 0;
  try {
    port = std::stoi(address.substr(colon + 1));
  } catch (const std::exception&) {
    port = -1;
  }
  if (port < 0 || port > 65535) return base::Fail(what + " address '" + address + "': bad port");
  return tcp::endpoint(addr, static_cast<uint16_t>(port));
}

}  // namespace

base::Result<std::unique_ptr<HealthServer>> HealthServer::Start(
    const std::string& healthz_address, std::function<ProxierHealth()> health,
    const std::string& metrics_address, std::function<std::string()> metrics) {
  auto impl = std::make_unique<Impl>();
  impl->health = std::move(health);
  impl->metrics = std::move(metrics);
  Impl* raw = impl.get();
  // A listener on "IP:PORT" for one endpoint, accepting; its bound port.
  auto open = [raw](const std::string& address, const std::string& what,
                    std::function<std::string(const std::string&)> handler,
                    std::shared_ptr<Listener>* out, int* port) -> base::Result<> {
    auto ep = ParseAddress(address, what);
    if (!ep) return tl::unexpected(ep.error());
    *out = std::make_shared<Listener>(raw->io, std::move(handler));
    if (auto ec = (*out)->Open(*ep)) {
      return base::Fail("listen on " + address + " for /" + what + ": " + ec.message());
    }
    *port = (*out)->port();
    (*out)->Accept();
    return {};
  };
  if (!healthz_address.empty()) {
    auto r = open(healthz_address, "healthz",
                  [raw](const std::string& path) { return raw->Healthz(path); }, &impl->healthz,
                  &impl->healthz_port);
    if (!r) return tl::unexpected(r.error());
  }
  if (!metrics_address.empty() && impl->metrics) {
    auto r = open(metrics_address, "metrics",
                  [raw](const std::string& path) { return raw->Metrics(path); },
                  &impl->metrics_listener, &impl->metrics_port);
    if (!r) return tl::unexpected(r.error());
  }
  impl->thread = std::thread([raw] { raw->io.run(); });
  return std::unique_ptr<HealthServer>(new HealthServer(std::move(impl)));
}

HealthServer::~HealthServer() {
  asio::post(impl_->io, [this] {
    if (impl_->healthz) impl_->healthz->Close();
    if (impl_->metrics_listener) impl_->metrics_listener->Close();
    for (auto& [_, l] : impl_->listeners) l->Close();
    impl_->listeners.clear();
    impl_->work.reset();
  });
  if (impl_->thread.joinable()) impl_->thread.join();
}

int HealthServer::healthz_port() const { return impl_->healthz_port; }
int HealthServer::metrics_port() const { return impl_->metrics_port; }

base::Result<> HealthServer::SyncServices(const std::map<int, ServiceHealthInfo>& by_port) {
  {
    std::lock_guard lock(impl_->mu);
    impl_->services = by_port;
  }
  // Listeners are opened and closed on the io thread; wait for the outcome.
  std::promise<std::string> done;
  auto fut = done.get_future();
  asio::post(impl_->io, [this, by_port, &done] {
    std::string errors;
    for (auto it = impl_->listeners.begin(); it != impl_->listeners.end();) {
      if (!by_port.count(it->first)) {
        it->second->Close();
        it = impl_->listeners.erase(it);
      } else {
        ++it;
      }
    }
    for (const auto& [port, info] : by_port) {
      if (impl_->listeners.count(port)) continue;
      Impl* raw = impl_.get();
      int p = port;
      auto l = std::make_shared<Listener>(
          impl_->io, [raw, p](const std::string&) { return raw->ServiceCheck(p); });
      auto ec = l->Open(tcp::endpoint(tcp::v4(), static_cast<uint16_t>(port)));
      if (ec) {
        errors += (errors.empty() ? "" : "; ") + std::string("health check node port ") +
                  std::to_string(port) + " of " + info.ns + "/" + info.name + ": " + ec.message();
        continue;
      }
      l->Accept();
      impl_->listeners[port] = l;
    }
    done.set_value(errors);
  });
  std::string errors = fut.get();
  if (!errors.empty()) return base::Fail(errors);
  return {};
}

}  // namespace netproxy

#include "netproxy/userspace_proxy.h"

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <boost/asio.hpp>
#include <future>
#include <mutex>
#include <thread>

#include "base/fd.h"
#include "base/log.h"
#include "netproxy/iptables_renderer.h"

namespace netproxy {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using udp = asio::ip::udp;
using SteadyClock = std::chrono::steady_clock;

namespace {

// Round robin with optional ClientIP affinity: the order in which to try the endpoints.
class Balancer {
 public:
  void Set(const UserspaceProxy::PortConfig& cfg) {
    cfg_ = cfg;
    // Affinity to endpoints that are gone is dropped.
    for (auto it = affinity_.begin(); it != affinity_.end();) {
      bool present = std::find(cfg_.endpoints.begin(), cfg_.endpoints.end(), it->second.backend) !=
                     cfg_.endpoints.end();
      it = present ? std::next(it) : affinity_.erase(it);
    }
  }
  const UserspaceProxy::PortConfig& config() const { return cfg_; }

  std::vector<UserspaceProxy::Backend> Order(const std::string& client) {
    std::vector<UserspaceProxy::Backend> out;
    const auto& eps = cfg_.endpoints;
    if (eps.empty()) return out;
    if (cfg_.affinity) {
      auto it = affinity_.find(client);
      if (it != affinity_.end() && SteadyClock::now() - it->second.last < cfg_.affinity_timeout) {
        out.push_back(it->second.backend);
      }
    }
    size_t start = next_++ % eps.size();
    for (size_t i = 0; i < eps.size(); ++i) {
      const auto& b = eps[(start + i) % eps.size()];
      if (out.empty() || !(out.front() == b)) out.push_back(b);
    }
    return out;
  }
  void Used(const std::string& client, const UserspaceProxy::Backend& b) {
    if (cfg_.affinity) affinity_[client] = {b, SteadyClock::now()};
  }

 private:
  struct Sticky {
    UserspaceProxy::Backend backend;
    SteadyClock::time_point last;
  };
  UserspaceProxy::PortConfig cfg_;
  size_t next_ = 0;
  std::map<std::string, Sticky> affinity_;
};

struct Counters {
  std::atomic<uint64_t> connections{0};
  std::atomic<uint64_t> connect_failures{0};
};

// Relays one TCP connection in both directions with splice(2) through a pipe per direction:
// the bytes never enter user space.
class TcpRelay : public std::enable_shared_from_this<TcpRelay> {
 public:
  TcpRelay(tcp::socket a, tcp::socket b) : a_(std::move(a)), b_(std::move(b)) {}
  void Start() {
    boost::system::error_code ec;
    a_.native_non_blocking(true, ec);
    b_.native_non_blocking(true, ec);
    for (Dir* d : {&up_, &down_}) {
      int p[2];
      if (pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0) return Close();
      d->pipe_r.reset(p[0]);
      d->pipe_w.reset(p[1]);
      // Fewer, larger moves per wakeup (default pipes hold 64 KiB). Best effort: capped by
      // /proc/sys/fs/pipe-max-size.
      fcntl(p[1], F_SETPIPE_SZ, 1 << 20);
    }
    up_.from = &a_;
    up_.to = &b_;
    down_.from = &b_;
    down_.to = &a_;
    Pump(up_);
    Pump(down_);
  }

 private:
  struct Dir {
    tcp::socket* from = nullptr;
    tcp::socket* to = nullptr;
    base::UniqueFd pipe_r, pipe_w;
    size_t buffered = 0;
    bool done = false;
  };

  void Pump(Dir& d) {
    if (closed_) return;
    auto self = shared_from_this();
    while (true) {
      if (d.buffered > 0) {
        ssize_t n = splice(d.pipe_r.get(), nullptr, d.to->native_handle(), nullptr, d.buffered,
                           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n > 0) {
          d.buffered -= static_cast<size_t>(n);
          continue;
        }
        if (n < 0 && errno == EAGAIN) {
          d.to->async_wait(tcp::socket::wait_write, [self, &d](boost::system::error_code ec) {
            if (ec) return self->Close();
            self->Pump(d);
          });
          return;
        }
        return Close();
      }
      if (d.done) return;
      ssize_t n = splice(d.from->native_handle(), nullptr, d.pipe_w.get(), nullptr, 1 << 20,
                         SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n > 0) {
        d.buffered += static_cast<size_t>(n);
        continue;
      }
      if (n == 0) {
        // EOF: pass the half-close on; the relay ends when both directions did.
        d.done = true;
        boost::system::error_code ec;
        d.to->shutdown(tcp::socket::shutdown_send, ec);
        if (up_.done && down_.done) Close();
        return;
      }
      if (errno == EAGAIN) {
        d.from->async_wait(tcp::socket::wait_read, [self, &d](boost::system::error_code ec) {
          if (ec) return self->Close();
          self->Pump(d);
        });
        return;
      }
      return Close();
    }
  }

  void Close() {
    if (closed_) return;
    closed_ = true;
    boost::system::error_code ec;
    a_.close(ec);
    b_.close(ec);
  }

  tcp::socket a_, b_;
  Dir up_, down_;
  bool closed_ = false;
};

class Listener {
 public:
  virtual ~Listener() = default;
  virtual int port() const = 0;
  virtual void Close() = 0;
  Balancer balancer;
};

class TcpListener : public Listener, public std::enable_shared_from_this<TcpListener> {
 public:
  TcpListener(asio::io_context& io, const UserspaceOptions& opts, Counters& counters)
      : io_(io), acceptor_(io), opts_(opts), counters_(counters) {}
  boost::system::error_code Open() {
    boost::system::error_code ec;
    acceptor_.open(tcp::v4(), ec);
    if (!ec) acceptor_.bind(tcp::endpoint(tcp::v4(), 0), ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    return ec;
  }
  int port() const override { return acceptor_.local_endpoint().port(); }
  void Close() override {
    boost::system::error_code ec;
    acceptor_.close(ec);
  }
  void Accept() {
    auto self = shared_from_this();
    acceptor_.async_accept([self](boost::system::error_code ec, tcp::socket s) {
      if (ec) return;
      ++self->counters_.connections;
      boost::system::error_code e2;
      std::string client = s.remote_endpoint(e2).address().to_string();
      auto order = self->balancer.Order(client);
      self->Connect(std::make_shared<tcp::socket>(std::move(s)), client, std::move(order), 0);
      self->Accept();
    });
  }

 private:
  // Tries the endpoints in order until one accepts the connection.
  void Connect(std::shared_ptr<tcp::socket> client, std::string client_ip,
               std::vector<UserspaceProxy::Backend> order, size_t i) {
    if (i >= order.size()) return;  // none left: the client socket closes
    auto self = shared_from_this();
    auto up = std::make_shared<tcp::socket>(io_);
    auto timer = std::make_shared<asio::steady_timer>(io_, opts_.connect_timeout);
    boost::system::error_code ec;
    tcp::endpoint ep(asio::ip::make_address(order[i].ip, ec), static_cast<uint16_t>(order[i].port));
    timer->async_wait([up](boost::system::error_code e) {
      if (!e) {
        boost::system::error_code ignored;
        up->close(ignored);
      }
    });
    up->async_connect(ep, [=](boost::system::error_code e) {
      timer->cancel();
      if (e) {
        ++self->counters_.connect_failures;
        return self->Connect(client, client_ip, order, i + 1);
      }
      self->balancer.Used(client_ip, order[i]);
      std::make_shared<TcpRelay>(std::move(*client), std::move(*up))->Start();
    });
  }

  asio::io_context& io_;
  tcp::acceptor acceptor_;
  const UserspaceOptions& opts_;
  Counters& counters_;
};

// UDP: one upstream socket per client address, closed after the idle timeout.
class UdpListener : public Listener, public std::enable_shared_from_this<UdpListener> {
 public:
  UdpListener(asio::io_context& io, const UserspaceOptions& opts, Counters& counters)
      : io_(io), socket_(io), opts_(opts), counters_(counters) {}
  boost::system::error_code Open() {
    boost::system::error_code ec;
    socket_.open(udp::v4(), ec);
    if (!ec) socket_.bind(udp::endpoint(udp::v4(), 0), ec);
    return ec;
  }
  int port() const override { return socket_.local_endpoint().port(); }
  void Close() override {
    boost::system::error_code ec;
    socket_.close(ec);
    for (auto& [_, f] : flows_) f->socket.close(ec);
    flows_.clear();
  }
  void Receive() {
    auto self = shared_from_this();
    socket_.async_receive_from(asio::buffer(buf_), from_,
                               [self](boost::system::error_code ec, size_t n) {
                                 if (ec) return;
                                 self->OnDatagram(n);
                                 self->Receive();
                               });
  }

 private:
  struct Flow {
    explicit Flow(asio::io_context& io) : socket(io), timer(io) {}
    udp::socket socket;
    asio::steady_timer timer;
    udp::endpoint client;
    SteadyClock::time_point last;
    std::array<char, 65536> buf;
  };

  void OnDatagram(size_t n) {
    auto it = flows_.find(from_);
    if (it == flows_.end()) {
      std::string client = from_.address().to_string();
      auto order = balancer.Order(client);
      if (order.empty()) return;
      auto flow = std::make_shared<Flow>(io_);
      boost::system::error_code ec;
      flow->socket.open(udp::v4(), ec);
      udp::endpoint ep(asio::ip::make_address(order[0].ip, ec),
                       static_cast<uint16_t>(order[0].port));
      if (!ec) flow->socket.connect(ep, ec);
      if (ec) {
        ++counters_.connect_failures;
        return;
      }
      ++counters_.connections;
      balancer.Used(client, order[0]);
      flow->client = from_;
      it = flows_.emplace(from_, flow).first;
      ReadReplies(flow);
      ArmIdle(flow);
    }
    auto flow = it->second;
    flow->last = SteadyClock::now();
    boost::system::error_code ec;
    flow->socket.send(asio::buffer(buf_.data(), n), 0, ec);
  }

  void ReadReplies(std::shared_ptr<Flow> flow) {
    auto self = shared_from_this();
    flow->socket.async_receive(
        asio::buffer(flow->buf), [self, flow](boost::system::error_code ec, size_t n) {
          if (ec) return self->Drop(flow);
          flow->last = SteadyClock::now();
          boost::system::error_code e2;
          self->socket_.send_to(asio::buffer(flow->buf.data(), n), flow->client, 0, e2);
          self->ReadReplies(flow);
        });
  }

  void ArmIdle(std::shared_ptr<Flow> flow) {
    auto self = shared_from_this();
    flow->timer.expires_after(opts_.udp_idle_timeout);
    flow->timer.async_wait([self, flow](boost::system::error_code ec) {
      if (ec) return;
      if (SteadyClock::now() - flow->last >= self->opts_.udp_idle_timeout) return self->Drop(flow);
      self->ArmIdle(flow);
    });
  }

  void Drop(const std::shared_ptr<Flow>& flow) {
    auto it = flows_.find(flow->client);
    if (it != flows_.end() && it->second == flow) flows_.erase(it);
    boost::system::error_code ec;
    flow->socket.close(ec);
    flow->timer.cancel();
  }

  asio::io_context& io_;
  udp::socket socket_;
  const UserspaceOptions& opts_;
  Counters& counters_;
  std::array<char, 65536> buf_;
  udp::endpoint from_;
  std::map<udp::endpoint, std::shared_ptr<Flow>> flows_;
};

}  // namespace

struct UserspaceProxy::Impl {
  UserspaceOptions opts;
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  std::thread thread;
  Counters counters;
  struct Entry {
    Protocol protocol;
    std::shared_ptr<Listener> listener;
  };
  std::map<ServicePortName, Entry> listeners;  // io thread only
};

UserspaceProxy::UserspaceProxy(UserspaceOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->opts = std::move(options);
  impl_->thread = std::thread([this] {
    pthread_setname_np(pthread_self(), "userspace-proxy");  // for top -H, perf, the bench
    impl_->io.run();
  });
}

UserspaceProxy::~UserspaceProxy() {
  asio::post(impl_->io, [this] {
    for (auto& [_, e] : impl_->listeners) e.listener->Close();
    impl_->listeners.clear();
    impl_->work.reset();
    impl_->io.stop();
  });
  if (impl_->thread.joinable()) impl_->thread.join();
}

uint64_t UserspaceProxy::connections() const { return impl_->counters.connections; }
uint64_t UserspaceProxy::connect_failures() const { return impl_->counters.connect_failures; }

base::Result<std::map<ServicePortName, int>> UserspaceProxy::Sync(
    const std::map<ServicePortName, PortConfig>& ports) {
  std::promise<base::Result<std::map<ServicePortName, int>>> done;
  auto fut = done.get_future();
  asio::post(impl_->io, [this, &ports, &done] {
    auto& ls = impl_->listeners;
    for (auto it = ls.begin(); it != ls.end();) {
      auto want = ports.find(it->first);
      if (want == ports.end() || want->second.protocol != it->second.protocol) {
        it->second.listener->Close();
        it = ls.erase(it);
      } else {
        ++it;
      }
    }
    std::map<ServicePortName, int> out;
    std::string errors;
    for (const auto& [spn, cfg] : ports) {
      auto it = ls.find(spn);
      if (it == ls.end()) {
        std::shared_ptr<Listener> l;
        boost::system::error_code ec;
        if (cfg.protocol == Protocol::kUDP) {
          auto u = std::make_shared<UdpListener>(impl_->io, impl_->opts, impl_->counters);
          ec = u->Open();
          if (!ec) u->Receive();
          l = u;
        } else if (cfg.protocol == Protocol::kTCP) {
          auto t = std::make_shared<TcpListener>(impl_->io, impl_->opts, impl_->counters);
          ec = t->Open();
          if (!ec) t->Accept();
          l = t;
        } else {
          continue;  // SCTP is not proxied in userspace mode
        }
        if (ec) {
          errors += (errors.empty() ? "" : "; ") + spn.String() + ": " + ec.message();
          continue;
        }
        it = ls.emplace(spn, Impl::Entry{cfg.protocol, l}).first;
      }
      it->second.listener->balancer.Set(cfg);
      out[spn] = it->second.listener->port();
    }
    if (!errors.empty()) {
      done.set_value(base::Fail("userspace proxy listeners: " + errors));
    } else {
      done.set_value(std::move(out));
    }
  });
  return fut.get();
}

namespace {

class UserspaceEngine final : public ProxyEngine {
 public:
  UserspaceEngine(RulesBackendPtr backend, UserspaceOptions options)
      : backend_(std::move(backend)), proxy_(std::move(options)) {}

  std::string Name() const override { return "userspace+" + backend_->Name(); }
  base::Result<> Cleanup() override { return CleanupLeftovers(*backend_); }
  base::Result<bool> Intact() override { return backend_->CanaryPresent(); }

  base::Result<EngineSyncStats> Sync(const ProxyState& state, const StateUpdateResult&,
                                     bool full) override {
    std::map<ServicePortName, UserspaceProxy::PortConfig> ports;
    for (const auto& [spn, svc] : state.service_ports()) {
      CategorizedEndpoints cat = CategorizeEndpoints(state.EndpointsFor(spn), svc, "");
      UserspaceProxy::PortConfig cfg;
      cfg.protocol = spn.protocol;
      for (const EndpointInfo* ep : svc.InternalPolicyLocal() ? cat.local : cat.cluster) {
        cfg.endpoints.push_back({ep->Ip(), ep->port});
      }
      cfg.affinity = svc.session_affinity == SessionAffinity::kClientIP;
      cfg.affinity_timeout = std::chrono::seconds(svc.sticky_max_age_seconds);
      ports.emplace(spn, std::move(cfg));
    }
    auto listen = proxy_.Sync(ports);
    if (!listen) return tl::unexpected(listen.error());

    std::vector<IptablesJump> missing;
    if (full) {
      auto snap = backend_->Snapshot();
      if (!snap) return tl::unexpected(snap.error());
      missing = MissingJumps(*snap, Jumps());
    }
    // The redirect rules are few (one per service address): rewritten whole each time.
    IptablesRuleset rs;
    IptablesChain* reject = rs.filter.AddChain("KUBE-SERVICES");
    IptablesChain* pc = rs.nat.AddChain("KUBE-PORTALS-CONTAINER");
    IptablesChain* ph = rs.nat.AddChain("KUBE-PORTALS-HOST");
    IptablesChain* nc = rs.nat.AddChain("KUBE-NODEPORT-CONTAINER");
    IptablesChain* nh = rs.nat.AddChain("KUBE-NODEPORT-HOST");
    for (const auto& [spn, svc] : state.service_ports()) {
      auto lp = listen->find(spn);
      const std::string proto(ProtocolLower(spn.protocol));
      const std::string comment = "-m comment --comment " + QuoteArg(svc.name_string);
      std::vector<std::string> dsts = {svc.cluster_ip};
      dsts.insert(dsts.end(), svc.external_ips.begin(), svc.external_ips.end());
      dsts.insert(dsts.end(), svc.load_balancer_ips.begin(), svc.load_balancer_ips.end());
      if (lp == listen->end() || ports.at(spn).endpoints.empty()) {
        for (const auto& d : dsts) {
          reject->rules.push_back("-m comment --comment " +
                                  QuoteArg(svc.name_string + " has no endpoints") + " -m " + proto +
                                  " -p " + proto + " -d " + d + " --dport " +
                                  std::to_string(svc.port) + " -j REJECT");
        }
        continue;
      }
      const std::string to = " -j REDIRECT --to-ports " + std::to_string(lp->second);
      for (const auto& d : dsts) {
        std::string m = comment + " -m " + proto + " -p " + proto + " -d " + d + " --dport " +
                        std::to_string(svc.port);
        pc->rules.push_back(m + to);
        ph->rules.push_back(m + to);
      }
      if (svc.node_port) {
        std::string m =
            comment + " -m " + proto + " -p " + proto + " --dport " + std::to_string(svc.node_port);
        nc->rules.push_back(m + to);
        nh->rules.push_back(m + to);
      }
    }
    std::string buf = rs.Serialize(missing);
    if (full) buf += kCanaryRestore;
    CUBELET_TRY(backend_->Restore(buf));
    EngineSyncStats stats;
    stats.bytes = buf.size();
    stats.commits = 1;
    stats.rules["nat"] = rs.nat.TotalRules();
    stats.rules["filter"] = rs.filter.TotalRules();
    stats.rules["userspace_listeners"] = listen->size();
    return stats;
  }

 private:
  static std::vector<IptablesJump> Jumps() {
    const std::vector<std::string> local = {"-m", "addrtype", "--dst-type", "LOCAL"};
    const std::vector<std::string> ct_new = {"-m", "conntrack", "--ctstate", "NEW"};
    // Inserted at the top in this order, so the portals end up before the node ports.
    const std::string portals = "handle ClusterIPs; NOTE: this must be before the NodePort rules";
    const std::string nodeports =
        "handle service NodePorts; NOTE: this must be the last rule in "
        "the chain";
    return {
        {"nat", "PREROUTING", "KUBE-NODEPORT-CONTAINER", nodeports, local},
        {"nat", "OUTPUT", "KUBE-NODEPORT-HOST", nodeports, local},
        {"nat", "PREROUTING", "KUBE-PORTALS-CONTAINER", portals, {}},
        {"nat", "OUTPUT", "KUBE-PORTALS-HOST", portals, {}},
        {"filter", "OUTPUT", "KUBE-SERVICES", "kubernetes service portals", ct_new},
        {"filter", "FORWARD", "KUBE-SERVICES", "kubernetes service portals", ct_new},
    };
  }

  RulesBackendPtr backend_;
  UserspaceProxy proxy_;
};

}  // namespace

ProxyEnginePtr MakeUserspaceEngine(RulesBackendPtr backend, UserspaceOptions options) {
  return std::make_unique<UserspaceEngine>(std::move(backend), std::move(options));
}

}  // namespace netproxy

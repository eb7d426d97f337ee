#pragma once
// The REST API of the test API server, independent of the HTTP transport: a Request goes in,
// a Response (a body, a watch stream or a proxy target) comes out. http_server.cc carries it
// over HTTPS with Boost.Beast.
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/apiserver/json.h"
#include "tests/apiserver/store.h"

namespace apiserver {

struct UserInfo {
  std::string name;
  std::string uid;
  std::vector<std::string> groups;
  std::map<std::string, std::vector<std::string>> extra;
  bool authenticated = false;
};

struct Request {
  std::string method;
  std::string path;                               // decoded path
  std::multimap<std::string, std::string> query;  // decoded
  std::map<std::string, std::string> headers;     // lower-case names
  std::string body;
  UserInfo user;
  bool bad_credentials = false;  // a bearer token was sent and did not authenticate

  std::string Query(const std::string& key, const std::string& def = "") const {
    auto it = query.find(key);
    return it == query.end() ? def : it->second;
  }
  bool HasQuery(const std::string& key) const { return query.count(key) > 0; }
  std::string Header(const std::string& key) const {
    auto it = headers.find(key);
    return it == headers.end() ? "" : it->second;
  }
};

// Writes one chunk of a streamed response; false when the client has gone.
using ChunkWriter = std::function<bool(const std::string&)>;

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  // Set for watch streams: called with a writer after the headers are sent (chunked).
  std::function<void(const ChunkWriter&)> stream;
  // Set for the pod log proxy: the transport streams GET `proxy_url` (kubelet client cert).
  std::string proxy_url;
  // With proxy_url, for pods/exec: the transport forwards the client's method and upgrade
  // headers to proxy_url and, after the kubelet's 101, relays the bytes both ways.
  bool proxy_upgrade = false;
};

struct ServerConfig {
  std::string data_dir;
  std::string service_cidr = "10.96.0.0/12";
  std::string cluster_cidr = "10.244.0.0/16";
  int node_cidr_mask = 24;
  std::string ca_pem;            // CA certificate (PEM), for kube-root-ca.crt
  std::string sa_key_pem;        // RSA private key that signs service account tokens
  std::string advertise_address; // first --listen address:port (for /api)
  std::chrono::milliseconds bookmark_interval{1000};
  std::chrono::seconds node_monitor_grace{50};
};

class ApiServer {
 public:
  explicit ApiServer(ServerConfig config);
  ~ApiServer();

  // Authorizes, then serves the request. `user` must already be authenticated by the caller.
  Response Handle(const Request& req);

  // Starts the controller loop (EndpointSlices, node CIDRs/taints/lifecycle, namespaces).
  void StartControllers();
  void StopControllers();
  // Runs one pass of every controller synchronously (tests).
  void RunControllersOnce();

  Store& store() { return store_; }

  // How bearer tokens authenticate (the transport's token file), for TokenReviews.
  void SetTokenAuthenticator(std::function<std::optional<UserInfo>(const std::string&)> fn) {
    token_authenticator_ = std::move(fn);
  }

 private:
  struct Route;
  Response Serve(const Request& req, Route& route);
  Response HandleNonResource(const Request& req);
  void Bootstrap();
  void ControllerLoop();

  ServerConfig config_;
  Store store_;
  std::function<std::optional<UserInfo>(const std::string&)> token_authenticator_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> dirty_{true};
  std::thread controller_thread_;
  // Controller state (see controllers.cc).
  std::mutex controller_state_mu_;
  std::set<std::string> managed_endpoints_;
  using Heartbeat = std::pair<std::string, std::chrono::steady_clock::time_point>;
  std::map<std::string, Heartbeat> node_seen_;  // last heartbeat text and when it changed
  std::map<std::string, std::chrono::steady_clock::time_point> orphan_nodes_;  // missing since
  std::mutex controller_mu_;
  std::condition_variable controller_cv_;

  friend class ApiServerImpl;
};

}  // namespace apiserver

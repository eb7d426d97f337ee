#pragma once
// HTTPS transport of the test API server (Boost.Beast + OpenSSL), one thread per connection
// so that long-lived watch streams never block other clients.
#include <memory>
#include <string>
#include <vector>

#include "tests/apiserver/api_server.h"
#include "tests/apiserver/tls_assets.h"

namespace apiserver {

class HttpServer {
 public:
  explicit HttpServer(TlsAssets assets);
  ~HttpServer();
  // Binds every "ADDR:PORT" (port 0 picks a free one); returns the bound "ADDR:PORT"s.
  std::vector<std::string> Listen(const std::vector<std::string>& addrs);
  // Accepts connections until the process exits.
  void Run(ApiServer& api);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace apiserver

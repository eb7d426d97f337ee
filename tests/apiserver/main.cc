// cubelet-test-apiserver: a Kubernetes API server for tests (see README.md beside this file).
#include <signal.h>

#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "base/log.h"
#include "tests/apiserver/api_server.h"
#include "tests/apiserver/http_server.h"
#include "tests/apiserver/tls_assets.h"

namespace {

const char kUsage[] =
    "usage: cubelet-test-apiserver --listen ADDR:PORT [--listen ADDR:PORT ...] --data-dir DIR\n"
    "         [--node NAME ...] [--service-cidr 10.96.0.0/12] [--cluster-cidr 10.244.0.0/16]\n"
    "         [--node-cidr-mask 24] [--kubelet-client-cert FILE --kubelet-client-key FILE]\n"
    "         [--bookmark-interval-ms 1000] [--node-monitor-grace-seconds 50]\n"
    "         [--log-level debug|info|warn|error]\n";

std::string FirstIpOf(const std::string& cidr) {
  unsigned a, b, c, d;
  if (sscanf(cidr.c_str(), "%u.%u.%u.%u", &a, &b, &c, &d) != 4) return "";
  return std::to_string(a) + "." + std::to_string(b) + "." + std::to_string(c) + "." +
         std::to_string(d + 1);
}

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  base::log::SetComponent("cubelet-test-apiserver");
  std::vector<std::string> listen, nodes;
  apiserver::ServerConfig config;
  apiserver::AssetOptions assets;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    std::string v;
    size_t eq = a.find('=');
    if (eq != std::string::npos) {
      v = a.substr(eq + 1);
      a = a.substr(0, eq);
    } else if (a != "--help" && a != "-h") {
      if (i + 1 >= argc) {
        std::cerr << "missing value for " << a << "\n" << kUsage;
        return 2;
      }
      v = argv[++i];
    }
    if (a == "--listen") listen.push_back(v);
    else if (a == "--data-dir") config.data_dir = v;
    else if (a == "--node") nodes.push_back(v);
    else if (a == "--service-cidr") config.service_cidr = v;
    else if (a == "--cluster-cidr") config.cluster_cidr = v;
    else if (a == "--node-cidr-mask") config.node_cidr_mask = std::stoi(v);
    else if (a == "--kubelet-client-cert") assets.kubelet_client_cert = v;
    else if (a == "--kubelet-client-key") assets.kubelet_client_key = v;
    else if (a == "--bookmark-interval-ms") config.bookmark_interval = std::chrono::milliseconds(std::stoll(v));
    else if (a == "--node-monitor-grace-seconds") config.node_monitor_grace = std::chrono::seconds(std::stoll(v));
    else if (a == "--log-level") {
      base::log::Level level;
      if (!base::log::ParseLevel(v, &level)) {
        std::cerr << "bad --log-level " << v << "\n";
        return 2;
      }
      base::log::SetLevel(level);
    } else {
      std::cerr << kUsage;
      return a == "--help" || a == "-h" ? 0 : 2;
    }
  }
  if (listen.empty() || config.data_dir.empty()) {
    std::cerr << kUsage;
    return 2;
  }
  try {
    std::vector<std::string> ips;
    for (const auto& l : listen) {
      std::string host = l.substr(0, l.rfind(':'));
      if (!host.empty() && host.front() == '[') host = host.substr(1, host.size() - 2);
      ips.push_back(host);
    }
    assets.dir = config.data_dir;
    assets.listen_ips = ips;
    assets.nodes = nodes;
    assets.service_ip = FirstIpOf(config.service_cidr);
    assets.server_url = "https://" + listen[0];
    apiserver::TlsAssets tls = apiserver::PrepareAssets(assets);
    apiserver::HttpServer http(tls);
    // Bind before writing kubeconfigs so that port 0 turns into the real port.
    std::vector<std::string> bound = http.Listen(listen);
    if (bound[0] != listen[0]) {
      assets.server_url = "https://" + bound[0];
      tls = apiserver::PrepareAssets(assets);
    }
    config.ca_pem = tls.ca_pem;
    config.sa_key_pem = tls.sa_key_pem;
    config.advertise_address = bound[0];
    apiserver::ApiServer api(config);
    api.StartControllers();
    std::string line = "ready";
    for (const auto& b : bound) line += " https://" + b;
    std::cout << line << std::endl;
    base::log::Info("serving", {{"listen", bound[0]}, {"data_dir", config.data_dir}});
    http.Run(api);
  } catch (const std::exception& e) {
    base::log::Error("cubelet-test-apiserver failed", {{"error", e.what()}});
    return 1;
  }
  return 0;
}

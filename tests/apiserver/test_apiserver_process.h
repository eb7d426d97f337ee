#pragma once
// Starts cubelet-test-apiserver as a child process for a test (link `apiserver_testing`).
//
//   testsupport::TestApiServer api;
//   testsupport::TestApiServerOptions o;
//   o.data_dir = tmp + "/api";
//   o.nodes = {"node-a"};
//   auto started = api.Start(o);
//   // api.url(), api.AdminKubeconfig(), api.NodeKubeconfig("node-a"), api.CaFile() ...
//
// The process is stopped (SIGTERM, then SIGKILL) when the object goes away.
#include <sys/types.h>

#include <string>
#include <vector>

#include "base/result.h"

namespace testsupport {

struct TestApiServerOptions {
  std::string data_dir;                 // created if missing; keeps certs across restarts
  std::vector<std::string> listen = {"127.0.0.1:0"};
  std::vector<std::string> nodes;       // node identities to create kubeconfigs for
  std::vector<std::string> extra_args;  // e.g. {"--service-cidr", "10.96.0.0/12"}
  std::string binary;                   // default: the one built in this tree
};

class TestApiServer {
 public:
  TestApiServer() = default;
  TestApiServer(const TestApiServer&) = delete;
  TestApiServer& operator=(const TestApiServer&) = delete;
  ~TestApiServer() { Stop(); }

  // Starts the server and waits (up to 60 s) for its "ready" line.
  base::Result<> Start(const TestApiServerOptions& options);
  void Stop();

  const std::string& url() const { return urls_.front(); }  // https://ADDR:PORT
  const std::vector<std::string>& urls() const { return urls_; }
  std::string AdminKubeconfig() const { return dir_ + "/admin.kubeconfig"; }
  std::string NodeKubeconfig(const std::string& node) const {
    return dir_ + "/node-" + node + ".kubeconfig";
  }
  std::string NodeCertKubeconfig(const std::string& node) const {
    return dir_ + "/node-" + node + "-cert.kubeconfig";
  }
  std::string CaFile() const { return dir_ + "/ca.crt"; }
  std::string TokensFile() const { return dir_ + "/tokens.csv"; }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  std::string dir_;
  std::vector<std::string> urls_;
};

}  // namespace testsupport

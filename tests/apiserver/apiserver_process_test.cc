// The C++ helper other tests use to run the test API server.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "tests/apiserver/test_apiserver_process.h"

TEST_CASE("TestApiServer starts the binary, exposes its files and stops it") {
  char tmpl[] = "/tmp/apiserver-process-test.XXXXXX";
  REQUIRE(mkdtemp(tmpl) != nullptr);
  std::string dir = tmpl;
  {
    testsupport::TestApiServer api;
    testsupport::TestApiServerOptions options;
    options.data_dir = dir + "/api";
    options.nodes = {"node-a"};
    auto started = api.Start(options);
    INFO((started ? std::string() : started.error().message));
    REQUIRE(started);
    CHECK(api.url().rfind("https://127.0.0.1:", 0) == 0);
    struct stat st{};
    CHECK(stat(api.AdminKubeconfig().c_str(), &st) == 0);
    CHECK(stat(api.NodeKubeconfig("node-a").c_str(), &st) == 0);
    CHECK(stat(api.NodeCertKubeconfig("node-a").c_str(), &st) == 0);
    CHECK(stat(api.CaFile().c_str(), &st) == 0);
    std::string cmd = "curl -sf --cacert " + api.CaFile() + " " + api.url() + "/healthz >/dev/null";
    CHECK(std::system(cmd.c_str()) == 0);
    pid_t pid = api.pid();
    api.Stop();
    CHECK(kill(pid, 0) != 0);
  }
  std::system(("rm -rf " + dir).c_str());
}

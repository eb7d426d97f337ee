// --registry-config end to end: a real registry (Debian's docker-registry) requiring basic auth
// (htpasswd), reached through a mirror name and as an insecure (plain HTTP) registry on a
// non-loopback address, with the node-level credentials of the config, through
// cri::EmbeddedRuntime.
#include <crypt.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <thread>

#include "agent/registry_config.h"
#include "base/file.h"
#include "cgroups/driver.h"
#include "cri/embedded_runtime.h"
#include "tests/runtime/test_image.h"
#include "tests/support/kernel_env.h"

using namespace std::chrono_literals;

namespace {

constexpr const char* kAddr = "192.0.2.10";  // TEST-NET-1

struct Registry {
  std::string dir;
  explicit Registry(const std::string& d) : dir(d) {}
  ~Registry() { testsupport::Run("kill $(cat " + dir + "/pid) 2>/dev/null"); }
};

}  // namespace

TEST_CASE(
    "registry config: mirror, insecure registry and node credentials against a real registry") {
  testsupport::CgroupParent cg("regcfg");
  std::string root = "/var/tmp/cubelet-regcfg-" + std::to_string(getpid());
  testsupport::Run("rm -rf " + root);
  struct Cleanup {
    std::string root;
    ~Cleanup() { testsupport::Run("rm -rf " + root); }
  } cleanup{root};
  std::string reg = root + "/registry";
  REQUIRE(base::MkdirAll(reg + "/data"));
  // A non-loopback address (for the puller) on lo of this test's own netns.
  REQUIRE(testsupport::Run("ip addr add " + std::string(kAddr) + "/32 dev lo") == 0);
  // bcrypt (the only scheme the registry's htpasswd takes) through libcrypt.
  char salt[CRYPT_GENSALT_OUTPUT_SIZE];
  REQUIRE(crypt_gensalt_rn("$2b$", 4, nullptr, 0, salt, sizeof salt) != nullptr);
  struct crypt_data cd {};
  const char* hash = crypt_r("s3cret", salt, &cd);
  REQUIRE(hash != nullptr);
  REQUIRE(std::string(hash).rfind("$2b$", 0) == 0);
  REQUIRE(base::WriteFile(reg + "/htpasswd", "node:" + std::string(hash) + "\n"));
  std::string out;
  REQUIRE(base::WriteFile(reg + "/config.yml",
                          "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
                          "    rootdirectory: " +
                              reg +
                              "/data\nhttp:\n  addr: :5000\n"
                              "auth:\n  htpasswd:\n    realm: cubelet-test\n    path: " +
                              reg + "/htpasswd\n"));
  REQUIRE(testsupport::Run("docker-registry serve " + reg + "/config.yml > " + reg +
                           "/log 2>&1 & echo $! > " + reg + "/pid") == 0);
  Registry registry(reg);
  bool up = false;
  for (int i = 0; i < 100 && !up; ++i) {
    // 401 without credentials: the registry is up and requires them.
    up = testsupport::Run(
             "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:5000/v2/ "
             "| grep -q 401") == 0;
    if (!up) std::this_thread::sleep_for(100ms);
  }
  REQUIRE(up);
  int rc = testsupport::Run(
      "skopeo copy --insecure-policy --dest-tls-verify=false "
      "--dest-creds node:s3cret oci:" +
          testimage::BusyboxLayout() + ":latest docker://127.0.0.1:5000/test/busybox:v1 2>&1",
      &out);
  INFO(out);
  REQUIRE(rc == 0);

  std::string addr = std::string(kAddr) + ":5000";
  auto config = agent::ParseRegistryConfig(R"({
    "mirrors": {"example.test": "http://127.0.0.1:5000"},
    "insecureRegistries": [")" + addr + R"("],
    "auths": {
      "example.test": {"username": "node", "password": "s3cret"},
      ")" + addr + R"(": {"auth": "bm9kZTpzM2NyZXQ="},
      "wrong.example": {"username": "node", "password": "nope"}
    }
  })",
                                           "test");
  REQUIRE(config);

  auto make_runtime = [&](bool with_insecure) {
    auto driver = cgroups::Detect(cg.path());
    REQUIRE(driver);
    cri::EmbeddedRuntimeOptions o;
    o.root_dir = root + "/state";
    o.run_dir = root + "/run";
    o.cgroup_driver = std::move(*driver);
    o.spare_monitors = 0;
    // As cubelet_app does with --registry-config.
    o.registry.mirrors = config->mirrors;
    if (with_insecure) o.registry.insecure_registries = config->insecure_registries;
    o.registry.mirrors["wrong.example"] = "http://127.0.0.1:5000";
    auto r = cri::EmbeddedRuntime::Create(std::move(o));
    REQUIRE(r);
    return std::move(*r);
  };
  auto pull = [](cri::EmbeddedRuntime& rt, const std::string& image, const cri::AuthConfig& a) {
    cri::ImageSpec spec;
    spec.image = image;
    return rt.PullImage(spec, a, nullptr);
  };
  auto node_auth = [&](const std::string& image) {
    return agent::SelectPullAuth(agent::DockerKeyring(), &*config, image);
  };

  {
    auto rt = make_runtime(true);
    // Through the mirror, without credentials: refused by the registry.
    auto bad = pull(*rt, "example.test/test/busybox:v1", {});
    REQUIRE_FALSE(bad);
    CHECK(bad.error().message.find("requires credentials") != std::string::npos);
    // Wrong credentials.
    bad = pull(*rt, "wrong.example/test/busybox:v1", node_auth("wrong.example/test/busybox:v1"));
    REQUIRE_FALSE(bad);
    CHECK(bad.error().message.find("401") != std::string::npos);
    // The node's credentials for the mirrored name.
    auto ref = pull(*rt, "example.test/test/busybox:v1", node_auth("example.test/test/busybox:v1"));
    if (!ref) FAIL(ref.error().message);
    CHECK(ref->rfind("example.test/test/busybox@sha256:", 0) == 0);
    cri::ImageSpec pulled;
    pulled.image = "example.test/test/busybox:v1";
    auto img = rt->ImageStatus(pulled);
    REQUIRE(img);
    REQUIRE(*img);
    CHECK((*img)->size > 0);
    // A plain-HTTP registry on a non-loopback address, listed insecure, with "auth" credentials.
    ref = pull(*rt, addr + "/test/busybox:v1", node_auth(addr + "/test/busybox:v1"));
    if (!ref) FAIL(ref.error().message);
    CHECK(ref->rfind(addr + "/test/busybox@sha256:", 0) == 0);
  }
  {
    // Not listed insecure: HTTPS is tried against the plain-HTTP registry and fails.
    auto rt = make_runtime(false);
    auto bad = pull(*rt, addr + "/test/busybox:v2", node_auth(addr + "/test/busybox:v2"));
    REQUIRE_FALSE(bad);
    CHECK(bad.error().message.find("https://" + addr) != std::string::npos);
  }
}

// --registry-config parsing and credential selection (DockerKeyring lookups).
#include "agent/registry_config.h"

#include <catch2/catch.hpp>

namespace {

std::string User(const std::optional<cri::AuthConfig>& a) {
  return a ? a->username + ":" + a->password : "<none>";
}

}  // namespace

TEST_CASE("registry config: mirrors, insecure registries and auths parsed; errors name the cause") {
  auto c = agent::ParseRegistryConfig(R"({
    "mirrors": {"docker.io": "https://mirror.example.com/",
                "example.test": "http://127.0.0.1:5000"},
    "insecureRegistries": ["registry.lan:5000"],
    "auths": {
      "registry.example.com": {"username": "u1", "password": "p1"},
      "registry.lan:5000": {"auth": "dTI6cDI="},
      "https://index.docker.io/v1/": {"auth": "aHViOnNlY3JldDp3aXRoOmNvbG9ucw=="}
    },
    "credsStore": "desktop"
  })",
                                      "test.json");
  REQUIRE(c);
  CHECK(c->mirrors ==
        std::map<std::string, std::string>{{"docker.io", "https://mirror.example.com"},
                                           {"example.test", "http://127.0.0.1:5000"}});
  CHECK(c->insecure_registries == std::set<std::string>{"registry.lan:5000"});
  CHECK(c->credentials.size() == 3);
  CHECK(User(c->NodeCredentials("registry.example.com/team/app:v1")) == "u1:p1");
  CHECK(User(c->NodeCredentials("registry.lan:5000/app")) == "u2:p2");
  CHECK(User(c->NodeCredentials("registry.lan/app")) == "<none>");  // the port must match
  CHECK(User(c->NodeCredentials("busybox")) == "hub:secret:with:colons");
  CHECK(User(c->NodeCredentials("docker.io/library/busybox:1.36")) == "hub:secret:with:colons");
  CHECK(User(c->NodeCredentials("quay.io/app")) == "<none>");

  auto bad = [](const std::string& text) {
    auto r = agent::ParseRegistryConfig(text, "f.json");
    REQUIRE_FALSE(r);
    return r.error().message;
  };
  CHECK(bad("{").find("registry config f.json: not a JSON object") == 0);
  CHECK(bad(R"({"mirrors": {"docker.io": "mirror.example.com"}})")
            .find("mirror of \"docker.io\" must be an http:// or https:// URL") !=
        std::string::npos);
  CHECK(bad(R"({"mirrors": {"docker.io": "https://m.example/v2"}})").find("must have no path") !=
        std::string::npos);
  CHECK(bad(R"({"insecureRegistries": "a"})").find("\"insecureRegistries\" is not a list") !=
        std::string::npos);
  CHECK(bad(R"({"auths": {"r.example": {"auth": "bm9jb2xvbg=="}}})")
            .find("\"auth\" is not user:password") != std::string::npos);
  CHECK(agent::LoadRegistryConfig("/nonexistent/registry.json")
            .error()
            .message.find("registry config /nonexistent/registry.json") == 0);
}

TEST_CASE("registry credentials: the most specific key wins; globs match one label") {
  agent::DockerKeyring k;
  REQUIRE(k.Add(R"({"auths": {
    "registry.example.com": {"username": "host", "password": "x"},
    "registry.example.com/team": {"username": "team", "password": "x"},
    "registry.example.com/team/app": {"username": "app", "password": "x"},
    "*.example.org": {"username": "glob", "password": "x"},
    "eu.example.org": {"username": "exact", "password": "x"}
  }})",
                "secret default/regcred"));
  CHECK(User(k.Lookup("registry.example.com/other:v1")) == "host:x");
  CHECK(User(k.Lookup("registry.example.com/team/web")) == "team:x");
  CHECK(User(k.Lookup("registry.example.com/team/app@sha256:abc")) == "app:x");
  CHECK(User(k.Lookup("registry.example.com/teamx/app")) == "host:x");  // not a path prefix
  CHECK(User(k.Lookup("us.example.org/app")) == "glob:x");
  CHECK(User(k.Lookup("eu.example.org/app")) == "exact:x");
  CHECK(User(k.Lookup("a.b.example.org/app")) == "<none>");
  // The legacy .dockercfg form (no "auths" wrapper).
  agent::DockerKeyring legacy;
  REQUIRE(legacy.Add(R"({"legacy.example": {"auth": "bDpw", "email": "x@y"}})", "dockercfg"));
  CHECK(User(legacy.Lookup("legacy.example/a")) == "l:p");
  CHECK_FALSE(agent::DockerKeyring().Add("[]", "s").has_value());
}

TEST_CASE("registry credentials: a mirrored registry falls back to the mirror host's entry") {
  auto c = agent::ParseRegistryConfig(R"({
    "mirrors": {"example.test": "http://127.0.0.1:5000"},
    "auths": {"127.0.0.1:5000": {"username": "m", "password": "p"}}
  })",
                                      "m.json");
  REQUIRE(c);
  CHECK(User(c->NodeCredentials("example.test/test/busybox:v1")) == "m:p");
  CHECK(User(c->NodeCredentials("other.test/test/busybox:v1")) == "<none>");
  CHECK(agent::RegistryConfig::RegistryOf("busybox") == "docker.io");
  CHECK(agent::RegistryConfig::RegistryOf("localhost/x") == "localhost");
  CHECK(agent::RegistryConfig::RegistryOf("team/app:v1") == "docker.io");
  CHECK(agent::RegistryConfig::RegistryOf("127.0.0.1:5000/a/b:c") == "127.0.0.1:5000");
}

TEST_CASE("registry credentials: the pod's pull secrets first, then the node's, else anonymous") {
  auto node = agent::ParseRegistryConfig(R"({"auths": {
    "registry.example.com": {"username": "node", "password": "n"},
    "node-only.example": {"username": "node", "password": "n"}}})",
                                         "node.json");
  REQUIRE(node);
  agent::DockerKeyring pod;
  REQUIRE(pod.Add(R"({"auths": {"registry.example.com": {"username": "pod", "password": "p"}}})",
                  "secret default/regcred"));
  auto user = [](const cri::AuthConfig& a) { return a.username; };
  CHECK(user(agent::SelectPullAuth(pod, &*node, "registry.example.com/app")) == "pod");
  CHECK(user(agent::SelectPullAuth(pod, &*node, "node-only.example/app")) == "node");
  CHECK(user(agent::SelectPullAuth(pod, &*node, "quay.io/app")).empty());
  CHECK(user(agent::SelectPullAuth(pod, nullptr, "node-only.example/app")).empty());
  CHECK(agent::SelectPullAuth(pod, &*node, "registry.example.com/app").server_address ==
        "registry.example.com");
}

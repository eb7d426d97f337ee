// CNI without root: config parsing and results (pure), and CniNetwork driving fake plugins
// (shell scripts that log what they were asked) for chaining, order, caching, restart and repair.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <string>

#include "base/file.h"
#include "base/strings.h"
#include "runtime/network/cni_config.h"
#include "runtime/network/cni_network.h"

using namespace runtime::net;

namespace {

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/podnet-cni-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { (void)base::RemoveAll(path); }
};

const char* kList = R"({
  "cniVersion": "1.0.0", "name": "k8s-pod-network",
  "plugins": [
    {"type": "bridge", "bridge": "cni0", "ipam": {"type": "host-local"}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]})";

// Fake plugin: logs "<COMMAND> <name> <container> <ifname> <netns>" to <dir>/log and its stdin
// to <dir>/<name>.<COMMAND>.in; fails ADD/CHECK when <dir>/fail-<name>-<COMMAND> exists.
void WritePlugin(const std::string& bin, const std::string& name, const std::string& logdir,
                 const std::string& add_result) {
  std::string script =
      "#!/bin/sh\n"
      "in=$(cat)\n"
      "echo \"$CNI_COMMAND " +
      name + " $CNI_CONTAINERID $CNI_IFNAME $CNI_NETNS\" >> " + logdir +
      "/log\n"
      "printf '%s' \"$in\" > " +
      logdir + "/" + name +
      ".$CNI_COMMAND.in\n"
      "echo \"$CNI_ARGS\" > " +
      logdir + "/" + name +
      ".args\n"
      "if [ -f " +
      logdir + "/fail-" + name +
      "-$CNI_COMMAND ]; then\n"
      "  echo '{\"cniVersion\":\"1.0.0\",\"code\":11,\"msg\":\"" +
      name +
      " broke\",\"details\":\"on purpose\"}'; echo diag >&2; exit 1\n"
      "fi\n"
      "if [ \"$CNI_COMMAND\" = ADD ]; then echo '" +
      add_result +
      "'; fi\n"
      "exit 0\n";
  REQUIRE(base::WriteFile(bin + "/" + name, script));
  REQUIRE(::chmod((bin + "/" + name).c_str(), 0755) == 0);
}

std::string Log(const std::string& dir) {
  auto l = base::ReadFile(dir + "/log");
  return l ? *l : "";
}

struct FakeCni {
  TempDir tmp;
  std::string conf = tmp.path + "/net.d", bin = tmp.path + "/bin", logs = tmp.path + "/logs";
  const std::string r1 =
      R"({"cniVersion":"1.0.0","interfaces":[{"name":"cni0"},{"name":"eth0","sandbox":"/x"}],)"
      R"("ips":[{"address":"10.22.0.5/16","gateway":"10.22.0.1","interface":1}]})";
  const std::string r2 =
      R"({"cniVersion":"1.0.0","interfaces":[{"name":"cni0"},{"name":"eth0","sandbox":"/x"}],)"
      R"("ips":[{"address":"10.22.0.5/16","gateway":"10.22.0.1","interface":1},)"
      R"({"address":"fd00::5/64","interface":1}]})";
  FakeCni() {
    REQUIRE(base::MkdirAll(conf));
    REQUIRE(base::MkdirAll(bin));
    REQUIRE(base::MkdirAll(logs));
    WritePlugin(bin, "bridge", logs, r1);
    WritePlugin(bin, "portmap", logs, r2);
    REQUIRE(base::WriteFile(conf + "/10-net.conflist", kList));
  }
  CniNetworkOptions Options() const {
    CniNetworkOptions o;
    o.conf_dir = conf;
    o.bin_dirs = {tmp.path + "/nothing-here", bin};
    o.cache_dir = tmp.path + "/cache";
    return o;
  }
  SandboxNetRequest Req(const std::string& id = "sb1") const {
    return {id, "/run/netns/" + id, "default", "web", "uid-1", {{"TCP", 80, 8080, ""}}};
  }
  void Fail(const std::string& plugin, const std::string& cmd, bool on = true) const {
    std::string f = logs + "/fail-" + plugin + "-" + cmd;
    if (on) {
      REQUIRE(base::WriteFile(f, ""));
    } else {
      ::unlink(f.c_str());
    }
  }
  void ClearLog() const { ::unlink((logs + "/log").c_str()); }
};

}  // namespace

TEST_CASE("CNI config lists and single configs parse; bad ones are named", "[cni]") {
  auto net = ParseCniConfig(kList, "/etc/cni/net.d/10.conflist");
  REQUIRE(net);
  CHECK(net->name == "k8s-pod-network");
  CHECK(net->cni_version == "1.0.0");
  REQUIRE(net->plugins.size() == 2);
  CHECK(net->plugins[0].type == "bridge");
  CHECK_FALSE(net->plugins[0].port_mappings);
  CHECK(net->plugins[1].port_mappings);

  auto single = ParseCniConfig(R"({"cniVersion":"0.3.1","name":"n","type":"ptp"})", "x.conf");
  REQUIRE(single);
  REQUIRE(single->plugins.size() == 1);
  CHECK(single->plugins[0].type == "ptp");

  auto bad = ParseCniConfig("{", "/etc/cni/net.d/bad.conf");
  REQUIRE_FALSE(bad);
  CHECK(bad.error().message.find("/etc/cni/net.d/bad.conf: invalid JSON") != std::string::npos);
  CHECK_FALSE(ParseCniConfig(R"({"cniVersion":"1.0.0","plugins":[{"type":"x"}]})", "n"));
  CHECK_FALSE(ParseCniConfig(R"({"name":"n","plugins":[]})", "n"));
  CHECK_FALSE(ParseCniConfig(R"({"name":"n","plugins":[{"bridge":"x"}]})", "n"));
  CHECK_FALSE(ParseCniConfig(R"({"name":"n","type":"../../bin/sh"})", "n"));
}

TEST_CASE("CNI config: the lexicographically first valid file wins", "[cni]") {
  TempDir tmp;
  REQUIRE(base::WriteFile(tmp.path + "/05-broken.conflist", "{nope"));
  REQUIRE(base::WriteFile(tmp.path + "/10-b.conf", R"({"name":"b","type":"ptp"})"));
  REQUIRE(base::WriteFile(tmp.path + "/20-a.conflist", kList));
  REQUIRE(base::WriteFile(tmp.path + "/00-readme.txt", "not a config"));
  auto net = LoadCniConfig(tmp.path);
  REQUIRE(net);
  REQUIRE(net->has_value());
  CHECK((*net)->name == "b");
  auto none = LoadCniConfig(tmp.path + "/missing");
  REQUIRE(none);
  CHECK_FALSE(none->has_value());
}

TEST_CASE("CNI plugin input carries name, version, capabilities and prevResult", "[cni]") {
  auto net = ParseCniConfig(kList, "l");
  REQUIRE(net);
  CniInvocation inv{"id", "/run/netns/x", "eth0", "", {{"TCP", 80, 8080, ""}, {"udp", 53, 0, ""}}};
  auto first = BuildPluginInput(*net, 0, inv, nullptr);
  REQUIRE(first);
  CHECK(first->find(R"("name":"k8s-pod-network")") != std::string::npos);
  CHECK(first->find(R"("cniVersion":"1.0.0")") != std::string::npos);
  CHECK(first->find("runtimeConfig") == std::string::npos);  // bridge declares no capability
  CHECK(first->find("prevResult") == std::string::npos);
  std::string prev = R"({"cniVersion":"1.0.0","ips":[{"address":"10.1.0.2/24"}]})";
  auto second = BuildPluginInput(*net, 1, inv, &prev);
  REQUIRE(second);
  CHECK(second->find(R"("runtimeConfig":{"portMappings":[{"containerPort":80,"hostIP":"",)"
                     R"("hostPort":8080,"protocol":"tcp"}]})") != std::string::npos);
  CHECK(second->find(R"("prevResult":{"cniVersion":"1.0.0","ips":[{"address":"10.1.0.2/24"}]})") !=
        std::string::npos);
}

TEST_CASE("CNI results of every version give the pod IP", "[cni]") {
  auto v1 = ParseCniResult(
      R"({"cniVersion":"1.0.0","interfaces":[{"name":"cni0"},{"name":"eth0","sandbox":"/n"}],)"
      R"("ips":[{"address":"fd00::5/64","interface":1},{"address":"10.0.0.9/24","interface":0},)"
      R"({"address":"10.244.1.5/24","gateway":"10.244.1.1","interface":1}]})",
      "eth0");
  REQUIRE(v1);
  CHECK(v1->ip == "10.244.1.5");  // IPv4 on eth0 first
  CHECK(v1->gateway == "10.244.1.1");
  CHECK(v1->additional_ips == std::vector<std::string>{"fd00::5", "10.0.0.9"});
  auto v2 = ParseCniResult(
      R"({"cniVersion":"0.2.0","ip4":{"ip":"10.1.0.7/16","gateway":"10.1.0.1"}})", "eth0");
  REQUIRE(v2);
  CHECK(v2->ip == "10.1.0.7");
  auto v6 = ParseCniResult(R"({"ips":[{"address":"fd00::7/64"}]})", "eth0");
  REQUIRE(v6);
  CHECK(v6->ip == "fd00::7");
  CHECK_FALSE(ParseCniResult(R"({"cniVersion":"1.0.0","ips":[]})", "eth0"));
  CHECK_FALSE(ParseCniResult("nope", "eth0"));

  CHECK(DescribeCniError(R"({"code":7,"msg":"invalid config","details":"no bridge"})", "") ==
        "invalid config: no bridge (code 7)");
  CHECK(DescribeCniError("", "panic: x\n") == "panic: x");
  CHECK(KubernetesCniArgs({"abc", "", "ns", "web", "u1", {}}) ==
        "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=abc;"
        "K8S_POD_UID=u1");
  CHECK(CniSupportsCheck("1.0.0"));
  CHECK(CniSupportsCheck("0.4.0"));
  CHECK_FALSE(CniSupportsCheck("0.3.1"));
}

TEST_CASE("CniNetwork readiness follows the config and plugins", "[cni]") {
  FakeCni f;
  auto opts = f.Options();
  opts.conf_dir = f.tmp.path + "/empty";
  CniNetwork net(opts);
  std::string reason, msg;
  CHECK_FALSE(net.Ready(&reason, &msg));
  CHECK(reason == "NetworkPluginNotReady");
  auto r = net.EnsureNodeNetwork("");
  REQUIRE_FALSE(r);
  CHECK_FALSE(net.Ready(&reason, &msg));
  CHECK(msg == "no CNI configuration in " + opts.conf_dir);

  CniNetwork ok(f.Options());
  REQUIRE(ok.EnsureNodeNetwork(""));
  CHECK(ok.Ready(&reason, &msg));

  ::unlink((f.bin + "/portmap").c_str());
  CniNetwork missing(f.Options());
  REQUIRE_FALSE(missing.EnsureNodeNetwork(""));
  CHECK_FALSE(missing.Ready(&reason, &msg));
  CHECK(msg == "CNI plugin \"portmap\" not found in " + f.tmp.path + "/nothing-here:" + f.bin);
}

TEST_CASE("CniNetwork renders its config template with the pod CIDR", "[cni]") {
  FakeCni f;
  ::unlink((f.conf + "/10-net.conflist").c_str());
  auto opts = f.Options();
  opts.conf_template = f.tmp.path + "/template.conflist";
  REQUIRE(base::WriteFile(opts.conf_template,
                          R"({"cniVersion":"1.0.0","name":"t","plugins":[{"type":"bridge",)"
                          R"("ipam":{"ranges":[[{"subnet":"{{.PodCIDR}}"}]]}}]})"));
  CniNetwork net(opts);
  CHECK_FALSE(net.EnsureNodeNetwork(""));
  REQUIRE(net.EnsureNodeNetwork("10.244.3.0/24"));
  auto text = base::ReadFile(f.conf + "/10-cubelet.conflist");
  REQUIRE(text);
  CHECK(text->find(R"("subnet":"10.244.3.0/24")") != std::string::npos);
}

TEST_CASE("CniNetwork ADD chains results, DEL runs in reverse with the cached result", "[cni]") {
  FakeCni f;
  auto req = f.Req();
  {
    CniNetwork net(f.Options());
    REQUIRE(net.EnsureNodeNetwork(""));
    auto st = net.Setup(req);
    REQUIRE(st);
    CHECK(st->ip == "10.22.0.5");
    CHECK(st->gateway == "10.22.0.1");
    CHECK(st->additional_ips == std::vector<std::string>{"fd00::5"});  // last plugin's result
    CHECK(Log(f.logs) ==
          "ADD bridge sb1 eth0 /run/netns/sb1\nADD portmap sb1 eth0 /run/netns/sb1\n");
    auto pm_in = base::ReadFile(f.logs + "/portmap.ADD.in");
    REQUIRE(pm_in);
    CHECK(pm_in->find(R"("prevResult":)" + f.r1.substr(0, 20)) != std::string::npos);
    CHECK(pm_in->find(R"("hostPort":8080)") != std::string::npos);
    CHECK(base::Trim(*base::ReadFile(f.logs + "/bridge.args")) ==
          "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;"
          "K8S_POD_INFRA_CONTAINER_ID=sb1;K8S_POD_UID=uid-1");
    CHECK(base::PathExists(f.tmp.path + "/cache/sb1-eth0.json"));
  }
  // Restart, and the config changes on disk meanwhile: DEL still uses what ADD used.
  REQUIRE(
      base::WriteFile(f.conf + "/10-net.conflist",
                      R"({"cniVersion":"1.0.0","name":"other","plugins":[{"type":"bridge"}]})"));
  f.ClearLog();
  CniNetwork net(f.Options());
  REQUIRE(net.Teardown(req));
  CHECK(Log(f.logs) == "DEL portmap sb1 eth0 \nDEL bridge sb1 eth0 \n");  // netns gone: ""
  auto del_in = base::ReadFile(f.logs + "/bridge.DEL.in");
  REQUIRE(del_in);
  CHECK(del_in->find(R"("name":"k8s-pod-network")") != std::string::npos);
  CHECK(del_in->find(R"("prevResult":)") != std::string::npos);
  CHECK_FALSE(base::PathExists(f.tmp.path + "/cache/sb1-eth0.json"));
  // Teardown again (no cache): DEL with the current config, idempotent.
  f.ClearLog();
  REQUIRE(net.Teardown(req));
  CHECK(Log(f.logs) == "DEL bridge sb1 eth0 \n");
}

TEST_CASE("CniNetwork Setup is idempotent: the cached result comes back", "[cni]") {
  FakeCni f;
  CniNetwork net(f.Options());
  auto req = f.Req();
  REQUIRE(net.Setup(req));
  f.ClearLog();
  auto again = net.Setup(req);
  REQUIRE(again);
  CHECK(again->ip == "10.22.0.5");
  CHECK(Log(f.logs).empty());  // no plugin ran, ADD was not repeated
}

TEST_CASE("CniNetwork with check_on_resetup: CHECK, then repair when CHECK fails", "[cni]") {
  FakeCni f;
  auto opts = f.Options();
  opts.check_on_resetup = true;
  CniNetwork net(opts);
  auto req = f.Req();
  REQUIRE(net.Setup(req));
  f.ClearLog();
  auto again = net.Setup(req);
  REQUIRE(again);
  CHECK(again->ip == "10.22.0.5");
  CHECK(Log(f.logs) ==
        "CHECK bridge sb1 eth0 /run/netns/sb1\nCHECK portmap sb1 eth0 /run/netns/sb1\n");
  REQUIRE(net.Check(req));

  f.Fail("bridge", "CHECK");
  auto bad = net.Check(req);
  REQUIRE_FALSE(bad);
  CHECK(bad.error().message.find("CNI plugin bridge CHECK failed (exit 1): bridge broke: on "
                                 "purpose (code 11)") != std::string::npos);
  f.ClearLog();
  auto repaired = net.Setup(req);
  REQUIRE(repaired);
  CHECK(Log(f.logs) ==
        "CHECK bridge sb1 eth0 /run/netns/sb1\n"
        "DEL portmap sb1 eth0 /run/netns/sb1\nDEL bridge sb1 eth0 /run/netns/sb1\n"
        "ADD bridge sb1 eth0 /run/netns/sb1\nADD portmap sb1 eth0 /run/netns/sb1\n");
}

TEST_CASE("CniNetwork failed ADD is undone; an interrupted ADD is cleaned up first", "[cni]") {
  FakeCni f;
  CniNetwork net(f.Options());
  auto req = f.Req();
  f.Fail("portmap", "ADD");
  auto r = net.Setup(req);
  REQUIRE_FALSE(r);
  CHECK(r.error().message ==
        "set up network of sandbox sb1: CNI plugin portmap ADD failed (exit 1): portmap broke: "
        "on purpose (code 11)");
  CHECK(Log(f.logs) ==
        "ADD bridge sb1 eth0 /run/netns/sb1\nADD portmap sb1 eth0 /run/netns/sb1\n"
        "DEL portmap sb1 eth0 /run/netns/sb1\nDEL bridge sb1 eth0 /run/netns/sb1\n");
  CHECK_FALSE(base::PathExists(f.tmp.path + "/cache/sb1-eth0.json"));

  // DEL failing too (an invalid configuration fails both): no entry is left that no DEL could
  // ever clear.
  f.Fail("bridge", "DEL");
  REQUIRE_FALSE(net.Setup(f.Req("sb2")));
  CHECK_FALSE(base::PathExists(f.tmp.path + "/cache/sb2-eth0.json"));
  f.Fail("bridge", "DEL", false);
  f.Fail("portmap", "ADD", false);

  // A crash during ADD leaves the marker (cache without result); the next Setup DELs first.
  REQUIRE(net.Setup(req));
  const std::string cache = f.tmp.path + "/cache/sb1-eth0.json";
  auto text = base::ReadFile(cache);
  REQUIRE(text);
  auto at = text->find("\"result\":");  // the last key (sorted)
  REQUIRE(at != std::string::npos);
  REQUIRE(base::WriteFile(cache, text->substr(0, at) + "\"result\":null}"));
  f.ClearLog();
  auto ok = net.Setup(req);
  REQUIRE(ok);
  CHECK(Log(f.logs) ==
        "DEL portmap sb1 eth0 /run/netns/sb1\nDEL bridge sb1 eth0 /run/netns/sb1\n"
        "ADD bridge sb1 eth0 /run/netns/sb1\nADD portmap sb1 eth0 /run/netns/sb1\n");
}

TEST_CASE("CniNetwork garbage-collects cached networks of vanished sandboxes", "[cni]") {
  FakeCni f;
  CniNetwork net(f.Options());
  REQUIRE(net.Setup(f.Req("sb1")));
  REQUIRE(net.Setup(f.Req("sb2")));
  REQUIRE(net.Setup(f.Req("sb3")));
  f.ClearLog();
  auto n = net.GarbageCollect({"sb2"});
  REQUIRE(n);
  CHECK(*n == 2);
  std::string log = Log(f.logs);
  CHECK(log.find("DEL bridge sb1") != std::string::npos);
  CHECK(log.find("DEL bridge sb3") != std::string::npos);
  CHECK(log.find("sb2") == std::string::npos);
  CHECK(base::PathExists(f.tmp.path + "/cache/sb2-eth0.json"));
  CHECK_FALSE(base::PathExists(f.tmp.path + "/cache/sb1-eth0.json"));
  // Through the interface, as the runtime calls it.
  PodNetwork& seam = net;
  auto again = seam.GarbageCollect({"sb2"});
  REQUIRE(again);
  CHECK(*again == 0);
}

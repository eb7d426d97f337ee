#include "agent/cubectl_table.h"

#include <catch2/catch.hpp>

using agent::cubectl::ContainerStateText;
using agent::cubectl::HumanDuration;
using agent::cubectl::RenderPodTable;
using agent::cubectl::ShortContainerId;
using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;

namespace {

const char* kSample = R"({"pods": [
  {"namespace": "kube-system", "name": "coredns-abc", "uid": "22222222-2222-2222-2222-222222222222",
   "phase": "Pending", "podIP": "", "startTime": "", "qosClass": "Burstable",
   "containers": [
     {"name": "coredns", "image": "registry.k8s.io/coredns:v1.11", "containerID": "",
      "state": "waiting", "reason": "ContainerCreating", "exitCode": 0, "restartCount": 0,
      "ready": false, "startedAt": ""}]},
  {"namespace": "default", "name": "web", "uid": "11111111-1111-1111-1111-111111111111",
   "phase": "Running", "podIP": "10.244.1.5", "startTime": "2024-01-01T00:00:00Z",
   "qosClass": "BestEffort",
   "containers": [
     {"name": "nginx", "image": "nginx:1.25",
      "containerID": "cubelet://0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
      "state": "running", "reason": "", "exitCode": 0, "restartCount": 0, "ready": true,
      "startedAt": "2024-01-01T00:00:01Z"},
     {"name": "sidecar", "image": "busybox",
      "containerID": "cubelet://fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210",
      "state": "waiting", "reason": "CrashLoopBackOff", "exitCode": 0, "restartCount": 3,
      "ready": false, "startedAt": ""}]},
  {"namespace": "default", "name": "job-1", "uid": "33333333-3333-3333-3333-333333333333",
   "phase": "Succeeded", "podIP": "10.244.1.9", "startTime": "2023-12-31T21:00:00Z",
   "qosClass": "BestEffort",
   "containers": [
     {"name": "main", "image": "busybox",
      "containerID": "cubelet://aaaaaaaaaaaabbbbbbbbbbbb",
      "state": "terminated", "reason": "Completed", "exitCode": 0, "restartCount": 0,
      "ready": false, "startedAt": "2023-12-31T21:00:01Z"}]}
]})";

}  // namespace

TEST_CASE("pods table: pods sorted, columns aligned, one indented line per container") {
  auto now = *base::ParseRfc3339("2024-01-01T00:05:03Z");
  auto table = RenderPodTable(kSample, now);
  REQUIRE(table);
  const std::string want =
      "NAMESPACE     NAME          UID                                    PHASE       IP           "
      "CONTAINERS   RESTARTS   AGE\n"
      "default       job-1         33333333-3333-3333-3333-333333333333   Succeeded   10.244.1.9   "
      "0/1          0          3h5m\n"
      "  main      Terminated:Completed(0)     0   aaaaaaaaaaaa   busybox\n"
      "default       web           11111111-1111-1111-1111-111111111111   Running     10.244.1.5   "
      "1/2          3          5m3s\n"
      "  nginx     Running                     0   0123456789ab   nginx:1.25\n"
      "  sidecar   Waiting:CrashLoopBackOff    3   fedcba987654   busybox\n"
      "kube-system   coredns-abc   22222222-2222-2222-2222-222222222222   Pending     <none>       "
      "0/1          0          <unknown>\n"
      "  coredns   Waiting:ContainerCreating   0   <none>         registry.k8s.io/coredns:v1.11\n";
  CHECK(*table == want);

  // The same properties, stated as rules (so a failure says which one broke).
  std::vector<std::string> lines;
  for (size_t p = 0; p < table->size();) {
    size_t n = table->find('\n', p);
    lines.push_back(table->substr(p, n - p));
    p = n + 1;
  }
  REQUIRE(lines.size() == 8);
  CHECK(lines[0].find("NAME ") == lines[1].find("job-1"));  // pod columns line up
  CHECK(lines[0].find("UID") == lines[3].find("11111111"));
  CHECK(lines[0].find("IP") == lines[6].find("<none>"));
  CHECK(lines[0].find("CONTAINERS") == lines[3].find("1/2"));  // ready/total
  CHECK(lines[0].find("RESTARTS") == lines[3].find("3   "));   // summed restarts
  CHECK(lines[0].find("AGE") == lines[3].find("5m3s"));
  CHECK(lines[2].rfind("  main ", 0) == 0);                        // containers indented
  CHECK(lines[4].find("Running") == lines[2].find("Terminated"));  // and aligned together
  CHECK(lines[4].find("0123456789ab") == lines[7].find("<none>"));
  for (const auto& l : lines) CHECK(l.back() != ' ');  // no trailing spaces
}

TEST_CASE("pods table: empty list and bad input") {
  auto now = std::chrono::system_clock::now();
  auto empty = RenderPodTable(R"({"pods": []})", now);
  REQUIRE(empty);
  CHECK(*empty == "No pods on this node.\n");
  auto bad = RenderPodTable("not json", now);
  REQUIRE_FALSE(bad);
  CHECK(bad.error().message.find("cannot parse the pod list from cubelet") == 0);
  CHECK_FALSE(RenderPodTable(R"({"items": []})", now));
  CHECK_FALSE(RenderPodTable(R"([1, 2])", now));
}

TEST_CASE("HumanDuration matches kubectl") {
  CHECK(HumanDuration(seconds(-5)) == "<invalid>");
  CHECK(HumanDuration(seconds(-1)) == "0s");
  CHECK(HumanDuration(seconds(0)) == "0s");
  CHECK(HumanDuration(seconds(119)) == "119s");
  CHECK(HumanDuration(seconds(120)) == "2m");
  CHECK(HumanDuration(seconds(303)) == "5m3s");
  CHECK(HumanDuration(minutes(10) + seconds(30)) == "10m");
  CHECK(HumanDuration(minutes(179)) == "179m");
  CHECK(HumanDuration(hours(3)) == "3h");
  CHECK(HumanDuration(hours(3) + minutes(5)) == "3h5m");
  CHECK(HumanDuration(hours(8) + minutes(5)) == "8h");
  CHECK(HumanDuration(hours(47)) == "47h");
  CHECK(HumanDuration(hours(48)) == "2d");
  CHECK(HumanDuration(hours(52)) == "2d4h");
  CHECK(HumanDuration(hours(24 * 8)) == "8d");
  CHECK(HumanDuration(hours(24 * 365 * 2)) == "2y");
  CHECK(HumanDuration(hours(24 * (365 * 2 + 20))) == "2y20d");
  CHECK(HumanDuration(hours(24 * 365 * 9)) == "9y");
}

TEST_CASE("container id and state texts") {
  CHECK(ShortContainerId("cubelet://0123456789abcdef") == "0123456789ab");
  CHECK(ShortContainerId("containerd://abc") == "abc");
  CHECK(ShortContainerId("") == "<none>");
  CHECK(ContainerStateText("running", "", 0) == "Running");
  CHECK(ContainerStateText("waiting", "", 0) == "Waiting");
  CHECK(ContainerStateText("waiting", "ImagePullBackOff", 0) == "Waiting:ImagePullBackOff");
  CHECK(ContainerStateText("terminated", "OOMKilled", 137) == "Terminated:OOMKilled(137)");
  CHECK(ContainerStateText("terminated", "", 1) == "Terminated(1)");
}

// ContainerLogManager against a fake runtime that reopens logs the way cubelet-monitor does
// (creates a new file at the log path) and real files in a temporary directory.
#include "agent/container_log_manager.h"

#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <catch2/catch.hpp>
#include <fstream>

#include "base/file.h"
#include "tests/agent/fake_runtime_service.h"

namespace {

using namespace std::chrono_literals;

class LogRuntime : public testsupport::FakeRuntimeService {
 public:
  std::string id = "c1";
  std::string log_path;
  bool running = true;
  bool fail_reopen = false;
  int reopens = 0;

  cri::Result<std::vector<cri::Container>> ListContainers(const cri::ContainerFilter& f) override {
    std::vector<cri::Container> out;
    if (running || !f.state) {
      cri::Container c;
      c.id = id;
      c.state = running ? cri::ContainerState::kRunning : cri::ContainerState::kExited;
      out.push_back(c);
    }
    return out;
  }
  cri::Result<cri::ContainerStatus> ContainerStatus(const std::string& cid) override {
    if (cid != id) return base::Fail("container " + cid + " not found");
    cri::ContainerStatus s;
    s.id = id;
    s.state = running ? cri::ContainerState::kRunning : cri::ContainerState::kExited;
    s.log_path = log_path;
    return s;
  }
  cri::Result<> ReopenContainerLog(const std::string& cid) override {
    ++reopens;
    if (fail_reopen) return base::Fail("reopen log of container " + cid + ": not running");
    std::ofstream(log_path, std::ios::app).flush();
    return {};
  }
};

struct TmpDir {
  std::string path;
  TmpDir() {
    char t[] = "/tmp/logmgr-XXXXXX";
    path = mkdtemp(t);
  }
  ~TmpDir() { (void)base::RemoveAll(path); }
};

void Append(const std::string& path, size_t bytes) {
  std::ofstream f(path, std::ios::app);
  f << std::string(bytes, 'x');
}

int64_t Size(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? st.st_size : -1;
}

// 2026-11-24T10:20:30Z
base::WallTime T0() { return base::WallTime(std::chrono::seconds(1795515630)); }

}  // namespace

TEST_CASE("container logs: rotated at max size, at most max files kept, oldest removed first") {
  TmpDir dir;
  LogRuntime rt;
  rt.log_path = dir.path + "/0.log";
  base::FakeClock clock(T0());
  agent::ContainerLogManagerOptions o;
  o.max_size_bytes = 100;
  o.max_files = 3;
  agent::ContainerLogManager m(&rt, o, &clock);

  Append(rt.log_path, 99);
  CHECK(m.RotateLogs() == 0);  // below the size
  CHECK(rt.reopens == 0);
  CHECK(m.RotatedFiles(rt.log_path)->empty());

  Append(rt.log_path, 1);
  CHECK(m.RotateLogs() == 1);
  CHECK(rt.reopens == 1);
  auto files = m.RotatedFiles(rt.log_path);
  REQUIRE(files);
  REQUIRE(files->size() == 1);
  CHECK((*files)[0] == rt.log_path + ".20261124-102030");
  CHECK(Size((*files)[0]) == 100);
  CHECK(Size(rt.log_path) == 0);  // the runtime made a new current file

  // Two more rotations in the same second get "-N" suffixes and sort after it.
  Append(rt.log_path, 150);
  CHECK(m.RotateLogs() == 1);
  Append(rt.log_path, 120);
  CHECK(m.RotateLogs() == 1);
  files = m.RotatedFiles(rt.log_path);
  // max_files 3 = the current file + two rotated: the first one is gone.
  REQUIRE(files->size() == 2);
  CHECK((*files)[0] == rt.log_path + ".20261124-102030-1");
  CHECK(Size((*files)[0]) == 150);
  CHECK((*files)[1] == rt.log_path + ".20261124-102030-2");
  CHECK(Size((*files)[1]) == 120);

  clock.Advance(10s);
  Append(rt.log_path, 200);
  CHECK(m.RotateLogs() == 1);
  files = m.RotatedFiles(rt.log_path);
  REQUIRE(files->size() == 2);
  CHECK((*files)[0] == rt.log_path + ".20261124-102030-2");
  CHECK((*files)[1] == rt.log_path + ".20261124-102040");
  CHECK(Size((*files)[1]) == 200);
}

std::string Gunzip(const std::string& path) {
  gzFile gz = gzopen(path.c_str(), "rb");
  if (!gz) return "<cannot open " + path + ">";
  std::string out;
  char buf[4096];
  int n;
  while ((n = gzread(gz, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  gzclose(gz);
  return out;
}

TEST_CASE("container logs: older rotated files are gzipped; leftovers cleaned") {
  TmpDir dir;
  LogRuntime rt;
  rt.log_path = dir.path + "/0.log";
  base::FakeClock clock(T0());
  agent::ContainerLogManagerOptions o;
  o.max_size_bytes = 10;
  o.max_files = 5;
  agent::ContainerLogManager m(&rt, o, &clock);
  auto rotate_with = [&](char c) {
    std::ofstream(rt.log_path, std::ios::app) << std::string(20, c);
    clock.Advance(1s);
    REQUIRE(m.RotateLogs() == 1);
  };
  std::string p = rt.log_path + ".20261124-1020";
  rotate_with('a');  // :31
  rotate_with('b');  // :32
  CHECK(*m.RotatedFiles(rt.log_path) == std::vector<std::string>{p + "31", p + "32"});
  rotate_with('c');
  CHECK(*m.RotatedFiles(rt.log_path) == std::vector<std::string>{p + "31.gz", p + "32", p + "33"});
  CHECK(Gunzip(p + "31.gz") == std::string(20, 'a'));
  // An interrupted compression: a .tmp, and an original next to its finished .gz.
  std::ofstream(p + "32.tmp") << "partial";
  std::ofstream(p + "32.gz", std::ios::binary) << "";
  REQUIRE(agent::CompressLog(p + "32"));  // (re)done properly; the original is gone
  std::ofstream(p + "32") << std::string(20, 'b');
  rotate_with('d');
  // 4 rotated + the current file = max_files 5. As the kubelet's, compression runs before the
  // rotation: the newest two rotated files are plain.
  CHECK(*m.RotatedFiles(rt.log_path) ==
        std::vector<std::string>{p + "31.gz", p + "32.gz", p + "33", p + "34"});
  CHECK_FALSE(base::PathExists(p + "32.tmp"));
  CHECK(Gunzip(p + "32.gz") == std::string(20, 'b'));
  rotate_with('e');
  CHECK(*m.RotatedFiles(rt.log_path) ==
        std::vector<std::string>{p + "32.gz", p + "33.gz", p + "34", p + "35"});
  CHECK(Gunzip(p + "33.gz") == std::string(20, 'c'));
  CHECK(Gunzip(p + "34") == std::string(20, 'd'));  // zlib reads plain files as they are
  CHECK(Gunzip(p + "35") == std::string(20, 'e'));
  CHECK_FALSE(agent::CompressLog(dir.path + "/missing"));
}

TEST_CASE("container logs: a failed reopen renames the file back; a missing file is reopened") {
  TmpDir dir;
  LogRuntime rt;
  rt.log_path = dir.path + "/0.log";
  base::FakeClock clock(T0());
  agent::ContainerLogManagerOptions o;
  o.max_size_bytes = 10;
  agent::ContainerLogManager m(&rt, o, &clock);
  Append(rt.log_path, 20);
  rt.fail_reopen = true;
  auto r = m.RotateIfNeeded(rt.id, rt.log_path);
  REQUIRE_FALSE(r);
  CHECK(r.error().message.find("rotate log " + rt.log_path + " of container c1") == 0);
  CHECK(Size(rt.log_path) == 20);
  CHECK(m.RotatedFiles(rt.log_path)->empty());

  rt.fail_reopen = false;
  REQUIRE(unlink(rt.log_path.c_str()) == 0);
  r = m.RotateIfNeeded(rt.id, rt.log_path);
  REQUIRE(r);
  CHECK_FALSE(*r);
  CHECK(base::PathExists(rt.log_path));
  CHECK(rt.reopens == 2);

  // Exited containers are left alone.
  Append(rt.log_path, 20);
  rt.running = false;
  CHECK(m.RotateLogs() == 0);
  CHECK(Size(rt.log_path) == 20);
}

TEST_CASE("container logs: the loop rotates on its own and stops") {
  TmpDir dir;
  LogRuntime rt;
  rt.log_path = dir.path + "/0.log";
  base::RealClock clock;
  agent::ContainerLogManagerOptions o;
  o.max_size_bytes = 10;
  o.monitor_interval = 20ms;
  agent::ContainerLogManager m(&rt, o, &clock);
  m.Start();
  Append(rt.log_path, 20);
  for (int i = 0; i < 200 && m.RotatedFiles(rt.log_path)->empty(); ++i)
    std::this_thread::sleep_for(10ms);
  m.Stop();
  CHECK(m.RotatedFiles(rt.log_path)->size() == 1);
}

TEST_CASE("container logs: option validation as the kubelet's") {
  agent::ContainerLogManagerOptions o;
  CHECK(agent::ValidateContainerLogOptions(o));
  o.max_files = 1;
  CHECK_FALSE(agent::ValidateContainerLogOptions(o));
  o.max_files = 2;
  o.max_size_bytes = 0;
  CHECK_FALSE(agent::ValidateContainerLogOptions(o));
}

// Container log rotation end to end: agent::ContainerLogManager over the embedded runtime, with
// a real container writing through cubelet-monitor (runtime/monitor) on the real kernel.
#include <zlib.h>

#include <catch2/catch.hpp>
#include <map>
#include <regex>

#include "agent/container_log_manager.h"
#include "agent/cri_log_reader.h"
#include "base/strings.h"
#include "tests/runtime/runtime_env.h"

using namespace rttest;
using namespace std::chrono_literals;

namespace {

constexpr int kLines = 4000;

struct Parsed {
  std::vector<int> numbers;  // "line N" entries, in file order
  int ticks = 0;
  int bad = 0;  // anything that is not a whole CRI "F" entry of ours
};

Parsed ParseLog(const std::string& text) {
  static const std::regex re(
      R"(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z stdout F (line (\d+)|tick)$)");
  Parsed p;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::smatch m;
    if (!std::regex_match(line, m, re)) {
      ++p.bad;
      continue;
    }
    if (m[3].matched)
      p.numbers.push_back(std::stoi(m[3].str()));
    else
      ++p.ticks;
  }
  if (!text.empty() && text.back() != '\n') ++p.bad;  // a split entry
  return p;
}

// A log file, plain or gzipped (zlib reads both).
std::string ReadLog(const std::string& path) {
  gzFile gz = gzopen(path.c_str(), "rb");
  if (!gz) return "";
  std::string out;
  char buf[64 * 1024];
  int n;
  while ((n = gzread(gz, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  gzclose(gz);
  return out;
}

int64_t FileSize(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? st.st_size : -1;
}

}  // namespace

TEST_CASE("log rotation: a container writing past the max size is rotated without losing lines") {
  Env env("logrot");
  auto pod = env.Pod("logrot");
  auto sb = env.rt->RunPodSandbox(pod);
  REQUIRE(sb);
  // kLines numbered lines in bursts (so that several rotations happen while it writes), then a
  // slow "tick" forever.
  std::string script =
      "i=0; while [ $i -lt " + std::to_string(kLines) +
      " ]; do echo \"line $i\"; i=$((i+1)); if [ $((i % 100)) -eq 0 ]; then usleep 20000; fi; "
      "done; while true; do echo tick; usleep 50000; done";
  auto id = env.Run(*sb, pod, env.Ctr("writer", {"sh", "-c", script}));
  std::string log = env.Status(id).log_path;

  base::RealClock clock;
  agent::ContainerLogManagerOptions o;
  o.max_size_bytes = 16 * 1024;
  o.max_files = 1000;  // phase 1 keeps every file to account for every line
  o.monitor_interval = 10ms;
  auto manager = std::make_unique<agent::ContainerLogManager>(env.rt.get(), o, &clock);
  manager->Start();
  // Until the last numbered line is written (it lands in the current or a rotated file).
  auto all_text = [&] {
    std::string text;
    auto files = agent::ContainerLogManager::RotatedFiles(log);
    REQUIRE(files);
    for (const auto& f : *files) text += ReadLog(f);
    return text + Slurp(log);
  };
  bool done = false;
  for (int i = 0; i < 600 && !done; ++i) {
    std::this_thread::sleep_for(50ms);
    done = Slurp(log).find(" stdout F tick\n") != std::string::npos;
  }
  manager->Stop();
  REQUIRE(done);

  auto rotated = agent::ContainerLogManager::RotatedFiles(log);
  REQUIRE(rotated);
  INFO("rotated files: " << rotated->size());
  CHECK(rotated->size() >= 4);
  // Every rotated file reached the max size before it was rotated, holds whole entries only,
  // and the files in order hold every line exactly once, in order.
  std::vector<int> numbers;
  // All but the newest two rotated files are gzipped, as the kubelet does (it compresses
  // before rotating).
  for (size_t i = 0; i < rotated->size(); ++i) {
    CHECK(base::EndsWith((*rotated)[i], ".gz") == (i + 2 < rotated->size()));
  }
  for (const auto& f : *rotated) {
    std::string text = ReadLog(f);
    CHECK(static_cast<int64_t>(text.size()) >= o.max_size_bytes);
    Parsed p = ParseLog(text);
    CHECK(p.bad == 0);
    numbers.insert(numbers.end(), p.numbers.begin(), p.numbers.end());
  }
  Parsed current = ParseLog(Slurp(log));
  CHECK(current.bad == 0);
  numbers.insert(numbers.end(), current.numbers.begin(), current.numbers.end());
  REQUIRE(numbers.size() == static_cast<size_t>(kLines));
  bool in_order = true;
  for (int i = 0; i < kLines; ++i) in_order = in_order && numbers[static_cast<size_t>(i)] == i;
  CHECK(in_order);

  // The current file keeps growing after the last rotation.
  int64_t before = FileSize(log);
  std::this_thread::sleep_for(400ms);
  CHECK(FileSize(log) > before);
  // Phase 2: max_files 3 (the current file + 2 rotated); rotate every time (1 byte max).
  o.max_files = 3;
  o.max_size_bytes = 1;
  manager = std::make_unique<agent::ContainerLogManager>(env.rt.get(), o, &clock);
  size_t had = rotated->size();
  // `kubectl logs -f` (the kubelet's reader) follows the current file across the rotations.
  agent::LogReadOptions ro;
  ro.follow = true;
  ro.tail_lines = 0;
  auto reader = agent::CriLogReader::Open(log, ro);
  REQUIRE(reader);
  std::string followed;
  int switches = 0;
  auto drain = [&] {
    for (int guard = 0; guard < 1000; ++guard) {
      auto st = (*reader)->Read(&followed);
      REQUIRE(st);
      if (*st == agent::CriLogReader::Status::kData) continue;
      auto sw = (*reader)->ReopenIfRotated(&followed);
      REQUIRE(sw);
      if (!*sw) return;
      ++switches;
    }
  };
  int rotations = 0;
  for (int i = 0; i < 4; ++i) {
    std::this_thread::sleep_for(120ms);  // a few ticks each time
    drain();
    rotations += manager->RotateLogs();
  }
  std::this_thread::sleep_for(200ms);
  drain();
  CHECK(rotations == 4);
  CHECK(switches == 4);
  // Whole lines only, every one a tick, and the ticks of every file.
  std::regex ticks_re("^(tick\n){10,}$");
  CHECK(std::regex_match(followed, ticks_re));
  INFO(followed);
  rotated = agent::ContainerLogManager::RotatedFiles(log);
  REQUIRE(rotated);
  CHECK(rotated->size() == 2);
  CHECK(had > 2);
  // The two kept are the newest: only ticks, whole entries.
  for (const auto& f : *rotated) {
    Parsed p = ParseLog(ReadLog(f));
    CHECK(p.bad == 0);
    CHECK(p.numbers.empty());
    CHECK(p.ticks > 0);
  }
  std::this_thread::sleep_for(200ms);
  CHECK(ParseLog(Slurp(log)).ticks > 0);
  CHECK(ParseLog(all_text()).bad == 0);

  // An exited container is not rotated; its reopen would fail anyway.
  REQUIRE(env.rt->StopContainer(id, 1s));
  CHECK(manager->RotateLogs() == 0);
  REQUIRE(env.rt->RemovePodSandbox(*sb));
}

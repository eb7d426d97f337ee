// Image GC end to end: agent::ImageGcManager over the embedded runtime's real image store, with
// images used by a running and by a created (never started) container; only the filesystem
// usage figures are faked (a real disk is not filled up for a test).
#include <algorithm>
#include <catch2/catch.hpp>

#include "agent/image_gc_manager.h"
#include "tests/runtime/runtime_env.h"

using namespace rttest;
using namespace std::chrono_literals;

namespace {

// An image of one layer holding `bytes` of random data under /data.
std::string ImportImage(Env& env, const std::string& name, const std::string& tag, size_t bytes) {
  std::string dir = env.root + "/build-" + name;
  REQUIRE(testsupport::Run("mkdir -p " + dir + "/layer && head -c " + std::to_string(bytes) +
                           " /dev/urandom > " + dir + "/layer/data") == 0);
  std::string digest =
      testimage::BuildLayout(dir + "/layout", {{dir + "/layer", {}}}, R"("Cmd":["sh"])", "v1");
  REQUIRE_FALSE(digest.empty());
  auto img = env.rt->runtime().images().ImportOciLayout(dir + "/layout", tag);
  REQUIRE(img);
  return "sha256:" + img->id;
}

std::vector<std::string> ImageIds(cri::ImageService& images) {
  std::vector<std::string> ids;
  auto list = images.ListImages();
  REQUIRE(list);
  for (const auto& i : *list) ids.push_back(i.id);
  std::sort(ids.begin(), ids.end());
  return ids;
}

}  // namespace

TEST_CASE("image gc: the embedded runtime's unused images go, images of any container stay") {
  Env env("imggc");
  std::string busybox = "sha256:" + env.image_id;
  std::string old_id = ImportImage(env, "old", "example.test/old:v1", 200 * 1024);
  std::string older_id = ImportImage(env, "older", "example.test/older:v1", 100 * 1024);
  REQUIRE(ImageIds(*env.rt).size() == 3);

  auto pod = env.Pod("imggc");
  auto sb = env.rt->RunPodSandbox(pod);
  REQUIRE(sb);
  auto running = env.Run(*sb, pod, env.Ctr("running", {"sleep", "1000"}));  // busybox
  auto created_cfg = env.Ctr("created", {"sh"});
  created_cfg.image.image = "example.test/old:v1";
  auto created = env.rt->CreateContainer(*sb, created_cfg, pod);  // never started
  REQUIRE(created);

  base::RealClock clock;
  agent::ImageGcPolicy policy;
  policy.min_age = 0s;
  uint64_t capacity = 1000 * 1000, available = 0;
  std::vector<std::string> events;
  auto make = [&] {
    auto gc = std::make_unique<agent::ImageGcManager>(
        env.rt.get(), env.rt.get(), policy, &clock, [&]() -> base::Result<agent::ImageFsStats> {
          return agent::ImageFsStats{capacity, available};
        });
    gc->SetEventFn([&](const std::string& type, const std::string& reason, const std::string& m) {
      events.push_back(type + " " + reason + ": " + m);
    });
    return gc;
  };

  // Below the high threshold: nothing goes.
  available = 200 * 1000;  // 80% used
  auto r = make()->GarbageCollect();
  REQUIRE(r);
  CHECK(r->removed.empty());
  CHECK(ImageIds(*env.rt).size() == 3);

  // 100% used, 200 kB to free: only the unused image can go, and it is not enough.
  available = 0;
  r = make()->GarbageCollect();
  REQUIRE_FALSE(r);
  CHECK(r.error().message.find("Failed to garbage collect required amount of images") == 0);
  REQUIRE(events.size() == 1);
  CHECK(events[0].rfind("Warning FreeDiskSpaceFailed: ", 0) == 0);
  auto left = ImageIds(*env.rt);
  CHECK(std::find(left.begin(), left.end(), older_id) == left.end());
  CHECK(std::find(left.begin(), left.end(), busybox) != left.end());
  CHECK(std::find(left.begin(), left.end(), old_id) != left.end());
  CHECK_FALSE(env.rt->runtime().images().Find("example.test/older:v1"));

  // The created container removed: its image is unused now and goes; busybox (running) stays.
  REQUIRE(env.rt->RemoveContainer(*created));
  events.clear();
  capacity = 2000 * 1000;  // 10% of it (200 kB) frees enough
  available = 200 * 1000;  // 90% used
  r = make()->GarbageCollect();
  if (!r) FAIL(r.error().message);
  CHECK(r->removed == std::vector<std::string>{old_id});
  CHECK(r->bytes_freed >= 200 * 1024);
  CHECK(events.empty());
  CHECK(ImageIds(*env.rt) == std::vector<std::string>{busybox});
  CHECK(env.Status(running).state == cri::ContainerState::kRunning);
  REQUIRE(env.rt->RemovePodSandbox(*sb));
}

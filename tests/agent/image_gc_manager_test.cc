// ImageGcManager with a fake image service (removals free their size on a fake filesystem) and
// a fake runtime whose containers pin images.
#include "agent/image_gc_manager.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <map>
#include <set>
#include <thread>

#include "tests/agent/fake_runtime_service.h"

namespace {

using namespace std::chrono_literals;

struct FakeFs {
  uint64_t capacity = 1000;
  uint64_t available = 0;
};

class FakeImages : public cri::ImageService {
 public:
  explicit FakeImages(FakeFs* fs) : fs_(fs) {}
  void Add(const std::string& id, uint64_t size, const std::string& tag = "") {
    cri::Image i;
    i.id = id;
    i.size = size;
    if (!tag.empty()) i.repo_tags.push_back(tag);
    i.repo_digests.push_back("example.test/app@sha256:" + id.substr(7));
    images_[id] = i;
  }
  void Pin(const std::string& id) { images_[id].pinned = true; }
  std::vector<std::string> removed;
  std::set<std::string> refuse;  // RemoveImage fails for these (the runtime's in-use check)

  cri::Result<std::vector<cri::Image>> ListImages() override {
    std::vector<cri::Image> out;
    for (const auto& [id, i] : images_) out.push_back(i);
    return out;
  }
  cri::Result<std::optional<cri::Image>> ImageStatus(const cri::ImageSpec&) override {
    return std::optional<cri::Image>();
  }
  cri::Result<std::string> PullImage(const cri::ImageSpec&, const cri::AuthConfig&,
                                     const cri::PodSandboxConfig*) override {
    return base::Fail("no pulls here");
  }
  cri::Result<> RemoveImage(const cri::ImageSpec& spec) override {
    if (refuse.count(spec.image)) return base::Fail("image " + spec.image + " is in use");
    auto it = images_.find(spec.image);
    if (it == images_.end()) return {};
    fs_->available += it->second.size;
    images_.erase(it);
    removed.push_back(spec.image);
    return {};
  }
  cri::Result<std::vector<cri::FilesystemUsage>> ImageFsInfo() override {
    cri::FilesystemUsage u;
    u.capacity_bytes = fs_->capacity;
    u.available_bytes = fs_->available;
    return std::vector<cri::FilesystemUsage>{u};
  }

 private:
  FakeFs* fs_;
  std::map<std::string, cri::Image> images_;
};

class Containers : public testsupport::FakeRuntimeService {
 public:
  std::vector<cri::Container> list;
  cri::Result<std::vector<cri::Container>> ListContainers(const cri::ContainerFilter&) override {
    return list;
  }
  void Use(const std::string& image_name, const std::string& image_ref, bool running) {
    cri::Container c;
    c.id = "c" + std::to_string(list.size());
    c.image.image = image_name;
    c.image_ref = image_ref;
    c.state = running ? cri::ContainerState::kRunning : cri::ContainerState::kExited;
    list.push_back(c);
  }
};

std::string Id(char c) { return "sha256:" + std::string(64, c); }

struct Fixture {
  FakeFs fs;
  FakeImages images{&fs};
  Containers runtime;
  base::FakeClock clock{base::WallTime(std::chrono::seconds(1795600000))};
  agent::ImageGcPolicy policy;
  std::vector<std::string> events;
  std::unique_ptr<agent::ImageGcManager> gc;
  Fixture() {
    policy.min_age = 0s;
    Make();
  }
  void Make() {
    gc = std::make_unique<agent::ImageGcManager>(&runtime, &images, policy, &clock);
    gc->SetEventFn(
        [this](const std::string& type, const std::string& reason, const std::string& m) {
          events.push_back(type + " " + reason + " " + m);
        });
  }
};

}  // namespace

TEST_CASE("image gc: nothing is removed below the high threshold") {
  Fixture f;
  f.images.Add(Id('a'), 100);
  f.images.Add(Id('b'), 100);
  f.fs.available = 160;  // 84% used
  auto r = f.gc->GarbageCollect();
  REQUIRE(r);
  CHECK(r->usage_percent == 84);
  CHECK(r->bytes_to_free == 0);
  CHECK(f.images.removed.empty());
  CHECK(f.events.empty());
}

TEST_CASE("image gc: unused images go least recently used first, down to the low threshold") {
  Fixture f;
  // a: used by a container that is gone now (used at t0); b: used at t0+1m; c: never used;
  // d: used by an exited container; e: by a running one (referenced by its repo digest).
  for (char c : {'a', 'b', 'c', 'd', 'e'}) f.images.Add(Id(c), 100, std::string("app:") + c);
  f.runtime.Use("app:a", Id('a'), true);
  f.runtime.Use("app:b", Id('b'), true);
  f.fs.available = 500;
  REQUIRE(f.gc->GarbageCollect());  // detection only (50% used)
  f.clock.Advance(60s);
  f.runtime.list.erase(f.runtime.list.begin());  // a's container removed
  REQUIRE(f.gc->GarbageCollect());
  f.clock.Advance(60s);
  f.runtime.list.clear();  // b's container removed
  f.runtime.Use("app:d", Id('d'), false);
  f.runtime.Use("whatever", "example.test/app@sha256:" + std::string(64, 'e'), true);
  // 90% used: free down to 80%, i.e. 100 bytes... then 250 to exercise ordering.
  f.fs.available = 100;
  auto r = f.gc->GarbageCollect();
  REQUIRE(r);
  CHECK(r->usage_percent == 90);
  CHECK(r->bytes_to_free == 100);
  CHECK(r->bytes_freed == 100);
  CHECK(f.images.removed == std::vector<std::string>{Id('c')});  // never used: first
  f.fs.available = 50;  // 95% used: 150 to free -> a (used at t0) then b (t0+1m)
  r = f.gc->GarbageCollect();
  REQUIRE(r);
  CHECK(r->bytes_to_free == 150);
  CHECK(r->removed == std::vector<std::string>{Id('a'), Id('b')});
  CHECK(f.images.removed == std::vector<std::string>{Id('c'), Id('a'), Id('b')});
  CHECK(f.events.empty());
}

TEST_CASE("image gc: images in use are never removed; FreeDiskSpaceFailed when short") {
  Fixture f;
  f.images.Add(Id('a'), 300);
  f.images.Add(Id('b'), 50);
  f.runtime.Use("sha256:" + std::string(64, 'a'), "", false);  // by id, exited container
  f.fs.available = 0;                                          // 100%: needs 200
  auto r = f.gc->GarbageCollect();
  REQUIRE_FALSE(r);
  CHECK(f.images.removed == std::vector<std::string>{Id('b')});
  CHECK(r.error().message ==
        "Failed to garbage collect required amount of images. Attempted to free 200 bytes, but "
        "only found 50 bytes eligible to free.");
  REQUIRE(f.events.size() == 1);
  CHECK(f.events[0] == "Warning FreeDiskSpaceFailed " + r.error().message);

  // A removal the runtime refuses (a container created meanwhile) is skipped, reported.
  f.images.Add(Id('c'), 500);
  f.images.Add(Id('d'), 500);
  f.images.refuse.insert(Id('c'));
  f.fs.available = 0;
  r = f.gc->GarbageCollect();
  CHECK(r);  // d alone frees enough
  CHECK(f.images.removed.back() == Id('d'));
}

TEST_CASE("image gc: minimum age, pinned images, disabled at 100 and invalid capacity") {
  Fixture f;
  f.policy.min_age = 120s;
  f.Make();
  f.images.Add(Id('a'), 500);
  f.fs.available = 0;
  auto r = f.gc->GarbageCollect();  // a first seen now: too young
  REQUIRE_FALSE(r);
  CHECK(f.images.removed.empty());
  f.clock.Advance(121s);
  r = f.gc->GarbageCollect();
  CHECK(r);
  CHECK(f.images.removed == std::vector<std::string>{Id('a')});

  f.policy.high_threshold_percent = 100;
  f.Make();
  f.images.Add(Id('b'), 500);
  f.fs.available = 0;
  f.clock.Advance(1h);
  r = f.gc->GarbageCollect();
  CHECK(r);
  CHECK(f.images.removed.size() == 1);

  f.policy.high_threshold_percent = 85;
  f.Make();
  f.fs.capacity = 0;
  r = f.gc->GarbageCollect();
  REQUIRE_FALSE(r);
  CHECK(f.events.back() == "Warning InvalidDiskCapacity invalid capacity 0 on image filesystem");

  agent::ImageGcPolicy p;
  CHECK(agent::ValidateImageGcPolicy(p));
  p.low_threshold_percent = 90;
  CHECK_FALSE(agent::ValidateImageGcPolicy(p));
  p.low_threshold_percent = -1;
  CHECK_FALSE(agent::ValidateImageGcPolicy(p));
}

TEST_CASE("image gc: a fake fs-usage function drives it; the loop runs at start") {
  FakeFs fs;
  FakeImages images(&fs);
  Containers runtime;
  base::RealClock clock;
  images.Add(Id('a'), 10);
  uint64_t available = 0;
  std::atomic<int> calls{0};
  agent::ImageGcPolicy p;
  p.min_age = 0s;
  agent::ImageGcManager gc(&runtime, &images, p, &clock,
                           [&]() -> base::Result<agent::ImageFsStats> {
                             ++calls;
                             return agent::ImageFsStats{100, available};
                           });
  gc.Start();
  for (int i = 0; i < 200 && calls == 0; ++i) std::this_thread::sleep_for(10ms);
  gc.Stop();          // joins the collection under way
  CHECK(calls == 1);  // once at start; the next run is a period (5 min) away
  CHECK(images.removed == std::vector<std::string>{Id('a')});
}

TEST_CASE("image gc: the maximum age removes images unused for that long, whatever the usage") {
  Fixture f;
  f.policy.max_age = 3600s;
  f.Make();
  // a: in use throughout; b: used until t0+20m; c: never used; d: pinned, never used.
  for (char c : {'a', 'b', 'c', 'd'}) f.images.Add(Id(c), 100, std::string("app:") + c);
  f.runtime.Use("app:a", Id('a'), true);
  f.runtime.Use("app:b", Id('b'), false);
  f.images.Pin(Id('d'));
  f.fs.available = 900;  // 10% used: the thresholds never act
  REQUIRE(f.gc->GarbageCollect());
  f.clock.Advance(20min);
  REQUIRE(f.gc->GarbageCollect());
  f.runtime.list.pop_back();  // b's container goes
  // Not before the manager itself has run for the maximum age (the kubelet's rule): c is
  // "unused" only as far as this process knows.
  f.clock.Advance(40min);
  REQUIRE(f.gc->GarbageCollect());
  CHECK(f.images.removed.empty());
  f.clock.Advance(1s);  // 60m01s since the start: c was never used
  auto r = f.gc->GarbageCollect();
  REQUIRE(r);
  CHECK(f.images.removed == std::vector<std::string>{Id('c')});  // d is pinned
  CHECK(r->removed == f.images.removed);
  CHECK(r->bytes_to_free == 0);
  // b was last used at t0+20m: it goes once an hour has passed since then, not before.
  f.images.removed.clear();
  f.clock.Advance(20min - 2s);
  REQUIRE(f.gc->GarbageCollect());
  CHECK(f.images.removed.empty());
  f.clock.Advance(2s);
  REQUIRE(f.gc->GarbageCollect());
  CHECK(f.images.removed == std::vector<std::string>{Id('b')});
  CHECK(f.events.empty());
}

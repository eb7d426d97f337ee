#include "agent/image_gc_manager.h"

#include <algorithm>
#include <set>

#include "base/log.h"

namespace agent {

base::Result<> ValidateImageGcPolicy(const ImageGcPolicy& p) {
  auto bad = [](const std::string& what, int v) {
    return base::Fail("invalid " + what + " " + std::to_string(v) + ": must be in [0, 100]");
  };
  if (p.high_threshold_percent < 0 || p.high_threshold_percent > 100) {
    return bad("image-gc-high-threshold", p.high_threshold_percent);
  }
  if (p.low_threshold_percent < 0 || p.low_threshold_percent > 100) {
    return bad("image-gc-low-threshold", p.low_threshold_percent);
  }
  if (p.low_threshold_percent > p.high_threshold_percent) {
    return base::Fail("image-gc-low-threshold (" + std::to_string(p.low_threshold_percent) +
                      ") must not be greater than image-gc-high-threshold (" +
                      std::to_string(p.high_threshold_percent) + ")");
  }
  return {};
}

ImageGcManager::ImageGcManager(cri::RuntimeService* runtime, cri::ImageService* images,
                               ImageGcPolicy policy, const base::Clock* clock,
                               ImageFsStatsFn fs_stats)
    : runtime_(runtime),
      images_(images),
      policy_(policy),
      clock_(clock),
      fs_stats_(std::move(fs_stats)),
      began_(clock->Now()) {
  if (!fs_stats_) {
    fs_stats_ = [images]() -> base::Result<ImageFsStats> {
      auto fs = images->ImageFsInfo();
      if (!fs) return tl::unexpected(fs.error());
      if (fs->empty()) return base::Fail("the runtime reports no image filesystem");
      return ImageFsStats{fs->front().capacity_bytes, fs->front().available_bytes};
    };
  }
}

ImageGcManager::~ImageGcManager() { Stop(); }

void ImageGcManager::Start() {
  if (policy_.high_threshold_percent >= 100) {
    base::log::Info("image garbage collection disabled (image-gc-high-threshold is 100)");
    return;
  }
  loop_.Start(policy_.period, [this] {
    if (auto r = GarbageCollect(); !r) {
      base::log::Error("image garbage collection failed", {{"err", r.error().message}});
    }
  });
}

void ImageGcManager::Stop() { loop_.Stop(); }

void ImageGcManager::Emit(const std::string& type, const std::string& reason,
                          const std::string& msg) {
  if (events_) events_(type, reason, msg);
}

base::Result<std::vector<std::string>> ImageGcManager::DetectImages(base::WallTime now) {
  auto images = images_->ListImages();
  if (!images) return tl::unexpected(images.error().Wrap("list images"));
  auto containers = runtime_->ListContainers({});
  if (!containers) return tl::unexpected(containers.error().Wrap("list containers"));
  // A container names its image by what it was created from and by its resolved reference
  // (an id or a repo digest); either identifies the image.
  std::set<std::string> refs;
  for (const auto& c : *containers) {
    if (!c.image.image.empty()) refs.insert(c.image.image);
    if (!c.image_ref.empty()) refs.insert(c.image_ref);
  }
  std::vector<std::string> in_use;
  std::set<std::string> present;
  for (const auto& img : *images) {
    present.insert(img.id);
    bool used = refs.count(img.id) > 0;
    for (const auto& t : img.repo_tags) used = used || refs.count(t);
    for (const auto& d : img.repo_digests) used = used || refs.count(d);
    auto [it, added] = records_.try_emplace(img.id);
    Record& r = it->second;
    if (added) r.first_detected = now;
    if (used) {
      r.last_used = now;
      in_use.push_back(img.id);
    }
    r.size = img.size;
    r.pinned = img.pinned;
  }
  for (auto it = records_.begin(); it != records_.end();) {
    it = present.count(it->first) ? std::next(it) : records_.erase(it);
  }
  return in_use;
}

base::Result<uint64_t> ImageGcManager::FreeSpace(uint64_t bytes_to_free, base::WallTime now,
                                                 std::vector<std::string>* removed) {
  auto in_use_list = DetectImages(now);
  if (!in_use_list) return tl::unexpected(in_use_list.error());
  std::set<std::string> in_use(in_use_list->begin(), in_use_list->end());
  struct Candidate {
    std::string id;
    Record rec;
  };
  std::vector<Candidate> candidates;
  for (const auto& [id, rec] : records_) {
    if (in_use.count(id) || rec.pinned) continue;
    candidates.push_back({id, rec});
  }
  // Least recently used first; never-used images by when they were first seen.
  std::sort(candidates.begin(), candidates.end(), [](const Candidate& a, const Candidate& b) {
    if (a.rec.last_used != b.rec.last_used) return a.rec.last_used < b.rec.last_used;
    return a.rec.first_detected < b.rec.first_detected;
  });
  uint64_t freed = 0;
  std::string errors;
  for (const auto& c : candidates) {
    if (freed >= bytes_to_free) break;
    // The kubelet skips images used since this pass started and ones detected too recently.
    if (c.rec.last_used > now) continue;
    if (now - c.rec.first_detected < policy_.min_age) {
      base::log::Debug(
          "image is younger than the minimum GC age, skipping",
          {{"imageID", c.id}, {"minAge", static_cast<int64_t>(policy_.min_age.count())}});
      continue;
    }
    base::log::Info("removing image to free bytes", {{"imageID", c.id}, {"size", c.rec.size}});
    cri::ImageSpec spec;
    spec.image = c.id;
    auto r = images_->RemoveImage(spec);
    if (!r) {
      // An image the runtime refuses (e.g. a container made from it since the detection) is
      // skipped; the others still go.
      base::log::Warn("failed to remove image", {{"imageID", c.id}, {"err", r.error().message}});
      errors += (errors.empty() ? "" : "; ") + ("remove image " + c.id + ": " + r.error().message);
      continue;
    }
    records_.erase(c.id);
    removed->push_back(c.id);
    freed += c.rec.size;
  }
  if (freed < bytes_to_free && !errors.empty()) {
    return base::Fail("freed " + std::to_string(freed) + " of " + std::to_string(bytes_to_free) +
                      " bytes: " + errors);
  }
  return freed;
}

base::Result<> ImageGcManager::FreeOldImages(base::WallTime now,
                                             std::vector<std::string>* removed) {
  // As the kubelet: nothing until the maximum age has passed since the start, or images
  // would go just because this process had not seen them used yet.
  if (policy_.max_age.count() == 0 || now - began_ <= policy_.max_age) return {};
  auto in_use_list = DetectImages(now);
  if (!in_use_list) return tl::unexpected(in_use_list.error());
  std::set<std::string> in_use(in_use_list->begin(), in_use_list->end());
  std::vector<std::string> old;
  for (const auto& [id, rec] : records_) {
    if (in_use.count(id) || rec.pinned) continue;
    if (now - rec.last_used > policy_.max_age) old.push_back(id);
  }
  std::string errors;
  for (const auto& id : old) {
    base::log::Info("removing image not used for longer than the maximum age",
                    {{"imageID", id}, {"maxAge", static_cast<int64_t>(policy_.max_age.count())}});
    cri::ImageSpec spec;
    spec.image = id;
    if (auto r = images_->RemoveImage(spec); !r) {
      errors += (errors.empty() ? "" : "; ") + ("remove image " + id + ": " + r.error().message);
      continue;
    }
    records_.erase(id);
    removed->push_back(id);
  }
  if (!errors.empty()) return base::Fail(errors);
  return {};
}

base::Result<ImageGcResult> ImageGcManager::GarbageCollect() {
  std::lock_guard lk(gc_mu_);
  ImageGcResult res;
  base::WallTime now = clock_->Now();
  if (auto r = FreeOldImages(now, &res.removed); !r) {
    return tl::unexpected(r.error().Wrap("image garbage collection (maximum age)"));
  }
  auto fs = fs_stats_();
  if (!fs) return tl::unexpected(fs.error().Wrap("image garbage collection: image fs stats"));
  if (fs->capacity_bytes == 0) {
    std::string msg = "invalid capacity 0 on image filesystem";
    Emit("Warning", "InvalidDiskCapacity", msg);
    return base::Fail(msg);
  }
  uint64_t available = std::min(fs->available_bytes, fs->capacity_bytes);
  res.usage_percent = 100 - static_cast<int>(available * 100 / fs->capacity_bytes);
  if (policy_.high_threshold_percent >= 100 || res.usage_percent < policy_.high_threshold_percent) {
    // Below the threshold: still keep the records current, so "last used" means something.
    auto d = DetectImages(now);
    if (!d) return tl::unexpected(d.error().Wrap("image garbage collection"));
    return res;
  }
  uint64_t target_available =
      fs->capacity_bytes * static_cast<uint64_t>(100 - policy_.low_threshold_percent) / 100;
  res.bytes_to_free = target_available > available ? target_available - available : 0;
  base::log::Info(
      "disk usage on image filesystem is over the high threshold, trying to free bytes down to "
      "the low threshold",
      {{"usage", res.usage_percent},
       {"highThreshold", policy_.high_threshold_percent},
       {"amountToFree", res.bytes_to_free},
       {"lowThreshold", policy_.low_threshold_percent}});
  auto freed = FreeSpace(res.bytes_to_free, now, &res.removed);
  std::string msg;
  if (!freed) {
    msg = "Failed to garbage collect required amount of images: " + freed.error().message;
  } else {
    res.bytes_freed = *freed;
    if (*freed < res.bytes_to_free) {
      msg = "Failed to garbage collect required amount of images. Attempted to free " +
            std::to_string(res.bytes_to_free) + " bytes, but only found " + std::to_string(*freed) +
            " bytes eligible to free.";
    }
  }
  if (!msg.empty()) {
    Emit("Warning", "FreeDiskSpaceFailed", msg);
    return base::Fail(msg);
  }
  return res;
}

}  // namespace agent

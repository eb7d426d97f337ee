#pragma once
// Image garbage collection as the kubelet's ImageGCManager (K:pkg/kubelet/images/
// image_gc_manager.go): when the image filesystem's usage reaches high_threshold_percent,
// images no container uses (running or not) are removed, least recently used first (then the
// first detected first), until usage is back at low_threshold_percent. Images seen less than
// min_age ago and pinned images are kept; an image in use is never removed. A high threshold of
// 100 disables it. When not enough can be freed the kubelet's FreeDiskSpaceFailed warning is
// emitted on the node.
//
// "Last used" is when a detection pass last saw a container using the image; passes run with
// every collection (every 5 minutes, and once at start).
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "agent/periodic.h"
#include "base/result.h"
#include "base/time.h"
#include "cri/runtime_service.h"

namespace agent {

struct ImageGcPolicy {
  int high_threshold_percent = 85;                  // --image-gc-high-threshold
  int low_threshold_percent = 80;                   // --image-gc-low-threshold
  std::chrono::seconds min_age{120};                // --minimum-image-gc-age (kubelet default 2m)
  // KubeletConfiguration imageMaximumGCAge: unused images not used for longer are removed
  // whatever the disk usage, once the manager has run that long itself; 0 = off.
  std::chrono::seconds max_age{0};
  std::chrono::milliseconds period{5 * 60 * 1000};  // ImageGCPeriod
};

base::Result<> ValidateImageGcPolicy(const ImageGcPolicy& p);

// capacity and available bytes of the filesystem holding the images.
struct ImageFsStats {
  uint64_t capacity_bytes = 0;
  uint64_t available_bytes = 0;
};
using ImageFsStatsFn = std::function<base::Result<ImageFsStats>()>;
// type ("Normal"/"Warning"), reason, message: an event about the node.
using NodeEventFn =
    std::function<void(const std::string& type, const std::string& reason, const std::string& msg)>;

struct ImageGcResult {
  int usage_percent = 0;
  uint64_t bytes_to_free = 0;  // 0 when below the high threshold
  uint64_t bytes_freed = 0;
  std::vector<std::string> removed;  // image ids, in removal order
};

class ImageGcManager {
 public:
  // fs_stats: null = images->ImageFsInfo() (statvfs of the image store's directory).
  ImageGcManager(cri::RuntimeService* runtime, cri::ImageService* images, ImageGcPolicy policy,
                 const base::Clock* clock, ImageFsStatsFn fs_stats = nullptr);
  ~ImageGcManager();  // Stop()
  ImageGcManager(const ImageGcManager&) = delete;
  ImageGcManager& operator=(const ImageGcManager&) = delete;

  void SetEventFn(NodeEventFn fn) { events_ = std::move(fn); }
  // Collects at once, then every policy.period, on a thread of its own (no-op when disabled).
  void Start();
  void Stop();

  // One collection: an error when the stats are unusable, a removal fails, or less than needed
  // could be freed (the FreeDiskSpaceFailed message).
  base::Result<ImageGcResult> GarbageCollect();

 private:
  struct Record {
    base::WallTime first_detected;
    base::WallTime last_used;
    uint64_t size = 0;
    bool pinned = false;
  };
  // Updates records_ from the images and containers now; returns the ids of images in use.
  base::Result<std::vector<std::string>> DetectImages(base::WallTime now);
  base::Result<uint64_t> FreeSpace(uint64_t bytes_to_free, base::WallTime now,
                                   std::vector<std::string>* removed);
  base::Result<> FreeOldImages(base::WallTime now, std::vector<std::string>* removed);
  void Emit(const std::string& type, const std::string& reason, const std::string& msg);

  cri::RuntimeService* runtime_;
  cri::ImageService* images_;
  ImageGcPolicy policy_;
  const base::Clock* clock_;
  ImageFsStatsFn fs_stats_;
  NodeEventFn events_;
  base::WallTime began_;  // when the manager was made (the kubelet's beganGC)
  std::mutex gc_mu_;                       // one collection at a time; guards records_
  std::map<std::string, Record> records_;  // by image id
  Periodic loop_;                          // last: stopped before the rest goes
};

}  // namespace agent

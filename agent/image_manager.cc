#include "agent/image_manager.h"

#include "base/log.h"

namespace agent {

ImageManager::ImageManager(cri::ImageService* images, const base::Clock* clock)
    : images_(images), backoff_(clock, std::chrono::seconds(10), std::chrono::seconds(300)) {}

std::string ImageManager::EffectivePolicy(const Container& c) {
  if (!c.image_pull_policy.empty()) return c.image_pull_policy;
  const std::string& img = c.image;
  if (img.find('@') != std::string::npos) return "IfNotPresent";
  auto slash = img.rfind('/');
  auto colon = img.rfind(':');
  bool tagged = colon != std::string::npos && (slash == std::string::npos || colon > slash);
  if (!tagged || img.substr(colon + 1) == "latest") return "Always";
  return "IfNotPresent";
}

ImageResult ImageManager::EnsureImage(const Pod& pod, const Container& c, const cri::AuthConfig& auth) {
  ImageResult r;
  if (c.image.empty()) {
    r.reason = "InvalidImageName";
    r.message = "Failed to apply default image tag \"\": couldn't parse image name \"\": invalid reference format";
    return r;
  }
  std::string policy = EffectivePolicy(c);
  cri::ImageSpec spec{c.image, {}};
  auto st = images_->ImageStatus(spec);
  if (!st) {
    if (st.error().code == cri::kErrInvalidImageName) {
      r.reason = "InvalidImageName";
      r.message = "Failed to apply default image tag \"" + c.image + "\": " + st.error().message;
      return r;
    }
    r.reason = "ErrImagePull";
    r.message = st.error().message;
    return r;
  }
  bool present = st->has_value() && !(*st)->id.empty();
  if (present && policy != "Always") {
    r.ok = true;
    r.image_ref = !(*st)->repo_digests.empty() ? (*st)->repo_digests.front() : (*st)->id;
    return r;
  }
  if (policy == "Never") {
    r.reason = "ErrImageNeverPull";
    r.message = "Container image \"" + c.image + "\" is not present with pull policy of Never";
    return r;
  }
  std::string key = pod.uid + "/" + c.image;
  auto now = std::chrono::system_clock::now();
  if (backoff_.IsInBackOffSince(key, now)) {
    r.reason = "ImagePullBackOff";
    r.message = "Back-off pulling image \"" + c.image + "\"";
    return r;
  }
  auto pulled = images_->PullImage(spec, auth, nullptr);
  if (!pulled) {
    // With pull policy Always an image already present is still usable when the registry is
    // down? The kubelet fails the pull; do the same so operators see the registry problem.
    backoff_.Next(key, now);
    if (pulled.error().code == cri::kErrInvalidImageName) {
      r.reason = "InvalidImageName";
      r.message = "Failed to apply default image tag \"" + c.image + "\": " + pulled.error().message;
      return r;
    }
    r.reason = "ErrImagePull";
    r.message = pulled.error().message;
    base::log::Warn("image pull failed", {{"pod", pod.ns + "/" + pod.name}, {"image", c.image}, {"err", r.message}});
    return r;
  }
  backoff_.Reset(key);
  r.ok = true;
  r.pulled = true;
  r.image_ref = *pulled;
  return r;
}

}  // namespace agent

#pragma once
// Image pull policy and back-off (K:pkg/kubelet/images/image_manager.go): decides whether to pull,
// pulls through cri::ImageService, and maps failures to the kubelet's waiting reasons
// (ErrImagePull, ImagePullBackOff, ErrImageNeverPull, InvalidImageName) with their messages.
#include <string>

#include "agent/backoff.h"
#include "agent/pod_model.h"
#include "cri/runtime_service.h"

namespace agent {

struct ImageResult {
  bool ok = false;
  std::string image_ref;  // resolved reference for CreateContainer / imageID
  std::string reason;     // waiting reason when !ok
  std::string message;
  bool pulled = false;    // for the Pulled event
};

class ImageManager {
 public:
  ImageManager(cri::ImageService* images, const base::Clock* clock);
  ImageResult EnsureImage(const Pod& pod, const Container& c, const cri::AuthConfig& auth);
  // Pull policy after API defaulting (Always for :latest/untagged, else IfNotPresent).
  static std::string EffectivePolicy(const Container& c);

 private:
  cri::ImageService* images_;
  Backoff backoff_;
};

}  // namespace agent

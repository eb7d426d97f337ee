#pragma once
// Image references normalised by the docker rules (github.com/distribution/reference):
// "busybox" -> "docker.io/library/busybox:latest", "quay.io/a/b@sha256:..." kept as is.
#include <string>
#include <string_view>

#include "base/result.h"

namespace runtime {

using base::Result;

struct ImageRef {
  std::string domain;  // "docker.io", "localhost:5000"
  std::string path;    // "library/busybox"
  std::string tag;     // "" when only a digest was given
  std::string digest;  // "sha256:<hex>" or ""

  std::string Repository() const { return domain + "/" + path; }
  // "docker.io/library/busybox:latest" (or @digest when there is no tag).
  std::string String() const;
  std::string Tagged() const { return Repository() + ":" + tag; }
  std::string Digested() const { return Repository() + "@" + digest; }
};

// Fails (code cri::kErrInvalidImageName is set by the caller) with a message naming the ref.
Result<ImageRef> ParseImageRef(std::string_view ref);

// "sha256:<64 hex>" or "<64 hex>" -> the hex; otherwise "".
std::string ImageIdFromRef(std::string_view ref);

bool IsSha256Hex(std::string_view s);

}  // namespace runtime

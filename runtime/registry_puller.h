#pragma once
// Pulls an image from an OCI / Docker registry (distribution API v2) into the ImageStore:
// manifest lists and OCI indexes (linux/amd64 picked), schema2 and OCI manifests, bearer-token
// and basic auth, every blob's sha256 verified, layers unpacked once into the image's rootfs.
// Plain HTTP only for loopback registries (127.0.0.0/8, localhost, ::1) or ones listed insecure.
#include <map>
#include <set>
#include <string>

#include "base/result.h"
#include "runtime/image_store.h"

namespace runtime {

using base::Result;

struct RegistryAuth {
  std::string username;
  std::string password;
  std::string identity_token;  // OAuth2 refresh token
  std::string registry_token;  // bearer token used as is
};

struct RegistryOptions {
  std::set<std::string> insecure_registries;       // "host:port" allowed over plain HTTP
  std::map<std::string, std::string> mirrors;      // "registry.k8s.io" -> "http://127.0.0.1:5001"
};

struct PullResult {
  ImageRecord image;
  std::string repo_digest;  // "<repo>@sha256:<manifest digest>"
};

Result<PullResult> PullFromRegistry(ImageStore& store, const std::string& ref,
                                    const RegistryAuth& auth, const RegistryOptions& options);

}  // namespace runtime

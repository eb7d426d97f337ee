#pragma once
// Builds OCI image layouts for tests from a directory tree (tar + gzip + sha256sum: test-only
// tools), so that the real import path (digests, gzip, tar, whiteouts) is exercised.
#include <string>
#include <vector>

namespace testimage {

struct Layer {
  std::string dir;  // tree to pack (tar -C dir .)
  std::vector<std::string> extra_tar_args;
};

// Writes an OCI image layout at `out` with the given layers (in order) and image config
// (entrypoint/cmd/env as JSON arrays, e.g. R"(["sh"])"). The manifest is annotated with `tag`.
// Returns the manifest digest ("sha256:...") or "" on failure (details on stderr).
std::string BuildLayout(const std::string& out, const std::vector<Layer>& layers,
                        const std::string& config_json_fragment, const std::string& tag);

// An OCI layout of testsupport::BusyboxRootfs() with Cmd ["sh"], built once per process.
std::string BusyboxLayout();

}  // namespace testimage

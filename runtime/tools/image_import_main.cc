// cubelet-image-import: puts an image into cubelet's image store (air-gapped nodes, tests).
//   cubelet-image-import --store DIR --oci-layout LAYOUT_DIR [--name REF]
//   cubelet-image-import --store DIR --rootfs ROOTFS_DIR --name REF [--entrypoint ARG]...
//                        [--cmd ARG]... [--env K=V]... [--workdir DIR] [--user USER]
// Prints the image id ("sha256:...") and its names.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "runtime/image_store.h"

int main(int argc, char** argv) {
  std::string store = "/var/lib/cubelet/images", layout, rootfs, name;
  runtime::ImageConfig cfg;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) {
        fprintf(stderr, "cubelet-image-import: %s needs a value\n", a.c_str());
        exit(2);
      }
      return argv[++i];
    };
    if (a == "--store") store = val();
    else if (a == "--oci-layout") layout = val();
    else if (a == "--rootfs") rootfs = val();
    else if (a == "--name") name = val();
    else if (a == "--entrypoint") cfg.entrypoint.push_back(val());
    else if (a == "--cmd") cfg.cmd.push_back(val());
    else if (a == "--env") cfg.env.push_back(val());
    else if (a == "--workdir") cfg.working_dir = val();
    else if (a == "--user") cfg.user = val();
    else {
      fprintf(stderr,
              "usage: cubelet-image-import --store DIR (--oci-layout DIR [--name REF] | --rootfs DIR "
              "--name REF [--entrypoint A]... [--cmd A]... [--env K=V]... [--workdir D] [--user U])\n");
      return 2;
    }
  }
  if (layout.empty() == rootfs.empty()) {
    fprintf(stderr, "cubelet-image-import: give exactly one of --oci-layout and --rootfs\n");
    return 2;
  }
  auto s = runtime::ImageStore::Open(store);
  if (!s) {
    fprintf(stderr, "cubelet-image-import: %s\n", s.error().message.c_str());
    return 1;
  }
  auto r = layout.empty() ? (*s)->ImportRootfs(rootfs, name, cfg) : (*s)->ImportOciLayout(layout, name);
  if (!r) {
    fprintf(stderr, "cubelet-image-import: %s\n", r.error().message.c_str());
    return 1;
  }
  printf("sha256:%s\n", r->id.c_str());
  for (const auto& t : r->repo_tags) printf("%s\n", t.c_str());
  for (const auto& d : r->repo_digests) printf("%s\n", d.c_str());
  return 0;
}

#include "tests/runtime/test_image.h"

#include <cstdio>
#include <mutex>
#include <unistd.h>

#include "tests/support/kernel_env.h"

namespace testimage {
namespace {

std::string Sh(const std::string& cmd) {
  std::string out;
  int rc = testsupport::Run(cmd, &out);
  if (rc != 0) {
    fprintf(stderr, "test image: `%s` failed (%d): %s\n", cmd.c_str(), rc, out.c_str());
    return "";
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

}  // namespace

std::string BuildLayout(const std::string& out, const std::vector<Layer>& layers,
                        const std::string& config_fragment, const std::string& tag) {
  if (Sh("rm -rf " + out + " && mkdir -p " + out + "/blobs/sha256 && echo ok") != "ok") return "";
  std::string layer_descs, diff_ids;
  for (size_t i = 0; i < layers.size(); ++i) {
    std::string tmp = out + "/layer" + std::to_string(i) + ".tar";
    std::string extra;
    for (const auto& a : layers[i].extra_tar_args) extra += " " + a;
    if (Sh("tar --numeric-owner" + extra + " -C " + layers[i].dir + " -cf " + tmp + " . && echo ok") != "ok")
      return "";
    std::string diff = Sh("sha256sum " + tmp + " | cut -d' ' -f1");
    Sh("gzip -n " + tmp + " && echo ok");
    std::string gz = tmp + ".gz";
    std::string dg = Sh("sha256sum " + gz + " | cut -d' ' -f1");
    std::string size = Sh("stat -c %s " + gz);
    if (dg.empty() || Sh("mv " + gz + " " + out + "/blobs/sha256/" + dg + " && echo ok") != "ok") return "";
    if (!layer_descs.empty()) layer_descs += ",";
    layer_descs += R"({"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:)" +
                   dg + R"(","size":)" + size + "}";
    if (!diff_ids.empty()) diff_ids += ",";
    diff_ids += "\"sha256:" + diff + "\"";
  }
  std::string config = R"({"architecture":"amd64","os":"linux","config":{)" + config_fragment +
                       R"(},"rootfs":{"type":"layers","diff_ids":[)" + diff_ids + "]}}";
  auto put_blob = [&](const std::string& content) -> std::string {
    std::string tmp = out + "/blob.tmp";
    FILE* f = fopen(tmp.c_str(), "w");
    if (!f) return "";
    fwrite(content.data(), 1, content.size(), f);
    fclose(f);
    std::string dg = Sh("sha256sum " + tmp + " | cut -d' ' -f1");
    Sh("mv " + tmp + " " + out + "/blobs/sha256/" + dg + " && echo ok");
    return dg;
  };
  std::string cdg = put_blob(config);
  std::string manifest =
      R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:)" +
      cdg + R"(","size":)" + std::to_string(config.size()) + R"(},"layers":[)" + layer_descs + "]}";
  std::string mdg = put_blob(manifest);
  std::string index =
      R"({"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:)" +
      mdg + R"(","size":)" + std::to_string(manifest.size()) +
      R"(,"annotations":{"org.opencontainers.image.ref.name":")" + tag + R"("}}]})";
  FILE* f = fopen((out + "/index.json").c_str(), "w");
  if (!f) return "";
  fwrite(index.data(), 1, index.size(), f);
  fclose(f);
  f = fopen((out + "/oci-layout").c_str(), "w");
  if (f) {
    fputs(R"({"imageLayoutVersion":"1.0.0"})", f);
    fclose(f);
  }
  return "sha256:" + mdg;
}

std::string BusyboxLayout() {
  static std::once_flag once;
  static std::string dir = "/var/tmp/cubelet-test/busybox-oci";
  std::call_once(once, [] {
    if (testsupport::Run("test -f " + dir + "/index.json") == 0) return;
    std::string rootfs = testsupport::BusyboxRootfs();
    // Built aside and renamed into place: several test processes may race for it.
    std::string tmp = dir + ".tmp" + std::to_string(getpid());
    if (BuildLayout(tmp, {{rootfs, {}}},
                    R"("Cmd":["sh"],"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"])",
                    "latest")
            .empty()) {
      fprintf(stderr, "building the busybox OCI layout failed\n");
    }
    if (rename(tmp.c_str(), dir.c_str()) != 0) testsupport::Run("rm -rf " + tmp);
  });
  return dir;
}

}  // namespace testimage

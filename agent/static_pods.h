#pragma once
// Static pods (K:pkg/kubelet/config/file.go, common.go): pods the node runs from manifest files
// in --pod-manifest-path (staticPodPath), without the API server. The kubelet gives each one its
// node-specific name "<name>-<node>", a UID that hashes the manifest, the node and the source,
// the annotations kubernetes.io/config.hash (= the UID), config.seen and config.source=file, and
// a toleration of every NoExecute taint; it mirrors it in the API as a mirror pod (Kubelet).
//
// The directory is read at start and every 20 s: every regular file whose name does not start
// with "." holds one Pod, as YAML or JSON. A file that does not parse is skipped with a warning
// (its pod, if it ran, keeps running until the file is fixed or removed, as the kubelet does).
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <thread>
#include <nlohmann/json.hpp>
#include <string>

#include "base/result.h"

namespace agent {

// One manifest's text to the static pod the kubelet runs. `seen` is the config.seen value.
base::Result<nlohmann::json> DecodeStaticPod(const std::string& text, const std::string& path,
                                             const std::string& node_name,
                                             const std::string& seen);

// YAML (a JSON superset) to JSON: plain scalars become numbers, booleans and null where YAML 1.2
// core says so; quoted scalars stay strings.
base::Result<nlohmann::json> YamlToJson(const std::string& text);

class StaticPodSource {
 public:
  struct Handlers {
    std::function<void(const nlohmann::json& pod)> upsert;  // new or changed (new UID)
    std::function<void(const nlohmann::json& pod)> remove;  // file gone, or replaced
  };
  StaticPodSource(std::string dir, std::string node_name, Handlers h);
  ~StaticPodSource() { Stop(); }

  // Reads the directory and reports the differences with the last scan.
  void Scan();
  // A thread that scans again on every change in the directory (inotify, as the kubelet's
  // fsnotify watch) and every `period` (fileCheckFrequency); Stop() ends it.
  void Start(std::chrono::seconds period);
  void Stop();

 private:
  void Loop(std::chrono::seconds period);
  std::mutex mu_;  // one scan at a time
  std::thread thread_;
  int stop_fd_ = -1;
  std::string dir_;
  std::string node_;
  Handlers h_;
  std::map<std::string, nlohmann::json> by_file_;  // path -> pod last reported
  bool warned_missing_ = false;
};

}  // namespace agent

#pragma once
// Container directories made ahead of time on the disk. A container's directory
// (<root_dir>/containers/<id>: upper/ and work/ of its overlay, container.json) costs ~13 ext4
// inodes per container, and a new inode costs 0.3-1.7 ms on some hosts: CreateContainer used to
// wait ~1 ms for them. The pool keeps a few ready entries
//   <pool>/<name>/{upper/, work/, container.json.tmp (empty)}
// made by a thread of its own after a start, and CreateContainer renames one into place
// (one rename(2), no new inode) and fills container.json.tmp in place before renaming it to
// container.json (again no new inode).
//
// Bounded: at most `size` entries. Nothing leaks: an entry is either in the pool directory
// (which is emptied when the pool is made, i.e. at every cubelet start, and when it is
// destroyed) or renamed into a container's directory (removed with the container; one left by a
// crash before its container.json was written is removed by Runtime::Adopt).
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/result.h"
#include "runtime/background.h"

namespace runtime {

class ContainerDirPool {
 public:
  // The name, in each entry, of the empty file that becomes the container's record.
  static constexpr const char* kRecordStage = "container.json.tmp";

  // `dir` must be on the filesystem of the containers' directories (entries are renamed
  // there). `size` = 0 disables the pool. Whatever `dir` holds is removed first.
  ContainerDirPool(std::string dir, int size);
  ~ContainerDirPool();
  ContainerDirPool(const ContainerDirPool&) = delete;
  ContainerDirPool& operator=(const ContainerDirPool&) = delete;

  // Renames a ready entry to `dest` (which must not exist). False when none is ready or the
  // rename failed: the caller makes the directories itself.
  bool TakeInto(const std::string& dest);
  // Has the thread make entries until the pool is full (in the background).
  void Replenish();
  // Ready entries now (tests).
  size_t ready() const;
  const std::string& dir() const { return dir_; }

 private:
  void Loop();
  // One new entry: made under a temporary name, renamed to its final one when complete.
  base::Result<std::string> Make();

  const std::string dir_;
  const size_t size_;
  mutable std::mutex mu_;
  BackgroundWaker waker_;
  std::vector<std::string> ready_;  // entry paths
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace runtime

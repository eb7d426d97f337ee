#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace base {

Result<std::string> ReadFile(const std::string& path);
// Writes via a temp file + fsync + rename so readers never see a partial file.
Result<> WriteFileAtomic(const std::string& path, std::string_view data, int mode = 0644);
Result<> WriteFile(const std::string& path, std::string_view data);
// mkdir -p.
Result<> MkdirAll(const std::string& path, int mode = 0755);
// rm -rf that does not cross mount points it finds (returns error on a busy mount).
Result<> RemoveAll(const std::string& path);
bool PathExists(const std::string& path);
// Marks `dir` as the top of directory hierarchies for the filesystem's allocator (ext2/3/4's
// Orlov allocator, `chattr +T`): its subdirectories are spread over the block groups instead
// of packed next to it. False where the filesystem has no such flag (nothing changes there).
bool SpreadSubdirectories(const std::string& dir);
// What a directory tree holds on its filesystem (du): allocated bytes (st_blocks) and inodes,
// hard links counted once, other filesystems mounted inside not entered. Unreadable entries are
// skipped.
struct DiskUsage {
  uint64_t bytes = 0;
  uint64_t inodes = 0;
};
DiskUsage DirDiskUsage(const std::string& dir);
// Names in a directory ("." and ".." left out), in readdir order; empty when unreadable.
std::vector<std::string> ListDir(const std::string& dir);

}  // namespace base

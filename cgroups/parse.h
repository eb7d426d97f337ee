#pragma once
// Pure parsing and formatting of cgroup control-file contents (no I/O), table-tested.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "cgroups/driver.h"

namespace cgroups {

// "key value" lines (memory.stat, memory.oom_control, memory.events, cpu.stat, cgroup.events,
// pids.events). Lines whose value is not an unsigned number are skipped.
using FlatKeyed = std::map<std::string, uint64_t, std::less<>>;
FlatKeyed ParseFlatKeyed(std::string_view text);
std::optional<uint64_t> Lookup(const FlatKeyed& m, std::string_view key);

// "max" → -1, else a signed number (pids.max, memory.max/high/min, the cpu.max quota).
Result<int64_t> ParseMaxOrNumber(std::string_view text);
std::string FormatMaxOrNumber(int64_t v);  // negative → "max"

// v1 memory.limit_in_bytes: the "unlimited" value is PAGE_COUNTER_MAX * PAGE_SIZE (e.g.
// 9223372036854771712 on 4 KiB pages). Anything at or above 2^62 is reported as 0 = unlimited.
uint64_t V1MemoryLimitOrZero(uint64_t raw);

// v2 cpu.max: "<quota|max> <period>".
struct CpuMax {
  int64_t quota_us = -1;  // -1 = max
  uint64_t period_us = 100000;
};
Result<CpuMax> ParseCpuMax(std::string_view text);
std::string FormatCpuMax(const CpuMax& m);

// v1 memory.oom_control.
struct OomControl {
  bool oom_kill_disable = false;
  bool under_oom = false;
  std::optional<uint64_t> oom_kill;  // absent before Linux 4.13
};
OomControl ParseOomControl(std::string_view text);

// v1 devices.list / devices.allow syntax: "c 1:3 rwm", "a *:* rwm", "b 8:* r".
std::string FormatDeviceRule(const DeviceRule& r);  // without the allow/deny part
Result<DeviceRule> ParseDeviceRule(std::string_view text, bool allow = true);
Result<std::vector<DeviceRule>> ParseDevicesList(std::string_view text);
// True for an allow rule of type 'a', both numbers '*' and access "rwm" (in any order).
bool IsAllowAll(const DeviceRule& r);
// Access strings compared as sets ("mrw" == "rwm").
bool SameAccess(std::string_view a, std::string_view b);

// "cpu io memory pids" (cgroup.controllers / cgroup.subtree_control).
std::vector<std::string> ParseControllerList(std::string_view text);

// blkio.weight / blkio.bfq.weight / io.weight / io.bfq.weight: "100" or "default 100\n8:0 200".
// Returns the default weight.
Result<uint64_t> ParseWeightFile(std::string_view text);

// v2 io.max line for one device: "8:0 rbps=1048576 wbps=max riops=max wiops=max" (0 = max).
std::string FormatIoMax(const BlkioThrottle& t);
// Kubernetes/runc mapping from blkio weight [10,1000] to io.weight [1,10000].
uint64_t BlkioWeightToIoWeight(uint64_t blkio_weight);

// v1 blkio.throttle.* files: "8:0 1048576" lines → {"8:0": 1048576}.
std::map<std::string, uint64_t> ParseThrottleFile(std::string_view text);

// /proc/PID/cgroup: "4:memory:/a/b", "0::/a" → {"memory": "/a/b", "": "/a"}; a line listing
// several controllers ("2:cpu,cpuacct:/x") gives one entry per controller.
std::map<std::string, std::string> ParseProcCgroup(std::string_view text);

}  // namespace cgroups

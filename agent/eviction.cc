#include "agent/eviction.h"

#include <algorithm>
#include <cmath>

#include "base/log.h"
#include "base/quantity.h"
#include "base/strings.h"
#include "base/time.h"

namespace agent::eviction {
namespace {

constexpr int32_t kSystemCriticalPriority = 2000000000;

struct SignalInfo {
  Signal signal;
  const char* name;
  const char* resource;
  const char* condition;
};
constexpr SignalInfo kSignals[] = {
    {Signal::kMemoryAvailable, "memory.available", "memory", "MemoryPressure"},
    {Signal::kNodeFsAvailable, "nodefs.available", "ephemeral-storage", "DiskPressure"},
    {Signal::kNodeFsInodesFree, "nodefs.inodesFree", "inodes", "DiskPressure"},
    {Signal::kImageFsAvailable, "imagefs.available", "ephemeral-storage", "DiskPressure"},
    {Signal::kImageFsInodesFree, "imagefs.inodesFree", "inodes", "DiskPressure"},
    {Signal::kPidAvailable, "pid.available", "pids", "PIDPressure"},
};

const SignalInfo& Info(Signal s) {
  for (const auto& i : kSignals) {
    if (i.signal == s) return i;
  }
  return kSignals[0];
}

bool IsBytes(Signal s) {
  return s == Signal::kMemoryAvailable || s == Signal::kNodeFsAvailable ||
         s == Signal::kImageFsAvailable;
}

base::Result<Threshold> ParseOne(std::string_view name, std::string_view value,
                                 const std::string& statement) {
  Threshold t;
  bool found = false;
  for (const auto& i : kSignals) {
    if (name == i.name) {
      t.signal = i.signal;
      found = true;
    }
  }
  if (!found) {
    return base::Fail("eviction threshold \"" + statement + "\": unsupported eviction signal " +
                      std::string(name));
  }
  std::string v(base::Trim(value));
  t.text = v;
  if (v.empty()) return base::Fail("eviction threshold \"" + statement + "\": no value");
  if (v.back() == '%') {
    char* end = nullptr;
    std::string num = v.substr(0, v.size() - 1);
    double pct = strtod(num.c_str(), &end);
    if (num.empty() || *end || pct <= 0 || pct > 100) {
      return base::Fail("eviction threshold \"" + statement +
                        "\": invalid percentage (want 0% < p <= 100%)");
    }
    t.percentage = pct / 100.0;
    return t;
  }
  auto q = base::ParseQuantity(v);
  if (!q) return base::Fail("eviction threshold \"" + statement + "\": " + q.error().message);
  if (*q < 0) return base::Fail("eviction threshold \"" + statement + "\": must be positive");
  t.quantity = *q;
  return t;
}

}  // namespace

std::string SignalName(Signal s) { return Info(s).name; }
std::string ResourceName(Signal s) { return Info(s).resource; }
std::string ConditionName(Signal s) { return Info(s).condition; }

base::Result<std::vector<Threshold>> ParseThresholds(std::string_view flag) {
  std::vector<Threshold> out;
  for (const auto& raw : base::Split(flag, ',', true)) {
    std::string st(base::Trim(raw));
    if (st.empty()) continue;
    size_t lt = st.find('<');
    if (lt == std::string::npos) {
      return base::Fail("eviction threshold \"" + st +
                        "\": want <signal><<quantity>, e.g. memory.available<100Mi");
    }
    std::string name(base::Trim(st.substr(0, lt)));
    auto t = ParseOne(name, st.substr(lt + 1), st);
    if (!t) return tl::unexpected(t.error());
    for (const auto& o : out) {
      if (o.signal == t->signal) return base::Fail("eviction threshold " + name + " given twice");
    }
    out.push_back(*t);
  }
  return out;
}

base::Result<std::vector<Threshold>> ParseThresholdMap(
    const std::map<std::string, std::string>& m) {
  std::vector<Threshold> out;
  for (const auto& [k, v] : m) {
    auto t = ParseOne(k, v, k + "<" + v);
    if (!t) return tl::unexpected(t.error());
    out.push_back(*t);
  }
  return out;
}

base::Result<std::vector<Threshold>> ParseSoftThresholds(std::string_view soft,
                                                         std::string_view grace_periods) {
  auto t = ParseThresholds(soft);
  if (!t) return tl::unexpected(t.error());
  std::map<std::string, std::chrono::seconds> grace;
  for (const auto& raw : base::Split(grace_periods, ',', true)) {
    std::string st(base::Trim(raw));
    if (st.empty()) continue;
    size_t eq = st.find('=');
    std::string name(base::Trim(st.substr(0, eq)));
    std::string v = eq == std::string::npos ? "" : std::string(base::Trim(st.substr(eq + 1)));
    std::chrono::milliseconds d{0};
    if (eq == std::string::npos || !base::ParseGoDuration(v, &d)) {
      return base::Fail("eviction soft grace period \"" + st +
                        "\": want <signal>=<duration>, e.g. memory.available=1m30s");
    }
    grace[name] = std::chrono::duration_cast<std::chrono::seconds>(d);
  }
  for (auto& x : *t) {
    auto it = grace.find(SignalName(x.signal));
    if (it == grace.end()) {
      return base::Fail("grace period must be specified for the soft eviction threshold " +
                        SignalName(x.signal));
    }
    x.soft = true;
    x.grace_period = it->second;
  }
  return t;
}

std::vector<Threshold> DefaultThresholds() {
  return *ParseThresholds(
      "memory.available<100Mi,nodefs.available<10%,nodefs.inodesFree<5%,"
      "imagefs.available<15%,imagefs.inodesFree<5%");
}

int64_t ThresholdValue(const Threshold& t, int64_t capacity) {
  if (t.quantity) return *t.quantity;
  return static_cast<int64_t>(std::llround(static_cast<double>(capacity) * t.percentage.value_or(0)));
}

bool Met(const Threshold& t, const Observations& obs) {
  auto it = obs.find(t.signal);
  return it != obs.end() && it->second.capacity > 0 &&
         it->second.available < ThresholdValue(t, it->second.capacity);
}

std::vector<Threshold> ThresholdsMet(const std::vector<Threshold>& thresholds,
                                     const Observations& obs) {
  std::vector<Threshold> met;
  for (const auto& t : thresholds) {
    if (Met(t, obs)) met.push_back(t);
  }
  return met;
}

std::string FormatBinaryQuantity(int64_t v) {
  static const char* kSuffix[] = {"", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"};
  if (v == 0) return "0";
  int i = 0;
  int64_t m = v;
  while (i < 6 && m % 1024 == 0) {
    m /= 1024;
    ++i;
  }
  return std::to_string(m) + kSuffix[i];
}

namespace {

int64_t MemoryUsage(const Candidate& c) {
  int64_t n = 0;
  for (const auto& x : c.containers) n += x.memory_bytes;
  return n;
}
int64_t MemoryRequest(const Candidate& c) {
  int64_t n = 0;
  for (const auto& x : c.containers) n += x.memory_request_bytes;
  return n;
}

}  // namespace

std::vector<const Candidate*> Rank(Signal signal, const std::vector<Candidate>& pods) {
  std::vector<const Candidate*> out;
  for (const auto& p : pods) {
    if (!p.critical) out.push_back(&p);
  }
  if (signal == Signal::kMemoryAvailable) {
    // exceedMemoryRequests, priority, memory (usage above requests)
    std::stable_sort(out.begin(), out.end(), [](const Candidate* a, const Candidate* b) {
      bool ea = MemoryUsage(*a) > MemoryRequest(*a), eb = MemoryUsage(*b) > MemoryRequest(*b);
      if (ea != eb) return ea;
      if (a->priority != b->priority) return a->priority < b->priority;
      return MemoryUsage(*a) - MemoryRequest(*a) > MemoryUsage(*b) - MemoryRequest(*b);
    });
  } else {
    // priority, process count
    std::stable_sort(out.begin(), out.end(), [](const Candidate* a, const Candidate* b) {
      if (a->priority != b->priority) return a->priority < b->priority;
      return a->pids > b->pids;
    });
  }
  return out;
}

std::string EvictionMessage(const Threshold& t, const Observation& obs, const Candidate& pod) {
  std::string resource = ResourceName(t.signal);
  auto fmt = [&](int64_t v) {
    return IsBytes(t.signal) ? FormatBinaryQuantity(v) : std::to_string(v);
  };
  std::string msg = "The node was low on resource: " + resource + ". ";
  msg += "Threshold quantity: " + fmt(ThresholdValue(t, obs.capacity)) +
         ", available: " + fmt(obs.available) + ". ";
  if (t.signal == Signal::kMemoryAvailable) {
    for (const auto& c : pod.containers) {
      if (c.memory_bytes > c.memory_request_bytes) {
        msg += "Container " + c.name + " was using " + FormatBinaryQuantity(c.memory_bytes) +
               ", request is " + FormatBinaryQuantity(c.memory_request_bytes) +
               ", has larger consumption of " + resource + ". ";
      }
    }
  }
  return msg;
}

std::optional<std::string> AdmissionRejection(const Pod& pod, bool tolerates_memory_pressure,
                                              const std::vector<std::string>& conditions) {
  if (conditions.empty()) return std::nullopt;
  if (pod.priority.value_or(0) >= kSystemCriticalPriority) return std::nullopt;
  bool memory_only = conditions.size() == 1 && conditions[0] == "MemoryPressure";
  if (memory_only) {
    if (ComputeQos(pod) != QosClass::kBestEffort) return std::nullopt;
    if (tolerates_memory_pressure) return std::nullopt;
  }
  return "The node had condition: [" + base::Join(conditions, " ") + "]. ";
}

Manager::Manager(std::vector<Threshold> thresholds, std::chrono::seconds transition, Deps deps,
                 int64_t max_pod_grace_seconds)
    : thresholds_(std::move(thresholds)),
      transition_(transition),
      deps_(std::move(deps)),
      max_pod_grace_(max_pod_grace_seconds) {}

std::vector<std::string> Manager::Conditions() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> out;
  auto now = Now();
  for (const char* c : {"MemoryPressure", "DiskPressure", "PIDPressure"}) {
    auto it = last_met_.find(c);
    if (it != last_met_.end() && now - it->second < transition_) out.push_back(c);
  }
  return out;
}

std::optional<std::string> Manager::Synchronize() {
  if (thresholds_.empty()) return std::nullopt;
  Observations obs = deps_.observe();
  // Conditions follow every threshold met now; eviction only those met for their grace period
  // (K:pkg/kubelet/eviction thresholdsFirstObservedAt, thresholdsMetGracePeriod).
  std::vector<Threshold> met;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto now = Now();
    for (size_t i = 0; i < thresholds_.size(); ++i) {
      if (!Met(thresholds_[i], obs)) {
        first_met_.erase(i);
        continue;
      }
      last_met_[ConditionName(thresholds_[i].signal)] = now;
      auto first = first_met_.emplace(i, now).first->second;
      if (now - first >= thresholds_[i].grace_period) met.push_back(thresholds_[i]);
    }
  }
  // Memory first, then process ids (the kubelet reclaims the first threshold it can); a hard
  // threshold of a signal before its soft one.
  std::stable_sort(met.begin(), met.end(),
                   [](const Threshold& a, const Threshold& b) { return !a.soft && b.soft; });
  for (Signal s : {Signal::kMemoryAvailable, Signal::kPidAvailable}) {
    auto it = std::find_if(met.begin(), met.end(), [&](const Threshold& t) { return t.signal == s; });
    if (it == met.end()) continue;
    auto pods = deps_.candidates();
    auto ranked = Rank(s, pods);
    if (ranked.empty()) {
      base::log::Warn("eviction manager: no pod to evict", {{"signal", SignalName(s)}});
      return std::nullopt;
    }
    const Candidate& victim = *ranked.front();
    std::string msg = EvictionMessage(*it, obs.at(s), victim);
    base::log::Warn("eviction manager: evicting pod",
                    {{"pod", victim.ns + "/" + victim.name},
                     {"signal", SignalName(s)},
                     {"available", obs.at(s).available},
                     {"threshold", it->text}});
    int64_t grace = it->soft ? std::min(max_pod_grace_, victim.termination_grace_seconds) : 0;
    deps_.evict(victim, msg, grace);
    return victim.uid;  // one pod per cycle
  }
  return std::nullopt;
}

}  // namespace agent::eviction

#pragma once
// The proxy's Prometheus metrics, named as kube-proxy's (kubeproxy_*) so that dashboards keep
// working, rendered as text exposition format for the agent's /metrics.
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace netproxy {

class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void Observe(double v);
  // "# HELP/# TYPE" and the _bucket/_sum/_count lines.
  void Write(std::string& out, const std::string& name, const std::string& help) const;
  uint64_t count() const { return count_; }
  double sum() const { return sum_; }

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bucket, not cumulative
  uint64_t count_ = 0;
  double sum_ = 0;
};

// Exponential bounds: start, start*factor, ... (n values).
std::vector<double> ExponentialBuckets(double start, double factor, int n);

class ProxyMetrics {
 public:
  ProxyMetrics();

  void ObserveSync(double seconds, bool full);
  void ObserveNetworkProgramming(double seconds);
  void SetRules(const std::string& table, size_t n);
  void SetLastSync(double unix_seconds);
  void SetLastQueued(double unix_seconds);
  void IncRestoreFailures();
  void IncSyncs();

  std::string Text() const;

  // For tests and the bench.
  uint64_t sync_count() const;
  uint64_t restore_failures() const;

 private:
  mutable std::mutex mu_;
  Histogram sync_duration_;
  Histogram full_sync_duration_;
  Histogram partial_sync_duration_;
  Histogram network_programming_;
  std::map<std::string, size_t> rules_;
  double last_sync_ = 0;
  double last_queued_ = 0;
  uint64_t restore_failures_ = 0;
  uint64_t syncs_ = 0;
};

}  // namespace netproxy

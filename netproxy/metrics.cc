#include "netproxy/metrics.h"

#include <cmath>
#include <cstdio>

namespace netproxy {

namespace {

std::string Num(double v) {
  if (std::isinf(v)) return "+Inf";
  char buf[64];
  snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

void Header(std::string& out, const std::string& name, const std::string& help, const char* type) {
  out += "# HELP " + name + " " + help + "\n";
  out += "# TYPE " + name + " " + type + "\n";
}

}  // namespace

std::vector<double> ExponentialBuckets(double start, double factor, int n) {
  std::vector<double> b;
  double v = start;
  for (int i = 0; i < n; ++i, v *= factor) b.push_back(v);
  return b;
}

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::Observe(double v) {
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  ++counts_[i];
  ++count_;
  sum_ += v;
}

void Histogram::Write(std::string& out, const std::string& name, const std::string& help) const {
  Header(out, name, help, "histogram");
  uint64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i];
    out += name + "_bucket{le=\"" + Num(bounds_[i]) + "\"} " + std::to_string(cumulative) + "\n";
  }
  out += name + "_bucket{le=\"+Inf\"} " + std::to_string(count_) + "\n";
  out += name + "_sum " + Num(sum_) + "\n";
  out += name + "_count " + std::to_string(count_) + "\n";
}

// kube-proxy: sync durations exponential from 1 ms (x2, 15 buckets); network programming
// from 0.25 s to 5 min. cubelet syncs far faster, so the latter starts at 1 ms as well.
ProxyMetrics::ProxyMetrics()
    : sync_duration_(ExponentialBuckets(0.001, 2, 15)),
      full_sync_duration_(ExponentialBuckets(0.001, 2, 15)),
      partial_sync_duration_(ExponentialBuckets(0.001, 2, 15)),
      network_programming_([] {
        auto b = ExponentialBuckets(0.001, 2, 12);  // 1 ms .. 2 s
        for (double v : {5.0, 10.0, 30.0, 60.0, 120.0, 300.0}) b.push_back(v);
        return b;
      }()) {}

void ProxyMetrics::ObserveSync(double seconds, bool full) {
  std::lock_guard lock(mu_);
  sync_duration_.Observe(seconds);
  (full ? full_sync_duration_ : partial_sync_duration_).Observe(seconds);
}

void ProxyMetrics::ObserveNetworkProgramming(double seconds) {
  std::lock_guard lock(mu_);
  network_programming_.Observe(seconds);
}

void ProxyMetrics::SetRules(const std::string& table, size_t n) {
  std::lock_guard lock(mu_);
  rules_[table] = n;
}

void ProxyMetrics::SetLastSync(double t) {
  std::lock_guard lock(mu_);
  last_sync_ = t;
}

void ProxyMetrics::SetLastQueued(double t) {
  std::lock_guard lock(mu_);
  last_queued_ = t;
}

void ProxyMetrics::IncRestoreFailures() {
  std::lock_guard lock(mu_);
  ++restore_failures_;
}

void ProxyMetrics::IncSyncs() {
  std::lock_guard lock(mu_);
  ++syncs_;
}

uint64_t ProxyMetrics::sync_count() const {
  std::lock_guard lock(mu_);
  return syncs_;
}

uint64_t ProxyMetrics::restore_failures() const {
  std::lock_guard lock(mu_);
  return restore_failures_;
}

std::string ProxyMetrics::Text() const {
  std::lock_guard lock(mu_);
  std::string out;
  sync_duration_.Write(out, "kubeproxy_sync_proxy_rules_duration_seconds",
                       "SyncProxyRules latency in seconds");
  full_sync_duration_.Write(out, "kubeproxy_sync_full_proxy_rules_duration_seconds",
                            "SyncProxyRules latency in seconds for full resyncs");
  partial_sync_duration_.Write(out, "kubeproxy_sync_partial_proxy_rules_duration_seconds",
                               "SyncProxyRules latency in seconds for partial resyncs");
  network_programming_.Write(out, "kubeproxy_network_programming_duration_seconds",
                             "In Cluster Network Programming Latency in seconds");
  Header(out, "kubeproxy_sync_proxy_rules_iptables_total",
         "Total number of iptables rules owned by kube-proxy", "gauge");
  for (const auto& [table, n] : rules_) {
    out += "kubeproxy_sync_proxy_rules_iptables_total{table=\"" + table + "\"} " +
           std::to_string(n) + "\n";
  }
  Header(out, "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
         "The last time proxy rules were successfully synced", "gauge");
  out += "kubeproxy_sync_proxy_rules_last_timestamp_seconds " + Num(last_sync_) + "\n";
  Header(out, "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds",
         "The last time a sync of proxy rules was queued", "gauge");
  out += "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds " + Num(last_queued_) + "\n";
  Header(out, "kubeproxy_sync_proxy_rules_iptables_restore_failures_total",
         "Cumulative proxy iptables restore failures", "counter");
  out += "kubeproxy_sync_proxy_rules_iptables_restore_failures_total " +
         std::to_string(restore_failures_) + "\n";
  Header(out, "cubelet_proxy_syncs_total", "Successful proxy rule syncs", "counter");
  out += "cubelet_proxy_syncs_total " + std::to_string(syncs_) + "\n";
  return out;
}

}  // namespace netproxy

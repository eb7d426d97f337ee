#include "netproxy/change_tracker.h"

#include <algorithm>
#include <utility>

#include "base/log.h"

namespace netproxy {

bool ServiceChangeTracker::Update(const Service* previous, const Service* current) {
  const Service* svc = current ? current : previous;
  if (!svc) return HasPending();
  ServiceName key{svc->ns, svc->name};
  // Built outside the lock: the flattening allocates.
  ServicePortMap current_ports = current ? ServicePortsOf(*current) : ServicePortMap{};
  std::lock_guard lock(mu_);
  auto it = items_.find(key);
  if (it == items_.end()) {
    Change change;
    change.previous = previous ? ServicePortsOf(*previous) : ServicePortMap{};
    it = items_.emplace(key, std::move(change)).first;
  }
  it->second.current = std::move(current_ports);
  if (it->second.previous == it->second.current) items_.erase(it);
  return !items_.empty();
}

std::map<ServiceName, ServiceChangeTracker::Change> ServiceChangeTracker::Checkout() {
  std::lock_guard lock(mu_);
  return std::exchange(items_, {});
}

bool ServiceChangeTracker::HasPending() const {
  std::lock_guard lock(mu_);
  return !items_.empty();
}

EndpointsChangeTracker::EndpointsChangeTracker(std::string node_name, WallTime start_time)
    : node_name_(std::move(node_name)), start_time_(start_time) {}

bool EndpointsChangeTracker::EndpointSliceUpdate(const EndpointSlice& slice, bool remove,
                                                 WallTime seen) {
  if (slice.address_type != AddressType::kIPv4) return false;
  if (slice.service_name.empty() || slice.ns.empty() || slice.name.empty()) {
    base::log::Warn("ignoring EndpointSlice without kubernetes.io/service-name label",
                    {{"slice", slice.ns + "/" + slice.name}});
    return false;
  }
  ServiceName key{slice.ns, slice.service_name};
  SliceData data = Compact(slice, remove);

  std::lock_guard lock(mu_);
  auto tit = trackers_.find(key);
  // Whether this event changes what is pending, or (if nothing is pending) what was applied.
  bool changed;
  if (tit == trackers_.end()) {
    changed = !remove;
  } else {
    auto pit = tit->second.pending.find(slice.name);
    auto ait = tit->second.applied.find(slice.name);
    if (pit != tit->second.pending.end()) {
      changed = !(pit->second == data);
    } else if (ait != tit->second.applied.end()) {
      changed = !(ait->second == data);
    } else {
      changed = !remove;
    }
  }
  if (!changed) return false;
  if (tit == trackers_.end()) tit = trackers_.emplace(key, SliceTracker{}).first;
  tit->second.pending[slice.name] = std::move(data);
  // A deletion's trigger time would be the time of the last update, not of the deletion, so it
  // is not measured (as kube-proxy).
  if (remove) {
    trigger_times_.erase(key);
  } else {
    WallTime t = slice.last_change_trigger_time.value_or(seen);
    if (t > start_time_) trigger_times_[key].push_back(t);
  }
  return true;
}

EndpointsChangeTracker::Checkout EndpointsChangeTracker::CheckoutChanges() {
  Checkout out;
  std::lock_guard lock(mu_);
  for (auto it = trackers_.begin(); it != trackers_.end();) {
    SliceTracker& t = it->second;
    if (t.pending.empty()) {
      ++it;
      continue;
    }
    Change change;
    change.previous = EndpointsOf(it->first, t.applied);
    for (auto& [name, data] : t.pending) {
      if (data.remove) {
        t.applied.erase(name);
      } else {
        t.applied[name] = std::move(data);
      }
    }
    t.pending.clear();
    change.current = EndpointsOf(it->first, t.applied);
    out.changes.emplace(it->first, std::move(change));
    if (t.applied.empty()) {
      it = trackers_.erase(it);
    } else {
      ++it;
    }
  }
  out.trigger_times = std::exchange(trigger_times_, {});
  return out;
}

bool EndpointsChangeTracker::HasPending() const {
  std::lock_guard lock(mu_);
  for (const auto& [_, t] : trackers_) {
    if (!t.pending.empty()) return true;
  }
  return false;
}

EndpointsChangeTracker::SliceData EndpointsChangeTracker::Compact(const EndpointSlice& slice,
                                                                  bool remove) const {
  SliceData d;
  d.remove = remove;
  if (remove) return d;  // a removal is identified by the slice name alone
  for (const auto& port : slice.ports) {
    if (!port.name) continue;                     // kube-proxy: "Ignoring port with nil name"
    if (!port.port || *port.port == 0) continue;  // "Ignoring invalid endpoint port"
    d.ports.push_back({*port.name, *port.port, port.protocol});
  }
  for (const auto& ep : slice.endpoints) {
    if (ep.addresses.empty()) continue;
    CompactEndpoint c;
    c.ip = ep.addresses.front();
    c.is_local = !node_name_.empty() && ep.node_name && *ep.node_name == node_name_;
    c.ready = ep.conditions.ready.value_or(true);
    c.serving = ep.conditions.serving.value_or(true);
    c.terminating = ep.conditions.terminating.value_or(false);
    c.zone_hints = ep.hints_for_zones;
    d.endpoints.push_back(std::move(c));
  }
  return d;
}

EndpointsMap EndpointsChangeTracker::EndpointsOf(
    const ServiceName& svc, const std::map<std::string, SliceData>& slices) const {
  // Keyed by address while merging: an endpoint may briefly appear in two slices while it moves.
  std::map<ServicePortName, std::map<std::string, EndpointInfo>> by_port;
  for (const auto& [_, data] : slices) {
    for (const auto& port : data.ports) {
      ServicePortName spn{svc, port.name, port.protocol};
      auto& set = by_port[spn];
      for (const auto& ep : data.endpoints) {
        EndpointInfo info;
        info.ip = ep.ip;
        info.port = port.port;
        info.address = info.ip + ":" + std::to_string(info.port);
        info.is_local = ep.is_local;
        info.ready = ep.ready;
        info.serving = ep.serving;
        info.terminating = ep.terminating;
        info.zone_hints = ep.zone_hints;
        // The same IP may be a terminating pod and its running successor: prefer the latter.
        auto existing = set.find(info.address);
        if (existing == set.end() || !info.terminating) {
          std::string key = info.address;
          set[key] = std::move(info);
        }
      }
    }
  }
  EndpointsMap out;
  for (auto& [spn, set] : by_port) {
    if (set.empty()) continue;
    auto& list = out[spn];
    list.reserve(set.size());
    for (auto& [_, info] : set) list.push_back(std::move(info));  // map order = sorted by address
  }
  return out;
}

}  // namespace netproxy

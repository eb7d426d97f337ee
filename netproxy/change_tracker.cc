#include "netproxy/change_tracker.h"

#include <algorithm>
#include <cstring>
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
  if (tit->second.pending.empty()) dirty_.push_back(tit);
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
  for (auto it : std::exchange(dirty_, {})) {
    SliceTracker& t = it->second;
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
    if (t.applied.empty()) trackers_.erase(it);
  }
  out.trigger_times = std::exchange(trigger_times_, {});
  return out;
}

bool EndpointsChangeTracker::HasPending() const {
  std::lock_guard lock(mu_);
  return !dirty_.empty();
}

EndpointsChangeTracker::SliceData EndpointsChangeTracker::Compact(const EndpointSlice& slice,
                                                                  bool remove) const {
  SliceData d;
  d.remove = remove;
  if (remove) return d;  // a removal is identified by the slice name alone
  for (const auto& port : slice.ports) {
    if (!port.name) continue;  // kube-proxy: "Ignoring port with nil name"
    // kube-proxy: "Ignoring invalid endpoint port" (nil or 0); the API allows 1-65535 only.
    if (!port.port || *port.port <= 0 || *port.port > 65535) continue;
    d.ports.push_back({*port.name, static_cast<uint16_t>(*port.port), port.protocol});
  }
  d.endpoints.reserve(slice.endpoints.size());
  for (const auto& ep : slice.endpoints) {
    if (ep.addresses.empty()) continue;
    // The API validates the addresses of an IPv4 slice; one that is not could not be programmed.
    auto ip = ParseIPv4(ep.addresses.front());
    if (!ip) {
      base::log::Warn("ignoring an endpoint whose address is not IPv4",
                      {{"slice", slice.ns + "/" + slice.name}, {"address", ep.addresses.front()}});
      continue;
    }
    CompactEndpoint c;
    c.ipv4 = *ip;
    c.is_local = !node_name_.empty() && ep.node_name && *ep.node_name == node_name_;
    c.ready = ep.conditions.ready.value_or(true);
    c.serving = ep.conditions.serving.value_or(true);
    c.terminating = ep.conditions.terminating.value_or(false);
    c.zone_hints = InternZoneHints(ep.hints_for_zones);
    d.endpoints.push_back(c);
  }
  return d;
}

EndpointsMap EndpointsChangeTracker::EndpointsOf(
    const ServiceName& svc, const std::map<std::string, SliceData>& slices) const {
  // Every slice's endpoints per port, then sorted by address. An endpoint may briefly appear in
  // two slices while it moves: one entry per address is kept, the last one that is not
  // terminating (the running successor of a terminating pod with the same IP), else the first.
  // (A sort of flat vectors: a map keyed by address per port cost a quarter of a 30k-service
  // first sync in allocations.)
  EndpointsMap out;
  for (const auto& [_, data] : slices) {
    for (const auto& port : data.ports) {
      auto& list = out[ServicePortName{svc, port.name, port.protocol}];
      list.reserve(list.size() + data.endpoints.size());
      for (const auto& ep : data.endpoints) {
        EndpointInfo& info = list.emplace_back();
        info.ipv4 = ep.ipv4;
        info.port = port.port;
        info.is_local = ep.is_local;
        info.ready = ep.ready;
        info.serving = ep.serving;
        info.terminating = ep.terminating;
        info.zone_hints = ep.zone_hints;
      }
    }
  }
  // The order is that of the "ip:port" texts (as kube-proxy sorts its endpoint strings), which
  // is not the numeric one ("10.0.0.10:80" < "10.0.0.1:80"): sorted by the text, made once per
  // endpoint, the original order breaking ties (a stable sort).
  struct Key {
    char text[kMaxAddressText];
    uint32_t index;
  };
  std::vector<Key> keys;
  std::vector<EndpointInfo> sorted;
  for (auto it = out.begin(); it != out.end();) {
    auto& list = it->second;
    if (list.empty()) {
      it = out.erase(it);
      continue;
    }
    keys.resize(list.size());
    for (size_t i = 0; i < list.size(); ++i) {
      FormatAddress(list[i].ipv4, list[i].port, keys[i].text);
      keys[i].index = static_cast<uint32_t>(i);
    }
    std::sort(keys.begin(), keys.end(), [](const Key& a, const Key& b) {
      int c = strcmp(a.text, b.text);
      return c != 0 ? c < 0 : a.index < b.index;
    });
    sorted.clear();
    sorted.reserve(list.size());
    for (size_t i = 0; i < keys.size();) {
      size_t j = i + 1;
      const EndpointInfo& first = list[keys[i].index];
      while (j < keys.size() && list[keys[j].index].ipv4 == first.ipv4 &&
             list[keys[j].index].port == first.port) {
        ++j;
      }
      size_t keep = i;
      for (size_t k = i; k < j; ++k) {
        if (!list[keys[k].index].terminating) keep = k;
      }
      sorted.push_back(list[keys[keep].index]);
      i = j;
    }
    list.assign(sorted.begin(), sorted.end());
    ++it;
  }
  return out;
}

}  // namespace netproxy

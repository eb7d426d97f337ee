#pragma once
// Change trackers as kube-proxy's: every informer event is folded into a {previous, current}
// pair per service, so a burst of events costs one rule update per service, and a change that
// is undone before the next sync (add then delete) costs nothing. Thread-safe: events arrive on
// the agent's informer threads, Checkout() runs on the sync thread.
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "netproxy/model.h"
#include "netproxy/service_port.h"

namespace netproxy {

class ServiceChangeTracker {
 public:
  struct Change {
    ServicePortMap previous;  // as last applied
    ServicePortMap current;   // after all pending events
  };

  // previous == nullptr for an add, current == nullptr for a delete. Returns true when some
  // service has a pending change (kube-proxy returns len(items) > 0).
  bool Update(const Service* previous, const Service* current);

  // Takes all pending changes.
  std::map<ServiceName, Change> Checkout();
  bool HasPending() const;

 private:
  mutable std::mutex mu_;
  std::map<ServiceName, Change> items_;
};

// Holds the EndpointSlices of every service (applied = what the proxy programmed, pending =
// received since), like kube-proxy's EndpointSliceCache + EndpointsChangeTracker. Slices are
// merged per service; endpoints are resolved per service port by (port name, protocol).
class EndpointsChangeTracker {
 public:
  struct Change {
    EndpointsMap previous;  // this service's endpoints as last applied
    EndpointsMap current;
  };
  struct Checkout {
    std::map<ServiceName, Change> changes;
    // For the network programming latency metric: when each applied change was triggered.
    std::map<ServiceName, std::vector<WallTime>> trigger_times;
  };

  // node_name marks local endpoints; changes triggered before start_time are not measured.
  EndpointsChangeTracker(std::string node_name, WallTime start_time);

  // Records an add/update (remove = false) or delete (remove = true) of a slice. `seen` stands in
  // for the trigger time when the slice has no last-change-trigger-time annotation. Returns true
  // when the pending state differs from what was applied. Slices of other address types than
  // IPv4 and slices without a service name are ignored (false).
  bool EndpointSliceUpdate(const EndpointSlice& slice, bool remove, WallTime seen);

  Checkout CheckoutChanges();
  bool HasPending() const;

 private:
  // What the proxy keeps of a slice: the fields it uses, resolved (nil conditions applied,
  // locality decided, the address parsed, zone hints interned), so that it stays small (16
  // bytes an endpoint, nothing on the heap of its own) and a change of other fields is no change.
  struct CompactEndpoint {
    uint32_t ipv4 = 0;
    bool is_local = false, ready = false, serving = false, terminating = false;
    const ZoneHints* zone_hints = nullptr;
    bool operator==(const CompactEndpoint&) const = default;
  };
  struct CompactPort {
    std::string name;
    uint16_t port = 0;
    Protocol protocol = Protocol::kTCP;
    bool operator==(const CompactPort&) const = default;
  };
  struct SliceData {
    std::vector<CompactEndpoint> endpoints;
    std::vector<CompactPort> ports;
    bool remove = false;
    bool operator==(const SliceData&) const = default;
  };
  SliceData Compact(const EndpointSlice& slice, bool remove) const;
  struct SliceTracker {
    std::map<std::string, SliceData> applied;  // by slice name
    std::map<std::string, SliceData> pending;
  };

  EndpointsMap EndpointsOf(const ServiceName& svc,
                           const std::map<std::string, SliceData>& slices) const;

  const std::string node_name_;
  const WallTime start_time_;
  mutable std::mutex mu_;
  std::map<ServiceName, SliceTracker> trackers_;
  // The trackers with pending slices, each once: a checkout and HasPending() look at these
  // instead of every service (at 30k services walking the map took ~10 ms of each change).
  std::vector<std::map<ServiceName, SliceTracker>::iterator> dirty_;
  std::map<ServiceName, std::vector<WallTime>> trigger_times_;
};

}  // namespace netproxy

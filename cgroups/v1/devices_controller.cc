#include "cgroups/v1/devices_controller.h"

#include <cerrno>

#include "cgroups/parse.h"

namespace cgroups::v1 {
namespace {

bool SameDevice(const DeviceRule& a, const DeviceRule& b) {
  return a.type == b.type && a.major == b.major && a.minor == b.minor;
}

}  // namespace

Result<std::vector<DeviceRule>> DevicesController::List() const {
  auto text = dir_.Read("devices.list");
  if (!text) return tl::unexpected(text.error());
  auto rules = ParseDevicesList(*text);
  if (!rules)
    return tl::unexpected(rules.error().Wrap("devices.list of cgroup '" + dir_.path() + "'"));
  return rules;
}

Result<> DevicesController::Allow(const DeviceRule& rule) {
  auto r = dir_.Write("devices.allow", FormatDeviceRule(rule));
  if (!r && r.error().code == EPERM) {
    return tl::unexpected(r.error().Wrap(
        "allow " + FormatDeviceRule(rule) +
        ": the parent cgroup does not allow it (a child can only allow what its parent allows)"));
  }
  if (!r && r.error().code == EINVAL && rule.type == 'a') {
    auto children = dir_.Children();
    if (children && !children->empty()) {
      return tl::unexpected(r.error().Wrap(
          "allow all: the default of a devices cgroup cannot change once it has children"));
    }
  }
  return r;
}

Result<> DevicesController::Deny(const DeviceRule& rule) {
  auto r = dir_.Write("devices.deny", FormatDeviceRule(rule));
  if (!r && r.error().code == EINVAL && rule.type == 'a') {
    auto children = dir_.Children();
    if (children && !children->empty()) {
      return tl::unexpected(r.error().Wrap(
          "deny all: the default of a devices cgroup cannot change once it has children; apply "
          "the device list before creating child cgroups"));
    }
  }
  return r;
}

Result<> DevicesController::ApplyAllowList(const std::vector<DeviceRule>& rules) {
  auto current = List();
  if (!current) return tl::unexpected(current.error());
  bool currently_allow_all = current->size() == 1 && IsAllowAll(current->front());

  // The wanted default: allow when the list contains an allow-all rule. Only the rules after the
  // last allow-all matter (earlier ones are overridden by it).
  size_t start = 0;
  bool want_allow_all = false;
  for (size_t i = 0; i < rules.size(); ++i) {
    if (IsAllowAll(rules[i])) {
      want_allow_all = true;
      start = i + 1;
    }
  }
  DeviceRule all{true, 'a', -1, -1, "rwm"};

  if (want_allow_all) {
    if (!currently_allow_all) CUBELET_TRY(Allow(all));
    for (size_t i = start; i < rules.size(); ++i) {
      CUBELET_TRY(rules[i].allow ? Allow(rules[i]) : Deny(rules[i]));
    }
    return {};
  }

  if (currently_allow_all) {
    CUBELET_TRY(Deny(all));
  } else {
    // Already deny-by-default (e.g. a re-apply once children exist): drop the exceptions that
    // the new list no longer grants, without changing the default.
    for (const auto& have : *current) {
      bool kept = false;
      for (const auto& want : rules)
        if (want.allow && SameDevice(want, have) && SameAccess(want.access, have.access))
          kept = true;
      if (!kept) CUBELET_TRY(Deny(have));
    }
  }
  for (const auto& r : rules) CUBELET_TRY(r.allow ? Allow(r) : Deny(r));
  return {};
}

}  // namespace cgroups::v1

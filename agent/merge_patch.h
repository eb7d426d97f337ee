#pragma once
// Two-way strategic merge patch generation (k8s.io/apimachinery strategicpatch
// CreateTwoWayMergePatch, reduced to what the node agent sends): object fields are diffed
// recursively (removed fields become null), lists with a merge key are diffed element by element
// with `$setElementOrder/<field>` and `{"$patch":"delete"}` entries, other lists are replaced.
#include <map>
#include <nlohmann/json.hpp>
#include <string>

namespace agent {

// field name -> merge key, e.g. {"conditions","type"}, {"containerStatuses","name"}.
using MergeKeys = std::map<std::string, std::string>;

// Merge keys of v1.PodStatus.
const MergeKeys& PodStatusMergeKeys();

nlohmann::json CreateTwoWayMergePatch(const nlohmann::json& original, const nlohmann::json& modified,
                                      const MergeKeys& keys);

// Applies a strategic merge patch produced above (used by the fake API in tests and to update
// the local copy after a successful PATCH).
nlohmann::json ApplyStrategicMergePatch(const nlohmann::json& original, const nlohmann::json& patch,
                                        const MergeKeys& keys);

}  // namespace agent

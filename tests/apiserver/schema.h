#pragma once
// Go struct layout of the Kubernetes API types the test API server serves.
//
// The real kube-apiserver decodes every request into Go structs and encodes them back, so what
// a client sees follows Go's encoding/json rules: struct fields in declaration order, map keys
// sorted, `omitempty` fields dropped when empty, non-omitempty fields present even when empty
// ("endpoints":null, "containers":null), non-pointer metav1.Time emitted as null when unset
// ("creationTimestamp":null, "lastProbeTime":null). Normalize() replays those rules on JSON so
// our responses match a real server byte for byte in field order and null/empty handling.
//
// The same table carries strategic-merge-patch metadata (patchStrategy/patchMergeKey tags).
#include <optional>
#include <string>
#include <string_view>

#include "tests/apiserver/json.h"

namespace apiserver::schema {

// Patch metadata of a field: how strategic merge patch treats a list.
struct PatchMeta {
  bool merge = false;          // patchStrategy includes "merge"
  bool retain_keys = false;    // patchStrategy includes "retainKeys"
  std::string merge_key;       // patchMergeKey ("" for lists of primitives)
  std::string elem_type;       // struct type of list elements / map values ("" if primitive)
  std::string type;            // struct type of the field itself ("" if not a struct)
};

// Normalizes `in` as Go type `type` (e.g. "Pod", "Node"). Unknown fields are dropped, like the
// real server's decoder does (fields typed `any` in the table are kept as sent).
Json Normalize(const Json& in, std::string_view type);

// Patch metadata of field `field` inside struct `type` (nullopt if unknown).
std::optional<PatchMeta> FieldMeta(std::string_view type, std::string_view field);

// True if the type is known to the table.
bool HasType(std::string_view type);

}  // namespace apiserver::schema

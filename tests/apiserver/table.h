#pragma once
// Server-side printing (meta.k8s.io/v1 Table), as kubectl's human-readable `get` asks for.
#include <string>
#include <vector>

#include "tests/apiserver/json.h"

namespace apiserver {

// `objects` are full objects with kind/apiVersion; `include` is Metadata, Object or None.
Json ToTable(const std::string& resource, const std::vector<Json>& objects,
             const std::string& list_rv, const std::string& include);

// Go's duration.HumanDuration of the age of an RFC3339 timestamp.
std::string HumanAge(const std::string& rfc3339);

}  // namespace apiserver

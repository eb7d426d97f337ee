#pragma once
#include <string>
#include <string_view>

#include "tests/apiserver/json.h"

namespace apiserver {

// Converts a YAML document (as in application/apply-patch+yaml) to JSON. Plain scalars are
// typed like sigs.k8s.io/yaml does (null, bools, integers, floats), quoted ones stay strings.
bool YamlToJson(std::string_view yaml, Json* out, std::string* error);

}  // namespace apiserver

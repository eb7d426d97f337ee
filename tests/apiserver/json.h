#pragma once
// JSON type of the test API server: insertion-ordered so output field order can follow the Go
// struct order of the real API types.
#include <nlohmann/json.hpp>
#include <string>

namespace apiserver {

using Json = nlohmann::ordered_json;

// Compact JSON as Go's encoding/json writes it (no spaces, HTML-safe escaping of <, >, &).
std::string Dump(const Json& j);
// Indented JSON like Go's json.MarshalIndent(v, "", "  ").
std::string DumpPretty(const Json& j);

}  // namespace apiserver

#pragma once
// The three PATCH flavours of the API server: JSON merge patch (RFC 7386), strategic merge
// patch (k8s.io/apimachinery/pkg/util/strategicpatch, with the patch metadata from schema.h)
// and JSON patch (RFC 6902).
#include <string>
#include <string_view>

#include "tests/apiserver/json.h"

namespace apiserver {

Json ApplyMergePatch(const Json& original, const Json& patch);

// `type` is the Go type of `original` (e.g. "Pod"); unknown types merge like a merge patch.
// Throws std::invalid_argument on an invalid directive.
Json ApplyStrategicMergePatch(const Json& original, const Json& patch, std::string_view type);

// Throws std::invalid_argument with a message on failure.
Json ApplyJsonPatch(const Json& original, const Json& patch);

// Parses JSON the way the API server reports errors: Go's encoding/json messages
// ("unexpected end of JSON input", "invalid character 'x' looking for beginning of value").
bool ParseJson(std::string_view body, Json* out, std::string* error);

}  // namespace apiserver

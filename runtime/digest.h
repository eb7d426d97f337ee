#pragma once
#include <string>
#include <string_view>

#include "base/result.h"

namespace runtime {

using base::Result;

std::string Sha256Hex(std::string_view data);
// Streams a file through sha256.
Result<std::string> Sha256File(const std::string& path);

}  // namespace runtime

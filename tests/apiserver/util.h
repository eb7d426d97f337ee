#pragma once
// Small helpers of the test API server: ids, random name suffixes, base64, times.
#include <chrono>
#include <string>
#include <string_view>

namespace apiserver {

std::string NewUid();  // uuid v4
// utilrand.String(n): lowercase consonants and digits, as used for generateName suffixes.
std::string RandomSuffix(size_t n);
std::string Base64Encode(std::string_view in);
std::string Base64UrlEncode(std::string_view in);  // unpadded (JWT)
bool Base64Decode(std::string_view in, std::string* out);
std::string NowRfc3339();
std::string NowRfc3339Micro();
std::string Rfc3339(std::chrono::system_clock::time_point t);
std::string UrlDecode(std::string_view in);
std::string UrlEncode(std::string_view in);

}  // namespace apiserver

#include "tests/apiserver/json.h"

namespace apiserver {
namespace {

// Go's encoding/json escapes <, > and & (and U+2028/U+2029) inside strings; outside strings
// these bytes cannot occur, so a plain pass over the output is enough.
std::string GoEscape(std::string s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '<') out += "\\u003c";
    else if (c == '>') out += "\\u003e";
    else if (c == '&') out += "\\u0026";
    else if (c == '\xe2' && i + 2 < s.size() && s[i + 1] == '\x80' &&
             (s[i + 2] == '\xa8' || s[i + 2] == '\xa9')) {
      out += s[i + 2] == '\xa8' ? "\\u2028" : "\\u2029";
      i += 2;
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

std::string Dump(const Json& j) {
  return GoEscape(j.dump(-1, ' ', false, Json::error_handler_t::replace));
}

std::string DumpPretty(const Json& j) {
  return GoEscape(j.dump(2, ' ', false, Json::error_handler_t::replace));
}

}  // namespace apiserver

#include "runtime/image_ref.h"

#include <cctype>

namespace runtime {
namespace {

bool ValidPathComponent(std::string_view c) {
  // [a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*
  if (c.empty()) return false;
  auto alnum = [](char ch) { return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9'); };
  if (!alnum(c.front()) || !alnum(c.back())) return false;
  for (size_t i = 0; i < c.size(); ++i) {
    char ch = c[i];
    if (alnum(ch)) continue;
    if (ch == '.' || ch == '_' || ch == '-') {
      if (ch == '.' && !alnum(c[i + 1])) return false;
      continue;
    }
    return false;
  }
  return true;
}

bool ValidTag(std::string_view t) {
  if (t.empty() || t.size() > 128) return false;
  auto word = [](char ch) { return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_'; };
  if (!word(t[0])) return false;
  for (char ch : t) {
    if (!word(ch) && ch != '.' && ch != '-') return false;
  }
  return true;
}

bool ValidDomain(std::string_view d) {
  if (d.empty()) return false;
  for (char ch : d) {
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '.' && ch != '-' && ch != ':' &&
        ch != '[' && ch != ']') {
      return false;
    }
  }
  return true;
}

}  // namespace

bool IsSha256Hex(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

std::string ImageIdFromRef(std::string_view ref) {
  if (ref.substr(0, 7) == "sha256:") ref.remove_prefix(7);
  return IsSha256Hex(ref) ? std::string(ref) : std::string();
}

std::string ImageRef::String() const {
  std::string s = Repository();
  if (!tag.empty()) s += ":" + tag;
  if (!digest.empty()) s += "@" + digest;
  return s;
}

Result<ImageRef> ParseImageRef(std::string_view ref) {
  std::string orig(ref);
  auto bad = [&](const std::string& why) {
    return base::Fail("invalid image name \"" + orig + "\": " + why);
  };
  if (ref.empty()) return bad("empty reference");
  if (IsSha256Hex(ref)) return bad("a bare image id is not a repository name");
  ImageRef out;
  size_t at = ref.find('@');
  if (at != std::string_view::npos) {
    std::string_view dg = ref.substr(at + 1);
    if (dg.substr(0, 7) != "sha256:" || !IsSha256Hex(dg.substr(7))) return bad("bad digest");
    out.digest = std::string(dg);
    ref = ref.substr(0, at);
  }
  size_t slash = ref.find('/');
  std::string_view first = ref.substr(0, slash);
  std::string_view rest = ref;
  if (slash != std::string_view::npos &&
      (first.find('.') != std::string_view::npos || first.find(':') != std::string_view::npos ||
       first == "localhost")) {
    out.domain = std::string(first);
    rest = ref.substr(slash + 1);
  } else {
    out.domain = "docker.io";
  }
  if (out.domain == "index.docker.io") out.domain = "docker.io";
  if (!ValidDomain(out.domain)) return bad("bad registry host");
  size_t colon = rest.rfind(':');
  if (colon != std::string_view::npos && rest.find('/', colon) == std::string_view::npos) {
    out.tag = std::string(rest.substr(colon + 1));
    rest = rest.substr(0, colon);
    if (!ValidTag(out.tag)) return bad("bad tag \"" + out.tag + "\"");
  }
  if (rest.empty()) return bad("empty repository");
  size_t start = 0;
  while (true) {
    size_t s = rest.find('/', start);
    std::string_view comp = rest.substr(start, s == std::string_view::npos ? s : s - start);
    if (!ValidPathComponent(comp)) {
      return bad("repository name must be lowercase alphanumerics with . _ - separators");
    }
    if (s == std::string_view::npos) break;
    start = s + 1;
  }
  out.path = std::string(rest);
  if (out.domain == "docker.io" && out.path.find('/') == std::string::npos) {
    out.path = "library/" + out.path;
  }
  if (out.tag.empty() && out.digest.empty()) out.tag = "latest";
  return out;
}

}  // namespace runtime

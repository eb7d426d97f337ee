#include "tests/apiserver/patch.h"

#include <stdexcept>

#include "tests/apiserver/schema.h"

namespace apiserver {
namespace {

const char kPatchDirective[] = "$patch";
const char kRetainKeys[] = "$retainKeys";
const char kSetElementOrder[] = "$setElementOrder/";
const char kDeleteFromPrimitiveList[] = "$deleteFromPrimitiveList/";

bool StartsWith(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

// Removes patch directives from a value that replaces the original wholesale.
Json StripDirectives(const Json& v) {
  if (v.is_object()) {
    Json out = Json::object();
    for (const auto& [k, e] : v.items()) {
      if (k == kPatchDirective || k == kRetainKeys || StartsWith(k, kSetElementOrder) ||
          StartsWith(k, kDeleteFromPrimitiveList))
        continue;
      out[k] = StripDirectives(e);
    }
    return out;
  }
  if (v.is_array()) {
    Json out = Json::array();
    for (const auto& e : v) {
      if (e.is_object() && e.size() == 1 && e.contains(kPatchDirective)) continue;
      out.push_back(StripDirectives(e));
    }
    return out;
  }
  return v;
}

Json MergeMap(const Json& original, const Json& patch, const std::string& type);

Json MergeValue(const Json* original, const Json& patch, const std::string& type) {
  if (patch.is_object()) {
    if (original && original->is_object()) return MergeMap(*original, patch, type);
    static const Json kEmpty = Json::object();
    return MergeMap(kEmpty, patch, type);
  }
  return StripDirectives(patch);
}

bool SameKey(const Json& a, const Json& b, const std::string& key) {
  auto ia = a.find(key);
  auto ib = b.find(key);
  return ia != a.end() && ib != b.end() && *ia == *ib;
}

Json MergeList(const Json& original, const Json& patch, const schema::PatchMeta& meta) {
  if (!original.is_array()) return StripDirectives(patch);
  // A {"$patch":"replace"} element makes the rest of the patch list the new list.
  for (const auto& e : patch) {
    if (e.is_object() && e.value(kPatchDirective, "") == "replace")
      return StripDirectives(patch);
  }
  Json out = original;
  if (meta.merge_key.empty()) {
    // Primitive list with merge strategy: union, patch items appended.
    for (const auto& e : patch) {
      if (e.is_object()) continue;
      bool found = false;
      for (const auto& o : out) found = found || o == e;
      if (!found) out.push_back(e);
    }
    return out;
  }
  for (const auto& e : patch) {
    if (!e.is_object()) {
      out.push_back(e);
      continue;
    }
    std::string directive = e.value(kPatchDirective, "");
    if (!e.contains(meta.merge_key)) {
      if (!directive.empty()) continue;
      throw std::invalid_argument("map: " + e.dump() + " does not contain declared merge key: " +
                                  meta.merge_key);
    }
    size_t idx = out.size();
    for (size_t i = 0; i < out.size(); ++i) {
      if (out[i].is_object() && SameKey(out[i], e, meta.merge_key)) {
        idx = i;
        break;
      }
    }
    if (directive == "delete") {
      if (idx < out.size()) out.erase(out.begin() + static_cast<std::ptrdiff_t>(idx));
      continue;
    }
    if (idx < out.size()) {
      out[idx] = MergeMap(out[idx], e, meta.elem_type);
    } else {
      static const Json kEmpty = Json::object();
      out.push_back(MergeMap(kEmpty, e, meta.elem_type));
    }
  }
  return out;
}

// Orders `list` as `order` says (by merge key, or by value for primitives); elements not named
// by the order keep their relative place after the named ones.
Json ApplyElementOrder(const Json& list, const Json& order, const std::string& key) {
  if (!list.is_array() || !order.is_array()) return list;
  Json out = Json::array();
  std::vector<bool> used(list.size(), false);
  for (const auto& o : order) {
    for (size_t i = 0; i < list.size(); ++i) {
      if (used[i]) continue;
      bool match = key.empty() ? list[i] == o
                               : (list[i].is_object() && o.is_object() && SameKey(list[i], o, key));
      if (match) {
        out.push_back(list[i]);
        used[i] = true;
        break;
      }
    }
  }
  for (size_t i = 0; i < list.size(); ++i) {
    if (!used[i]) out.push_back(list[i]);
  }
  return out;
}

Json MergeMap(const Json& original, const Json& patch, const std::string& type) {
  std::string directive = patch.value(kPatchDirective, "");
  if (directive == "replace") return StripDirectives(patch);
  if (directive == "delete") return Json::object();
  if (!directive.empty() && directive != "merge")
    throw std::invalid_argument("Unknown patch type: " + directive + " in map: " + patch.dump());
  Json out = original;
  for (const auto& [key, value] : patch.items()) {
    if (key == kPatchDirective || key == kRetainKeys || StartsWith(key, kSetElementOrder))
      continue;
    if (StartsWith(key, kDeleteFromPrimitiveList)) {
      std::string field = key.substr(sizeof(kDeleteFromPrimitiveList) - 1);
      auto it = out.find(field);
      if (it != out.end() && it->is_array() && value.is_array()) {
        Json kept = Json::array();
        for (const auto& e : *it) {
          bool drop = false;
          for (const auto& d : value) drop = drop || d == e;
          if (!drop) kept.push_back(e);
        }
        *it = kept;
      }
      continue;
    }
    if (value.is_null()) {
      out.erase(key);
      continue;
    }
    auto meta = schema::FieldMeta(type, key);
    auto oit = out.find(key);
    const Json* orig = oit == out.end() ? nullptr : &*oit;
    if (value.is_array()) {
      if (meta && meta->merge && orig) {
        out[key] = MergeList(*orig, value, *meta);
      } else {
        out[key] = StripDirectives(value);
      }
      continue;
    }
    std::string sub_type;
    if (meta) sub_type = meta->type.empty() ? meta->elem_type : meta->type;
    if (value.is_object() && value.value(kPatchDirective, "") == "delete") {
      out.erase(key);
      continue;
    }
    out[key] = MergeValue(orig, value, sub_type);
  }
  // $setElementOrder directives reorder merged lists.
  for (const auto& [key, value] : patch.items()) {
    if (!StartsWith(key, kSetElementOrder)) continue;
    std::string field = key.substr(sizeof(kSetElementOrder) - 1);
    auto meta = schema::FieldMeta(type, field);
    auto it = out.find(field);
    if (it != out.end()) *it = ApplyElementOrder(*it, value, meta ? meta->merge_key : "");
  }
  // $retainKeys drops every field not listed.
  if (auto rk = patch.find(kRetainKeys); rk != patch.end() && rk->is_array()) {
    Json kept = Json::object();
    for (const auto& [k, v] : out.items()) {
      bool keep = false;
      for (const auto& r : *rk) keep = keep || (r.is_string() && r.get<std::string>() == k);
      if (keep) kept[k] = v;
    }
    out = kept;
  }
  return out;
}

}  // namespace

Json ApplyMergePatch(const Json& original, const Json& patch) {
  if (!patch.is_object()) return patch;
  Json out = original.is_object() ? original : Json::object();
  for (const auto& [k, v] : patch.items()) {
    if (v.is_null()) {
      out.erase(k);
    } else {
      auto it = out.find(k);
      out[k] = ApplyMergePatch(it == out.end() ? Json(nullptr) : *it, v);
    }
  }
  return out;
}

Json ApplyStrategicMergePatch(const Json& original, const Json& patch, std::string_view type) {
  if (!patch.is_object()) throw std::invalid_argument("patch is not a JSON object");
  return MergeMap(original, patch, std::string(type));
}

Json ApplyJsonPatch(const Json& original, const Json& patch) {
  if (!patch.is_array()) throw std::invalid_argument("json: cannot unmarshal object into Go value of type jsonpatch.Patch");
  try {
    return original.patch(patch);
  } catch (const std::exception& e) {
    throw std::invalid_argument(e.what());
  }
}

bool ParseJson(std::string_view body, Json* out, std::string* error) {
  try {
    *out = Json::parse(body.begin(), body.end());
    return true;
  } catch (const Json::parse_error& e) {
    if (e.byte >= body.size()) {
      *error = "unexpected end of JSON input";
    } else {
      char c = body[e.byte > 0 ? e.byte - 1 : 0];
      *error = std::string("invalid character '") + c + "' looking for beginning of value";
    }
    return false;
  }
}

}  // namespace apiserver

#include "agent/merge_patch.h"

#include <algorithm>

namespace agent {

using nlohmann::json;

const MergeKeys& PodStatusMergeKeys() {
  // v1.PodStatus: conditions, podIPs and hostIPs merge by key; containerStatuses and
  // initContainerStatuses are atomic lists (no patchMergeKey), so they are sent whole.
  static const MergeKeys k = {{"conditions", "type"},
                              {"podIPs", "ip"},
                              {"hostIPs", "ip"},
                              {"volumeMounts", "mountPath"},
                              {"resourceClaimStatuses", "name"}};
  return k;
}

namespace {

const json* FindByKey(const json& list, const std::string& key, const json& value) {
  for (const auto& e : list) {
    if (e.is_object() && e.contains(key) && e[key] == value) return &e;
  }
  return nullptr;
}

json DiffObjects(const json& orig, const json& mod, const MergeKeys& keys);

// Returns true when the list differs; fills *patch_list and *order.
bool DiffMergeList(const json& orig, const json& mod, const std::string& mk, const MergeKeys& keys,
                   json* patch_list, json* order) {
  *patch_list = json::array();
  *order = json::array();
  bool order_changed = false;
  size_t idx = 0;
  for (const auto& e : mod) {
    if (!e.is_object() || !e.contains(mk)) return false;  // not keyed: caller replaces
    order->push_back({{mk, e[mk]}});
    const json* o = orig.is_array() ? FindByKey(orig, mk, e[mk]) : nullptr;
    if (!o) {
      patch_list->push_back(e);
    } else if (*o != e) {
      json d = DiffObjects(*o, e, keys);
      d[mk] = e[mk];
      patch_list->push_back(d);
    }
    if (orig.is_array() && (idx >= orig.size() || !orig[idx].is_object() || !orig[idx].contains(mk) ||
                            orig[idx][mk] != e[mk]))
      order_changed = true;
    ++idx;
  }
  if (orig.is_array()) {
    if (orig.size() != mod.size()) order_changed = true;
    for (const auto& o : orig) {
      if (!o.is_object() || !o.contains(mk)) continue;
      if (!FindByKey(mod, mk, o[mk])) patch_list->push_back({{mk, o[mk]}, {"$patch", "delete"}});
    }
  }
  return !patch_list->empty() || order_changed;
}

json DiffObjects(const json& orig, const json& mod, const MergeKeys& keys) {
  json patch = json::object();
  for (auto it = mod.begin(); it != mod.end(); ++it) {
    const std::string& k = it.key();
    const json& mv = it.value();
    if (!orig.contains(k)) {
      patch[k] = mv;
      continue;
    }
    const json& ov = orig[k];
    if (ov == mv) continue;
    if (ov.is_object() && mv.is_object()) {
      json d = DiffObjects(ov, mv, keys);
      if (!d.empty()) patch[k] = d;
      continue;
    }
    auto mk = keys.find(k);
    if (mk != keys.end() && mv.is_array() && (ov.is_array() || ov.is_null())) {
      json pl, order;
      bool keyed = true;
      for (const auto& e : mv) {
        if (!e.is_object() || !e.contains(mk->second)) keyed = false;
      }
      if (keyed) {
        if (DiffMergeList(ov, mv, mk->second, keys, &pl, &order)) {
          patch["$setElementOrder/" + k] = order;
          if (!pl.empty()) patch[k] = pl;
        }
        continue;
      }
    }
    patch[k] = mv;
  }
  for (auto it = orig.begin(); it != orig.end(); ++it) {
    if (!mod.contains(it.key())) patch[it.key()] = nullptr;
  }
  return patch;
}

json ApplyObject(const json& orig, const json& patch, const MergeKeys& keys);

json ApplyList(const json& orig, const json& patch_list, const json* order, const std::string& mk,
               const MergeKeys& keys) {
  json result = orig.is_array() ? orig : json::array();
  for (const auto& p : patch_list) {
    if (!p.is_object() || !p.contains(mk)) continue;
    bool del = p.contains("$patch") && p["$patch"] == "delete";
    auto it = std::find_if(result.begin(), result.end(), [&](const json& e) {
      return e.is_object() && e.contains(mk) && e[mk] == p[mk];
    });
    if (del) {
      if (it != result.end()) result.erase(it);
    } else if (it != result.end()) {
      *it = ApplyObject(*it, p, keys);
    } else {
      result.push_back(ApplyObject(json::object(), p, keys));
    }
  }
  if (order && order->is_array()) {
    json sorted = json::array();
    for (const auto& o : *order) {
      for (const auto& e : result) {
        if (e.is_object() && e.contains(mk) && o.contains(mk) && e[mk] == o[mk]) sorted.push_back(e);
      }
    }
    for (const auto& e : result) {
      bool listed = false;
      for (const auto& o : *order) {
        if (e.is_object() && e.contains(mk) && o.contains(mk) && e[mk] == o[mk]) listed = true;
      }
      if (!listed) sorted.push_back(e);
    }
    result = sorted;
  }
  return result;
}

json ApplyObject(const json& orig, const json& patch, const MergeKeys& keys) {
  json result = orig.is_object() ? orig : json::object();
  for (auto it = patch.begin(); it != patch.end(); ++it) {
    const std::string& k = it.key();
    if (k.rfind("$setElementOrder/", 0) == 0) continue;
    if (k == "$patch" || k == "$retainKeys") continue;
    const json& pv = it.value();
    if (pv.is_null()) {
      result.erase(k);
      continue;
    }
    auto mk = keys.find(k);
    if (mk != keys.end() && pv.is_array()) {
      std::string order_key = "$setElementOrder/" + k;
      const json* order = patch.contains(order_key) ? &patch[order_key] : nullptr;
      result[k] = ApplyList(result.contains(k) ? result[k] : json::array(), pv, order, mk->second, keys);
      continue;
    }
    if (pv.is_object() && result.contains(k) && result[k].is_object()) {
      result[k] = ApplyObject(result[k], pv, keys);
    } else if (pv.is_object()) {
      result[k] = ApplyObject(json::object(), pv, keys);
    } else {
      result[k] = pv;
    }
  }
  // Lists only reordered (no element changes) still carry their order directive.
  for (auto it = patch.begin(); it != patch.end(); ++it) {
    const std::string& k = it.key();
    if (k.rfind("$setElementOrder/", 0) != 0) continue;
    std::string field = k.substr(17);
    if (patch.contains(field)) continue;
    auto mk = keys.find(field);
    if (mk == keys.end() || !result.contains(field)) continue;
    result[field] = ApplyList(result[field], json::array(), &it.value(), mk->second, keys);
  }
  return result;
}

}  // namespace

json CreateTwoWayMergePatch(const json& original, const json& modified, const MergeKeys& keys) {
  const json empty = json::object();
  return DiffObjects(original.is_object() ? original : empty, modified.is_object() ? modified : empty, keys);
}

json ApplyStrategicMergePatch(const json& original, const json& patch, const MergeKeys& keys) {
  return ApplyObject(original, patch, keys);
}

}  // namespace agent

#include "tests/apiserver/store.h"

#include <algorithm>

namespace apiserver {
namespace {

std::string NsOf(const Json& obj) {
  if (!obj.contains("metadata")) return "";
  return obj["metadata"].value("namespace", "");
}
std::string NameOf(const Json& obj) {
  if (!obj.contains("metadata")) return "";
  return obj["metadata"].value("name", "");
}

// Sets metadata.resourceVersion where ObjectMeta declares it (after uid), so that output keeps
// Go's field order even for objects that did not have one yet.
void SetRv(Json& obj, int64_t rv) {
  Json& meta = obj["metadata"];
  std::string value = std::to_string(rv);
  if (meta.contains("resourceVersion")) {
    meta["resourceVersion"] = value;
    return;
  }
  static const char* kBefore[] = {"name", "generateName", "namespace", "selfLink", "uid"};
  Json out = Json::object();
  bool placed = false;
  for (auto& [k, v] : meta.items()) {
    bool before = false;
    for (const char* b : kBefore) before = before || k == b;
    if (!placed && !before) {
      out["resourceVersion"] = value;
      placed = true;
    }
    out[k] = v;
  }
  if (!placed) out["resourceVersion"] = value;
  meta = std::move(out);
}

}  // namespace

void Watcher::Offer(const WatchEvent& e) {
  if (e.resource != resource_) return;
  if (!ns_.empty() && NsOf(e.object) != ns_) return;
  bool now = filter_ ? filter_(e.object) : true;
  bool before = false;
  if (!e.old.is_null()) before = filter_ ? filter_(e.old) : true;
  std::string type;
  if (e.type == "ADDED") {
    if (!now) return;
    type = "ADDED";
  } else if (e.type == "DELETED") {
    if (!before && !now) return;
    type = "DELETED";
  } else {
    if (now && before) type = "MODIFIED";
    else if (now) type = "ADDED";
    else if (before) type = "DELETED";
    else return;
  }
  Push(type, e.object);
}

void Watcher::Push(std::string type, Json object) {
  std::lock_guard<std::mutex> lock(mu_);
  queue_.emplace_back(std::move(type), std::move(object));
  cv_.notify_all();
}

std::optional<std::pair<std::string, Json>> Watcher::Next(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return closed_ || !queue_.empty(); });
  if (queue_.empty()) return std::nullopt;
  auto e = std::move(queue_.front());
  queue_.pop_front();
  return e;
}

bool Watcher::HasPending() {
  std::lock_guard<std::mutex> lock(mu_);
  return !queue_.empty();
}

void Watcher::Close() {
  std::lock_guard<std::mutex> lock(mu_);
  closed_ = true;
  cv_.notify_all();
}

bool Watcher::closed() {
  std::lock_guard<std::mutex> lock(mu_);
  return closed_;
}

const Json* Store::Get(const std::string& resource, const std::string& ns,
                       const std::string& name) {
  auto it = objects_.find(resource);
  if (it == objects_.end()) return nullptr;
  auto oit = it->second.find(Key(ns, name));
  return oit == it->second.end() ? nullptr : &oit->second;
}

std::vector<const Json*> Store::List(const std::string& resource, const std::string& ns) {
  std::vector<const Json*> out;
  auto it = objects_.find(resource);
  if (it == objects_.end()) return out;
  for (const auto& [key, obj] : it->second) {
    if (ns.empty() || NsOf(obj) == ns) out.push_back(&obj);
  }
  return out;
}

Json Store::Create(const std::string& resource, Json obj) {
  SetRv(obj, ++rv_);
  objects_[resource][Key(NsOf(obj), NameOf(obj))] = obj;
  Record({rv_, resource, "ADDED", obj, Json(nullptr)});
  return obj;
}

Json Store::Update(const std::string& resource, Json obj) {
  auto& slot = objects_[resource][Key(NsOf(obj), NameOf(obj))];
  Json old = slot;
  SetRv(obj, ++rv_);
  slot = obj;
  Record({rv_, resource, "MODIFIED", obj, old});
  return obj;
}

Json Store::Delete(const std::string& resource, const std::string& ns, const std::string& name) {
  auto& m = objects_[resource];
  auto it = m.find(Key(ns, name));
  if (it == m.end()) return Json(nullptr);
  Json old = it->second;
  Json obj = old;
  m.erase(it);
  SetRv(obj, ++rv_);
  Record({rv_, resource, "DELETED", obj, old});
  return obj;
}

void Store::Record(WatchEvent e) {
  for (auto& [res, w] : watchers_) {
    if (res == e.resource) w->Offer(e);
  }
  if (on_change_) on_change_(e);
  history_.push_back(std::move(e));
  while (history_.size() > history_limit_) {
    compacted_rv_ = history_.front().rv;
    history_.pop_front();
  }
}

bool Store::AddWatcher(const std::shared_ptr<Watcher>& w, const std::string& resource,
                       int64_t from_rv) {
  if (from_rv < compacted_rv_) return false;
  for (const auto& e : history_) {
    if (e.rv > from_rv) w->Offer(e);
  }
  watchers_.emplace_back(resource, w);
  return true;
}

void Store::RemoveWatcher(const std::shared_ptr<Watcher>& w) {
  watchers_.erase(std::remove_if(watchers_.begin(), watchers_.end(),
                                 [&](const auto& p) { return p.second == w; }),
                  watchers_.end());
}

void Store::Compact() {
  history_.clear();
  compacted_rv_ = rv_;
}

}  // namespace apiserver

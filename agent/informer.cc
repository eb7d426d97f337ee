#include "agent/informer.h"

#include <random>

#include "base/log.h"
#include "base/strings.h"

namespace agent {

Informer::Informer(ApiClientPtr client, InformerOptions opts, InformerHandlers handlers)
    : client_(std::move(client)), opts_(std::move(opts)), handlers_(std::move(handlers)) {
  if (opts_.name.empty()) opts_.name = opts_.resource_path;
}

Informer::~Informer() { Stop(); }

void Informer::Start() {
  thread_ = std::thread([this] { Run(); });
}

void Informer::Stop() {
  stop_.store(true);
  cancel_.Cancel();
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::string Informer::KeyOf(const Json& obj) {
  const auto& md = obj.contains("metadata") ? obj["metadata"] : Json::object();
  std::string ns = md.value("namespace", "");
  std::string name = md.value("name", "");
  return ns.empty() ? name : ns + "/" + name;
}

std::vector<Json> Informer::List() const {
  std::lock_guard lk(mu_);
  std::vector<Json> out;
  out.reserve(store_.size());
  for (const auto& [k, v] : store_) out.push_back(v);
  return out;
}

bool Informer::Get(const std::string& key, Json* out) const {
  std::lock_guard lk(mu_);
  auto it = store_.find(key);
  if (it == store_.end()) return false;
  *out = it->second;
  return true;
}

std::string Informer::LastResourceVersion() const {
  std::lock_guard lk(mu_);
  return rv_;
}

std::string Informer::BuildQuery(const InformerOptions& o, bool watch, const std::string& rv,
                                 int timeout_seconds) {
  std::vector<std::string> q;
  if (!o.field_selector.empty()) q.push_back("fieldSelector=" + base::PercentEncode(o.field_selector));
  if (!o.label_selector.empty()) q.push_back("labelSelector=" + base::PercentEncode(o.label_selector));
  if (watch) {
    q.push_back("watch=true");
    q.push_back("allowWatchBookmarks=true");
    q.push_back("resourceVersion=" + base::PercentEncode(rv));
    q.push_back("timeoutSeconds=" + std::to_string(timeout_seconds));
  } else if (!rv.empty()) {
    q.push_back("resourceVersion=" + base::PercentEncode(rv));
  }
  std::string out;
  for (size_t i = 0; i < q.size(); ++i) out += (i ? "&" : "?") + q[i];
  return out;
}

void Informer::SleepFor(std::chrono::milliseconds d) {
  std::unique_lock lk(mu_);
  cv_.wait_for(lk, d, [this] { return stop_.load(); });
}

void Informer::Backoff() {
  backoff_ = backoff_.count() == 0 ? std::chrono::milliseconds(1000)
                                   : std::min(backoff_ * 2, std::chrono::milliseconds(30000));
  SleepFor(backoff_);
}

void Informer::Run() {
  bool first = true;
  while (!stop_.load()) {
    if (!ListAndReplace(first)) {
      Backoff();
      continue;
    }
    first = false;
    backoff_ = std::chrono::milliseconds(0);
    while (!stop_.load()) {
      WatchResult r = WatchOnce();
      if (r == WatchResult::kStop) return;
      if (r == WatchResult::kRelist) break;
    }
  }
}

bool Informer::ListAndReplace(bool first) {
  // First list from the watch cache (resourceVersion=0); after an expiry, a consistent read ("").
  std::string rv = (first && !rv_expired_) ? "0" : "";
  std::string path = opts_.resource_path + BuildQuery(opts_, false, rv, 0);
  auto r = client_->Do("GET", path);
  if (!r) {
    base::log::Warn("list failed, will retry", {{"resource", opts_.name}, {"server", client_->Endpoint()}, {"err", r.error().message}});
    return false;
  }
  if (!r->ok()) {
    base::log::Warn("list refused, will retry", {{"resource", opts_.name}, {"status", DescribeStatus(*r)}});
    return false;
  }
  Json list = Json::parse(r->body, nullptr, false);
  if (!list.is_object() || !list.contains("items")) {
    base::log::Warn("list returned an unexpected body", {{"resource", opts_.name}});
    return false;
  }
  std::map<std::string, Json> fresh;
  if (list["items"].is_array()) {
    for (auto& item : list["items"]) fresh.emplace(KeyOf(item), std::move(item));
  }
  std::map<std::string, Json> old;
  {
    std::lock_guard lk(mu_);
    old.swap(store_);
    store_ = fresh;
    rv_ = list["metadata"].value("resourceVersion", "");
    rv_expired_ = false;
  }
  // Deliver the replace as individual events against the previous cache.
  for (auto& [k, obj] : fresh) {
    auto it = old.find(k);
    if (it == old.end()) {
      if (handlers_.on_add) handlers_.on_add(obj);
    } else {
      if (handlers_.on_update) handlers_.on_update(it->second, obj);
      old.erase(it);
    }
  }
  for (auto& [k, obj] : old) {
    if (handlers_.on_delete) handlers_.on_delete(obj);
  }
  base::log::Debug("listed", {{"resource", opts_.name}, {"items", fresh.size()}, {"resourceVersion", rv_}});
  if (!synced_.exchange(true) && handlers_.on_synced) handlers_.on_synced();
  return true;
}

void Informer::HandleEvent(const std::string& type, Json obj) {
  std::string key = KeyOf(obj);
  std::string rv = obj["metadata"].value("resourceVersion", "");
  Json old;
  bool had = false;
  {
    std::lock_guard lk(mu_);
    if (!rv.empty()) rv_ = rv;
    if (type == "BOOKMARK") return;
    auto it = store_.find(key);
    had = it != store_.end();
    if (had) old = it->second;
    if (type == "DELETED") {
      store_.erase(key);
    } else {
      store_[key] = obj;
    }
  }
  if (type == "DELETED") {
    if (handlers_.on_delete) handlers_.on_delete(obj);
  } else if (had) {
    if (handlers_.on_update) handlers_.on_update(old, obj);
  } else {
    if (handlers_.on_add) handlers_.on_add(obj);
  }
}

Informer::WatchResult Informer::WatchOnce() {
  int timeout = opts_.watch_timeout_seconds;
  if (timeout <= 0) {
    static thread_local std::mt19937 rng(std::random_device{}());
    timeout = 300 + static_cast<int>(rng() % 300);
  }
  std::string rv = LastResourceVersion();
  std::string path = opts_.resource_path + BuildQuery(opts_, true, rv, timeout);
  bool relist = false;
  bool errored = false;
  std::string error_body;
  auto status = client_->Stream(
      path,
      [&](std::string_view line) {
        Json ev = Json::parse(line, nullptr, false);
        if (!ev.is_object() || !ev.contains("type") || !ev.contains("object")) {
          base::log::Warn("watch: undecodable event, restarting watch", {{"resource", opts_.name}});
          return false;
        }
        std::string type = ev["type"].get<std::string>();
        if (type == "ERROR") {
          const Json& st = ev["object"];
          int code = st.value("code", 0);
          if (code == 410 || st.value("reason", "") == "Expired" || st.value("reason", "") == "Gone") {
            base::log::Info("watch: resourceVersion expired, relisting", {{"resource", opts_.name}, {"message", st.value("message", "")}});
            relist = true;
          } else {
            base::log::Warn("watch: error event", {{"resource", opts_.name}, {"code", code}, {"message", st.value("message", "")}});
            errored = true;
          }
          return false;
        }
        HandleEvent(type, std::move(ev["object"]));
        backoff_ = std::chrono::milliseconds(0);
        return !stop_.load();
      },
      &cancel_, &error_body);
  if (stop_.load()) return WatchResult::kStop;
  if (!status) {
    base::log::Warn("watch failed, will retry", {{"resource", opts_.name}, {"err", status.error().message}});
    Backoff();
    return WatchResult::kReconnect;
  }
  if (*status == 410) {
    base::log::Info("watch: resourceVersion expired (410), relisting", {{"resource", opts_.name}});
    rv_expired_ = true;
    return WatchResult::kRelist;
  }
  if (*status < 200 || *status >= 300) {
    ApiResponse resp{*status, error_body, ""};
    base::log::Warn("watch refused, will retry", {{"resource", opts_.name}, {"status", DescribeStatus(resp)}});
    Backoff();
    return WatchResult::kRelist;
  }
  if (relist) {
    rv_expired_ = true;
    return WatchResult::kRelist;
  }
  if (errored) Backoff();
  return WatchResult::kReconnect;
}

}  // namespace agent

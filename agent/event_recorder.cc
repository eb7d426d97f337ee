#include "agent/event_recorder.h"

#include <cstdio>
#include <nlohmann/json.hpp>

#include "base/log.h"

namespace agent {
namespace {

using ojson = nlohmann::ordered_json;

std::string EventNamespace(const ObjectReference& o) {
  return o.namespace_.empty() ? "default" : o.namespace_;
}

std::string CorrelationKey(const ObjectReference& o, std::string_view type, std::string_view reason,
                           std::string_view message) {
  std::string k;
  for (std::string_view part :
       {std::string_view(o.kind), std::string_view(o.namespace_), std::string_view(o.name),
        std::string_view(o.uid), std::string_view(o.api_version), std::string_view(o.field_path),
        type, reason, message}) {
    k.append(part);
    k.push_back('\x1f');
  }
  return k;
}

std::string Describe(const Result<ApiResponse>& r) {
  if (!r) return r.error().message;
  auto j = nlohmann::json::parse(r->body, nullptr, false);
  std::string msg = j.is_object() ? j.value("message", "") : "";
  return "HTTP " + std::to_string(r->status) + (msg.empty() ? "" : ": " + msg);
}

bool Retriable(const Result<ApiResponse>& r) { return !r || r->status == 429 || r->status >= 500; }

}  // namespace

ObjectReference NodeReference(const std::string& node_name) {
  ObjectReference ref;
  ref.kind = "Node";
  ref.name = node_name;
  ref.uid = node_name;
  return ref;
}

ApiEventRecorder::ApiEventRecorder(ApiClientPtr api, Options options, const base::Clock* clock)
    : api_(std::move(api)), options_(std::move(options)), clock_(clock ? clock : &real_clock_) {}

ApiEventRecorder::~ApiEventRecorder() { Stop(); }

void ApiEventRecorder::Start() {
  std::lock_guard lk(mu_);
  if (thread_.joinable() || stopping_) return;
  thread_ = std::thread([this] { Run(); });
}

void ApiEventRecorder::Stop() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
    if (!queue_.empty()) {
      base::log::Info("events not sent at shutdown", {{"count", queue_.size()}});
      queue_.clear();
    }
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool ApiEventRecorder::Flush(std::chrono::milliseconds timeout) {
  std::unique_lock lk(mu_);
  return cv_.wait_for(lk, timeout, [&] { return (queue_.empty() && !busy_) || stopping_; }) &&
         queue_.empty();
}

void ApiEventRecorder::Event(const ObjectReference& object, std::string_view type,
                             std::string_view reason, std::string_view message) {
  Pending p{object, std::string(type), std::string(reason), std::string(message), clock_->Now()};
  {
    std::lock_guard lk(mu_);
    if (stopping_) return;
    if (queue_.size() >= options_.max_queued) {
      // Log the first drop and then every 100th, so a storm cannot flood the log either.
      if (dropped_++ % 100 == 0) {
        base::log::Warn("event queue full, dropping events",
                        {{"dropped", dropped_}, {"reason", p.reason}, {"object", object.name}});
      }
      return;
    }
    queue_.push_back(std::move(p));
  }
  cv_.notify_all();
}

void ApiEventRecorder::Run() {
  std::unique_lock lk(mu_);
  while (true) {
    cv_.wait(lk, [&] { return stopping_ || !queue_.empty(); });
    if (stopping_) break;
    Pending p = std::move(queue_.front());
    queue_.pop_front();
    busy_ = true;
    lk.unlock();
    Send(p);
    lk.lock();
    busy_ = false;
    cv_.notify_all();
  }
}

std::string ApiEventRecorder::BuildEventBody(const ObjectReference& o, std::string_view type,
                                             std::string_view reason, std::string_view message,
                                             const std::string& event_name,
                                             const std::string& component, const std::string& host,
                                             base::WallTime timestamp) {
  ojson ev = ojson::object();
  ev["kind"] = "Event";
  ev["apiVersion"] = "v1";
  ev["metadata"] = ojson::object();
  ev["metadata"]["name"] = event_name;
  ev["metadata"]["namespace"] = EventNamespace(o);
  ev["metadata"]["creationTimestamp"] = nullptr;
  ojson ref = ojson::object();
  auto put = [&](const char* k, const std::string& v) {
    if (!v.empty()) ref[k] = v;
  };
  put("kind", o.kind);
  put("namespace", o.namespace_);
  put("name", o.name);
  put("uid", o.uid);
  put("apiVersion", o.api_version);
  put("resourceVersion", o.resource_version);
  put("fieldPath", o.field_path);
  ev["involvedObject"] = ref;
  ev["reason"] = reason;
  ev["message"] = message;
  ev["source"] = ojson::object();
  ev["source"]["component"] = component;
  if (!host.empty()) ev["source"]["host"] = host;
  std::string ts = base::FormatRfc3339(timestamp);
  ev["firstTimestamp"] = ts;
  ev["lastTimestamp"] = ts;
  ev["count"] = 1;
  ev["type"] = type;
  ev["eventTime"] = nullptr;
  ev["reportingComponent"] = component;
  ev["reportingInstance"] = host;
  return ev.dump();
}

Result<ApiResponse> ApiEventRecorder::DoWithRetry(std::string_view method, const std::string& path,
                                                  const std::string& body,
                                                  std::string_view content_type) {
  auto delay = options_.retry_delay;
  Result<ApiResponse> r = base::Fail("not sent");
  for (int attempt = 1; attempt <= options_.max_attempts; ++attempt) {
    r = api_->Do(method, path, body, content_type);
    if (!Retriable(r) || attempt == options_.max_attempts) break;
    std::unique_lock lk(mu_);
    if (cv_.wait_for(lk, delay, [&] { return stopping_; })) break;
    delay *= 2;
  }
  return r;
}

void ApiEventRecorder::Remember(const std::string& key, Sent sent) {
  auto it = sent_.find(key);
  if (it != sent_.end()) {
    lru_.erase(it->second.lru);
    sent_.erase(it);
  }
  lru_.push_front(key);
  sent.lru = lru_.begin();
  sent_.emplace(key, std::move(sent));
  while (sent_.size() > options_.correlation_cache && !lru_.empty()) {
    sent_.erase(lru_.back());
    lru_.pop_back();
  }
}

void ApiEventRecorder::Send(const Pending& p) {
  const std::string key = CorrelationKey(p.object, p.type, p.reason, p.message);
  auto seen = sent_.find(key);
  if (seen != sent_.end()) {
    // A repeat: bump count and lastTimestamp of the event already in the API.
    Sent s = seen->second;
    nlohmann::json patch = {{"count", s.count + 1},
                            {"lastTimestamp", base::FormatRfc3339(p.timestamp)}};
    auto r = DoWithRetry("PATCH", "/api/v1/namespaces/" + s.namespace_ + "/events/" + s.name,
                         patch.dump(), "application/strategic-merge-patch+json");
    if (r && r->ok()) {
      ++s.count;
      Remember(key, s);
      return;
    }
    if (r && r->status != 404) {
      base::log::Warn("event not updated",
                      {{"event", s.name}, {"reason", p.reason}, {"error", Describe(r)}});
      return;
    }
    // Expired (events live an hour) or never landed: create it afresh below.
  }
  // Name like client-go's: <object name>.<unix nanos in hex>.
  char suffix[32];
  snprintf(suffix, sizeof suffix, ".%llx",
           static_cast<unsigned long long>(base::ToUnixNanos(p.timestamp)));
  std::string name = p.object.name + suffix;
  std::string ns = EventNamespace(p.object);
  std::string body = BuildEventBody(p.object, p.type, p.reason, p.message, name, options_.component,
                                    options_.host, p.timestamp);
  auto r = DoWithRetry("POST", "/api/v1/namespaces/" + ns + "/events", body, "application/json");
  if (r && r->ok()) {
    Remember(key, Sent{name, ns, 1, p.timestamp, {}});
    return;
  }
  base::log::Warn("event not recorded", {{"object", p.object.kind + "/" + p.object.name},
                                         {"reason", p.reason},
                                         {"error", Describe(r)}});
}

}  // namespace agent

#include "tests/agent/fake_api_client.h"

namespace testsupport {

agent::ApiResponse FakeApiClient::Response(int status, std::string body) {
  agent::ApiResponse r;
  r.status = status;
  r.body = std::move(body);
  r.content_type = "application/json";
  return r;
}

std::string FakeApiClient::StatusBody(int code, const std::string& reason,
                                      const std::string& message) {
  // Compact, in the API server's field order; message is expected to be JSON-safe.
  return R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":")" +
         message + R"(","reason":")" + reason + R"(","code":)" + std::to_string(code) + "}";
}

FakeApiClient::Reply FakeApiClient::TransportError(const std::string& message) {
  return tl::unexpected(base::Error{ECONNREFUSED, message});
}

void FakeApiClient::Push(const std::string& method, const std::string& path, int status,
                         std::string body) {
  PushReply(method, path, Response(status, std::move(body)));
}

void FakeApiClient::PushReply(const std::string& method, const std::string& path, Reply reply) {
  std::lock_guard lk(mu_);
  one_shot_[{method, path}].push_back(std::move(reply));
}

void FakeApiClient::SetDefault(const std::string& method, const std::string& path, int status,
                               std::string body) {
  std::lock_guard lk(mu_);
  defaults_.insert_or_assign(Key{method, path}, Reply(Response(status, std::move(body))));
}

void FakeApiClient::SetHandler(Handler h) {
  std::lock_guard lk(mu_);
  handler_ = std::move(h);
}

void FakeApiClient::SetFallback(Reply reply) {
  std::lock_guard lk(mu_);
  fallback_ = std::move(reply);
}

void FakeApiClient::PushStream(const std::string& path, int status,
                               std::vector<std::string> lines) {
  std::lock_guard lk(mu_);
  streams_[path].push_back({status, std::move(lines)});
}

std::vector<RecordedRequest> FakeApiClient::Requests() const {
  std::lock_guard lk(mu_);
  return requests_;
}

std::vector<RecordedRequest> FakeApiClient::Requests(const std::string& method,
                                                     const std::string& path) const {
  std::lock_guard lk(mu_);
  std::vector<RecordedRequest> out;
  for (const auto& r : requests_) {
    if (r.method == method && r.PathOnly() == path) out.push_back(r);
  }
  return out;
}

size_t FakeApiClient::RequestCount() const {
  std::lock_guard lk(mu_);
  return requests_.size();
}

void FakeApiClient::ClearRequests() {
  std::lock_guard lk(mu_);
  requests_.clear();
}

bool FakeApiClient::WaitForRequests(size_t n, std::chrono::milliseconds timeout) const {
  std::unique_lock lk(mu_);
  return cv_.wait_for(lk, timeout, [&] { return requests_.size() >= n; });
}

bool FakeApiClient::WaitFor(const std::function<bool(const std::vector<RecordedRequest>&)>& pred,
                            std::chrono::milliseconds timeout) const {
  std::unique_lock lk(mu_);
  return cv_.wait_for(lk, timeout, [&] { return pred(requests_); });
}

const FakeApiClient::Reply* FakeApiClient::FindLocked(const std::map<Key, Reply>& m,
                                                      const RecordedRequest& r) const {
  auto it = m.find({r.method, r.path});
  if (it == m.end()) it = m.find({r.method, r.PathOnly()});
  return it == m.end() ? nullptr : &it->second;
}

agent::Result<agent::ApiResponse> FakeApiClient::Do(std::string_view method,
                                                    const std::string& path,
                                                    const std::string& body,
                                                    std::string_view content_type) {
  RecordedRequest req{std::string(method), path, body, std::string(content_type)};
  std::optional<Reply> reply;
  Handler handler;
  {
    std::lock_guard lk(mu_);
    requests_.push_back(req);
    cv_.notify_all();
    for (const std::string& p : {req.path, req.PathOnly()}) {
      auto it = one_shot_.find({req.method, p});
      if (it != one_shot_.end() && !it->second.empty()) {
        reply = std::move(it->second.front());
        it->second.pop_front();
        break;
      }
    }
    handler = handler_;
  }
  if (reply) return *reply;
  // The handler runs unlocked so that it may call back into the fake (e.g. Requests()).
  if (handler) {
    if (auto r = handler(req)) return *r;
  }
  std::lock_guard lk(mu_);
  if (const Reply* d = FindLocked(defaults_, req)) return *d;
  if (fallback_) return *fallback_;
  return Response(
      404, StatusBody(404, "NotFound",
                      "fake: no scripted response for " + req.method + " " + req.PathOnly()));
}

agent::Result<int> FakeApiClient::Stream(const std::string& path,
                                         const std::function<bool(std::string_view line)>& on_line,
                                         agent::StreamCancel* cancel, std::string* error_body) {
  std::optional<ScriptedStream> s;
  {
    std::lock_guard lk(mu_);
    requests_.push_back({"GET", path, "", ""});
    cv_.notify_all();
    for (const std::string& p : {path, path.substr(0, path.find('?'))}) {
      auto it = streams_.find(p);
      if (it != streams_.end() && !it->second.empty()) {
        s = std::move(it->second.front());
        it->second.pop_front();
        break;
      }
    }
  }
  if (!s) return 404;
  if (s->status < 200 || s->status >= 300) {
    if (error_body) {
      for (const auto& l : s->lines) *error_body += l;
    }
    return s->status;
  }
  for (const auto& line : s->lines) {
    if (cancel && cancel->cancelled()) break;
    if (!on_line(line)) break;
  }
  return s->status;
}

}  // namespace testsupport

#pragma once
// An in-memory agent::ApiClient for unit tests: records every request and answers from a script.
//
//   auto api = std::make_shared<testsupport::FakeApiClient>();
//   api->Push("POST", "/api/v1/nodes", 409, R"({"kind":"Status",...})");   // one-shot, FIFO
//   api->SetDefault("GET", "/api/v1/nodes/n1", 200, node_json);            // when no one-shot
//   api->SetHandler([](const RecordedRequest& r) -> std::optional<Result<ApiResponse>> {...});
//   ... code under test ...
//   auto reqs = api->Requests();  // method, path (with query), body, content_type
//
// A route matches the request path exactly, or the path without its query string. Lookup order:
// one-shot responses, then the handler, then defaults; anything else gets the fallback (404
// NotFound Status unless changed). Thread-safe: code under test may call from its own threads,
// and WaitForRequests() lets the test wait for them.
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "agent/api_client.h"

namespace testsupport {

struct RecordedRequest {
  std::string method;
  std::string path;  // with query
  std::string body;
  std::string content_type;
  // Path without the query string.
  std::string PathOnly() const { return path.substr(0, path.find('?')); }
};

class FakeApiClient : public agent::ApiClient {
 public:
  using Reply = agent::Result<agent::ApiResponse>;
  using Handler = std::function<std::optional<Reply>(const RecordedRequest&)>;

  static agent::ApiResponse Response(int status, std::string body);
  // A metav1.Status body like the API server's ("NotFound", "Conflict", ...).
  static std::string StatusBody(int code, const std::string& reason, const std::string& message);
  // A transport failure (connection refused, TLS, ...).
  static Reply TransportError(const std::string& message);

  void Push(const std::string& method, const std::string& path, int status, std::string body);
  void PushReply(const std::string& method, const std::string& path, Reply reply);
  void SetDefault(const std::string& method, const std::string& path, int status, std::string body);
  void SetHandler(Handler h);
  void SetFallback(Reply reply);

  // Stream(): lines served to on_line, then `status` is returned.
  void PushStream(const std::string& path, int status, std::vector<std::string> lines);

  std::vector<RecordedRequest> Requests() const;
  // Requests with this method whose path (without query) equals `path`.
  std::vector<RecordedRequest> Requests(const std::string& method, const std::string& path) const;
  size_t RequestCount() const;
  void ClearRequests();
  // Waits until at least `n` requests have been recorded; false on timeout.
  bool WaitForRequests(size_t n, std::chrono::milliseconds timeout) const;
  // Waits until `pred(requests)` holds; false on timeout.
  bool WaitFor(const std::function<bool(const std::vector<RecordedRequest>&)>& pred,
               std::chrono::milliseconds timeout) const;

  agent::Result<agent::ApiResponse> Do(std::string_view method, const std::string& path,
                                       const std::string& body,
                                       std::string_view content_type) override;
  agent::Result<int> Stream(const std::string& path,
                            const std::function<bool(std::string_view line)>& on_line,
                            agent::StreamCancel* cancel, std::string* error_body) override;
  std::string Endpoint() const override { return "fake://api"; }

 private:
  using Key = std::pair<std::string, std::string>;  // method, path
  const Reply* FindLocked(const std::map<Key, Reply>& m, const RecordedRequest& r) const;

  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::vector<RecordedRequest> requests_;
  std::map<Key, std::deque<Reply>> one_shot_;
  std::map<Key, Reply> defaults_;
  Handler handler_;
  std::optional<Reply> fallback_;
  struct ScriptedStream {
    int status;
    std::vector<std::string> lines;
  };
  std::map<std::string, std::deque<ScriptedStream>> streams_;
};

}  // namespace testsupport

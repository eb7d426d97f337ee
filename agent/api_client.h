#pragma once
// The seam between the agent and the kube-apiserver: HTTP/JSON over TLS. Bodies are raw JSON
// strings so that nlohmann/json stays out of this widely included header. Transport failures
// (connect, TLS, protocol) are errors; any HTTP status (including 4xx/5xx) is a response.
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "base/result.h"

namespace agent {

using base::Result;

struct ApiResponse {
  int status = 0;
  std::string body;
  std::string content_type;
  bool ok() const { return status >= 200 && status < 300; }
};

// Lets another thread end a blocking Stream() (shutdown of its socket).
class StreamCancel {
 public:
  void Cancel();
  bool cancelled() const { return cancelled_.load(); }
  // Used by the client implementation: the function that interrupts the current stream.
  void SetInterrupt(std::function<void()> fn);
  void ClearInterrupt();

 private:
  std::atomic<bool> cancelled_{false};
  std::mutex mu_;
  std::function<void()> interrupt_;
};

class ApiClient {
 public:
  virtual ~ApiClient() = default;

  // method: GET, POST, PUT, PATCH, DELETE. path includes the query ("/api/v1/pods?watch=1").
  virtual Result<ApiResponse> Do(std::string_view method, const std::string& path,
                                 const std::string& body = {},
                                 std::string_view content_type = "application/json") = 0;

  // GET with a streamed body: on_line is called for each '\n'-terminated line; returning false
  // ends the stream. Returns the HTTP status once the stream ends (server closed, timeout,
  // cancel). On a non-2xx status the body is collected into *error_body and on_line is not called.
  virtual Result<int> Stream(const std::string& path,
                             const std::function<bool(std::string_view line)>& on_line,
                             StreamCancel* cancel, std::string* error_body) = 0;

  // Human-readable endpoint for logs ("https://10.0.0.1:6443").
  virtual std::string Endpoint() const = 0;
};

using ApiClientPtr = std::shared_ptr<ApiClient>;

// Extracts "reason: message" from a metav1.Status body, or the raw body when it is not one.
std::string DescribeStatus(const ApiResponse& r);

}  // namespace agent

#pragma once
// The network half of container probes and lifecycle hooks, as the kubelet's K:pkg/probe/http and
// K:pkg/probe/tcp do it: one HTTP/1.1 GET (plain or TLS without certificate checks) or one TCP
// connect from cubelet's own network namespace to the pod, bounded by the probe's timeout.
// Plain sockets and poll(); no HTTP library. The pure parts (URL building and resolution, request
// text, response parsing) are exposed for unit tests.
#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"

namespace agent {

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

// An absolute http(s) URL split the way the client needs it.
struct HttpUrl {
  std::string scheme = "http";  // lower case
  std::string authority;        // as written: "10.0.0.5:8080", "[::1]:80", "example.com"
  std::string host;             // without brackets or port
  int port = 80;
  std::string target = "/";     // path and query, escaped as sent on the request line

  std::string String() const { return scheme + "://" + authority + target; }
};

// Go's net.JoinHostPort: brackets around IPv6 literals.
std::string JoinHostPort(const std::string& host, int port);

// The kubelet's formatURL: `path` may carry a query; it is escaped like Go's url.URL.String().
HttpUrl FormatProbeUrl(std::string_view scheme, const std::string& host, int port, std::string_view path);

// A redirect's Location resolved against the URL it came from (RFC 3986 reference resolution);
// nullopt when it is not an http(s) URL.
std::optional<HttpUrl> ResolveLocation(const HttpUrl& base, std::string_view location);

// Go's http.CanonicalHeaderKey ("x-custom-header" -> "X-Custom-Header").
std::string CanonicalHeaderKey(std::string_view key);

// A probe request as the kubelet builds it (K:pkg/probe/http/request.go): header names
// canonicalized, User-Agent "kube-<purpose>/1.32" and Accept "*/*" unless given (an empty Accept
// removes it), a "Host" header becomes the request's Host.
struct HttpProbeRequest {
  HttpUrl url;
  HttpHeaders headers;    // without Host
  std::string host;       // "" = the URL's authority
};
HttpProbeRequest NewProbeRequest(HttpUrl url, const HttpHeaders& headers, std::string_view purpose);

// The bytes of a GET for `url` carrying `req`'s headers (Connection: close, no compression).
std::string RenderRequest(const HttpProbeRequest& req, const HttpUrl& url, const std::string& host);

struct HttpResponse {
  int code = 0;
  HttpHeaders headers;
  std::string body;        // at most the parser's limit
  bool truncated = false;  // more body was there

  std::string Header(std::string_view name) const;  // first value, case-insensitive; "" if absent
};

// Incremental HTTP/1.x response parser: status line, headers, then a Content-Length, chunked or
// read-to-EOF body; 1xx interim responses are skipped. Stops reading once `max_body` bytes of body
// are in (the rest is not needed to judge a probe).
class HttpResponseParser {
 public:
  enum class State { kNeedMore, kDone, kError };
  explicit HttpResponseParser(size_t max_body = 10 * 1024);
  State Feed(std::string_view data);
  State Eof();  // the peer closed the connection
  const HttpResponse& response() const { return resp_; }
  const std::string& error() const { return error_; }

 private:
  enum class Phase { kHead, kLength, kChunkSize, kChunkData, kChunkEnd, kTrailer, kToEof, kDone };
  State Fail(std::string msg);
  State Run();
  bool AppendBody(std::string_view data);  // false once the limit is reached

  size_t max_body_;
  std::string buf_;
  Phase phase_ = Phase::kHead;
  uint64_t left_ = 0;  // bytes left in the body or in the current chunk
  HttpResponse resp_;
  std::string error_;
};

// What one GET with redirects produced: the final response or a Go-style error text
// (`Get "http://10.0.0.5:8080/": dial tcp 10.0.0.5:8080: connect: connection refused`).
struct HttpGetResult {
  std::optional<HttpResponse> response;
  std::string error;
  bool timed_out = false;
};

struct HttpGetOptions {
  std::chrono::milliseconds timeout{1000};  // the whole exchange, redirects included
  // The prober's RedirectChecker: follow redirects only to the same host name (the response of
  // one elsewhere is returned as is), at most 10. Hooks follow any redirect.
  bool follow_non_local_redirects = false;
  size_t max_body = 10 * 1024;
};
HttpGetResult HttpGet(const HttpProbeRequest& req, const HttpGetOptions& opts);

// net.DialTimeout("tcp", host:port): "" on success, else Go's error text
// ("dial tcp 10.0.0.5:80: connect: connection refused", "dial tcp 10.0.0.5:80: i/o timeout").
std::string TcpDial(const std::string& host, int port, std::chrono::milliseconds timeout);

}  // namespace agent

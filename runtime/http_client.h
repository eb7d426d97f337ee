#pragma once
// A small blocking HTTP/1.1 client for registry pulls: GET with headers, http:// and https://
// (OpenSSL, system CA store, SNI, hostname verification), Content-Length and chunked bodies,
// redirects. One connection per request; bodies go to memory or to a file descriptor.
#include <chrono>
#include <map>
#include <string>

#include "base/result.h"

namespace runtime {

using base::Result;

struct HttpResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;                            // when no sink fd was given
  std::string Header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? "" : it->second;
  }
};

struct HttpRequest {
  std::string url;
  std::map<std::string, std::string> headers;
  int body_fd = -1;          // write the body here instead of HttpResponse::body
  int max_redirects = 5;
  std::chrono::seconds timeout{60};  // per socket operation
  bool insecure_skip_verify = false;
};

Result<HttpResponse> HttpGet(const HttpRequest& req);

// "https://host:port/path?q" -> parts; fails on other schemes.
struct Url {
  std::string scheme, host, port, target;
};
Result<Url> ParseUrl(const std::string& url);

}  // namespace runtime

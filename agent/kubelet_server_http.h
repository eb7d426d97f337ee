#pragma once
// A small blocking HTTP/1.1 server (internal to the kubelet server): one accept thread for all
// listeners, one thread per connection (the kubelet API sees a handful of clients: the API
// server's log/exec proxies, metrics scrapers, cubectl), every socket wait bounded by a deadline
// and woken by Stop(). TCP, TLS (OpenSSL on the fd) and unix sockets share the code. Beast is
// used in the .cc only.
#include <openssl/ssl.h>
#include <sys/types.h>

#include <atomic>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "agent/kubelet_server.h"
#include "base/fd.h"
#include "base/result.h"

namespace agent::kserver {

struct HttpRequest {
  std::string method;  // "GET"
  std::string target;  // as received: "/containerLogs/ns/p/c?follow=true"
  std::string path;    // percent-decoded path part
  std::vector<std::pair<std::string, std::string>> query;  // decoded, in order
  std::string authorization;                               // Authorization header
  unsigned version = 11;                                   // 10 or 11
  // All header fields in order, names lower-cased (repeated fields stay separate).
  std::vector<std::pair<std::string, std::string>> headers;

  // First value of a query parameter, nullptr if absent.
  const std::string* Query(std::string_view key) const;
  // First value of a header (name in lower case), "" if absent.
  std::string Header(std::string_view name) const;
  // Every value of a header, in order.
  std::vector<std::string> Headers(std::string_view name) const;
};

// Who is at the other end of the connection.
struct Peer {
  enum class Kind { kPlain, kTls, kLocal };
  Kind kind = Kind::kPlain;
  UserInfo user;         // TLS: verified client cert user (empty name = none); local: root
  std::string why_anon;  // TLS: why the cert did not authenticate
  uid_t uid = static_cast<uid_t>(-1);  // local: SO_PEERCRED uid
};

// The byte stream of a connection after a protocol upgrade (101): TLS or plain, with the bytes
// the HTTP parser had already read in front. Used from the connection's thread only.
class RawConnection {
 public:
  virtual ~RawConnection() = default;
  // Does not wait: > 0 bytes read, 0 at the peer's end of stream, -1 with errno EAGAIN when
  // nothing is there now (poll fd() for POLLIN), -1 with another errno on errors.
  virtual ssize_t ReadSome(char* buf, size_t len) = 0;
  // true: ReadSome has bytes without a wait (TLS records or parser leftovers are buffered), so
  // call it before poll()ing fd().
  virtual bool HasBuffered() const = 0;
  // Writes all of `data`, waiting up to the server's write timeout. false: the peer is gone,
  // too slow, or the server is stopping.
  virtual bool WriteAll(std::string_view data) = 0;
  virtual int fd() const = 0;
  virtual int stop_fd() const = 0;  // POLLIN once the server is stopping
};

class ResponseWriter {
 public:
  virtual ~ResponseWriter() = default;
  // A complete response with Content-Length. false = the client is gone.
  virtual bool Reply(int status, std::string_view content_type, std::string_view body) = 0;
  // A streamed response (chunked on HTTP/1.1); each WriteChunk goes out at once.
  virtual bool BeginStream(int status, std::string_view content_type) = 0;
  virtual bool WriteChunk(std::string_view data) = 0;
  virtual bool EndStream() = 0;
  // For handlers that wait: poll() this fd for POLLRDHUP (client gone) ...
  virtual int socket_fd() const = 0;
  // ... and this one for POLLIN (server stopping).
  virtual int stop_fd() const = 0;
  // Protocol upgrade: sends "101 Switching Protocols" with `headers` (each "Name: value") and
  // hands over the connection, which is closed after the handler returns. nullptr if a
  // response was already started or the write failed.
  virtual RawConnection* Upgrade(const std::vector<std::string>& headers) = 0;
};

using Handler = std::function<void(const HttpRequest&, const Peer&, ResponseWriter&)>;

class HttpServer {
 public:
  HttpServer();
  ~HttpServer();  // Stop()s
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Bind now (so errors come back from KubeletServer::Start) and serve after Start().
  // tls == nullptr: plain HTTP. Returns the bound port.
  base::Result<int> ListenTcp(const std::string& address, int port, SSL_CTX* tls, Handler handler);
  // Unix socket, mode 0600 before it accepts anything; only uid 0 and our own euid get served.
  base::Result<> ListenUnix(const std::string& path, Handler handler);

  base::Result<> Start();
  void Stop();

 private:
  struct Listener {
    base::UniqueFd fd;
    SSL_CTX* tls = nullptr;
    bool unix_socket = false;
    std::string name;  // "127.0.0.1:10248", "/run/cubelet/cubelet.sock"
    Handler handler;
  };
  struct Connection {
    std::thread thread;
    std::atomic<bool> done{false};
  };

  void AcceptLoop();
  void Accept(Listener& l);
  void Serve(Listener& l, base::UniqueFd fd, Connection* self);
  void ReapFinished(bool all);

  std::vector<std::unique_ptr<Listener>> listeners_;
  std::vector<std::string> unix_paths_;
  base::UniqueFd stop_fd_;  // eventfd: readable once stopping
  std::thread accept_thread_;
  std::mutex mu_;
  std::list<std::unique_ptr<Connection>> connections_;
  bool started_ = false;
  bool stopped_ = false;
};

}  // namespace agent::kserver

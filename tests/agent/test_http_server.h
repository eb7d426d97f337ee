#pragma once
// A tiny HTTP/1.1 server on a loopback address for probe tests: one thread, one connection at a
// time. The handler gets the raw request head and returns the raw response bytes; returning
// std::nullopt keeps the connection open without answering (the client must time out).
// With tls = true it serves TLS with a self-signed certificate made on the spot.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace testsupport {

class TestHttpServer {
 public:
  using Handler = std::function<std::optional<std::string>(const std::string& request)>;

  explicit TestHttpServer(Handler h, bool tls = false, const std::string& addr = "127.0.0.1")
      : handler_(std::move(h)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    inet_pton(AF_INET, addr.c_str(), &sa.sin_addr);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || ::listen(fd_, 16) != 0)
      throw std::runtime_error("test server: bind/listen failed on " + addr);
    socklen_t len = sizeof sa;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&sa), &len);
    port_ = ntohs(sa.sin_port);
    if (::pipe(stop_) != 0) throw std::runtime_error("pipe");
    if (tls) MakeTls();
    thread_ = std::thread([this] { Loop(); });
  }

  ~TestHttpServer() {
    char c = 'x';
    (void)!::write(stop_[1], &c, 1);
    thread_.join();
    for (int fd : held_) ::close(fd);
    ::close(fd_);
    ::close(stop_[0]);
    ::close(stop_[1]);
    if (ctx_) SSL_CTX_free(ctx_);
  }

  int port() const { return port_; }
  std::vector<std::string> Requests() const {
    std::lock_guard lk(mu_);
    return requests_;
  }

  static std::string Response(int code, const std::string& body, const std::string& extra_headers = "") {
    return "HTTP/1.1 " + std::to_string(code) + " X\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\n" + extra_headers + "\r\n" + body;
  }

 private:
  void MakeTls() {
    EVP_PKEY* key = EVP_EC_gen("prime256v1");
    X509* cert = X509_new();
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), -60);
    X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
    X509_set_pubkey(cert, key);
    X509_NAME* name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("probe-test"), -1,
                               -1, 0);
    X509_set_issuer_name(cert, name);
    X509_sign(cert, key, EVP_sha256());
    ctx_ = SSL_CTX_new(TLS_server_method());
    SSL_CTX_use_certificate(ctx_, cert);
    SSL_CTX_use_PrivateKey(ctx_, key);
    X509_free(cert);
    EVP_PKEY_free(key);
  }

  void Loop() {
    for (;;) {
      pollfd p[2] = {{fd_, POLLIN, 0}, {stop_[0], POLLIN, 0}};
      if (::poll(p, 2, -1) < 0) continue;
      if (p[1].revents) return;
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      Serve(c);
    }
  }

  void Serve(int c) {
    SSL* ssl = nullptr;
    if (ctx_) {
      ssl = SSL_new(ctx_);
      SSL_set_fd(ssl, c);
      if (SSL_accept(ssl) != 1) {
        SSL_free(ssl);
        ::close(c);
        return;
      }
    }
    std::string req;
    char buf[4096];
    while (req.find("\r\n\r\n") == std::string::npos) {
      pollfd p{c, POLLIN, 0};
      if (!ssl && ::poll(&p, 1, 2000) <= 0) break;
      int n = ssl ? SSL_read(ssl, buf, sizeof buf) : static_cast<int>(::read(c, buf, sizeof buf));
      if (n <= 0) break;
      req.append(buf, static_cast<size_t>(n));
    }
    {
      std::lock_guard lk(mu_);
      requests_.push_back(req);
    }
    auto resp = handler_(req);
    if (!resp) {
      if (ssl) SSL_free(ssl);  // the socket stays open, unanswered
      held_.push_back(c);
      return;
    }
    if (ssl) {
      SSL_write(ssl, resp->data(), static_cast<int>(resp->size()));
      SSL_shutdown(ssl);
      SSL_free(ssl);
    } else {
      (void)!::write(c, resp->data(), resp->size());
    }
    ::close(c);
  }

  Handler handler_;
  int fd_ = -1;
  int port_ = 0;
  int stop_[2] = {-1, -1};
  SSL_CTX* ctx_ = nullptr;
  std::vector<int> held_;
  mutable std::mutex mu_;
  std::vector<std::string> requests_;
  std::thread thread_;
};

}  // namespace testsupport

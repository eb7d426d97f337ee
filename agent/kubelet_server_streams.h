#pragma once
// Socket streams for the kubelet server's Beast code (internal; include only from .cc files that
// already pay for Beast): a non-blocking fd, plain or with OpenSSL on it, exposed as a Beast
// SyncReadStream/SyncWriteStream. Every wait is bounded by a deadline and also wakes when the
// server's stop eventfd becomes readable, so Stop() never waits for a slow client.
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <boost/beast/core.hpp>
#include <cerrno>
#include <chrono>
#include <climits>
#include <string>

namespace agent::kserver {

namespace beast = boost::beast;
namespace net = boost::asio;
using StreamClock = std::chrono::steady_clock;

// Deadline-bounded waits on a non-blocking socket; every wait also wakes on the stop eventfd.
class StreamBase {
 public:
  StreamBase(int fd, int stop_fd) : fd_(fd), stop_fd_(stop_fd) {}
  void set_deadline(StreamClock::time_point d) { deadline_ = d; }
  int fd() const { return fd_; }

 protected:
  beast::error_code Wait(short events) {
    for (;;) {
      auto now = StreamClock::now();
      if (now >= deadline_) return net::error::timed_out;
      auto ms = std::chrono::ceil<std::chrono::milliseconds>(deadline_ - now).count();
      pollfd p[2] = {{fd_, events, 0}, {stop_fd_, POLLIN, 0}};
      int r = poll(p, 2, static_cast<int>(std::min<int64_t>(ms, INT_MAX)));
      if (r < 0) {
        if (errno == EINTR) continue;
        return beast::error_code(errno, beast::system_category());
      }
      if (p[1].revents) return net::error::operation_aborted;
      if (p[0].revents) return {};  // ready, or POLLERR/POLLHUP: the next I/O call says which
    }
  }

  int fd_;
  int stop_fd_;
  StreamClock::time_point deadline_ = StreamClock::now() + std::chrono::seconds(120);
};

// Plain TCP or unix socket as a Beast SyncReadStream/SyncWriteStream.
class PlainStream : public StreamBase {
 public:
  using StreamBase::StreamBase;

  template <class Buffers>
  size_t read_some(const Buffers& buffers, beast::error_code& ec) {
    ec = {};
    for (auto it = net::buffer_sequence_begin(buffers); it != net::buffer_sequence_end(buffers);
         ++it) {
      net::mutable_buffer b = *it;
      if (b.size() == 0) continue;
      for (;;) {
        ssize_t n = recv(fd_, b.data(), b.size(), MSG_DONTWAIT);
        if (n > 0) return static_cast<size_t>(n);
        if (n == 0) {
          ec = net::error::eof;
          return 0;
        }
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
          ec = beast::error_code(errno, beast::system_category());
          return 0;
        }
        if ((ec = Wait(POLLIN))) return 0;
      }
    }
    return 0;
  }
  template <class Buffers>
  size_t read_some(const Buffers& buffers) {
    beast::error_code ec;
    size_t n = read_some(buffers, ec);
    if (ec) throw beast::system_error(ec);
    return n;
  }

  template <class Buffers>
  size_t write_some(const Buffers& buffers, beast::error_code& ec) {
    ec = {};
    iovec iov[16];
    int n_iov = 0;
    for (auto it = net::buffer_sequence_begin(buffers);
         it != net::buffer_sequence_end(buffers) && n_iov < 16; ++it) {
      net::const_buffer b = *it;
      if (b.size() == 0) continue;
      iov[n_iov++] = {const_cast<void*>(b.data()), b.size()};
    }
    if (n_iov == 0) return 0;
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<size_t>(n_iov);
    for (;;) {
      ssize_t n = sendmsg(fd_, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n >= 0) return static_cast<size_t>(n);
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        ec = beast::error_code(errno, beast::system_category());
        return 0;
      }
      if ((ec = Wait(POLLOUT))) return 0;
    }
  }
  template <class Buffers>
  size_t write_some(const Buffers& buffers) {
    beast::error_code ec;
    size_t n = write_some(buffers, ec);
    if (ec) throw beast::system_error(ec);
    return n;
  }

  // One non-blocking read for upgraded connections: > 0, 0 at EOF, -1 with errno.
  ssize_t TryRead(char* buf, size_t len) {
    for (;;) {
      ssize_t n = recv(fd_, buf, len, MSG_DONTWAIT);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EWOULDBLOCK) errno = EAGAIN;
      return n;
    }
  }
  bool HasBuffered() const { return false; }

  void Close() {}
};

// OpenSSL directly on the non-blocking fd (no asio::ssl::stream: fewer templates, and the same
// deadline/stop handling as plain sockets).
class TlsStream : public StreamBase {
 public:
  TlsStream(int fd, int stop_fd, SSL* ssl) : StreamBase(fd, stop_fd), ssl_(ssl) {
    SSL_set_mode(ssl_, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  }

  beast::error_code Handshake(std::string* detail) {
    for (;;) {
      ERR_clear_error();
      int r = SSL_accept(ssl_);
      if (r == 1) return {};
      beast::error_code ec;
      if (Retry(SSL_get_error(ssl_, r), &ec)) continue;
      char buf[256];
      unsigned long e = ERR_get_error();
      if (e) {
        ERR_error_string_n(e, buf, sizeof buf);
        *detail = buf;
      }
      return ec;
    }
  }

  template <class Buffers>
  size_t read_some(const Buffers& buffers, beast::error_code& ec) {
    ec = {};
    for (auto it = net::buffer_sequence_begin(buffers); it != net::buffer_sequence_end(buffers);
         ++it) {
      net::mutable_buffer b = *it;
      if (b.size() == 0) continue;
      for (;;) {
        ERR_clear_error();
        size_t n = 0;
        int r = SSL_read_ex(ssl_, b.data(), b.size(), &n);
        if (r == 1) return n;
        if (!Retry(SSL_get_error(ssl_, r), &ec)) return 0;
      }
    }
    return 0;
  }
  template <class Buffers>
  size_t read_some(const Buffers& buffers) {
    beast::error_code ec;
    size_t n = read_some(buffers, ec);
    if (ec) throw beast::system_error(ec);
    return n;
  }

  // Coalesces the pieces (Beast's chunk framing is three small buffers) into one TLS record.
  template <class Buffers>
  size_t write_some(const Buffers& buffers, beast::error_code& ec) {
    ec = {};
    staging_.clear();
    for (auto it = net::buffer_sequence_begin(buffers); it != net::buffer_sequence_end(buffers);
         ++it) {
      net::const_buffer b = *it;
      size_t room = kMaxRecord - staging_.size();
      if (room == 0) break;
      staging_.append(static_cast<const char*>(b.data()), std::min(room, b.size()));
    }
    if (staging_.empty()) return 0;
    for (;;) {
      ERR_clear_error();
      size_t n = 0;
      int r = SSL_write_ex(ssl_, staging_.data(), staging_.size(), &n);
      if (r == 1) return n;
      if (!Retry(SSL_get_error(ssl_, r), &ec)) return 0;
    }
  }
  template <class Buffers>
  size_t write_some(const Buffers& buffers) {
    beast::error_code ec;
    size_t n = write_some(buffers, ec);
    if (ec) throw beast::system_error(ec);
    return n;
  }

  // One read for upgraded connections that waits only for a TLS write the read needs:
  // > 0, 0 at EOF (close_notify or a peer that just closed), -1 with errno (EAGAIN: no data).
  ssize_t TryRead(char* buf, size_t len) {
    for (;;) {
      ERR_clear_error();
      size_t n = 0;
      int r = SSL_read_ex(ssl_, buf, len, &n);
      if (r == 1) return static_cast<ssize_t>(n);
      int e = SSL_get_error(ssl_, r);
      if (e == SSL_ERROR_WANT_READ) {
        errno = EAGAIN;
        return -1;
      }
      if (e == SSL_ERROR_WANT_WRITE) {
        if (Wait(POLLOUT)) {
          errno = ETIMEDOUT;
          return -1;
        }
        continue;
      }
      if (e == SSL_ERROR_ZERO_RETURN) return 0;
      if (e == SSL_ERROR_SYSCALL) {
        if (errno == EINTR) continue;
        if (errno == 0) return 0;  // closed without close_notify
        return -1;
      }
      errno = ECONNRESET;
      return -1;
    }
  }
  bool HasBuffered() const { return SSL_has_pending(ssl_) == 1; }

  // Sends close_notify without waiting for the peer's.
  void Close() {
    ERR_clear_error();
    SSL_shutdown(ssl_);
  }

 private:
  static constexpr size_t kMaxRecord = 16 * 1024;

  // true: wait done, call again. false: *ec says why the connection is over.
  bool Retry(int ssl_error, beast::error_code* ec) {
    switch (ssl_error) {
      case SSL_ERROR_WANT_READ:
        *ec = Wait(POLLIN);
        return !*ec;
      case SSL_ERROR_WANT_WRITE:
        *ec = Wait(POLLOUT);
        return !*ec;
      case SSL_ERROR_ZERO_RETURN:
        *ec = net::error::eof;
        return false;
      case SSL_ERROR_SYSCALL:
        if (errno == EINTR) return true;
        // A peer that closes without close_notify: treat as end of stream.
        *ec = errno ? beast::error_code(errno, beast::system_category())
                    : beast::error_code(net::error::eof);
        return false;
      default:
        *ec = net::error::connection_reset;
        return false;
    }
  }

  SSL* ssl_;
  std::string staging_;
};

}  // namespace agent::kserver

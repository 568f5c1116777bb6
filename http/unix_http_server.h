// UnixHttpServer: cpp-httplib on a unix socket, serving each connection's one
// request only once all of it has arrived.
//
// cpp-httplib 0.11.4 only binds TCP. Its listen loop serves whatever socket
// Server::svr_sock_ (protected) holds, so UnixHttpServer binds an AF_UNIX
// socket itself and then calls listen_after_bind().
//
// httplib gives each accepted connection a worker thread that reads the
// request as it arrives, so a client that sends its request slowly, or never
// finishes it, holds that worker. UnixHttpServer never lets httplib read from
// the network: a connection gets a worker only once its whole request has
// been received (see RequestFraming). Until then it waits in a "waiting
// room", one thread with an epoll set that reads whatever arrives, within a
// whole-request deadline. Every connection carries exactly one request
// (answered with Connection: close).
//
// Nothing here knows the routes: what a path may send (RequestLimits) and how
// an error reads (ErrorReplyFormat) are set by whoever registers them.
#pragma once

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <utility>

#include "common/status.h"

namespace tenantfs {

// How large a request may be, by path (the request target without its query).
struct RequestLimits {
  // The request line and headers.
  size_t max_head_bytes = 16 * 1024;
  // The body of a path not listed below.
  size_t max_body_bytes = 64 * 1024;
  // Paths with a body limit of their own.
  std::map<std::string, size_t, std::less<>> max_body_bytes_for;
  // Paths whose request is complete with its head: its body, whatever it
  // announces and however much of it arrives, is discarded unread.
  std::set<std::string, std::less<>> head_only;

  size_t max_body(std::string_view path) const;
  // A whole request as sent (head, body, chunked framing) is never larger
  // than its head and body limits: what one waiting connection may cost in
  // memory.
  size_t max_request_bytes(std::string_view path) const;
  size_t max_any_request_bytes() const;
};

// What the first bytes a client sent say about its request.
struct RequestFraming {
  enum class Verdict {
    kIncomplete,  // more bytes are needed
    kComplete,    // the first `length` bytes are the whole request
    kRefused,     // too large or malformed: httplib answers it (4xx) from what came
  };
  Verdict verdict = Verdict::kIncomplete;
  size_t length = 0;  // kComplete only
  // kComplete: `length` is the head only, and the body (whatever arrives of
  // it) is discarded: a RequestLimits::head_only path.
  bool body_ignored = false;
  // kRefused: the head announced a body over its limit (answered 413).
  bool too_large = false;
  // kRefused: what is malformed in a chunked body, e.g. `malformed chunk
  // size "zz"` (answered 400 with it).
  std::string malformed = {};
};

// Decides from `received` (the bytes of a connection so far) whether its
// request is complete. The head ends at the first CRLFCRLF; the body is
// Content-Length bytes, or chunks up to the zero chunk with
// "Transfer-Encoding: chunked" (ChunkedDecoder), or nothing. A head over
// limits.max_head_bytes, a body over its path's limit, a request over its
// head and body limits, an unreadable Content-Length or chunk and another
// transfer coding are refused. A head_only path is complete with its head.
RequestFraming frame_request(std::string_view received, const RequestLimits& limits);

// How the server words the errors it answers itself (408, 413), before any
// route sees the request.
struct ErrorReplyFormat {
  std::string content_type = "text/plain";
  // The body for `message`; the message itself by default.
  std::function<std::string(const std::string& message)> body;
};

// A whole reply (status line, headers, body) with `status_line` ("413
// Payload Too Large") and `message` in `format`. A format that throws
// (it must not) gives a plain-text reply with the status line's text.
std::string error_reply(const ErrorReplyFormat& format, const char* status_line,
                        const std::string& message);

// The reply to a request `framing` refused (413 or 400), from the bytes
// `received` of it: the message names the path (its first 100 bytes, as
// the client sent them) and the limit, or what is malformed.
std::string refusal_reply(std::string_view received, const RequestFraming& framing,
                          const RequestLimits& limits, const ErrorReplyFormat& format);

class UnixHttpServer : public httplib::Server {
 public:
  // Worker threads: they only ever run requests that have fully arrived, but
  // a request may hold one for as long as its handler takes.
  static constexpr size_t kWorkerThreads = 32;
  // Connections whose request is still arriving. Beyond this, the oldest is
  // closed; the bound is lowered to half the open-file limit when that is
  // smaller.
  static constexpr size_t kMaxWaitingConnections = 1024;

  UnixHttpServer();

  // Creates the socket's directory (mode 0700) when missing, refuses one that
  // others may write to, refuses a socket another process still serves on,
  // replaces a stale socket file, binds and listens
  // with a large backlog (clients may open many connections at once). The
  // socket file is mode 0600. Call before any thread is started: the process
  // umask is changed for the duration of bind().
  Status bind_unix(const std::string& path);

  // How long a client has to send its whole request, from when serve takes
  // up the connection, and again to read the whole reply. A request not
  // complete by then is answered 408 (when anything of it came) and closed.
  // Set before listening.
  void set_request_timeout(std::chrono::milliseconds timeout) { request_timeout_ = timeout; }

  // The limits requests are framed with. Set before listening.
  void set_request_limits(RequestLimits limits) { limits_ = std::move(limits); }

  // The wording of the 408 and 413 replies. Set before listening.
  void set_error_reply_format(ErrorReplyFormat format) { error_format_ = std::move(format); }

 private:
  class Dispatcher;

  // Runs in a worker for each accepted connection (httplib's listen loop
  // enqueues it): serves the request when it is already complete, otherwise
  // hands the connection to the waiting room.
  bool process_and_close_socket(socket_t sock) override;
  // Answers the request held in `received` on `fd`, then closes `fd` (or
  // lets the waiting room drain what the client still sends of a refused
  // request, so that it reads the answer rather than a reset).
  void answer(int fd, std::string received, RequestFraming framing);

  std::chrono::milliseconds request_timeout_{std::chrono::seconds(10)};
  RequestLimits limits_;
  ErrorReplyFormat error_format_;
  // The task queue of the running listen (owned by httplib, which deletes it
  // when listen returns, after its shutdown() has stopped every thread that
  // uses it).
  std::atomic<Dispatcher*> dispatcher_{nullptr};
};

}  // namespace tenantfs

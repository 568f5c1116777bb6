// The HTTP side of `serve`: cpp-httplib on a unix socket, with the Docker
// plugin routes wired to a VolumeDriver.
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
#pragma once

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

#include "common/status.h"
#include "plugin/authz.h"
#include "plugin/volume_driver.h"

namespace tenantfs {

// Docker plugin requests are a few hundred bytes; larger bodies are refused
// (413 with an Err) before they are parsed. Authorization requests carry
// whole API requests and may reach kMaxAuthzBodyBytes (authz.h).
inline constexpr size_t kMaxRequestBodyBytes = 64 * 1024;
// The request line and headers; Docker sends about 200 bytes.
inline constexpr size_t kMaxRequestHeadBytes = 16 * 1024;
// A whole request as sent (head, body, chunked framing) is never larger than
// its head and body limits: what one waiting connection may cost in memory.
inline constexpr size_t kMaxRequestBytes = kMaxRequestHeadBytes + kMaxRequestBodyBytes;
inline constexpr size_t kMaxAuthzRequestBytes = kMaxRequestHeadBytes + kMaxAuthzBodyBytes;

// The media type of every plugin reply.
inline constexpr const char kPluginContentType[] = "application/vnd.docker.plugins.v1+json";

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
  // it) is discarded. Only the authorization response phase, which is
  // answered from nothing but its endpoint, is framed this way: its body
  // holds Docker's whole API response, of any size.
  bool body_ignored = false;
  // kRefused: the head announced a body over its limit (answered 413).
  bool too_large = false;
};

// Decides from `received` (the bytes of a connection so far) whether its
// request is complete. The head ends at the first CRLFCRLF; the body is
// Content-Length bytes, or chunks up to the zero chunk with
// "Transfer-Encoding: chunked", or nothing. A head over kMaxRequestHeadBytes,
// a body over its limit (kMaxAuthzBodyBytes for /AuthZPlugin.AuthZReq,
// kMaxRequestBodyBytes otherwise), a request over its head and body limits,
// an unreadable Content-Length and another transfer coding are refused.
// /AuthZPlugin.AuthZRes is complete with its head (body_ignored).
RequestFraming frame_request(std::string_view received);

class UnixHttpServer : public httplib::Server {
 public:
  // Worker threads: they only ever run requests that have fully arrived, but
  // a Mount may hold one for as long as the mapper takes to start.
  static constexpr size_t kWorkerThreads = 32;
  // Connections whose request is still arriving. Beyond this, the oldest is
  // closed; the bound is lowered to half the open-file limit when that is
  // smaller.
  static constexpr size_t kMaxWaitingConnections = 1024;

  UnixHttpServer();

  // Creates the socket's directory (mode 0700) when missing, refuses one that
  // others may write to, refuses a socket another process still serves on,
  // replaces a stale socket file, binds and listens
  // with a large backlog (Docker may open many connections at once). The
  // socket file is mode 0600. Call before any thread is started: the process
  // umask is changed for the duration of bind().
  Status bind_unix(const std::string& path);

  // How long a client has to send its whole request, from when serve takes
  // up the connection, and again to read the whole reply. A request not
  // complete by then is answered 408 (when anything of it came) and closed.
  // Set before listening.
  void set_request_timeout(std::chrono::milliseconds timeout) { request_timeout_ = timeout; }

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
  // The task queue of the running listen (owned by httplib, which deletes it
  // when listen returns, after its shutdown() has stopped every thread that
  // uses it).
  std::atomic<Dispatcher*> dispatcher_{nullptr};
};

// Adds /Plugin.Activate, /VolumeDriver.* and /AuthZPlugin.* routes, the body
// limit and one log line per request (endpoint, volume, outcome, duration;
// for authorization, denials and decisions about tenantfs volumes). `driver`
// and `authorizer` must outlive the server. Time limits are
// UnixHttpServer's (set_request_timeout).
void register_plugin_routes(httplib::Server& server, VolumeDriver& driver, Authorizer& authorizer);

}  // namespace tenantfs

// UnixHttpClient: a small blocking HTTP/1.1 client over an AF_UNIX stream
// socket, for talking to `tenantfs serve` (the admin CLI, integration tests).
//
// One request per connection ("Connection: close"): the admin traffic is a
// handful of calls, so keep-alive would only add state. Replies may carry a
// Content-Length body, a chunked body, or a body delimited by the server
// closing the connection.
//
// Errors: a Status is returned only when no HTTP reply was obtained
// (transport failure, timeout, malformed or oversized reply). kNotFound means
// nobody listens at the path (the socket file is missing, or stale and
// refusing connections); kIOError covers the rest. An HTTP error status
// (4xx/5xx) is a successful call: look at HttpResponse::status.
//
// Thread-safety: a UnixHttpClient holds only configuration; const methods may
// be called concurrently from several threads, each call uses its own socket.
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <string>

#include "common/status.h"

namespace tenantfs {

struct HttpResponse {
  int status = 0;      // e.g. 200
  std::string reason;  // e.g. "OK"
  // Header names lower-cased; a repeated header keeps its last value.
  std::map<std::string, std::string> headers;
  std::string body;  // de-chunked
};

struct UnixHttpOptions {
  // Bounds the wait for the server to accept the connection.
  std::chrono::milliseconds connect_timeout{5000};
  // Bounds the whole exchange after connecting: sending the request and
  // receiving the complete reply. Docker allows Create and Mount 2 minutes.
  std::chrono::milliseconds request_timeout{130000};
  // Replies with a larger body are refused rather than buffered.
  size_t max_body_bytes = size_t{64} * 1024 * 1024;
};

class UnixHttpClient {
 public:
  explicit UnixHttpClient(std::string socket_path, UnixHttpOptions options = {});

  // Sends `method target` with `body` (Content-Length set, even when empty)
  // and returns the reply. `target` is the request path, e.g.
  // "/tenantfs/v1/tenants/list".
  Result<HttpResponse> request(const std::string& method, const std::string& target,
                               const std::string& body,
                               const std::string& content_type = "application/json") const;

  Result<HttpResponse> post(const std::string& target, const std::string& body,
                            const std::string& content_type = "application/json") const {
    return request("POST", target, body, content_type);
  }

  const std::string& socket_path() const { return socket_path_; }

 private:
  std::string socket_path_;
  UnixHttpOptions options_;
};

}  // namespace tenantfs

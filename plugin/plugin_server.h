// The HTTP side of `serve`: cpp-httplib on a unix socket, with the Docker
// plugin routes wired to a VolumeDriver.
//
// cpp-httplib 0.11.4 only binds TCP. Its listen loop serves whatever socket
// Server::svr_sock_ (protected) holds, so UnixHttpServer binds an AF_UNIX
// socket itself and then calls listen_after_bind().
#pragma once

#include <httplib.h>

#include <cstddef>
#include <string>

#include "common/status.h"
#include "plugin/volume_driver.h"

namespace tenantfs {

// Docker plugin requests are a few hundred bytes; larger bodies are refused
// (413 with an Err) before they are parsed.
inline constexpr size_t kMaxRequestBodyBytes = 64 * 1024;

// The media type of every plugin reply.
inline constexpr const char kPluginContentType[] = "application/vnd.docker.plugins.v1+json";

class UnixHttpServer : public httplib::Server {
 public:
  // Worker threads: a Mount may hold one for as long as the mapper takes to
  // start, and keep-alive connections hold one while idle.
  static constexpr size_t kWorkerThreads = 32;

  UnixHttpServer();

  // Creates the socket's directory (mode 0700) when missing, refuses one that
  // others may write to, refuses a socket another process still serves on,
  // replaces a stale socket file, binds and listens
  // with a large backlog (Docker may open many connections at once). The
  // socket file is mode 0600. Call before any thread is started: the process
  // umask is changed for the duration of bind().
  Status bind_unix(const std::string& path);
};

// Adds /Plugin.Activate and /VolumeDriver.* routes, body limits, timeouts and
// one log line per request (endpoint, volume, outcome, duration). `driver`
// must outlive the server.
void register_plugin_routes(httplib::Server& server, VolumeDriver& driver);

}  // namespace tenantfs

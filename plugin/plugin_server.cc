#include "plugin/plugin_server.h"

#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "common/unique_fd.h"

namespace tenantfs {

UnixHttpServer::UnixHttpServer() {
  new_task_queue = [] { return new httplib::ThreadPool(kWorkerThreads); };
}

Status UnixHttpServer::bind_unix(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path[0] != '/' || path.size() >= sizeof(addr.sun_path)) {
    return Status::InvalidArgument("SOCKET must be an absolute path of at most " +
                                   std::to_string(sizeof(addr.sun_path) - 1) + " bytes");
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  const std::string dir = path.substr(0, path.rfind('/'));
  if (!dir.empty()) {
    for (size_t pos = 1; pos <= dir.size(); ++pos) {
      if (pos == dir.size() || dir[pos] == '/') {
        std::string p = dir.substr(0, pos);
        if (::mkdir(p.c_str(), 0700) != 0 && errno != EEXIST) {
          return PosixError("create the socket directory " + p, errno);
        }
      }
    }
    struct stat st;
    if (::stat(dir.c_str(), &st) != 0) return PosixError("stat " + dir, errno);
    if (st.st_mode & 022) {
      return Status::FailedPrecondition("the socket directory " + dir +
                                        " is writable by group or others; chmod 0700 it or "
                                        "choose another SOCKET");
    }
  }
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return Status::FailedPrecondition(path +
                                        " exists and is not a socket; remove it or "
                                        "choose another SOCKET");
    }
    // A socket that still accepts belongs to a running serve: taking it over
    // would leave two services on one store. One that refuses is stale.
    UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (probe && ::connect(probe.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
      return Status::FailedPrecondition("another process is serving on " + path +
                                        "; stop it first or choose another SOCKET");
    }
    ::unlink(path.c_str());
  }
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return PosixError("socket", errno);
  mode_t old_umask = ::umask(0177);
  int rc = ::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  int err = errno;
  ::umask(old_umask);
  if (rc != 0) return PosixError("bind " + path, err);
  if (::chmod(path.c_str(), 0600) != 0) return PosixError("chmod " + path, errno);
  if (::listen(fd.get(), SOMAXCONN) != 0) return PosixError("listen " + path, errno);
  svr_sock_ = fd.release();
  return Status::Ok();
}

void register_plugin_routes(httplib::Server& server, VolumeDriver& driver) {
  server.set_payload_max_length(kMaxRequestBodyBytes);
  // A client that stalls mid-request loses its worker after this long.
  server.set_read_timeout(10, 0);
  server.set_write_timeout(10, 0);
  server.set_keep_alive_timeout(5);
  // Lets the accept loop notice stop() promptly.
  server.set_idle_interval(0, 200000);

  auto handler = [&driver](const httplib::Request& req, httplib::Response& res) {
    auto start = std::chrono::steady_clock::now();
    DriverReply reply = driver.handle(req.path, req.body);
    res.status = reply.http_status;
    // Names echoed into an Err may hold invalid UTF-8: replace, never throw.
    res.set_content(reply.body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                    kPluginContentType);
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                  std::chrono::steady_clock::now() - start)
                  .count();
    const double ms = static_cast<double>(us) / 1000.0;
    const std::string volume = reply.volume.empty() ? "-" : reply.volume;
    if (reply.error.empty()) {
      spdlog::info("{} volume={} ok {:.1f} ms", req.path, volume, ms);
    } else if (reply.code == Code::kNotFound && req.path == "/VolumeDriver.Get") {
      // Docker asks Get before every Create: an unknown name is routine.
      spdlog::info("{} volume={} not found {:.1f} ms", req.path, volume, ms);
    } else {
      spdlog::warn("{} volume={} err=\"{}\" {:.1f} ms", req.path, volume, reply.error, ms);
    }
  };
  server.Post(R"(/Plugin\.Activate)", handler);
  server.Post(R"(/VolumeDriver\.[A-Za-z]+)", handler);

  // Failures httplib produces itself (unknown path, body too large, bad
  // request line) still answer with an Err Docker can print.
  server.set_error_handler(
      httplib::Server::HandlerWithResponse([](const httplib::Request& req, httplib::Response& res) {
        if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
        std::string msg;
        switch (res.status) {
          case 404:
            msg = "tenantfs: unknown endpoint " + req.path;
            break;
          case 413:
            msg = "tenantfs: request body too large (limit " +
                  std::to_string(kMaxRequestBodyBytes / 1024) + " KiB)";
            break;
          default:
            msg = "tenantfs: bad request (HTTP " + std::to_string(res.status) + ")";
            break;
        }
        spdlog::warn("{} http {}: {}", req.path.empty() ? "-" : req.path, res.status, msg);
        // The path is the client's and may hold invalid UTF-8: replace, never throw.
        res.set_content(
            nlohmann::json{{"Err", msg}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
            kPluginContentType);
        return httplib::Server::HandlerResponse::Handled;
      }));
}

}  // namespace tenantfs

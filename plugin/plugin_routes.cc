#include "plugin/plugin_routes.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>

#include "http/request_json.h"

namespace tenantfs {
namespace {

// Client bytes echoed into an Err (request paths) may be invalid UTF-8.
std::string err_text(const std::string& message) { return json_text({{"Err", message}}); }

}  // namespace

RequestLimits plugin_request_limits() {
  RequestLimits limits;
  limits.max_head_bytes = kMaxRequestHeadBytes;
  limits.max_body_bytes = kMaxRequestBodyBytes;
  limits.max_body_bytes_for.emplace(kAuthzRequestEndpoint, kMaxAuthzBodyBytes);
  limits.head_only.emplace(kAuthzResponseEndpoint);
  return limits;
}

ErrorReplyFormat plugin_error_reply_format() { return {kPluginContentType, err_text}; }

void register_plugin_routes(UnixHttpServer& server, VolumeDriver& driver, Authorizer& authorizer) {
  server.set_request_limits(plugin_request_limits());
  server.set_error_reply_format(plugin_error_reply_format());
  // UnixHttpServer bounds each request and reply in time (its request
  // timeout) and never leaves a connection open for a second request. Its
  // framing holds each endpoint to its own body limit; this is the largest.
  server.set_payload_max_length(kMaxAuthzBodyBytes);
  // Lets the accept loop notice stop() promptly.
  server.set_idle_interval(0, 200000);

  auto handler = [&driver](const httplib::Request& req, httplib::Response& res) {
    auto start = std::chrono::steady_clock::now();
    DriverReply reply = driver.handle(req.path, req.body);
    res.status = reply.http_status;
    res.set_content(json_text(reply.body), kPluginContentType);
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

  // Docker asks before every API request: only denials and decisions about
  // tenantfs volumes are worth a line at info.
  server.Post(R"(/AuthZPlugin\.AuthZRe[qs])", [&authorizer](const httplib::Request& req,
                                                            httplib::Response& res) {
    auto start = std::chrono::steady_clock::now();
    AuthzReply reply = authorizer.handle(req.path, req.body);
    res.set_content(json_text(reply.body), kPluginContentType);
    const double ms = static_cast<double>(std::chrono::duration_cast<std::chrono::microseconds>(
                                              std::chrono::steady_clock::now() - start)
                                              .count()) /
                      1000.0;
    if (!reply.allow) {
      spdlog::warn("{} user={} {} denied: {} {:.1f} ms", req.path, reply.user, reply.request,
                   reply.msg, ms);
    } else if (reply.checked) {
      spdlog::info("{} user={} {} allowed {:.1f} ms", req.path, reply.user, reply.request, ms);
    } else {
      spdlog::debug("{} user={} {} allowed {:.1f} ms", req.path, reply.user, reply.request, ms);
    }
  });

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
        res.set_content(err_text(msg), kPluginContentType);
        return httplib::Server::HandlerResponse::Handled;
      }));
}

}  // namespace tenantfs

// The Docker plugin routes of `serve`: /Plugin.Activate, /VolumeDriver.* and
// /AuthZPlugin.*, wired to a VolumeDriver and an Authorizer on a
// UnixHttpServer (http/unix_http_server.h), with the request limits and the
// error replies Docker expects.
#pragma once

#include <cstddef>

#include "http/unix_http_server.h"
#include "plugin/authz.h"
#include "plugin/volume_driver.h"

namespace tenantfs {

// Docker plugin requests are a few hundred bytes; larger bodies are refused
// (413 with an Err) before they are parsed. Authorization requests carry
// whole API requests and may reach kMaxAuthzBodyBytes (authz.h).
inline constexpr size_t kMaxRequestBodyBytes = 64 * 1024;
// The request line and headers; Docker sends about 200 bytes.
inline constexpr size_t kMaxRequestHeadBytes = 16 * 1024;

// The media type of every plugin reply.
inline constexpr const char kPluginContentType[] = "application/vnd.docker.plugins.v1+json";

// The limits of every path served on the plugin socket: kMaxRequestBodyBytes,
// kMaxAuthzBodyBytes for /AuthZPlugin.AuthZReq, and /AuthZPlugin.AuthZRes
// complete with its head (its body holds Docker's whole API response, of any
// size, and is answered from nothing but its endpoint).
RequestLimits plugin_request_limits();

// The server's own error replies (408, 413, 400) as Docker reads them:
// {"Err": message} in kPluginContentType, bytes that are not UTF-8 replaced.
ErrorReplyFormat plugin_error_reply_format();

// Sets plugin_request_limits() and plugin_error_reply_format() on
// `server`, and adds /Plugin.Activate, /VolumeDriver.* and /AuthZPlugin.*
// routes with one log line per request (endpoint, volume, outcome, duration;
// for authorization, denials and decisions about tenantfs volumes). `driver`
// and `authorizer` must outlive the server. Time limits are the server's
// (set_request_timeout). Call before listening.
void register_plugin_routes(UnixHttpServer& server, VolumeDriver& driver, Authorizer& authorizer);

}  // namespace tenantfs

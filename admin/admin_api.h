// The admin API: tenant and volume management over HTTP/JSON, served under
// /tenantfs/v1/ on the same unix socket as the Docker VolumeDriver API.
//
// Every endpoint is a POST with a JSON object body (an empty body counts as
// {}), answering JSON with Content-Type application/json:
//
//   tenants/add     {"name","uid","gid","groups":[...]} -> {"tenant":{...}}
//   tenants/list    {}                                -> {"tenants":[{...,"source","users"}]}
//   tenants/remove  {"name"}                          -> {"removed":"NAME"}
//   tenants/allow   {"name","user"}                   -> {"tenant","user","allowed":true}
//   tenants/deny    {"name","user"}                   -> {"tenant","user","allowed":false}
//   admins/allow    {"user"}                          -> {"user","admin":true}
//   admins/deny     {"user"}                          -> {"user","admin":false}
//   admins/list     {}                                -> {"admins":["USER",...]}
//   volumes/list    {}                                -> {"volumes":[{...,"mounts"}]}
//
// A tenant object is {"name","uid","gid","groups","source","created_at"};
// the listing adds "users", the Docker users allowed for it (authorization,
// see authz.h). Unknown tenants cannot be allowed; denying a grant that
// does not exist is a 404. A volume object is {"name","tenant","uid","gid",
// "groups","present_uid","present_gid","mode","cache","readonly","external",
// "path","options","mounts","mount_ids","created_at"} with "mode" an octal
// string ("0700").
//
// Failures answer {"Err":"message"} with 400 (bad request body or value),
// 404 (unknown tenant or endpoint), 409 (conflict with the current state,
// e.g. removing a tenant that still has volumes) or 500 (the store failed);
// a body over the server's limit never reaches a handler (unix_http_server.h
// answers 413). Messages name what was wrong and how to fix it; the CLI
// prints them as they are.
//
// Thread-safety: handlers hold no state of their own; they may run
// concurrently as the store and directory allow (both are thread-safe).
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "admin/tenant_directory.h"
#include "store/store.h"

namespace httplib {
class Server;
}

namespace tenantfs {

inline constexpr std::string_view kAdminPrefix = "/tenantfs/v1/";

// Both pointers must be non-null and outlive the server the routes go to.
struct AdminDeps {
  BindingStore* store;
  TenantDirectory* tenants;
};

struct AdminReply {
  int status = 200;
  nlohmann::json body;  // a JSON object; {"Err": ...} on failure
};

// Handles one admin request. `endpoint` is the path after kAdminPrefix
// (e.g. "tenants/add"). Never throws: malformed input is a 4xx reply.
AdminReply handle_admin_request(const AdminDeps& deps, std::string_view endpoint,
                                std::string_view body);

// Registers POST handlers for every endpoint above, plus a catch-all under
// the prefix answering 404 with the list of endpoints. Routes are added, not
// replaced: the caller's own routes keep working.
void register_admin_routes(httplib::Server& server, AdminDeps deps);

}  // namespace tenantfs

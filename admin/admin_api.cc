#include "admin/admin_api.h"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <exception>
#include <limits>
#include <map>
#include <optional>
#include <set>

#include "http/request_json.h"
#include "admin/volume_json.h"

namespace tenantfs {
namespace {

using nlohmann::json;

constexpr const char* kEndpoints =
    "tenants/add, tenants/list, tenants/remove, "
    "tenants/allow, tenants/deny, admins/allow, "
    "admins/deny, admins/list, volumes/list";

int http_status_for(const Status& st) {
  switch (st.code()) {
    case Code::kInvalidArgument:
      return 400;
    case Code::kNotFound:
      return 404;
    case Code::kAlreadyExists:
    case Code::kFailedPrecondition:
      return 409;
    default:
      return 500;
  }
}

AdminReply error(int status, std::string message) {
  return AdminReply{status, json{{"Err", std::move(message)}}};
}

AdminReply error(const Status& st) { return error(http_status_for(st), st.message()); }

Status reject_unknown_fields(const json& j, std::initializer_list<std::string_view> known) {
  for (const auto& [key, value] : j.items()) {
    if (std::find(known.begin(), known.end(), key) == known.end()) {
      std::string list;
      for (auto k : known) {
        if (!list.empty()) list += ", ";
        list += k;
      }
      return Status::InvalidArgument("unknown field \"" + key + "\" (expected: " + list + ")");
    }
  }
  return Status::Ok();
}

Result<std::string> required_string(const json& j, const char* field) {
  auto it = j.find(field);
  if (it == j.end()) return Status::InvalidArgument(std::string("missing field \"") + field + "\"");
  if (!it->is_string()) {
    return Status::InvalidArgument(std::string("field \"") + field + "\" must be a string");
  }
  return it->get<std::string>();
}

// A non-negative JSON integer that fits 32 bits; range rules beyond that are
// validate_tenant's.
Result<uint32_t> id_value(const json& v, const std::string& what) {
  if (!v.is_number_integer()) {
    return Status::InvalidArgument(what + " must be a non-negative integer");
  }
  if (v.is_number_unsigned()) {
    auto u = v.get<uint64_t>();
    if (u > std::numeric_limits<uint32_t>::max()) {
      return Status::InvalidArgument(what + " " + std::to_string(u) + " is out of range");
    }
    return static_cast<uint32_t>(u);
  }
  auto s = v.get<int64_t>();
  if (s < 0 || s > std::numeric_limits<uint32_t>::max()) {
    return Status::InvalidArgument(what + " " + std::to_string(s) + " is out of range");
  }
  return static_cast<uint32_t>(s);
}

Result<uint32_t> required_id(const json& j, const char* field) {
  auto it = j.find(field);
  if (it == j.end()) return Status::InvalidArgument(std::string("missing field \"") + field + "\"");
  return id_value(*it, std::string("field \"") + field + "\"");
}

json tenant_json(const Tenant& t, const std::string& source) {
  return json{{"name", t.name},        {"uid", t.identity.uid},
              {"gid", t.identity.gid}, {"groups", t.identity.groups},
              {"source", source},      {"created_at", t.created_at}};
}

AdminReply add_tenant(const AdminDeps& deps, const json& req) {
  Status st = reject_unknown_fields(req, {"name", "uid", "gid", "groups"});
  if (!st.ok()) return error(st);
  auto name = required_string(req, "name");
  if (!name.ok()) return error(name.status());
  auto uid = required_id(req, "uid");
  if (!uid.ok()) return error(uid.status());
  auto gid = required_id(req, "gid");
  if (!gid.ok()) return error(gid.status());

  Tenant t;
  t.name = *name;
  t.identity.uid = static_cast<uid_t>(*uid);
  t.identity.gid = static_cast<gid_t>(*gid);
  if (auto it = req.find("groups"); it != req.end() && !it->is_null()) {
    if (!it->is_array()) return error(400, "field \"groups\" must be an array of gids");
    if (it->size() > kMaxTenantGroups) {
      return error(400, "field \"groups\" holds " + std::to_string(it->size()) + " gids, at most " +
                            std::to_string(kMaxTenantGroups) + " are allowed");
    }
    std::set<gid_t> groups;
    for (const auto& g : *it) {
      auto v = id_value(g, "each entry of \"groups\"");
      if (!v.ok()) return error(v.status());
      groups.insert(static_cast<gid_t>(*v));
    }
    // The primary gid is always held; listing it again changes nothing.
    groups.erase(t.identity.gid);
    t.identity.groups.assign(groups.begin(), groups.end());
  }
  st = validate_tenant(t);
  if (!st.ok()) return error(st);

  st = deps.store->add_tenant(t);
  if (st.code() == Code::kAlreadyExists) {
    return error(409, "tenant \"" + t.name +
                          "\" already exists; a tenant's identity never "
                          "changes: pick another name, or remove it first with `tenantfs tenant "
                          "rm " +
                          t.name + "` (possible only while no volume is bound to it)");
  }
  if (!st.ok()) return error(st);
  auto stored = deps.store->get_tenant(t.name);
  spdlog::info("admin: added tenant {} (uid {}, gid {}, {} groups)", t.name, t.identity.uid,
               t.identity.gid, t.identity.groups.size());
  return AdminReply{200, json{{"tenant", tenant_json(stored.ok() ? *stored : t, "registry")}}};
}

AdminReply list_tenants(const AdminDeps& deps, const json& req) {
  Status st = reject_unknown_fields(req, {});
  if (!st.ok()) return error(st);
  auto entries = deps.tenants->list();
  if (!entries.ok()) return error(entries.status());
  auto grants = deps.store->list_grants();
  if (!grants.ok()) return error(grants.status());
  std::map<std::string, json> users_of;
  for (const AccessGrant& g : *grants) {
    auto [it, fresh] = users_of.try_emplace(g.tenant, json::array());
    it->second.push_back(g.user);
  }
  json out = json::array();
  for (const auto& e : *entries) {
    json t = tenant_json(e.tenant, e.source);
    auto it = users_of.find(e.tenant.name);
    t["users"] = it == users_of.end() ? json::array() : it->second;
    out.push_back(std::move(t));
  }
  return AdminReply{200, json{{"tenants", std::move(out)}}};
}

AdminReply remove_tenant(const AdminDeps& deps, const json& req) {
  Status st = reject_unknown_fields(req, {"name"});
  if (!st.ok()) return error(st);
  auto name = required_string(req, "name");
  if (!name.ok()) return error(name.status());
  st = validate_tenant_name(*name);
  if (!st.ok()) return error(st);

  auto registered = deps.store->get_tenant(*name);
  if (!registered.ok()) {
    if (registered.status().code() != Code::kNotFound) return error(registered.status());
    // Not ours to remove; say where the name does come from, if anywhere.
    auto entries = deps.tenants->list();
    if (entries.ok()) {
      for (const auto& e : *entries) {
        if (e.tenant.name == *name && e.source != "registry") {
          return error(409, "tenant \"" + *name + "\" comes from the host's " + e.source +
                                " file, not from the tenantfs registry: remove the user "
                                "there instead");
        }
      }
    }
    return error(404, "unknown tenant \"" + *name + "\": `tenantfs tenant ls` lists tenants");
  }

  // The store refuses while volumes are bound, naming them.
  st = deps.store->remove_tenant(*name);
  if (!st.ok()) return error(st);
  spdlog::info("admin: removed tenant {}", *name);
  return AdminReply{200, json{{"removed", *name}}};
}

// Docker users are the common names of TLS client certificates: any
// printable text; the store checks length and control characters.
Result<std::string> required_user(const json& req) {
  auto user = required_string(req, "user");
  if (!user.ok()) return user.status();
  if (user->empty()) return Status::InvalidArgument("field \"user\" is empty; give a user name");
  return user;
}

// tenants/allow and tenants/deny: {"name","user"}.
AdminReply change_grant(const AdminDeps& deps, const json& req, bool allow) {
  Status st = reject_unknown_fields(req, {"name", "user"});
  if (!st.ok()) return error(st);
  auto name = required_string(req, "name");
  if (!name.ok()) return error(name.status());
  auto user = required_user(req);
  if (!user.ok()) return error(user.status());
  if (allow) {
    // Only a tenant that exists can be granted: a typo would otherwise
    // allow nothing, silently.
    auto tenant = deps.tenants->resolve(*name);
    if (!tenant.ok()) return error(tenant.status());
    st = deps.store->allow_user(*name, *user);
  } else {
    st = deps.store->deny_user(*name, *user);
  }
  if (!st.ok()) return error(st);
  spdlog::info("admin: user {} {} for tenant {}", *user, allow ? "allowed" : "denied", *name);
  return AdminReply{200, json{{"tenant", *name}, {"user", *user}, {"allowed", allow}}};
}

AdminReply allow_tenant_user(const AdminDeps& deps, const json& req) {
  return change_grant(deps, req, true);
}
AdminReply deny_tenant_user(const AdminDeps& deps, const json& req) {
  return change_grant(deps, req, false);
}

// admins/allow and admins/deny: {"user"}.
AdminReply change_admin(const AdminDeps& deps, const json& req, bool allow) {
  Status st = reject_unknown_fields(req, {"user"});
  if (!st.ok()) return error(st);
  auto user = required_user(req);
  if (!user.ok()) return error(user.status());
  st = allow ? deps.store->add_admin(*user) : deps.store->remove_admin(*user);
  if (!st.ok()) return error(st);
  spdlog::info("admin: user {} {} admin", *user, allow ? "made" : "is no longer");
  return AdminReply{200, json{{"user", *user}, {"admin", allow}}};
}

AdminReply allow_admin(const AdminDeps& deps, const json& req) {
  return change_admin(deps, req, true);
}
AdminReply deny_admin(const AdminDeps& deps, const json& req) {
  return change_admin(deps, req, false);
}

AdminReply list_admins(const AdminDeps& deps, const json& req) {
  Status st = reject_unknown_fields(req, {});
  if (!st.ok()) return error(st);
  auto admins = deps.store->list_admins();
  if (!admins.ok()) return error(admins.status());
  return AdminReply{200, json{{"admins", *admins}}};
}

AdminReply list_volumes(const AdminDeps& deps, const json& req) {
  Status st = reject_unknown_fields(req, {});
  if (!st.ok()) return error(st);
  auto volumes = deps.store->list_volumes();
  if (!volumes.ok()) return error(volumes.status());
  // One query for every volume's references, not one per volume.
  auto referenced = deps.store->referenced_volumes();
  if (!referenced.ok()) return error(referenced.status());
  std::map<std::string, const VolumeRefs*> refs_of;
  for (const auto& r : *referenced) refs_of[r.volume] = &r;
  json out = json::array();
  for (const auto& v : *volumes) {
    json ids = json::object();
    int64_t mounts = 0;
    if (auto it = refs_of.find(v.name); it != refs_of.end()) {
      for (const auto& [id, n] : it->second->ids) ids[id] = n;
      mounts = it->second->total();
    }
    // Get's Status plus what only the listing shows (json objects keep
    // their keys sorted, so adding these changes nothing in the output).
    json entry = volume_status_json(v, mounts);
    entry["name"] = v.name;
    entry["options"] = v.options;
    entry["mount_ids"] = std::move(ids);
    entry["created_at"] = v.created_at;
    out.push_back(std::move(entry));
  }
  return AdminReply{200, json{{"volumes", std::move(out)}}};
}

}  // namespace

AdminReply handle_admin_request(const AdminDeps& deps, std::string_view endpoint,
                                std::string_view body) {
  try {
    using Handler = AdminReply (*)(const AdminDeps&, const json&);
    Handler handler = nullptr;
    if (endpoint == "tenants/add") handler = add_tenant;
    if (endpoint == "tenants/list") handler = list_tenants;
    if (endpoint == "tenants/remove") handler = remove_tenant;
    if (endpoint == "volumes/list") handler = list_volumes;
    if (endpoint == "tenants/allow") handler = allow_tenant_user;
    if (endpoint == "tenants/deny") handler = deny_tenant_user;
    if (endpoint == "admins/allow") handler = allow_admin;
    if (endpoint == "admins/deny") handler = deny_admin;
    if (endpoint == "admins/list") handler = list_admins;
    if (handler == nullptr) {
      std::string shown(endpoint.substr(0, 100));
      return error(404, "unknown admin endpoint \"" + shown + "\" (this tenantfs serves " +
                            kEndpoints + "): is the CLI newer than the plugin?");
    }
    auto req = parse_request_object(body);
    if (!req.ok()) return error(req.status());
    return handler(deps, *req);
  } catch (const std::exception& e) {
    // nlohmann throws on invalid UTF-8 when serialising, std::bad_alloc, ...
    spdlog::error("admin: {} failed: {}", endpoint, e.what());
    return error(500,
                 std::string("internal error handling ") + std::string(endpoint) + ": " + e.what());
  }
}

void register_admin_routes(httplib::Server& server, AdminDeps deps) {
  auto serve = [deps](const httplib::Request& req, httplib::Response& res) {
    std::string_view path = req.path;
    std::string_view endpoint = path.substr(std::min(path.size(), kAdminPrefix.size()));
    AdminReply reply = handle_admin_request(deps, endpoint, req.body);
    if (reply.status >= 400) {
      spdlog::warn("admin: {} -> {}: {}", req.path, reply.status,
                   reply.body.value("Err", std::string()));
    }
    res.status = reply.status;
    // json_text: a stored name with invalid UTF-8 must not throw mid-reply.
    res.set_content(json_text(reply.body), "application/json");
  };
  const std::string prefix(kAdminPrefix);
  for (const char* endpoint :
       {"tenants/add", "tenants/list", "tenants/remove", "tenants/allow", "tenants/deny",
        "admins/allow", "admins/deny", "admins/list", "volumes/list"}) {
    server.Post(prefix + endpoint, serve);
  }
  // Registered last: httplib tries routes in order, so this only sees paths
  // under the prefix that no endpoint matched.
  server.Post(prefix + ".*", serve);
}

}  // namespace tenantfs

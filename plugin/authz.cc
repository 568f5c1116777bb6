#include "plugin/authz.h"

#include <algorithm>
#include <cctype>
#include <exception>
#include <utility>
#include <vector>

#include "http/request_json.h"
#include "admin/plugin_name.h"

namespace tenantfs {
namespace {

using nlohmann::json;

// Go's encoding/json decodes a key into a field when they are equal ignoring
// case, with the folds of bytes.EqualFold that reach ASCII letters: U+017F
// (long s) is 's' and U+212A (Kelvin sign) is 'k'. Folding both sides the
// same way here finds every key Docker would read as the field.
std::string fold_key(std::string_view key) {
  std::string out;
  out.reserve(key.size());
  for (size_t i = 0; i < key.size(); ++i) {
    if (key.substr(i, 2) == "\xC5\xBF") {
      out += 's';
      i += 1;
    } else if (key.substr(i, 3) == "\xE2\x84\xAA") {
      out += 'k';
      i += 2;
    } else {
      out += static_cast<char>(std::tolower(static_cast<unsigned char>(key[i])));
    }
  }
  return out;
}

// Every value of `obj` that Docker would decode into its field `name`. Go
// keeps the last of duplicates; checking all of them never misses that one.
std::vector<const json*> fields(const json& obj, std::string_view name) {
  std::vector<const json*> out;
  if (!obj.is_object()) return out;
  const std::string want = fold_key(name);
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    if (fold_key(it.key()) == want) out.push_back(&it.value());
  }
  return out;
}

std::vector<std::string> string_fields(const json& obj, std::string_view name) {
  std::vector<std::string> out;
  for (const json* v : fields(obj, name)) {
    if (v->is_string()) out.push_back(v->get<std::string>());
  }
  return out;
}

bool is_tenantfs_driver(std::string_view driver) {
  return is_tenantfs_plugin_name(driver) || may_be_plugin_id(driver);
}

std::string in_quotes(std::string_view s) { return "\"" + std::string(s) + "\""; }

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The API path as Docker's router matches it: percent-decoded, without the
// query, empty and "." segments, with ".." applied, and without the
// "/vX.Y" version prefix (returned apart, 0 when absent).
struct ApiPath {
  std::vector<std::string> parts;
  int major = 0;
  int minor = 0;
  bool versioned = false;
};

ApiPath parse_api_path(std::string_view uri) {
  uri = uri.substr(0, uri.find('?'));
  std::string decoded;
  for (size_t i = 0; i < uri.size(); ++i) {
    if (uri[i] == '%' && i + 2 < uri.size() + 0 && hex_value(uri[i + 1]) >= 0 &&
        hex_value(uri[i + 2]) >= 0) {
      decoded += static_cast<char>(hex_value(uri[i + 1]) * 16 + hex_value(uri[i + 2]));
      i += 2;
    } else {
      decoded += uri[i];
    }
  }
  ApiPath path;
  size_t pos = 0;
  while (pos <= decoded.size()) {
    size_t next = decoded.find('/', pos);
    if (next == std::string::npos) next = decoded.size();
    std::string part = decoded.substr(pos, next - pos);
    pos = next + 1;
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      if (!path.parts.empty()) path.parts.pop_back();
      continue;
    }
    path.parts.push_back(std::move(part));
  }
  // Docker routes "/v{version:[0-9.]+}/..." and compares versions field by
  // field ("1.023" is 1.23); a missing minor counts as 0.
  if (!path.parts.empty()) {
    const std::string& first = path.parts.front();
    if (first.size() > 1 && first[0] == 'v' &&
        first.find_first_not_of("0123456789.", 1) == std::string::npos) {
      auto number = [](std::string_view digits) {
        int n = 0;
        for (char c : digits) {
          if (c < '0' || c > '9') break;
          n = std::min(n * 10 + (c - '0'), 1000000);
        }
        return n;
      };
      const std::string_view version = std::string_view(first).substr(1);
      const size_t dot = version.find('.');
      path.major = number(version.substr(0, dot));
      path.minor = dot == std::string_view::npos ? 0 : number(version.substr(dot + 1));
      path.versioned = true;
      path.parts.erase(path.parts.begin());
    }
  }
  return path;
}

bool path_is(const ApiPath& p, std::initializer_list<std::string_view> want) {
  if (p.parts.size() != want.size()) return false;
  size_t i = 0;
  for (std::string_view w : want) {
    if (w != "*" && p.parts[i] != w) return false;
    ++i;
  }
  return true;
}

}  // namespace

std::optional<std::string> decode_base64(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (size_t i = 0; i < text.size(); i += 4) {
    const bool last = i + 4 == text.size();
    int v[4];
    int pad = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = text[i + static_cast<size_t>(k)];
      if (c == '=' && last && k >= 2) {
        v[k] = 0;
        ++pad;
        continue;
      }
      if (pad > 0) return std::nullopt;  // data after padding
      v[k] = value(c);
      if (v[k] < 0) return std::nullopt;
    }
    const uint32_t triple = (static_cast<uint32_t>(v[0]) << 18) |
                            (static_cast<uint32_t>(v[1]) << 12) |
                            (static_cast<uint32_t>(v[2]) << 6) | static_cast<uint32_t>(v[3]);
    out += static_cast<char>((triple >> 16) & 0xff);
    if (pad < 2) out += static_cast<char>((triple >> 8) & 0xff);
    if (pad < 1) out += static_cast<char>(triple & 0xff);
  }
  return out;
}

namespace {

// The checks of one request: each names a tenant (or the admin role) the
// user needs. The first one that fails decides the message.
class Decision {
 public:
  Decision(BindingStore& store, const AuthzConfig& config, std::string user)
      : store_(store), config_(config), user_(std::move(user)) {}

  bool denied() const { return denied_; }
  bool checked() const { return checked_; }
  const std::string& message() const { return message_; }

  void deny(std::string message) {
    checked_ = true;
    if (denied_) return;
    denied_ = true;
    message_ = std::move(message);
  }

  // The user must be allowed for `tenant`; `what` names the volume.
  void need_tenant(const std::string& tenant, const std::string& what) {
    checked_ = true;
    if (denied_ || privileged()) return;
    if (user_.empty()) {
      return deny("a request without a TLS client certificate may not use tenant " +
                  in_quotes(tenant) + " (" + what +
                  "); connect with --tlsverify and the certificate of an allowed user, "
                  "or set "
                  "AUTHZ_ANONYMOUS=allow on the plugin");
    }
    Result<bool> allowed = store_.user_allowed(tenant, user_);
    if (!allowed.ok()) {
      return deny("cannot check whether user " + in_quotes(user_) + " may use tenant " +
                  in_quotes(tenant) + ": " + allowed.status().message());
    }
    if (!*allowed) {
      deny("user " + in_quotes(user_) + " may not use tenant " + in_quotes(tenant) + " (" + what +
           "); an admin allows it with \"tenantfs tenant allow " + tenant + " --user " + user_ +
           "\"");
    }
  }

  // Only an admin may do `action`.
  void need_admin(const std::string& action) {
    checked_ = true;
    if (denied_ || privileged()) return;
    if (user_.empty()) {
      return deny("a request without a TLS client certificate may not " + action +
                  ": only tenantfs admins may; connect with --tlsverify and an admin's "
                  "certificate");
    }
    deny("user " + in_quotes(user_) + " may not " + action +
         ": only tenantfs admins may; an admin adds one with \"tenantfs admin "
         "allow " +
         user_ + "\"");
  }

  // An existing volume's tenant; for a name not bound yet that Docker would
  // create with tenantfs and no options, DEFAULT_TENANT.
  void need_volume(const std::string& name, bool created_by_tenantfs) {
    Result<VolumeBinding> binding = store_.get_volume(name);
    if (binding.ok()) return need_tenant(binding->tenant, "volume " + in_quotes(name));
    if (binding.status().code() != Code::kNotFound) {
      // Names the store refuses to read (kInvalidArgument) are not
      // tenantfs volumes; Docker refuses them too.
      if (binding.status().code() == Code::kInvalidArgument) return;
      return deny("cannot read volume " + in_quotes(name) + ": " + binding.status().message());
    }
    if (created_by_tenantfs && !config_.default_tenant.empty()) {
      need_tenant(config_.default_tenant, "new volume " + in_quotes(name));
    }
  }

  // Tenants a tenantfs volume would be created with: the tenant options
  // given, or DEFAULT_TENANT when none is.
  void need_new_volume(const std::vector<std::string>& tenants, const std::string& what) {
    for (const std::string& t : tenants) need_tenant(t, what);
    if (tenants.empty() && !config_.default_tenant.empty()) {
      need_tenant(config_.default_tenant, what);
    }
    // Neither: the driver refuses the volume ("option tenant is required").
  }

 private:
  bool privileged() {
    if (!privileged_) {
      if (user_.empty()) {
        privileged_ = config_.allow_anonymous;
      } else {
        Result<bool> admin = store_.is_admin(user_);
        privileged_ = admin.ok() && *admin;
      }
    }
    return *privileged_;
  }

  BindingStore& store_;
  const AuthzConfig& config_;
  const std::string user_;
  std::optional<bool> privileged_;
  bool checked_ = false;
  bool denied_ = false;
  std::string message_;
};

}  // namespace

Authorizer::Authorizer(BindingStore& store, AuthzConfig config)
    : store_(store), config_(std::move(config)) {}

namespace {

// The tenant options of DriverOpts / DriverConfig.Options objects. Option
// names are map keys, matched exactly as the driver matches them.
std::vector<std::string> tenant_options(const std::vector<const json*>& option_maps) {
  std::vector<std::string> tenants;
  for (const json* opts : option_maps) {
    if (!opts->is_object()) continue;
    auto it = opts->find("tenant");
    if (it != opts->end() && it->is_string()) tenants.push_back(it->get<std::string>());
  }
  return tenants;
}

void check_mounts(Decision& d, const json& mounts, bool volume_driver_is_tenantfs) {
  if (!mounts.is_array()) return;
  for (const json& m : mounts) {
    // Every mount counts, whatever its Type says: a bind's source is an
    // absolute path, never a volume name, so it matches no binding.
    std::vector<std::string> drivers;
    std::vector<const json*> options;
    for (const json* vo : fields(m, "VolumeOptions")) {
      for (const json* dc : fields(*vo, "DriverConfig")) {
        for (std::string& n : string_fields(*dc, "Name")) drivers.push_back(std::move(n));
        for (const json* o : fields(*dc, "Options")) options.push_back(o);
      }
    }
    // A mount's own driver wins; without one (or an empty one) Docker uses
    // HostConfig.VolumeDriver.
    const bool tenantfs =
        drivers.empty() ? volume_driver_is_tenantfs
                        : std::any_of(drivers.begin(), drivers.end(), [&](const std::string& n) {
                            return n.empty() ? volume_driver_is_tenantfs : is_tenantfs_driver(n);
                          });
    std::vector<std::string> sources = string_fields(m, "Source");
    for (const std::string& source : sources) {
      if (!source.empty()) d.need_volume(source, false);
    }
    if (tenantfs) {
      std::string what = "a new volume";
      if (!sources.empty() && !sources.back().empty()) what = "volume " + in_quotes(sources.back());
      d.need_new_volume(tenant_options(options), what);
    }
  }
}

// A HostConfig, or the body of a container create whose deprecated
// top-level fields Docker still reads as one.
void check_host_config(Decision& d, const json& hc) {
  std::vector<std::string> drivers = string_fields(hc, "VolumeDriver");
  const bool tenantfs = std::any_of(drivers.begin(), drivers.end(),
                                    [](auto& n) { return !n.empty() && is_tenantfs_driver(n); });
  for (const json* binds : fields(hc, "Binds")) {
    if (!binds->is_array()) continue;
    for (const json& bind : *binds) {
      if (!bind.is_string()) continue;
      const std::string spec = bind.get<std::string>();
      const std::string source = spec.substr(0, spec.find(':'));
      // An absolute source is a host directory, not a volume.
      if (!source.empty() && source[0] != '/') d.need_volume(source, tenantfs);
    }
  }
  for (const json* mounts : fields(hc, "Mounts")) check_mounts(d, *mounts, tenantfs);
  for (const json* from : fields(hc, "VolumesFrom")) {
    if (from->is_array() && !from->empty()) {
      d.need_admin(
          "use --volumes-from (another container's volumes cannot be "
          "checked against tenant "
          "access; name the volumes with -v or --mount instead)");
    }
  }
  // Anonymous volumes (the image's VOLUMEs, -v /path) are created with
  // this driver and no options.
  if (tenantfs) d.need_new_volume({}, "anonymous volumes of --volume-driver");
}

void check_container_create(Decision& d, const json& body) {
  check_host_config(d, body);
  for (const json* hc : fields(body, "HostConfig")) check_host_config(d, *hc);
}

void check_volume_create(Decision& d, const json& body) {
  std::vector<std::string> names = string_fields(body, "Name");
  for (const std::string& name : names) {
    if (!name.empty()) d.need_volume(name, false);
  }
  std::vector<std::string> drivers = string_fields(body, "Driver");
  if (std::none_of(drivers.begin(), drivers.end(), [](auto& n) { return is_tenantfs_driver(n); })) {
    return;
  }
  const std::string what =
      names.empty() || names.back().empty() ? "a new volume" : "volume " + in_quotes(names.back());
  d.need_new_volume(tenant_options(fields(body, "DriverOpts")), what);
}

void check_service(Decision& d, const json& body) {
  for (const json* task : fields(body, "TaskTemplate")) {
    for (const json* spec : fields(*task, "ContainerSpec")) {
      for (const json* mounts : fields(*spec, "Mounts")) check_mounts(d, *mounts, false);
    }
  }
}

void check_prune(Decision& d, BindingStore& store) {
  Result<std::vector<VolumeBinding>> volumes = store.list_volumes();
  if (!volumes.ok()) return d.deny("cannot list volumes: " + volumes.status().message());
  for (const VolumeBinding& v : *volumes) {
    d.need_tenant(v.tenant, "volume " + in_quotes(v.name) + ", which the prune may remove");
    if (d.denied()) return;
  }
}

// The first key that an object of `text` (valid JSON) holds twice, if any.
// Go decodes a repeated key into the same field again, merging objects
// ({"HostConfig":{"Binds":[...]},"HostConfig":{}} keeps the Binds), while
// the parser here keeps only the last value: such bodies cannot be checked.
std::optional<std::string> repeated_key(std::string_view text) {
  std::vector<std::vector<std::string>> keys;  // of each open object
  std::optional<std::string> repeated;
  json::parser_callback_t watch = [&](int, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) {
      keys.emplace_back();
    } else if (event == json::parse_event_t::object_end) {
      if (!keys.empty()) keys.pop_back();
    } else if (event == json::parse_event_t::key && !keys.empty() && !repeated) {
      std::vector<std::string>& seen = keys.back();
      const std::string& key = parsed.get_ref<const std::string&>();
      if (std::find(seen.begin(), seen.end(), key) != seen.end()) {
        repeated = key;
      } else {
        seen.push_back(key);
      }
    }
    return true;
  };
  const json whole = json::parse(text, watch, /*allow_exceptions=*/false);
  (void)whole;
  return repeated;
}

std::string header(const json& req, std::string_view name) {
  for (const json* headers : fields(req, "RequestHeaders")) {
    for (const json* v : fields(*headers, name)) {
      if (v->is_string()) return v->get<std::string>();
    }
  }
  return {};
}

// The API request's body as a JSON object. Denies (and returns nullopt) when
// it cannot be read: a body Docker did not forward may hold anything.
std::optional<json> api_body(Decision& d, const json& req, const std::string& what) {
  const json* encoded = nullptr;
  for (const json* v : fields(req, "RequestBody")) encoded = v;
  if (encoded == nullptr || encoded->is_null() ||
      (encoded->is_string() && encoded->get_ref<const std::string&>().empty())) {
    // Docker forwards a body only when it is application/json, below 1 MiB
    // and announced with Content-Length; "0" is the only sure empty body.
    if (header(req, "Content-Length") == "0") return json::object();
    d.deny("the body of " + what +
           " did not reach the tenantfs authorization plugin, so it cannot be "
           "checked: Docker "
           "forwards only bodies of type application/json, below 1 MiB, sent "
           "with a "
           "Content-Length");
    return std::nullopt;
  }
  if (!encoded->is_string()) {
    d.deny("the authorization request's RequestBody is not a base64 string");
    return std::nullopt;
  }
  std::optional<std::string> raw = decode_base64(encoded->get_ref<const std::string&>());
  if (!raw) {
    d.deny("the authorization request's RequestBody is not valid base64");
    return std::nullopt;
  }
  Result<json> body = parse_request_object(*raw);
  if (!body.ok()) {
    d.deny("the body of " + what + " cannot be checked: " + body.status().message());
    return std::nullopt;
  }
  if (std::optional<std::string> key = repeated_key(*raw)) {
    d.deny("the body of " + what + " cannot be checked: an object holds the key " +
           in_quotes(key->substr(0, 64)) + " twice; send each key once");
    return std::nullopt;
  }
  return std::move(body).value();
}

void check_request(Decision& d, BindingStore& store, const std::string& method, const ApiPath& path,
                   const json& req) {
  if (method == "GET" || method == "HEAD" || method == "OPTIONS") return;
  if (method == "POST" && path_is(path, {"volumes", "create"})) {
    if (auto body = api_body(d, req, "the volume create")) check_volume_create(d, *body);
  } else if (method == "DELETE" && path_is(path, {"volumes", "*"})) {
    d.need_volume(path.parts[1], false);
  } else if (method == "POST" && path_is(path, {"volumes", "prune"})) {
    check_prune(d, store);
  } else if (method == "POST" && path_is(path, {"containers", "create"})) {
    if (auto body = api_body(d, req, "the container create")) check_container_create(d, *body);
  } else if (method == "POST" && path_is(path, {"containers", "*", "start"}) && path.versioned &&
             (path.major < 1 || (path.major == 1 && path.minor < 24))) {
    // API versions below 1.24 still take a HostConfig when starting.
    if (auto body = api_body(d, req, "the container start")) check_host_config(d, *body);
  } else if (method == "POST" && (path_is(path, {"services", "create"}) ||
                                  path_is(path, {"services", "*", "update"}))) {
    if (auto body = api_body(d, req, "the service request")) check_service(d, *body);
  } else if ((method == "POST" || method == "DELETE") && path.parts.size() >= 2 &&
             path.parts[0] == "plugins" && is_tenantfs_driver(path.parts[1])) {
    d.need_admin("manage the tenantfs plugin");
  }
}

json decision_json(bool allow, const std::string& msg) {
  json body{{"Allow", allow}};
  if (!msg.empty()) body["Msg"] = msg;
  return body;
}

}  // namespace

AuthzReply Authorizer::handle(std::string_view endpoint, std::string_view body) {
  AuthzReply reply;
  reply.user = "-";
  reply.request = "-";
  auto finish = [&reply](bool allow, std::string msg) {
    reply.allow = allow;
    reply.msg = std::move(msg);
    reply.body = decision_json(allow, reply.msg);
    return reply;
  };
  try {
    if (endpoint == kAuthzResponseEndpoint) return finish(true, {});
    if (endpoint != kAuthzRequestEndpoint) {
      return finish(false, "unknown authorization endpoint " + std::string(endpoint.substr(0, 64)));
    }
    Result<json> req = parse_request_object(body);
    if (!req.ok()) {
      return finish(
          false, "the authorization request from Docker cannot be read: " + req.status().message());
    }
    std::string user, method, uri;
    for (const json* v : fields(*req, "User")) {
      if (!v->is_string()) return finish(false, "the authorization request's User is not a string");
      user = v->get<std::string>();
    }
    for (const json* v : fields(*req, "RequestMethod")) {
      if (v->is_string()) method = v->get<std::string>();
    }
    for (const json* v : fields(*req, "RequestURI")) {
      if (v->is_string()) uri = v->get<std::string>();
    }
    if (!user.empty()) reply.user = user.substr(0, 256);
    reply.request = method.substr(0, 16) + " " + uri.substr(0, 200);
    if (method.empty() || uri.empty()) {
      return finish(false, "the authorization request names no RequestMethod or RequestURI");
    }
    std::transform(method.begin(), method.end(), method.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    Decision d(store_, config_, user);
    check_request(d, store_, method, parse_api_path(uri), *req);
    reply.checked = d.checked();
    return finish(!d.denied(), d.denied() ? d.message() : std::string());
  } catch (const std::exception& e) {
    // std::bad_alloc, or a json accessor used wrongly: deny, never crash.
    return finish(false, std::string("internal error while authorizing: ") + e.what());
  }
}

}  // namespace tenantfs

// Authorizer: Docker's authorization plugin protocol (docker.authz/1.0),
// deciding which Docker user may use which tenant's volumes.
//
// dockerd started with --authorization-plugin asks /AuthZPlugin.AuthZReq
// before it runs each API request, passing the authenticated user (the common
// name of the TLS client certificate; empty without TLS client
// authentication), the method, the URI and, for JSON bodies under 1 MiB, the
// body (base64). tenantfs looks only at requests that can create, mount or
// remove a tenantfs volume:
//
//   POST   /volumes/create           Driver tenantfs: the tenant option (or
//                                    DEFAULT_TENANT), and the tenant of an
//                                    existing volume of that name
//   DELETE /volumes/NAME             the tenant of NAME
//   POST   /volumes/prune            every tenantfs volume's tenant
//   POST   /containers/create        HostConfig (and the deprecated top-level
//                                    HostConfig fields): Binds naming a volume,
//                                    Mounts of type volume (source, driver,
//                                    volume-opt tenant=), VolumeDriver,
//                                    VolumesFrom
//   POST   /containers/ID/start      the same, for API versions below 1.24,
//                                    which still take a HostConfig there
//   POST   /services/create, /services/ID/update   the task's Mounts
//   POST, DELETE /plugins/NAME/...   managing the tenantfs plugin itself
//
// and allows them only when the user is a tenantfs admin or is allowed for
// every tenant the request touches (BindingStore grants). Everything else,
// other drivers' volumes included, is allowed untouched; the response phase
// (/AuthZPlugin.AuthZRes) is always allowed.
//
// JSON field names are matched as Docker's decoder matches them (case
// insensitively, with the Unicode folds Go applies) and every duplicate is
// checked. Whatever cannot be read (bad JSON, bad base64, a body Docker did
// not forward) is denied when the endpoint needs its body: the decision
// fails closed.
//
// Thread-safety: handle() may be called from any number of threads; it keeps
// no state between requests and reads the store, which is thread-safe.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "store/store.h"

namespace tenantfs {

// An authorization request holds a body Docker forwards below 1 MiB (as
// base64, a third larger), the request's headers and the response's in the
// response phase; larger requests are refused by the HTTP layer, and the
// response phase is answered without reading its body.
inline constexpr size_t kMaxAuthzBodyBytes = size_t{4} * 1024 * 1024;
inline constexpr std::string_view kAuthzRequestEndpoint = "/AuthZPlugin.AuthZReq";
inline constexpr std::string_view kAuthzResponseEndpoint = "/AuthZPlugin.AuthZRes";

struct AuthzConfig {
  // AUTHZ_ANONYMOUS=allow: a request without a TLS user passes as if the
  // caller were an admin. Deny (the default) refuses it everything tenantfs
  // checks.
  bool allow_anonymous = false;
  // The tenant of volumes created without tenant= (DriverConfig's).
  std::string default_tenant;
};

// One decision: the reply Docker reads and what to log about it.
struct AuthzReply {
  nlohmann::json body;  // {"Allow":bool,"Msg":"..."}
  bool allow = true;
  bool checked = false;  // the request touched tenantfs (logged at info)
  std::string user;      // "-" without TLS identity
  std::string request;   // "METHOD URI", cut short for the log
  std::string msg;
};

class Authorizer {
 public:
  // `store` must outlive the authorizer.
  Authorizer(BindingStore& store, AuthzConfig config);

  // Handles one request to `endpoint` (the URL path). Never throws; every
  // body, however malformed, gets a decision.
  AuthzReply handle(std::string_view endpoint, std::string_view body);

 private:
  BindingStore& store_;
  const AuthzConfig config_;
};

// Base64 (standard alphabet, padding required, as Go encodes []byte) to
// bytes; nullopt for anything else.
std::optional<std::string> decode_base64(std::string_view text);

}  // namespace tenantfs

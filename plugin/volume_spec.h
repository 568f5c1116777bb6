// Volume names and `docker volume create -o` options: parsing and validation.
//
// Everything here is pure: no filesystem access, no store, no locks. The
// checks that need the filesystem (path= must be a real directory inside an
// allowed root) live in backing_dir.h.
//
// Every error is a kInvalidArgument whose message is the full Err text Docker
// prints: it names the volume, the option and the fix. Option values are never
// quoted back (they could be secrets pasted by mistake), except tenant names.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"
#include "common/volume_name.h"

namespace tenantfs {

// The Create options tenantfs accepts, in the order the Err text lists them.
inline constexpr const char* kCreateOptionNames[] = {"tenant", "uid",   "gid",     "mode",
                                                     "path",   "cache", "readonly"};

// Create options after parsing; a field is empty when the option was not
// given. Defaults (tenant ids, mode 0700, cache strict) are applied by the
// caller, which knows the tenant.
struct CreateOptions {
  std::optional<std::string> tenant;
  std::optional<uid_t> uid;
  std::optional<gid_t> gid;
  std::optional<uint32_t> mode;
  std::optional<std::string> path;
  std::optional<std::string> cache;  // "strict" or "exclusive"
  std::optional<bool> readonly;
};

// Parses and checks the options of volume `volume`, given as Docker sends
// them (string values). Refuses unknown options (listing the valid ones),
// malformed numbers, modes with world-writable or setuid/setgid/sticky bits,
// `mode` together with `path` (path= data is never chmoded), relative or
// non-normalised paths, and unknown cache or readonly values.
Result<CreateOptions> parse_create_options(std::string_view volume,
                                           const std::map<std::string, std::string>& opts);

}  // namespace tenantfs

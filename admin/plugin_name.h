// The names Docker may know the tenantfs plugin by.
#pragma once

#include <string_view>

namespace tenantfs {

// True when the last path component of `name` is "tenantfs", with or without
// a tag or digest: tenantfs, tenantfs:latest,
// registry.example/team/tenantfs:1.2, tenantfs@sha256:... "tenantfs:" (an empty
// tag) is not a name.
bool is_tenantfs_plugin_name(std::string_view name);

// True for what Docker may resolve as a plugin ID or a prefix of one: 1 to 64
// lowercase hex digits. Docker looks a driver or plugin name up by ID prefix
// when no plugin has that name, so such a name may stand for tenantfs.
bool may_be_plugin_id(std::string_view name);

}  // namespace tenantfs

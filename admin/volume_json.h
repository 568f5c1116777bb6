// The JSON form of a volume binding that Get (VolumeDriver API) and the
// admin listing (volumes/list) show alike. Part of tenantfs_admin so that
// both tenantfs_admin and tenantfs_plugin (which links it) reach it.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>

#include "store/store.h"

namespace tenantfs {

// {"tenant","uid","gid","groups","present_uid","present_gid","mode","cache",
// "readonly","path","external","mounts"} of `b`, with "mode" an octal string
// ("0700") and "mounts" the references held on it. This is Get's Status as
// it is; an admin listing entry adds "name", "options", "mount_ids" and
// "created_at" (unix seconds, where Get's CreatedAt is RFC 3339).
nlohmann::json volume_status_json(const VolumeBinding& b, int64_t mounts);

}  // namespace tenantfs

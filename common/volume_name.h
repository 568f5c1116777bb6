// The one rule for volume names, shared by the Docker driver (which answers
// Docker with its message) and the store (which never holds a name the
// driver would refuse).
#pragma once

#include <cstddef>
#include <string_view>

#include "common/status.h"

namespace tenantfs {

// Docker's rule is [a-zA-Z0-9][a-zA-Z0-9_.-]*; we also bound the length so a
// name is always a single short path component under DATA_DIR and MOUNT_ROOT.
inline constexpr size_t kMaxVolumeNameLength = 128;

// OK when `name` is a valid volume name; otherwise a kInvalidArgument whose
// message is the Err text for Docker.
Status validate_volume_name(std::string_view name);

}  // namespace tenantfs

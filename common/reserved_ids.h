// Ids that tenantfs keeps for itself and never lets a tenant have.
#pragma once

#include <sys/types.h>

namespace tenantfs {

// The real, effective and saved uid and gid of every mapper once it has
// dropped root; only its filesystem ids are the tenant's (privileges.h).
// Signals and ptrace are judged by the real and saved uids, so no process
// of a tenant can stop, kill or trace a mapper, as none can have this uid.
// 2^31 - 2: far above the ids useradd hands out (up to 60000) and systemd's
// container ranges (below 0x70000000), and below 2^31, which some tools
// still misread as negative.
inline constexpr uid_t kMapperProcessUid = 2147483646;
inline constexpr gid_t kMapperProcessGid = 2147483646;

// Whether `id` may not be a tenant's uid, gid or supplementary gid, nor a
// volume's presented uid or gid.
inline bool is_reserved_id(unsigned long id) { return id == kMapperProcessUid; }

}  // namespace tenantfs

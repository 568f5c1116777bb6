// Identity: the uid, gid and supplementary gids that a tenant's files reach
// the storage as, and the one rule for which identities tenantfs accepts.
//
// Tenants (store.h, tenant_directory.h), volume bindings, the mapper's
// invocation (mapper_invocation.h) and the privilege drop (privileges.h) all
// carry this type, and each of them checks it with validate_identity before
// it is stored or acted upon. A plain value: cheap to copy, safe to share.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/status.h"

namespace tenantfs {

// Most supplementary groups an identity may carry. Far below the kernel's
// NGROUPS_MAX (65536), and small enough that the privilege drop can check
// the groups it set on the stack, without allocating in a forked child.
inline constexpr size_t kMaxIdentityGroups = 1024;

// (uid_t)-1 and (gid_t)-1 mean "no change" to chown and setresuid: never an
// owner, never an identity.
inline constexpr uint32_t kNoId = 0xffffffffu;

struct Identity {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary gids, may be empty

  bool operator==(const Identity& o) const {
    return uid == o.uid && gid == o.gid && groups == o.groups;
  }
  bool operator!=(const Identity& o) const { return !(*this == o); }
};

// Whether `id` may be a tenant's uid, gid or supplementary gid: not 0 (root
// and root's group), not kNoId, not the mapper's reserved id (reserved_ids.h).
bool is_tenant_id(uint64_t id);

// Whether `id` may be shown as the owner of the tenant's files inside a
// container (a volume's presented uid or gid): root may be shown, but kNoId
// and the reserved id may not.
bool is_presentable_id(uint64_t id);

// OK when every id of `id` passes is_tenant_id and it has at most
// kMaxIdentityGroups groups; otherwise kInvalidArgument whose message names
// the offending field and how to fix it, without naming whose identity it
// is: callers prefix that ("tenant \"alice\": uid 0 is root; ..."). Allocates
// nothing when the identity is valid.
Status validate_identity(const Identity& id);

}  // namespace tenantfs

// Dropping a root process to one tenant identity, for good.
//
// The mapper mounts as root and then becomes the tenant: every file operation
// it performs afterwards is checked by the kernel against the tenant's ids, so
// the storage's own permissions are the access control. This file holds the
// one irreversible step and the checks around it.
#pragma once

#include <sys/types.h>

#include <vector>

#include "common/status.h"

namespace tenantfs {

struct TenantIdentity {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary groups, may be empty
};

// Replaces every credential of the calling process with `id`: supplementary
// groups, real/effective/saved gid and uid, all capabilities (permitted,
// effective, inheritable, ambient and the bounding set) and sets
// PR_SET_NO_NEW_PRIVS, so no later execve can regain anything.
//
// Requires root (CAP_SETUID, CAP_SETGID, CAP_SETPCAP). glibc applies setuid
// family calls to every thread, but the capability calls are per thread: call
// this only while the process has a single thread.
//
// Ordering contract: every step that can fail runs while the process is
// still root; the uid change comes last. So on error the caller is still
// privileged (and can, e.g., unmount what it mounted); on success the caller
// can no longer undo anything.
Status drop_privileges_to(const TenantIdentity& id);

// Checks that the calling thread holds exactly `id` and no capability at
// all. Used after the drop, before serving: a mapper that is not verifiably
// the tenant must not serve.
Status verify_privileges_are(const TenantIdentity& id);

}  // namespace tenantfs

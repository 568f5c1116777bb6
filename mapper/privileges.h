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

// Replaces every credential of the calling process: supplementary groups
// become `id.groups`, the filesystem uid and gid (per thread) become
// `id.uid` and `id.gid`, and the real, effective and saved uid and gid
// become kMapperProcessUid/Gid (common/reserved_ids.h), an id no tenant may
// have. The kernel judges file access by the filesystem ids and the groups,
// so every file operation acts as the tenant; it judges signals and ptrace
// by the other ids, so no process of the tenant can stop or kill the mapper.
// All capabilities (permitted, effective, inheritable, ambient and the
// bounding set) go and PR_SET_NO_NEW_PRIVS is set, so no later execve can
// regain anything. Use access checks with AT_EACCESS: plain access(2)
// judges the real ids, which are not the tenant's.
//
// Requires root (CAP_SETUID, CAP_SETGID, CAP_SETPCAP). glibc applies setuid
// family calls to every thread, but capabilities and filesystem ids are per
// thread: call this only while the process has a single thread, so that
// every later thread inherits the result.
//
// Ordering contract: every step that can fail for a reason other than a
// broken kernel runs while the process is still root; the uid change comes
// last (what follows it only lowers capabilities and sets the filesystem
// ids the remaining CAP_SETUID/CAP_SETGID allow). So on error the caller is
// still privileged (and can, e.g., unmount what it mounted); on success the
// caller can no longer undo anything.
Status drop_privileges_to(const TenantIdentity& id);

// Checks that the calling thread holds exactly what drop_privileges_to(id)
// leaves and no capability at all. Used after the drop, before serving: a
// mapper that is not verifiably the tenant must not serve.
Status verify_privileges_are(const TenantIdentity& id);

// As drop_privileges_to, except that CAP_SYS_ADMIN stays in the bounding,
// permitted and effective sets (nothing inheritable or ambient). For the
// backing broker only (backing_broker.h), which must call the FUSE backing
// ioctls and confines itself further.
Status drop_privileges_keeping_sys_admin(const TenantIdentity& id);

// As verify_privileges_are, for what drop_privileges_keeping_sys_admin leaves.
Status verify_privileges_keeping_sys_admin(const TenantIdentity& id);

}  // namespace tenantfs

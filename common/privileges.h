// Dropping a root process to one tenant identity, for good.
//
// Two processes do file work as a tenant, and they differ only in the ids
// the process itself keeps:
//   - the mapper (mapper.h) mounts as root and then serves as the tenant for
//     as long as the volume is mounted. Its filesystem ids are the tenant's,
//     its real, effective and saved ids are kMapperProcessUid/Gid
//     (common/reserved_ids.h), an id no tenant may have, so that no process
//     of the tenant can signal or trace it: ProcessIds::kMapperReserved.
//   - the short-lived child that deletes a removed volume's contents
//     (plugin/backing_dir.h) is the tenant through and through:
//     ProcessIds::kTenant.
// Either way the kernel judges every file access by the tenant's filesystem
// ids and groups, so the storage's own permissions are the access control.
#pragma once

#include "common/identity.h"
#include "common/status.h"

namespace tenantfs {

// Whose real, effective and saved ids the process takes in the drop.
enum class ProcessIds {
  kTenant,          // the tenant's own uid and gid
  kMapperReserved,  // kMapperProcessUid and kMapperProcessGid
};

// What a drop may keep: nothing, except for the backing broker
// (mapper/backing_broker.h), which must call the FUSE backing ioctls and
// confines itself further (seccomp); CAP_SYS_ADMIN then stays in the
// bounding, permitted and effective sets, nothing inheritable or ambient.
enum class KeptCapability { kNone, kSysAdmin };

// Replaces every credential of the calling process: supplementary groups
// become `id.groups`, the filesystem uid and gid (per thread) become
// `id.uid` and `id.gid`, the real, effective and saved uid and gid become
// those `process_ids` names. All capabilities (permitted, effective,
// inheritable, ambient and the bounding set) go and PR_SET_NO_NEW_PRIVS is
// set, so no later execve can regain anything. With kMapperReserved, use
// access checks with AT_EACCESS: plain access(2) judges the real ids, which
// are not the tenant's. Refuses an identity that validate_identity refuses.
//
// Requires root (CAP_SETUID, CAP_SETGID, CAP_SETPCAP). glibc applies setuid
// family calls to every thread, but capabilities and filesystem ids are per
// thread: call this only while the process has a single thread (or in a
// forked child), so that every later thread inherits the result. It
// allocates nothing unless it fails, so a child forked from a multi-threaded
// process may call it.
//
// Ordering contract: every step that can fail for a reason other than a
// broken kernel runs while the process is still root; the uid change comes
// last (what follows it only lowers capabilities and sets the filesystem
// ids the remaining CAP_SETUID/CAP_SETGID allow). So on error the caller is
// still privileged (and can, e.g., unmount what it mounted); on success the
// caller can no longer undo anything.
Status drop_privileges_to(const Identity& id, ProcessIds process_ids,
                          KeptCapability keep = KeptCapability::kNone);

// Checks that the calling thread holds exactly what
// drop_privileges_to(id, process_ids) leaves and no capability at all. Used
// after the drop, before any file is touched: a process that is not
// verifiably the tenant must not act for it.
Status verify_privileges_are(const Identity& id, ProcessIds process_ids,
                             KeptCapability keep = KeptCapability::kNone);

}  // namespace tenantfs

// Presentation: how the mapper shows the tenant's identity inside the mount
// and translates it back on the way to the storage.
//
// The tenant's objects are owned by the tenant's ids on the storage and by
// the presented ids (IdentityFsOptions::present_uid/present_gid) in the
// mount. Everything that turns one view into the other lives here:
//   - owners of stat replies (present_owner, present_attr);
//   - FIFOs the tenant may not open, shown as an unopenable device
//     (fifo_shown_as_device);
//   - the ids named in POSIX ACLs (map_acl_ids);
//   - which ids a chown/chgrp through the mount means on the storage, and
//     the mode a chown that changes no id leaves (decide_chown,
//     mode_after_unchanged_chown).
//
// Contract: every function is pure (a function of its arguments and the
// options only) except fifo_shown_as_device, which asks the kernel whether
// the tenant may open the FIFO. None of them touches the storage; the
// operations in identity_fs.cc apply their answers. Thread-safe: no state.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstddef>
#include <optional>

#include "mapper/identity_fs.h"

namespace tenantfs {

// Presents tenant-owned objects with the volume's ids; other owners appear
// as they are.
void present_owner(const IdentityFsOptions& o, struct stat* st);

// Whether `gid` is the tenant's primary group or one of its supplementary
// groups.
bool tenant_in_group(const IdentityFsOptions& o, gid_t gid);

// A FIFO is opened by the kernel alone: no request reaches the mapper, and
// without default_permissions the kernel checks no permission either, so
// any caller could open any FIFO for reading and writing. Presentation is
// the only lever: a FIFO of another owner that the tenant may not both read
// and write is shown as character device 0:0, which never opens (EACCES on
// the mount, which is nodev; ENXIO were it not, as no driver has 0:0).
// Stricter than native for a FIFO the tenant may only read or only write.
// The tenant's own FIFOs are shown as they are, whatever their mode: their
// owner may chmod them anyway, so hiding them would protect nothing, and
// mknod and chmod through the mount keep the type the kernel expects.
//
// The kernel marks an inode bad (EIO) when an attribute reply changes its
// type, so the choice is made at lookups only and repeated by attribute
// replies (the caller keeps it with the inode); a FIFO whose access changes
// on the storage shows its new type from its next lookup on.
//
// Where a lookup found an object: `name` in the directory `dirfd`, or the
// object `dirfd` itself when `name` is empty.
struct FoundAt {
  int dirfd;
  const char* name;
};

// The choice above for the FIFO `st` found at `at`. Must run with the
// tenant's filesystem ids (privileges.h).
bool fifo_shown_as_device(const IdentityFsOptions& o, const FoundAt& at, const struct stat& st);

// Rewrites `st` as the mount shows it: presented owners, and a FIFO as
// device 0:0 when `fifo_as_device` (the choice above) says so.
void present_attr(const IdentityFsOptions& o, bool fifo_as_device, struct stat* st);

// An ACL's named entries carry ids, and the tenant's own ids are presented
// as the volume's: inside the mount `user:<present uid>` is the tenant, on
// the storage `user:<tenant uid>`. Entries naming anyone else keep their ids,
// as files of other owners do.
struct AclIdMap {
  uid_t from_uid;
  uid_t to_uid;
  gid_t from_gid;
  gid_t to_gid;
};

// Whether the mount shows ids other than the storage's, so that ACLs need
// mapping at all.
bool presents_other_ids(const IdentityFsOptions& o);

AclIdMap storage_to_mount(const IdentityFsOptions& o);
AclIdMap mount_to_storage(const IdentityFsOptions& o);

// Rewrites the named entries of an ACL in the kernel's xattr form: a 4-byte
// version (2), then 8-byte entries of tag (16 bits), permissions (16) and
// id (32), little-endian, sorted by tag and then id (the kernel refuses any
// other order, so entries whose id changed are sorted again). A value of
// any other form is left as it is: the kernel has parsed every ACL it sends
// us and parses every one we return, so it fails there with EINVAL either
// way.
void map_acl_ids(char* data, size_t size, const AclIdMap& map);

// What a chown/chgrp through the mount does on the storage.
struct ChownDecision {
  int err = 0;                         // EPERM: an id the tenant may not give
  uid_t uid = static_cast<uid_t>(-1);  // -1: owner unchanged
  gid_t gid = static_cast<gid_t>(-1);  // -1: group unchanged

  bool changes_ids() const {
    return uid != static_cast<uid_t>(-1) || gid != static_cast<gid_t>(-1);
  }
};

// chown/chgrp of the object stat'ed on the storage as `cur` to `uid` and
// `gid` (nullopt: not asked). The presented id stands for the tenant's; the
// id an object already shows means "unchanged"; one of the tenant's
// supplementary groups (shown as itself: only the primary gid is presented)
// means that group; anything else is refused. What remains is a real
// change, which the kernel judges as it would the tenant's own (owner,
// group membership).
ChownDecision decide_chown(const IdentityFsOptions& o, const struct stat& cur,
                           std::optional<uid_t> uid, std::optional<gid_t> gid);

// The permission bits (07777) a chown that changes no id leaves on the
// object stat'ed as `cur`, as it does natively to a non-directory
// (chown_common, setattr_should_drop_sgid): suid goes, and sgid goes when
// group execute is set or the caller is not in the file's group.
// Directories and symlinks keep theirs.
mode_t mode_after_unchanged_chown(const IdentityFsOptions& o, const struct stat& cur);

}  // namespace tenantfs

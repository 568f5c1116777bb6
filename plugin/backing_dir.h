// Backing directories: where a volume's data lives, and how it is created,
// found and deleted without ever following a symlink or using root's powers
// inside a tree the tenant controls.
//
// Layout under DATA_DIR (root-only, 0700):
//   <name>                    a plugin-created volume, owned by its tenant
//   .creating-<name>-<rand>   a Create in progress (removed at start-up)
//   .trash/<name>-<rand>      a removed volume whose contents are being deleted
//   .orphaned/<name>-<time>   a directory found without a binding at start-up;
//                             kept, never deleted, so a lost store cannot
//                             cost data
// Volume names start with a letter or digit, so they never collide with the
// dot entries.
//
// Thread-safety: the functions are stateless; callers serialise operations on
// one volume (the per-volume lock of VolumeDriver).
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/identity.h"
#include "common/status.h"
#include "common/unique_fd.h"

namespace tenantfs {

// Creates `path` (and missing parents) mode 0700 when missing and opens it.
// An existing directory must be owned by the calling user and writable by
// nobody else; a symlink is refused. `what` names the setting in errors
// (e.g. "DATA_DIR").
Result<UniqueFd> open_private_dir(const std::string& path, const std::string& what);

// Creates DATA_DIR/<name> owned by uid:gid with `mode`, atomically: the
// directory appears complete (owner and mode set) or not at all. Fails with
// kAlreadyExists when <name> exists.
Status create_backing_dir(int data_dir_fd, const std::string& name, uid_t uid, gid_t gid,
                          uint32_t mode);

// Opens the plugin-created backing directory DATA_DIR/<name> (O_DIRECTORY,
// O_NOFOLLOW).
Result<UniqueFd> open_backing_dir(int data_dir_fd, const std::string& name);

// Opens the existing directory `path` for a path= volume. `path` must be
// normalised and absolute; it must be one of `allowed_roots` or lie beneath
// one, be a directory, and be reached from that root with no symlink
// component (openat2 RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS). The error names
// the volume and the fix.
Result<UniqueFd> open_external_dir(const std::string& volume, const std::string& path,
                                   const std::vector<std::string>& allowed_roots);

// True when the directories `a` and `b` (open fds) are the same or one lies
// beneath the other, judged by device and inode while walking ".." up to the
// root: symlinks or bind mounts in the paths used to reach them cannot hide
// the relation.
Result<bool> dirs_overlap(int a, int b);

// Removes the plugin-created DATA_DIR/<name>: renames it into DATA_DIR/.trash
// as root, deletes its contents in a child process that runs as `owner`
// (openat/unlinkat, O_NOFOLLOW, never crossing into another filesystem;
// privileges.h, ProcessIds::kTenant), then
// removes the emptied directory as root. A missing <name> is OK. Contents the
// owner cannot delete stay in .trash and are reported as an error after the
// volume's name is already free.
Status delete_backing_dir(int data_dir_fd, const std::string& name, const Identity& owner);

// delete_backing_dir in two steps, for Remove, which moves the data out of
// the way BEFORE it unbinds the volume: a crash between the two then leaves
// a bound volume whose data waits in .trash, which clean_data_dir moves
// back, instead of unbound data that it could only set aside in .orphaned.
// move_backing_dir_to_trash returns the .trash entry ("" when <name> does
// not exist); restore_trashed_backing_dir undoes it (the unbinding failed);
// purge_trashed_backing_dir deletes it as `owner`.
Result<std::string> move_backing_dir_to_trash(int data_dir_fd, const std::string& name);
Status restore_trashed_backing_dir(int data_dir_fd, const std::string& entry,
                                   const std::string& name);
Status purge_trashed_backing_dir(int data_dir_fd, const std::string& entry, const Identity& owner);

// Start-up clean-up: removes .creating-* leftovers, moves a .trash entry of
// a volume still in `bound_names` back to DATA_DIR/<name> (a Remove that
// never unbound it), finishes deleting the other .trash entries (as each
// entry's owner), and moves directories whose name is not in
// `bound_names` to .orphaned. Returns the names moved to .orphaned.
Result<std::vector<std::string>> clean_data_dir(int data_dir_fd,
                                                const std::vector<std::string>& bound_names);

}  // namespace tenantfs

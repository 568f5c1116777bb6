// The kernel's mount table, as far as tenantfs needs it: which tenantfs FUSE
// mounts exist, whether one still answers, and how to take one down.
//
// VolumeMounts reaches it through the MountTable interface, so that unit
// tests can stand in for FUSE mounts they cannot make; KernelMountTable is
// the real one, made of the functions below.
//
// Thread-safety: stateless functions and objects, safe from any thread.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"

namespace tenantfs {

// The fstype and source the mapper gives its mounts (mapper/mapper.h).
inline constexpr const char kMapperFsType[] = "fuse.tenantfs";
inline constexpr const char kMapperSourcePrefix[] = "tenantfs:";

struct MountEntry {
  std::string mount_point;  // unescaped
  std::string fstype;
  std::string source;
};

// Every mount of /proc/self/mountinfo (or `mountinfo_path`, for tests).
Result<std::vector<MountEntry>> read_mount_table(
    const std::string& mountinfo_path = "/proc/self/mountinfo");

// Mount points with fstype fuse.tenantfs that are direct children of
// `mount_root`, as their last path component (the volume name).
std::vector<std::string> tenantfs_mounts_under(const std::vector<MountEntry>& table,
                                               const std::string& mount_root);

// True when a mount sits exactly on `path`.
bool is_mount_point(const std::vector<MountEntry>& table, const std::string& path);

// True when `path` is a FUSE mount whose server is gone. Probed with statfs,
// which the kernel always sends to the server: a stat may be answered from
// the attribute cache and so succeed on a dead mount for a while. A dead
// connection answers ENOTCONN (ECONNABORTED when the request was queued as
// the server closed /dev/fuse); a live server answers; a hung one blocks.
bool is_dead_fuse_mount(const std::string& path);

// umount2(path, 0); on EBUSY, umount2(path, MNT_DETACH) so the mount goes as
// soon as its last user does. Repeats while something is still mounted on
// `path` (stacked stale mounts). Not mounted is OK.
Status unmount(const std::string& path);

// umount2(path, MNT_DETACH), repeated for stacked mounts: for dead mounts,
// which cannot be unmounted cleanly. Not mounted is OK.
Status unmount_lazily(const std::string& path);

class MountTable {
 public:
  virtual ~MountTable() = default;

  // Every mount, as read_mount_table() gives them.
  virtual Result<std::vector<MountEntry>> entries() = 0;
  // As is_dead_fuse_mount(): may block on a hung FUSE server.
  virtual bool is_dead(const std::string& path) = 0;
  // As unmount() and unmount_lazily().
  virtual Status unmount(const std::string& path) = 0;
  virtual Status unmount_lazily(const std::string& path) = 0;
};

class KernelMountTable final : public MountTable {
 public:
  Result<std::vector<MountEntry>> entries() override;
  bool is_dead(const std::string& path) override;
  Status unmount(const std::string& path) override;
  Status unmount_lazily(const std::string& path) override;
};

}  // namespace tenantfs

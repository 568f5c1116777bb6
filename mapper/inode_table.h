// InodeTable: the mapper's view of the backing objects the kernel knows.
//
// Each object the kernel has looked up is held open as an O_PATH|O_NOFOLLOW
// fd, keyed by (st_ino, st_dev) and counted by the kernel's lookups. Holding
// the fd pins the backing inode, so its number cannot be reused while the
// kernel still refers to it, and every later operation on the object is an
// *at() call relative to that fd: no path string is ever resolved through the
// backing tree.
//
// The fuse_ino_t handed to the kernel is the address of the Inode; FUSE's
// root id (1) names the root. An Inode stays alive until the kernel forgets
// its last lookup.
//
// Thread-safety: every method is safe to call concurrently. An Inode's fd,
// ino, dev and type never change after creation; its lookup count is guarded
// by the table's mutex.
#pragma once

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include "common/unique_fd.h"

namespace tenantfs {

struct Inode {
  UniqueFd fd;      // O_PATH|O_NOFOLLOW on the backing object
  ino_t ino = 0;
  dev_t dev = 0;
  mode_t type = 0;  // S_IFMT bits
  uint64_t nlookup = 0;  // guarded by InodeTable::inodes_mutex_
  // FIFOs only: whether the last lookup reply showed it as an unopenable
  // device (identity_fs.cc, present_attr). Attribute replies repeat what the
  // lookup showed, because the kernel refuses (EIO) a type that changes
  // under an inode it knows; a new type is shown at the next lookup.
  std::atomic<bool> fifo_shown_as_device{false};
  // Directories, and regular files when the table keeps their names (only
  // needed with the writeback cache): the parent id and name under which the
  // kernel last found it. Lets the mapper drop the kernel's cached subtree
  // when a directory's permissions change, and a file's entry when its
  // cached data proved wrong. May be stale after a rename done outside the
  // mount, and names one of a file's hard links; then the drop misses.
  // Guarded by InodeTable::inodes_mutex_.
  fuse_ino_t parent = 0;
  std::string name;
  // Sent with every entry of this object. Bumped when the kernel's inode
  // must be replaced rather than refreshed (a failed write-back: the kernel
  // trusts its own size of a writeback-cached file): an entry with another
  // generation makes the kernel retire its inode and build a fresh one.
  std::atomic<uint32_t> generation{0};
};

// Where a directory sits, as far as the kernel knows.
struct DirEntryName {
  fuse_ino_t parent = 0;
  std::string name;
};

class InodeTable {
 public:
  // `root_fd` is the O_PATH fd of the backing directory, `root_st` its stat.
  // `file_names`: keep the names of regular files too, not only of
  // directories (see Inode::name); costs a string per cached file.
  InodeTable(UniqueFd root_fd, const struct stat& root_st, bool file_names = false);
  InodeTable(const InodeTable&) = delete;
  InodeTable& operator=(const InodeTable&) = delete;

  Inode& root() { return *root_; }

  // The Inode for a kernel id. The kernel only sends ids it was given and
  // has not forgotten, so this never fails.
  Inode& get(fuse_ino_t id) {
    return id == FUSE_ROOT_ID ? *root_ : *reinterpret_cast<Inode*>(id);
  }
  fuse_ino_t id_of(const Inode& inode) const {
    return &inode == root_ ? FUSE_ROOT_ID : reinterpret_cast<fuse_ino_t>(&inode);
  }

  // Records one kernel lookup of the object `fd` refers to (stat'ed as
  // `st`), found as `name` in `parent`, and returns its id. Takes ownership
  // of `fd`; if the object is already known, the known fd is kept and `fd`
  // is closed.
  fuse_ino_t add_lookup(UniqueFd fd, const struct stat& st, fuse_ino_t parent, const char* name);

  // Records one more kernel lookup of the known object (ino, dev), found as
  // `name` in `parent`; returns its id, or 0 if the object is not held.
  // Spares a lookup of a known object from opening a new fd.
  fuse_ino_t add_lookup_if_known(ino_t ino, dev_t dev, fuse_ino_t parent, const char* name);

  // Notes that the object (ino, dev), if known and its name kept, is now
  // `name` in `parent` (after a rename).
  void rename_entry(ino_t ino, dev_t dev, fuse_ino_t parent, const char* name);

  // The name of a known object whose name is kept; nullopt for the root and
  // others.
  std::optional<DirEntryName> entry_name(fuse_ino_t id);

  // Drops `n` lookups; the object is closed when none remain.
  void forget(fuse_ino_t id, uint64_t n);

  // Number of objects currently held (root included), for diagnostics.
  size_t size();

 private:
  using Key = std::pair<ino_t, dev_t>;

  // Whether objects of `type` have their name kept (Inode::name).
  bool keeps_name(mode_t type) const { return S_ISDIR(type) || (file_names_ && S_ISREG(type)); }

  // Counts a lookup of `inode`; inodes_mutex_ must be held.
  fuse_ino_t count_lookup_locked(Inode& inode, fuse_ino_t parent, const char* name);

  const bool file_names_;
  std::mutex inodes_mutex_;
  std::map<Key, std::unique_ptr<Inode>> inodes_;  // guarded by inodes_mutex_
  Inode* root_;  // owned by inodes_, never removed
};

}  // namespace tenantfs

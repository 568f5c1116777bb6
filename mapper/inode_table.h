// InodeTable: the mapper's view of the backing objects the kernel knows.
//
// Each object the kernel has looked up is an Inode, keyed by (st_ino,
// st_dev) and counted by the kernel's lookups. The fuse_ino_t handed to the
// kernel is the address of the Inode; FUSE's root id (1) names the root. An
// Inode stays alive while the kernel still refers to it, while a request or
// an open file uses it (a pin), or while another Inode names it as parent.
//
// Bounded fds. An operation reaches its object through an O_PATH|O_NOFOLLOW
// fd and *at() calls relative to it: no path string is ever resolved through
// the backing tree. Those fds are opened when first needed and kept in an
// LRU of at most `max_open` (the mapper sets it to half its RLIMIT_NOFILE;
// the other half is for open files and the FUSE session). The kernel may
// cache millions of inodes; the mapper then holds `max_open` fds, not one
// per inode. An Inode whose fd was closed remembers where it was last found
// (parent Inode and name), and is reopened from there when next used: the
// object found there must be the same one (st_dev, st_ino and mount id), or
// the use fails with ESTALE. The kernel answers ESTALE by looking the path
// up again, so a name replaced on the storage is then served as the new
// object. (Reopening by name cannot tell an object from a new one that got
// the same inode number after the old one was deleted; both lie in the
// volume, and the kernel's revalidation of attributes follows.)
//
// Mount boundaries. Every object must lie on the mount of the backing
// directory (compared by statx's mount id, so a bind mount of the same
// filesystem counts as another mount) and on its device (st_dev). Lookups
// refuse anything else with EXDEV without opening it, and a reopen that
// crosses a mount fails with ESTALE, so no fd inside a nested mount is ever
// kept and the nested mount can be unmounted while the volume is served.
//
// Thread-safety: every method is safe to call concurrently. An Inode's ino,
// dev and type never change after creation; everything else in it is
// guarded by the table's mutex. A pinned fd stays open until unpinned.
#pragma once

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/thread_annotations.h"
#include "common/unique_fd.h"

namespace tenantfs {

struct Inode {
  ino_t ino = 0;
  dev_t dev = 0;
  mode_t type = 0;  // S_IFMT bits

  // Guarded by InodeTable::mutex_. A comment, not GUARDED_BY: an Inode does
  // not know its table, so the analysis cannot name that mutex from here.
  UniqueFd fd;            // O_PATH|O_NOFOLLOW on the object; empty when closed
  uint64_t nlookup = 0;   // the kernel's lookups
  uint64_t pins = 0;      // users of `fd` right now (requests, open files)
  uint64_t children = 0;  // Inodes whose `parent` is this one
  // Where the object was last found: reopened from here, and, for
  // directories, where the kernel's cached subtree hangs. Null for the
  // root. May be stale after a rename done outside the mount; then a
  // reopen fails with ESTALE and the kernel looks the object up again.
  Inode* parent = nullptr;
  std::string name;
  std::list<Inode*>::iterator lru;  // valid while `fd` is open (not root)

  // FIFOs only: whether the last lookup reply showed it as an unopenable
  // device (identity_fs.cc, present_attr). Attribute replies repeat what the
  // lookup showed, because the kernel refuses (EIO) a type that changes
  // under an inode it knows; a new type is shown at the next lookup.
  std::atomic<bool> fifo_shown_as_device{false};
  // Sent with every entry of this object. Bumped when the kernel's inode
  // must be replaced rather than refreshed (a failed write-back: the kernel
  // trusts its own size of a writeback-cached file): an entry with another
  // generation makes the kernel retire its inode and build a fresh one.
  std::atomic<uint32_t> generation{0};
};

// Where an object sits, as far as the kernel knows.
struct DirEntryName {
  fuse_ino_t parent = 0;
  std::string name;
};

// What the mapper needs to know of a backing object: its stat (st_dev,
// st_ino, owner, mode...) and the id of the mount it lies on.
struct BackingStat {
  struct stat st;
  uint64_t mnt_id = 0;
};

// statx() of `name` in `dirfd` (flags as for statx, e.g. AT_EMPTY_PATH,
// AT_SYMLINK_NOFOLLOW) with the mount id; 0 or an errno.
int backing_stat(int dirfd, const char* name, int flags, BackingStat* out);

class InodeTable;

// An fd of an Inode, open and pinned for as long as this object lives.
// Move-only; obtained from InodeTable::pin.
class PinnedFd {
 public:
  PinnedFd() = default;
  PinnedFd(const PinnedFd&) = delete;
  PinnedFd& operator=(const PinnedFd&) = delete;
  PinnedFd(PinnedFd&& o) noexcept { *this = std::move(o); }
  PinnedFd& operator=(PinnedFd&& o) noexcept;
  ~PinnedFd() { reset(); }

  int get() const { return fd_; }
  // Ends the pin early.
  void reset();

 private:
  friend class InodeTable;
  InodeTable* table_ = nullptr;
  Inode* inode_ = nullptr;
  int fd_ = -1;
};

class InodeTable {
 public:
  // `root_fd` is the O_PATH fd of the backing directory, `root` its stat.
  // At most `max_open` fds of other objects are kept open while unpinned.
  InodeTable(UniqueFd root_fd, const BackingStat& root, size_t max_open);
  InodeTable(const InodeTable&) = delete;
  InodeTable& operator=(const InodeTable&) = delete;

  // The Inode for a kernel id. The kernel only sends ids it was given and
  // has not forgotten, so this never fails.
  Inode& get(fuse_ino_t id) { return id == FUSE_ROOT_ID ? *root_ : *reinterpret_cast<Inode*>(id); }
  fuse_ino_t id_of(const Inode& inode) const {
    return &inode == root_ ? FUSE_ROOT_ID : reinterpret_cast<fuse_ino_t>(&inode);
  }
  // Whether an object lies in the volume's reach: on the backing
  // directory's mount and filesystem. Any other mount below it (another
  // filesystem, or a bind mount of this one that may show a directory from
  // elsewhere) is not part of the volume; neither is another device on the
  // same mount (a btrfs subvolume), as before mount ids were compared.
  bool on_volume(const BackingStat& found) const {
    return found.mnt_id == root_mnt_id_ && found.st.st_dev == root_->dev;
  }

  // Records one kernel lookup of the object stat'ed as `st` (which must lie
  // on the root's mount), found as `name` in `parent`, and returns its id.
  // `fd`, if valid, is an O_PATH fd of that object, kept if the Inode has
  // none; otherwise the fd is opened by the first pin.
  fuse_ino_t add_lookup(const struct stat& st, fuse_ino_t parent, const char* name,
                        UniqueFd fd = UniqueFd());

  // Opens (or reopens by name) the object's fd and pins it into `out`.
  // 0, or an errno: ESTALE when the object is no longer where it was last
  // found, EMFILE/ENFILE when no fd is left. Never changes the storage.
  int pin(fuse_ino_t id, PinnedFd* out);
  // The object's stat, as pin() and a stat of the fd would give, without
  // opening an fd: an Inode whose fd is closed is stat'ed by name where it
  // was last found, with the same check that it is still the same object
  // (ESTALE otherwise). A GETATTR of an object looked up but not yet used
  // costs one statx, not an openat, a statx and a stat.
  int stat(fuse_ino_t id, struct stat* out);
  // Runs `use(fd, name)` on the object without opening it, for calls that
  // take a directory fd and a name (getxattrat, listxattrat): an Inode
  // whose fd is closed is used as `name` in its parent's fd, and the name
  // is checked afterwards to still hold the same object (ESTALE otherwise,
  // whatever `use` returned). An Inode with its fd open (and the root) is
  // used through that fd, with name "". With `by_name` false (the kernel
  // lacks such calls) the fd is always opened, as by pin(). Returns what
  // `use` returns (0 or an errno), or an errno of finding the object.
  int use_in_place(fuse_ino_t id, bool by_name, const std::function<int(int, const char*)>& use);
  // Pins the Inode without opening anything, for an open file or
  // directory: its fd, once open, is never evicted until unpin(), so
  // operations on an object unlinked while open still reach it.
  void hold(fuse_ino_t id);
  // Ends a hold.
  void unpin(fuse_ino_t id);

  // Notes that the object (ino, dev), if known, is now `name` in `parent`
  // (after a rename).
  void renamed(ino_t ino, dev_t dev, fuse_ino_t parent, const char* name);

  // Where the kernel last found a known object (for a file, one of its
  // hard links); nullopt for the root.
  std::optional<DirEntryName> entry_name(fuse_ino_t id);

  // Drops `n` lookups; the Inode goes once nothing refers to it.
  void forget(fuse_ino_t id, uint64_t n);

  // Number of fds open besides the root's, for diagnostics and tests.
  size_t open_fds();

 private:
  friend class PinnedFd;
  using Key = std::pair<ino_t, dev_t>;

  // Parents a reopen may climb through at most. Names recorded before the
  // storage was rearranged outside the mount can form a cycle (a directory
  // recorded under its own former child); the bound turns that into ESTALE
  // (and a fresh lookup by the kernel) instead of endless recursion.
  static constexpr int kMaxReopenDepth = 1024;

  int pin_inode(Inode& inode, PinnedFd* out, int depth = 0) EXCLUDES(mutex_);
  // Reopens `inode` (pinned by the caller) where it was last found: its
  // parent (reopened if need be, `depth` levels up so far) and its name.
  // The new O_PATH fd is left in `fd`, its stat in `now`. 0, or ESTALE if
  // another object or nothing holds the name now.
  int find_again(Inode& inode, int depth, UniqueFd* fd, BackingStat* now) EXCLUDES(mutex_);
  // Finds `inode` by name in its parent as find_again does, with
  // `use(parent_fd, name)` in place of the reopen: it returns 0 with `now`
  // filled (or an errno), and the object found in `now` must be `inode`.
  int find_by_name(Inode& inode, int depth, const std::function<int(int, const char*)>& use,
                   BackingStat* now) EXCLUDES(mutex_);
  // Pins `inode` and its fd into `out` when the fd is open (the root's
  // always is). Otherwise pins the Inode alone, so that it stays while it
  // is found by name, and leaves `out` empty: unpin_inode() ends that pin.
  void pin_as_is(Inode& inode, PinnedFd* out) EXCLUDES(mutex_);
  void unpin_inode(Inode& inode) EXCLUDES(mutex_);
  // Points `inode` at (parent, name); an old parent left unreferenced is
  // erased.
  void set_parent_locked(Inode& inode, Inode* parent, const char* name,
                         std::vector<UniqueFd>* closing) REQUIRES(mutex_);
  // Erases `inode` (and parents left unreferenced) if nothing refers to it
  // any more; their fds are moved to `closing`.
  void erase_if_unused_locked(Inode* inode, std::vector<UniqueFd>* closing) REQUIRES(mutex_);
  // Closes the least recently used unpinned fds beyond max_open_.
  void evict_locked(std::vector<UniqueFd>* closing) REQUIRES(mutex_);

  const size_t max_open_;
  uint64_t root_mnt_id_;
  Mutex mutex_;
  std::map<Key, std::unique_ptr<Inode>> inodes_ GUARDED_BY(mutex_);
  // Open fds, most recently used first.
  std::list<Inode*> lru_ GUARDED_BY(mutex_);
  Inode* root_;  // owned by inodes_, never removed, never closed
};

}  // namespace tenantfs

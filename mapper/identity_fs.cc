#include "mapper/identity_fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <vector>

#include "mapper/fuse_passthrough.h"
#include "mapper/presentation.h"
#include "mapper/xattr_at.h"

namespace tenantfs {

IdentityFs::IdentityFs(IdentityFsOptions options, UniqueFd root_fd, const BackingStat& root)
    : options_(std::move(options)),
      inodes_(std::move(root_fd), root, options_.max_open_fds),
      flock_waiters_(std::make_shared<FlockWaiters>(options_.name, options_.max_flock_waiters)),
      notifier_(options_.name) {
  PinnedFd dir;
  xattr_by_name_ = inodes_.pin(FUSE_ROOT_ID, &dir) == 0 && xattr_at_calls_work(dir.get());
}

namespace {

IdentityFs& fs_of(fuse_req_t req) { return *static_cast<IdentityFs*>(fuse_req_userdata(req)); }

// Pins the fd of `ino` for this request into `fd`; if that fails (the
// object moved away on the storage, or no fd is left), replies with the
// errno and returns false. Every fd a request needs is taken this way
// before it changes the storage, so a request never fails after a change.
bool pin_or_reply(fuse_req_t req, fuse_ino_t ino, PinnedFd* fd) {
  if (int err = fs_of(req).inodes().pin(ino, fd); err != 0) {
    fuse_reply_err(req, err);
    return false;
  }
  return true;
}

// "N" in /proc/self/fd, the mapper's working directory (run_mapper changes
// to it before the privilege drop): the only way to reach an object held as
// an O_PATH fd with calls that take no fd (open, chmod, xattrs, truncate).
// The kernel resolves it to the object itself, never through the backing
// tree, and a relative name never needs search permission on "/".
class ProcPath {
 public:
  explicit ProcPath(int fd) { std::snprintf(buf_, sizeof buf_, "%d", fd); }
  const char* c_str() const { return buf_; }

 private:
  char buf_[32];
};

// errno after a failed call; never 0, which fuse_reply_err takes as success.
int last_errno() { return errno != 0 ? errno : EIO; }

bool is_dot_or_dotdot(const char* name) {
  return name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
}

// What the mount shows of `inode`, stat'ed as `st` (presentation.h).
// `lookup`: where the object was found when the reply creates or
// revalidates the kernel's entry (lookup, readdirplus, create), where the
// FIFO rule is decided and kept with the inode; null when the reply
// refreshes the attributes of an inode the kernel holds, which repeats the
// kept choice.
void present_inode_attr(IdentityFs& fs, Inode& inode, const FoundAt* lookup, struct stat* st) {
  bool fifo_as_device = false;
  if (S_ISFIFO(st->st_mode)) {
    if (lookup == nullptr) {
      fifo_as_device = inode.fifo_shown_as_device.load(std::memory_order_relaxed);
    } else {
      fifo_as_device = fifo_shown_as_device(fs.options(), *lookup, *st);
      inode.fifo_shown_as_device.store(fifo_as_device, std::memory_order_relaxed);
    }
  }
  present_attr(fs.options(), fifo_as_device, st);
}

int stat_fd(int fd, struct stat* st) {
  if (::fstatat(fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) {
    return last_errno();
  }
  return 0;
}

// Fills `e` for the object `id`, stat'ed as `st`, found at `at`.
void fill_entry(IdentityFs& fs, fuse_ino_t id, const struct stat& st, const FoundAt& at,
                fuse_entry_param* e) {
  e->ino = id;
  e->generation = fs.inodes().get(id).generation.load(std::memory_order_relaxed);
  e->attr = st;
  present_inode_attr(fs, fs.inodes().get(id), &at, &e->attr);
  e->attr_timeout = fs.options().attr_timeout;
  e->entry_timeout = fs.options().entry_timeout;
}

// Looks `name` up in the directory `dirfd` (an fd of `parent`) and, on
// success, records one kernel lookup and fills `e`. Opens nothing, so a
// lookup needs no fd beyond its directory's, and nothing found in a nested
// mount is ever held. Returns 0 or an errno.
int lookup_in(IdentityFs& fs, fuse_ino_t parent, int dirfd, const char* name, fuse_entry_param* e) {
  *e = fuse_entry_param{};
  // The kernel resolves "." and ".." itself; answering them here could walk
  // above the backing root.
  if (is_dot_or_dotdot(name)) return EINVAL;
  BackingStat found;
  if (int err = backing_stat(dirfd, name, AT_SYMLINK_NOFOLLOW, &found); err != 0) return err;
  if (!fs.inodes().on_volume(found)) return EXDEV;
  fill_entry(fs, fs.inodes().add_lookup(found.st, parent, name), found.st, FoundAt{dirfd, name},
             e);
  return 0;
}

int do_lookup(IdentityFs& fs, fuse_ino_t parent, const char* name, fuse_entry_param* e) {
  PinnedFd dir;
  if (int err = fs.inodes().pin(parent, &dir); err != 0) {
    *e = fuse_entry_param{};
    return err;
  }
  return lookup_in(fs, parent, dir.get(), name, e);
}

// The entry of the file `file_fd` that CREATE opened as `name` in `parent`.
// The open fd says what was opened, and its magic link leads back to that
// very object, whatever happened to the name since. The file exists now, so
// nothing after the open may fail for want of an fd: if its O_PATH fd cannot
// be opened, the Inode is recorded without one and opened when next used.
int lookup_created(IdentityFs& fs, fuse_ino_t parent, const char* name, int file_fd,
                   fuse_entry_param* e) {
  *e = fuse_entry_param{};
  BackingStat opened;
  if (int err = backing_stat(file_fd, "", AT_EMPTY_PATH, &opened); err != 0) return err;
  // A file bind-mounted over `name` was opened, not created.
  if (!fs.inodes().on_volume(opened)) return EXDEV;
  const ProcPath path(file_fd);
  UniqueFd fd(::open(path.c_str(), O_PATH | O_CLOEXEC));
  fill_entry(fs, fs.inodes().add_lookup(opened.st, parent, name, std::move(fd)), opened.st,
             FoundAt{file_fd, ""}, e);
  return 0;
}

void reply_entry_or_forget(fuse_req_t req, const fuse_entry_param& e) {
  // If the kernel did not take the entry (interrupted request), it will
  // never forget it: undo the lookup ourselves.
  if (fuse_reply_entry(req, &e) != 0 && e.ino != 0) fs_of(req).inodes().forget(e.ino, 1);
}

// What the kernel cached below a directory, to be dropped after the reply
// to a request that changed the directory's permissions, so that the next
// path walk through it asks us again and the backing store re-checks search
// permission. Dropping the directory's own entry drops its whole cached
// subtree; the root has no entry, so its children are dropped one by one.
//
// Two steps, because the reply is in between: subtree_below() reads the
// inode table and must run before the reply (once answered, the kernel may
// forget the directory, and its id would point at freed memory);
// drop_cached_subtree() sends the notifications and must run after it (the
// kernel may still hold locks for that request, and the notification takes
// the parent's).
struct CachedSubtree {
  bool root = false;
  std::optional<DirEntryName> entry;
};

CachedSubtree subtree_below(IdentityFs& fs, fuse_ino_t dir) {
  CachedSubtree s;
  s.root = dir == FUSE_ROOT_ID;
  if (!s.root) s.entry = fs.inodes().entry_name(dir);
  return s;
}

void drop_cached_subtree(IdentityFs& fs, const CachedSubtree& subtree) {
  fuse_session* se = fs.session();
  if (se == nullptr) return;
  if (subtree.entry) {
    // The parent id is only passed on: the kernel looks it up itself.
    fuse_lowlevel_notify_inval_entry(se, subtree.entry->parent, subtree.entry->name.data(),
                                     subtree.entry->name.size());
    return;
  }
  if (!subtree.root) return;
  PinnedFd root;  // the root's fd is never closed: this cannot fail
  if (fs.inodes().pin(FUSE_ROOT_ID, &root) != 0) return;
  const ProcPath path(root.get());
  const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  DIR* dp = ::fdopendir(fd);
  if (dp == nullptr) {
    ::close(fd);
    return;
  }
  while (const dirent* ent = ::readdir(dp)) {
    if (is_dot_or_dotdot(ent->d_name)) continue;
    fuse_lowlevel_notify_inval_entry(se, FUSE_ROOT_ID, ent->d_name, std::strlen(ent->d_name));
  }
  ::closedir(dp);
}

bool is_access_acl(const char* name) { return std::strcmp(name, "system.posix_acl_access") == 0; }

bool is_posix_acl(const char* name) {
  return is_access_acl(name) || std::strcmp(name, "system.posix_acl_default") == 0;
}

// Replies to setxattr or removexattr of `name` on `inode` (id `ino`), whose
// system call returned `res`. A changed access ACL rewrites the mode's group
// bits on the storage, so the kernel's cached attributes of the object are
// dropped before the reply, so that the caller's next stat sees the new mode
// (else the mount shows the old one until it times out, an hour with
// cache=exclusive). Attributes only: that notification takes no lock a
// caller may hold, unlike dropping pages or entries. On a directory the ACL
// also changes who may search it, so what the kernel cached below it is
// dropped too, after the reply, read before it as `inode` may be gone after
// it (see CachedSubtree).
void reply_xattr_change(fuse_req_t req, IdentityFs& fs, fuse_ino_t ino, const Inode& inode,
                        const char* name, int res) {
  const int err = res == 0 ? 0 : last_errno();
  const bool acl_changed = res == 0 && is_access_acl(name);
  const CachedSubtree subtree =
      acl_changed && S_ISDIR(inode.type) ? subtree_below(fs, ino) : CachedSubtree{};
  if (acl_changed && fs.session() != nullptr) {
    // Offset -1: attributes only, no pages.
    fuse_lowlevel_notify_inval_inode(fs.session(), ino, -1, 0);
  }
  fuse_reply_err(req, err);
  drop_cached_subtree(fs, subtree);
}

// ---------------------------------------------------------------- metadata

void op_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  IdentityFs& fs = fs_of(req);
  fuse_entry_param e;
  int err = do_lookup(fs, parent, name, &e);
  if (err == ENOENT && fs.options().negative_timeout > 0) {
    // A zero ino with a timeout caches the absence.
    e = fuse_entry_param{};
    e.entry_timeout = fs.options().negative_timeout;
    fuse_reply_entry(req, &e);
    return;
  }
  if (err != 0) {
    fuse_reply_err(req, err);
    return;
  }
  reply_entry_or_forget(req, e);
}

void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  fs_of(req).inodes().forget(ino, nlookup);
  fuse_reply_none(req);
}

void op_forget_multi(fuse_req_t req, size_t count, fuse_forget_data* forgets) {
  InodeTable& inodes = fs_of(req).inodes();
  for (size_t i = 0; i < count; ++i) inodes.forget(forgets[i].ino, forgets[i].nlookup);
  fuse_reply_none(req);
}

void op_getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info* /*fi*/) {
  IdentityFs& fs = fs_of(req);
  struct stat st;
  if (int err = fs.inodes().stat(ino, &st); err != 0) {
    fuse_reply_err(req, err);
    return;
  }
  present_inode_attr(fs, fs.inodes().get(ino), nullptr, &st);
  fuse_reply_attr(req, &st, fs.options().attr_timeout);
}

// Clears what a chown that changes no id clears natively
// (mode_after_unchanged_chown). chown(f, -1, -1) and chown to the ids a
// file already shows reach the mapper as such a request; with killpriv
// negotiated (mapper.cc) the kernel leaves the clearing to us, and the
// chmod it takes needs ownership, as natively.
int kill_suid_sgid(const IdentityFsOptions& o, int fd) {
  struct stat cur;
  if (int err = stat_fd(fd, &cur); err != 0) return err;
  const mode_t mode = mode_after_unchanged_chown(o, cur);
  if (mode == (cur.st_mode & 07777)) return 0;
  const ProcPath path(fd);
  if (::chmod(path.c_str(), mode) != 0) return last_errno();
  return 0;
}

// chown/chgrp as decide_chown says; a request that changes no id still
// clears suid/sgid.
int do_chown(const IdentityFsOptions& o, int fd, const struct stat* attr, int valid) {
  struct stat cur;
  if (int err = stat_fd(fd, &cur); err != 0) return err;
  const ChownDecision d =
      decide_chown(o, cur, (valid & FUSE_SET_ATTR_UID) ? std::optional(attr->st_uid) : std::nullopt,
                   (valid & FUSE_SET_ATTR_GID) ? std::optional(attr->st_gid) : std::nullopt);
  if (d.err != 0) return d.err;
  if (!d.changes_ids()) return kill_suid_sgid(o, fd);
  if (::fchownat(fd, "", d.uid, d.gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) {
    return last_errno();
  }
  return 0;
}

// With the writeback cache the kernel keeps a regular file's times itself
// and sends them as explicit values: on `touch` (atime "now", mtime and
// ctime explicit), on truncate, and when it writes back the times of
// buffered writes (fsync, fdatasync, close). Explicit times need ownership;
// "now" needs only write permission, so a writer that does not own the file
// would get EPERM where natively it succeeds. A caller cannot set ctime: the
// kernel fills it with the current time, and fills mtime with that same
// time when the caller asked for "now" or wrote. So mtime equal to ctime
// is the kernel's "now"; a caller's own time (touch -d) differs from it.
// Limit: a ctime changed alone after the last write (a rename, a link)
// makes the two differ, so a non-owner's fsync after that still fails.
bool is_kernel_now(const struct stat* attr, int valid) {
  return (valid & FUSE_SET_ATTR_CTIME) && (valid & FUSE_SET_ATTR_MTIME) &&
         !(valid & FUSE_SET_ATTR_MTIME_NOW) && attr->st_mtim.tv_sec == attr->st_ctim.tv_sec &&
         attr->st_mtim.tv_nsec == attr->st_ctim.tv_nsec;
}

// `tv` null: both "now".
int set_times(const Inode& inode, int fd, const struct timespec tv[2], fuse_file_info* fi) {
  int res;
  if (fi != nullptr) {
    res = ::futimens(static_cast<int>(fi->fh), tv);
  } else if (S_ISLNK(inode.type)) {
    // The magic link would be followed to the symlink's target; only the
    // AT_EMPTY_PATH form reaches the symlink itself.
    res = ::utimensat(fd, "", tv, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
  } else {
    const ProcPath path(fd);
    res = ::utimensat(AT_FDCWD, path.c_str(), tv, 0);
  }
  return res == 0 ? 0 : last_errno();
}

int do_times(const Inode& inode, int fd, const struct stat* attr, int valid, fuse_file_info* fi) {
  struct timespec tv[2];
  tv[0].tv_sec = 0;
  tv[0].tv_nsec = UTIME_OMIT;
  tv[1] = tv[0];
  if (valid & FUSE_SET_ATTR_ATIME_NOW) {
    tv[0].tv_nsec = UTIME_NOW;
  } else if (valid & FUSE_SET_ATTR_ATIME) {
    tv[0] = attr->st_atim;
  }
  if (valid & FUSE_SET_ATTR_MTIME_NOW) {
    tv[1].tv_nsec = UTIME_NOW;
  } else if (valid & FUSE_SET_ATTR_MTIME) {
    tv[1] = attr->st_mtim;
  }
  const int err = set_times(inode, fd, tv, fi);
  // The owner keeps the kernel's exact times; anyone else gets "now", which
  // the backing kernel grants on write permission alone, but only for both
  // times at once: atime becomes "now" too, unless the caller gave one.
  if (err != EPERM || !is_kernel_now(attr, valid)) return err;
  const bool caller_atime = (valid & FUSE_SET_ATTR_ATIME) && !(valid & FUSE_SET_ATTR_ATIME_NOW) &&
                            (attr->st_atim.tv_sec != attr->st_ctim.tv_sec ||
                             attr->st_atim.tv_nsec != attr->st_ctim.tv_nsec);
  if (caller_atime) return err;
  return set_times(inode, fd, nullptr, fi);
}

int do_setattr(const IdentityFsOptions& o, const Inode& inode, int fd, struct stat* attr, int valid,
               fuse_file_info* fi) {
  const ProcPath path(fd);
  const bool is_symlink = S_ISLNK(inode.type);
  if (valid & FUSE_SET_ATTR_MODE) {
    if (is_symlink) return EOPNOTSUPP;
    const int res = fi != nullptr ? ::fchmod(static_cast<int>(fi->fh), attr->st_mode)
                                  : ::chmod(path.c_str(), attr->st_mode);
    if (res != 0) return last_errno();
  }
  if (valid & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
    if (int err = do_chown(o, fd, attr, valid); err != 0) return err;
  }
  if (valid & FUSE_SET_ATTR_SIZE) {
    if (!S_ISREG(inode.type)) return S_ISDIR(inode.type) ? EISDIR : EINVAL;
    const int res = fi != nullptr ? ::ftruncate(static_cast<int>(fi->fh), attr->st_size)
                                  : ::truncate(path.c_str(), attr->st_size);
    if (res != 0) return last_errno();
  }
  if (valid & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME)) {
    if (int err = do_times(inode, fd, attr, valid, fi); err != 0) return err;
  }
  // Nothing to change but ctime: chown(f, -1, -1), or the kernel killing
  // suid/sgid before a write (file_remove_privs). The two look alike, and
  // the second must not fail for a writer that does not own the file; its
  // write kills the bits on the storage anyway (the mapper has no
  // CAP_FSETID). So a tenant that may not clear them gets success, where
  // natively chown(f, -1, -1) of a setuid file it does not own is EPERM.
  constexpr int kChanges = FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID |
                           FUSE_SET_ATTR_SIZE | FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME;
  if ((valid & kChanges) == 0) {
    const int err = kill_suid_sgid(o, fd);
    return err == EPERM ? 0 : err;
  }
  return 0;
}

void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int valid,
                fuse_file_info* fi) {
  IdentityFs& fs = fs_of(req);
  Inode& inode = fs.inodes().get(ino);
  PinnedFd fd;
  if (!pin_or_reply(req, ino, &fd)) return;
  if (int err = do_setattr(fs.options(), inode, fd.get(), attr, valid, fi); err != 0) {
    fuse_reply_err(req, err);
    return;
  }
  fd.reset();
  const bool permissions_changed =
      S_ISDIR(inode.type) && (valid & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID));
  // Read before the reply: afterwards `inode` may be gone (subtree_below).
  const CachedSubtree subtree = permissions_changed ? subtree_below(fs, ino) : CachedSubtree{};
  op_getattr(req, ino, fi);
  drop_cached_subtree(fs, subtree);
}

void op_readlink(fuse_req_t req, fuse_ino_t ino) {
  PinnedFd fd;
  if (!pin_or_reply(req, ino, &fd)) return;
  char buf[PATH_MAX + 1];
  const ssize_t n = ::readlinkat(fd.get(), "", buf, sizeof buf);
  if (n < 0) {
    fuse_reply_err(req, last_errno());
    return;
  }
  if (static_cast<size_t>(n) == sizeof buf) {
    fuse_reply_err(req, ENAMETOOLONG);
    return;
  }
  buf[n] = '\0';
  fuse_reply_readlink(req, buf);
}

// ------------------------------------------------------- directory entries

// Runs `make` (which creates `name` in the parent's fd and returns 0 or -1
// with errno) and replies with the new entry. The parent's fd is pinned
// before `make` runs, and the entry needs no other fd.
template <typename Make>
void make_entry(fuse_req_t req, fuse_ino_t parent, const char* name, Make make) {
  IdentityFs& fs = fs_of(req);
  PinnedFd dir;
  if (!pin_or_reply(req, parent, &dir)) return;
  if (make(dir.get()) != 0) {
    fuse_reply_err(req, last_errno());
    return;
  }
  fuse_entry_param e;
  const int err = lookup_in(fs, parent, dir.get(), name, &e);
  if (err != 0) {
    fuse_reply_err(req, err);
    return;
  }
  reply_entry_or_forget(req, e);
}

// Device nodes never get here (refuse_device_nodes).
void op_mknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
  make_entry(req, parent, name, [&](int dirfd) { return ::mknodat(dirfd, name, mode, rdev); });
}

void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  make_entry(req, parent, name, [&](int dirfd) { return ::mkdirat(dirfd, name, mode); });
}

void op_symlink(fuse_req_t req, const char* link, fuse_ino_t parent, const char* name) {
  make_entry(req, parent, name, [&](int dirfd) { return ::symlinkat(link, dirfd, name); });
}

void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char* newname) {
  PinnedFd fd;
  if (!pin_or_reply(req, ino, &fd)) return;
  const ProcPath path(fd.get());
  // linkat(fd, "", ..., AT_EMPTY_PATH) needs CAP_DAC_READ_SEARCH; following
  // the magic link does not, and links the object itself (even a symlink).
  make_entry(req, newparent, newname, [&](int dirfd) {
    return ::linkat(AT_FDCWD, path.c_str(), dirfd, newname, AT_SYMLINK_FOLLOW);
  });
}

void remove_entry(fuse_req_t req, fuse_ino_t parent, const char* name, int flags) {
  PinnedFd dir;
  if (!pin_or_reply(req, parent, &dir)) return;
  const int res = ::unlinkat(dir.get(), name, flags);
  fuse_reply_err(req, res == 0 ? 0 : last_errno());
}

void op_unlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  remove_entry(req, parent, name, 0);
}

void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  remove_entry(req, parent, name, AT_REMOVEDIR);
}

void op_rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent,
               const char* newname, unsigned int flags) {
  IdentityFs& fs = fs_of(req);
  // RENAME_WHITEOUT is for overlay filesystems; not offered.
  if ((flags & ~static_cast<unsigned>(RENAME_NOREPLACE | RENAME_EXCHANGE)) != 0) {
    fuse_reply_err(req, EINVAL);
    return;
  }
  PinnedFd from_dir;
  PinnedFd to_dir;
  if (!pin_or_reply(req, parent, &from_dir) || !pin_or_reply(req, newparent, &to_dir)) return;
  const int from_fd = from_dir.get();
  const int to_fd = to_dir.get();
  if (::renameat2(from_fd, name, to_fd, newname, flags) != 0) {
    fuse_reply_err(req, last_errno());
    return;
  }
  // Keep the names of moved objects current: an Inode whose fd was closed
  // is reopened by name, and drop_cached_subtree names directories.
  struct stat st;
  if (::fstatat(to_fd, newname, &st, AT_SYMLINK_NOFOLLOW) == 0) {
    fs.inodes().renamed(st.st_ino, st.st_dev, newparent, newname);
  }
  if ((flags & RENAME_EXCHANGE) != 0 && ::fstatat(from_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
    fs.inodes().renamed(st.st_ino, st.st_dev, parent, name);
  }
  fuse_reply_err(req, 0);
}

// ------------------------------------------------------------------- files

// Flags for reopening an object through its magic link. O_NOFOLLOW would make
// the magic link itself fail; O_CREAT/O_EXCL/O_NOCTTY mean nothing here.
int reopen_flags(int flags) { return flags & ~(O_CREAT | O_EXCL | O_NOCTTY | O_NOFOLLOW); }

bool opens_for_writing(int flags) {
  return (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC) != 0;
}

// An fd on the backing file plus how the kernel must treat it.
struct OpenedFile {
  int fd = -1;
  bool bypass_cache = false;  // FOPEN_DIRECT_IO for this open
};

// The one place where files are opened (create and open); whether the open
// then passes through is decided by attach_backing.
//
// O_DIRECT is not passed down: the kernel's direct I/O already bypasses its
// cache for the FUSE file, and libfuse's request buffers are not aligned the
// way O_DIRECT on the backing file would demand.
//
// With the writeback cache the kernel reads around partial-page writes and
// appends by itself, so a write-only open must be readable and O_APPEND must
// go. A tenant without read permission gets a write-only fd, used with
// direct I/O so that the kernel never needs to read around its writes.
template <typename Open>
OpenedFile open_backing_file(const IdentityFsOptions& o, int flags, Open open_fn) {
  OpenedFile f;
  f.bypass_cache = (flags & O_DIRECT) != 0;
  flags &= ~O_DIRECT;
  if (o.writeback_cache) {
    const int plain = flags;
    flags &= ~O_APPEND;
    if ((flags & O_ACCMODE) == O_WRONLY) {
      f.fd = open_fn((flags & ~O_ACCMODE) | O_RDWR);
      if (f.fd >= 0 || errno != EACCES) return f;
      f.bypass_cache = true;
      f.fd = open_fn(plain);
      return f;
    }
  }
  f.fd = open_fn(flags);
  return f;
}

void set_open_flags(const IdentityFsOptions& o, const OpenedFile& f, fuse_file_info* fi) {
  fi->fh = static_cast<uint64_t>(f.fd);
  fi->keep_cache = o.keep_cache ? 1 : 0;
  // Each close() of each duplicate fd costs a FLUSH round trip (a shell's
  // `: > f` makes two); only worth it where close can report an error.
  fi->noflush = o.flush_on_close ? 0 : 1;
  if (f.bypass_cache) {
    fi->direct_io = 1;
    fi->keep_cache = 0;
  }
}

// The backing id the open of `f` (a file of `ino`) answers with, or -1 when
// the mapper serves its I/O (passthrough_opens.h). Matched by detach_backing.
//
// A CREATE does not register its new file: registering costs the broker's
// round trip, its own reopen of the file and the kernel's backing file
// (~60 us a file here), more than the mapper spends serving the writes of
// most newly created files (a create of 10,000 1 KiB files on a RAM-backed
// ext4: 1.74 s with registration, 1.16 s without; bench/README.md, seventh
// round). The file passes through from its next open on; writes of the
// creating open go through the mapper, as with passthrough off.
int32_t attach_backing(IdentityFs& fs, fuse_ino_t ino, const OpenedFile& f,
                       Registration registration) {
  PassthroughOpens* opens = fs.passthrough();
  return opens != nullptr ? opens->attach(ino, f.fd, f.bypass_cache, registration) : -1;
}

void detach_backing(IdentityFs& fs, int fd) {
  if (PassthroughOpens* opens = fs.passthrough()) opens->detach(fd);
}

void op_open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  IdentityFs& fs = fs_of(req);
  const IdentityFsOptions& o = fs.options();
  PinnedFd fd;
  if (!pin_or_reply(req, ino, &fd)) return;
  const ProcPath path(fd.get());
  const OpenedFile f = open_backing_file(o, reopen_flags(fi->flags), [&](int flags) {
    return ::open(path.c_str(), flags | O_CLOEXEC);
  });
  if (f.fd < 0) {
    fuse_reply_err(req, last_errno());
    return;
  }
  set_open_flags(o, f, fi);
  // Held until release (op_release), before the reply lets it come.
  fs.inodes().hold(ino);
  const int32_t backing_id = attach_backing(fs, ino, f, Registration::kAllowed);
  const int rc = backing_id >= 0 ? reply_open_passthrough(req, fi, backing_id)
                                 : fuse_reply_open(req, fi);
  if (rc != 0) {
    detach_backing(fs, f.fd);
    ::close(f.fd);
    fs.inodes().unpin(ino);
  }
}

void op_create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
               fuse_file_info* fi) {
  IdentityFs& fs = fs_of(req);
  const IdentityFsOptions& o = fs.options();
  PinnedFd dir;
  if (!pin_or_reply(req, parent, &dir)) return;
  const int dirfd = dir.get();
  // O_NOFOLLOW: an existing symlink at `name` must not be followed, least of
  // all out of the backing tree.
  const OpenedFile f = open_backing_file(o, fi->flags, [&](int flags) {
    return ::openat(dirfd, name, flags | O_CREAT | O_NOFOLLOW | O_CLOEXEC, mode);
  });
  if (f.fd < 0) {
    fuse_reply_err(req, last_errno());
    return;
  }
  fuse_entry_param e;
  if (int err = lookup_created(fs, parent, name, f.fd, &e); err != 0) {
    ::close(f.fd);
    fuse_reply_err(req, err);
    return;
  }
  set_open_flags(o, f, fi);
  fs.inodes().hold(e.ino);  // until release, as in op_open
  const int32_t backing_id = attach_backing(fs, e.ino, f, Registration::kReuseOnly);
  const int rc = backing_id >= 0 ? reply_create_passthrough(req, &e, fi, backing_id)
                                 : fuse_reply_create(req, &e, fi);
  if (rc != 0) {
    detach_backing(fs, f.fd);
    ::close(f.fd);
    fs.inodes().unpin(e.ino);
    fs.inodes().forget(e.ino, 1);
  }
}

int fd_of(const fuse_file_info* fi) { return static_cast<int>(fi->fh); }

void op_read(fuse_req_t req, fuse_ino_t /*ino*/, size_t size, off_t off, fuse_file_info* fi) {
  // An fd-backed reply: libfuse reads (or splices) straight from the backing
  // file into the reply, with no copy through our own buffer.
  fuse_bufvec buf{};
  buf.count = 1;
  buf.buf[0].size = size;
  buf.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
  buf.buf[0].fd = fd_of(fi);
  buf.buf[0].pos = off;
  fuse_reply_data(req, &buf, static_cast<fuse_buf_copy_flags>(0));
}

// With the writeback cache a WRITE carries data that write() already
// accepted: the kernel has grown its size, keeps the pages, and trusts its
// own size over ours from then on. When the storage refuses the data (a
// full disk), the error reaches the writer at fsync or close (the kernel
// records it on the file), but the mount would go on showing the size and
// data that never landed. So the inode gets a new generation, which makes
// the kernel replace it at the next lookup, and, after the reply, its pages,
// attributes and entry are dropped so that the next path walk looks it up.
// Names are read before the reply: afterwards the kernel may forget `ino`.
void retire_after_failed_writeback(fuse_req_t req, fuse_ino_t ino, int err, size_t written) {
  IdentityFs& fs = fs_of(req);
  Inode& inode = fs.inodes().get(ino);
  inode.generation.fetch_add(1, std::memory_order_relaxed);
  const std::optional<DirEntryName> entry = fs.inodes().entry_name(ino);
  if (err != 0) {
    fuse_reply_err(req, err);
  } else {
    fuse_reply_write(req, written);
  }
  fs.notifier().drop_inode(ino, entry ? entry->parent : 0, entry ? entry->name : std::string());
}

void op_write_buf(fuse_req_t req, fuse_ino_t ino, fuse_bufvec* in, off_t off, fuse_file_info* fi) {
  fuse_bufvec out{};
  out.count = 1;
  const size_t size = fuse_buf_size(in);
  out.buf[0].size = size;
  out.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
  out.buf[0].fd = fd_of(fi);
  out.buf[0].pos = off;
  const ssize_t n = fuse_buf_copy(&out, in, static_cast<fuse_buf_copy_flags>(0));
  const bool failed = n < 0 || static_cast<size_t>(n) < size;
  if (failed && fs_of(req).options().writeback_cache) {
    retire_after_failed_writeback(req, ino, n < 0 ? static_cast<int>(-n) : 0,
                                  n < 0 ? 0 : static_cast<size_t>(n));
    return;
  }
  if (n < 0) {
    fuse_reply_err(req, static_cast<int>(-n));
    return;
  }
  fuse_reply_write(req, static_cast<size_t>(n));
}

void op_flush(fuse_req_t req, fuse_ino_t /*ino*/, fuse_file_info* fi) {
  // On a local backing filesystem close() reports nothing, and open files
  // ask the kernel not to send FLUSH (noflush). The writeback cache ignores
  // that flag; "not implemented" makes the kernel stop sending FLUSH on this
  // mount, one round trip less for every close. Data still reaches us first:
  // the kernel writes dirty pages back before it sends FLUSH.
  if (!fs_of(req).options().flush_on_close) {
    fuse_reply_err(req, ENOSYS);
    return;
  }
  // close() of a duplicate reports deferred write errors (e.g. NFS) to the
  // caller's close() without ending our open file.
  const int res = ::close(::dup(fd_of(fi)));
  fuse_reply_err(req, res == 0 ? 0 : last_errno());
}

void op_release(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  detach_backing(fs_of(req), fd_of(fi));
  ::close(fd_of(fi));
  fs_of(req).inodes().unpin(ino);
  fuse_reply_err(req, 0);
}

void op_fsync(fuse_req_t req, fuse_ino_t /*ino*/, int datasync, fuse_file_info* fi) {
  const int res = datasync ? ::fdatasync(fd_of(fi)) : ::fsync(fd_of(fi));
  fuse_reply_err(req, res == 0 ? 0 : last_errno());
}

void op_fallocate(fuse_req_t req, fuse_ino_t /*ino*/, int mode, off_t offset, off_t length,
                  fuse_file_info* fi) {
  const int res = ::fallocate(fd_of(fi), mode, offset, length);
  fuse_reply_err(req, res == 0 ? 0 : last_errno());
}

void op_copy_file_range(fuse_req_t req, fuse_ino_t /*ino_in*/, off_t off_in,
                        fuse_file_info* fi_in, fuse_ino_t /*ino_out*/, off_t off_out,
                        fuse_file_info* fi_out, size_t len, int flags) {
  loff_t in = off_in;
  loff_t out = off_out;
  const ssize_t n = ::copy_file_range(fd_of(fi_in), &in, fd_of(fi_out), &out, len,
                                      static_cast<unsigned>(flags));
  if (n < 0) {
    fuse_reply_err(req, last_errno());
    return;
  }
  fuse_reply_write(req, static_cast<size_t>(n));
}

void op_lseek(fuse_req_t req, fuse_ino_t /*ino*/, off_t off, int whence, fuse_file_info* fi) {
  const off_t res = ::lseek(fd_of(fi), off, whence);
  if (res < 0) {
    fuse_reply_err(req, last_errno());
    return;
  }
  fuse_reply_lseek(req, res);
}

void op_flock(fuse_req_t req, fuse_ino_t /*ino*/, fuse_file_info* fi, int op) {
  // Unlocks and LOCK_NB never wait. A blocking lock is tried without
  // waiting first (the common, uncontended case stays one system call); one
  // that would wait goes to a thread of its own, never holding a worker.
  // A conversion (shared to exclusive) that fails the try has already lost
  // its old lock, exactly as a native blocking conversion does before it
  // waits (flock(2): conversion is not atomic).
  const bool blocking = (op & (LOCK_UN | LOCK_NB)) == 0;
  if (::flock(fd_of(fi), blocking ? op | LOCK_NB : op) == 0) {
    fuse_reply_err(req, 0);
    return;
  }
  const int err = last_errno();
  if (blocking && err == EWOULDBLOCK) {
    fs_of(req).flock_waiters().wait(req, fd_of(fi), op);
    return;
  }
  fuse_reply_err(req, err);
}

// ------------------------------------------------------------- directories

// One open directory. The kernel serialises readdir calls on one open
// directory, so a handle is never used by two requests at once.
struct DirHandle {
  explicit DirHandle(DIR* d) : dp(d) {}
  DirHandle(const DirHandle&) = delete;
  DirHandle& operator=(const DirHandle&) = delete;
  ~DirHandle() { ::closedir(dp); }

  DIR* dp;
  off_t offset = 0;
  dirent* entry = nullptr;  // read but not yet returned to the kernel
};

DirHandle* dir_of(const fuse_file_info* fi) { return reinterpret_cast<DirHandle*>(fi->fh); }

void op_opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  IdentityFs& fs = fs_of(req);
  PinnedFd pinned;
  if (!pin_or_reply(req, ino, &pinned)) return;
  const ProcPath path(pinned.get());
  const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    fuse_reply_err(req, last_errno());
    return;
  }
  DIR* dp = ::fdopendir(fd);
  if (dp == nullptr) {
    const int err = last_errno();
    ::close(fd);
    fuse_reply_err(req, err);
    return;
  }
  auto* handle = new DirHandle(dp);
  fi->fh = reinterpret_cast<uint64_t>(handle);
  if (fs.options().keep_cache) {
    // Only this mount changes the directory, and it invalidates the cache
    // itself when it does.
    fi->cache_readdir = 1;
    fi->keep_cache = 1;
  }
  fs.inodes().hold(ino);  // until releasedir, as in op_open
  if (fuse_reply_open(req, fi) != 0) {
    delete handle;
    fs.inodes().unpin(ino);
  }
}

void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset, fuse_file_info* fi,
                bool plus) {
  IdentityFs& fs = fs_of(req);
  DirHandle* d = dir_of(fi);
  std::vector<char> buf(size);
  char* p = buf.data();
  size_t rem = size;
  if (offset != d->offset) {
    ::seekdir(d->dp, offset);
    d->entry = nullptr;
    d->offset = offset;
  }
  int err = 0;
  for (;;) {
    if (d->entry == nullptr) {
      errno = 0;
      d->entry = ::readdir(d->dp);
      if (d->entry == nullptr) {
        err = errno;
        break;
      }
    }
    const dirent* ent = d->entry;
    const off_t next = ent->d_off;
    size_t used;
    if (plus) {
      fuse_entry_param e{};
      // The open directory is the object itself: no fd to pin per entry.
      int lookup_err = lookup_in(fs, ino, ::dirfd(d->dp), ent->d_name, &e);
      if (lookup_err == ENOENT) {  // removed since it was read: skip it
        d->entry = nullptr;
        d->offset = next;
        continue;
      }
      if (lookup_err != 0) {
        // Name only (ino 0 creates no kernel entry): ".", "..", objects on
        // another filesystem, or children of an unsearchable directory.
        e = fuse_entry_param{};
        e.attr.st_ino = ent->d_ino;
        e.attr.st_mode = static_cast<mode_t>(ent->d_type) << 12;
      }
      used = fuse_add_direntry_plus(req, p, rem, ent->d_name, &e, next);
      if (used > rem) {
        if (e.ino != 0) fs.inodes().forget(e.ino, 1);
        break;
      }
    } else {
      struct stat st{};
      st.st_ino = ent->d_ino;
      st.st_mode = static_cast<mode_t>(ent->d_type) << 12;
      used = fuse_add_direntry(req, p, rem, ent->d_name, &st, next);
      if (used > rem) break;
    }
    p += used;
    rem -= used;
    d->entry = nullptr;
    d->offset = next;
  }
  // An error after some entries were produced is reported by the next call.
  if (err != 0 && rem == size) {
    fuse_reply_err(req, err);
    return;
  }
  fuse_reply_buf(req, buf.data(), size - rem);
}

void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  do_readdir(req, ino, size, off, fi, false);
}

void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  do_readdir(req, ino, size, off, fi, true);
}

void op_releasedir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  delete dir_of(fi);
  fs_of(req).inodes().unpin(ino);
  fuse_reply_err(req, 0);
}

void op_fsyncdir(fuse_req_t req, fuse_ino_t /*ino*/, int datasync, fuse_file_info* fi) {
  const int fd = ::dirfd(dir_of(fi)->dp);
  const int res = datasync ? ::fdatasync(fd) : ::fsync(fd);
  fuse_reply_err(req, res == 0 ? 0 : last_errno());
}

// ------------------------------------------------------------------- other

void op_statfs(fuse_req_t req, fuse_ino_t ino) {
  PinnedFd fd;
  if (!pin_or_reply(req, ino, &fd)) return;
  struct statvfs sv;
  if (::fstatvfs(fd.get(), &sv) != 0) {
    fuse_reply_err(req, last_errno());
    return;
  }
  fuse_reply_statfs(req, &sv);
}

void op_access(fuse_req_t req, fuse_ino_t ino, int mask) {
  PinnedFd fd;
  if (!pin_or_reply(req, ino, &fd)) return;
  // AT_EACCESS: the filesystem ids are the tenant's, the real ones are not
  // (privileges.h).
  const int res =
      ::faccessat(fd.get(), "", mask, AT_EACCESS | AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
  fuse_reply_err(req, res == 0 ? 0 : last_errno());
}

// Extended attributes, reached through the magic link (the *xattr calls do
// not accept O_PATH fds). POSIX ACLs travel as system.posix_acl_* xattrs and
// are enforced by the backing filesystem, like the mode bits.
//
// The security.* namespace is not offered: get, set and remove answer
// EOPNOTSUPP and listxattr leaves those names out. On the backing store it
// holds the host's LSM labels (security.selinux, security.SMACK64,
// security.apparmor), IMA/EVM data and file capabilities: host facts a
// container has no business reading, and that the tenant could not set
// anyway (CAP_SYS_ADMIN, CAP_SETFCAP). File capabilities would have no
// effect either: the mount is nosuid. Answering "unsupported" instead of
// asking the backing store saves the round trip's system call, and lets
// `ls -l` (gnulib's getfilecon_cache) stop asking for security.selinux
// after the first file of the mount. The kernel's killpriv check reads an
// unsupported security.capability as "no capabilities to kill". The
// refusal is checked before the operations run (offered_xattrs_only).
bool is_security_xattr(const char* name) {
  static constexpr char kPrefix[] = "security.";
  return std::strncmp(name, kPrefix, sizeof kPrefix - 1) == 0;
}

void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value,
                 size_t size, int flags) {
  IdentityFs& fs = fs_of(req);
  const Inode& inode = fs.inodes().get(ino);
  PinnedFd fd;
  if (!pin_or_reply(req, ino, &fd)) return;
  const ProcPath path(fd.get());
  std::string mapped;
  if (is_posix_acl(name) && presents_other_ids(fs.options())) {
    mapped.assign(value, size);
    map_acl_ids(mapped.data(), mapped.size(), mount_to_storage(fs.options()));
    value = mapped.data();
  }
  const int res = ::setxattr(path.c_str(), name, value, size, flags);
  reply_xattr_change(req, fs, ino, inode, name, res);
}

// getxattr and listxattr reach an object through `fd` (name "") or as
// `name` in the directory `fd` (InodeTable::use_in_place).
ssize_t getxattr_of(int fd, const char* name, const char* xattr, char* buf, size_t len) {
  if (*name != 0) return getxattr_at(fd, name, xattr, buf, len);
  return ::getxattr(ProcPath(fd).c_str(), xattr, buf, len);
}

ssize_t listxattr_of(int fd, const char* name, char* buf, size_t len) {
  if (*name != 0) return listxattr_at(fd, name, buf, len);
  return ::listxattr(ProcPath(fd).c_str(), buf, len);
}

void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  IdentityFs& fs = fs_of(req);
  const IdentityFsOptions& o = fs.options();
  // getxattr's size protocol: size 0 asks how big.
  std::vector<char> buf(size);
  ssize_t n = 0;
  const int err = fs.inodes().use_in_place(ino, fs.xattr_by_name(), [&](int fd, const char* at) {
    n = getxattr_of(fd, at, name, size != 0 ? buf.data() : nullptr, size);
    return n < 0 ? last_errno() : 0;
  });
  if (err != 0) {
    fuse_reply_err(req, err);
  } else if (size == 0) {
    fuse_reply_xattr(req, static_cast<size_t>(n));
  } else {
    if (n > 0 && is_posix_acl(name) && presents_other_ids(o)) {
      map_acl_ids(buf.data(), static_cast<size_t>(n), storage_to_mount(o));
    }
    fuse_reply_buf(req, buf.data(), static_cast<size_t>(n));
  }
}

// The object's xattr names without the security.* ones, as the NUL-separated
// list listxattr returns; 0 or an errno.
int list_offered_xattrs(int fd, const char* name, std::vector<char>* names) {
  // Most objects have few names or none: one call with a small buffer, and
  // only a longer list costs a size query.
  names->resize(1024);
  ssize_t n;
  while ((n = listxattr_of(fd, name, names->data(), names->size())) < 0) {
    if (errno != ERANGE) return last_errno();
    const ssize_t need = listxattr_of(fd, name, nullptr, 0);
    if (need < 0) return last_errno();
    // The list may grow between the two calls: ask again if it did.
    names->resize(static_cast<size_t>(need) + 1);
  }
  const size_t total = static_cast<size_t>(n);
  size_t kept = 0;
  for (size_t i = 0; i < total;) {
    // Each name ends with a NUL; never step past the list if one does not.
    const size_t len = std::min(::strnlen(names->data() + i, total - i) + 1, total - i);
    if (!is_security_xattr(names->data() + i)) {
      std::memmove(names->data() + kept, names->data() + i, len);
      kept += len;
    }
    i += len;
  }
  names->resize(kept);
  return 0;
}

void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  IdentityFs& fs = fs_of(req);
  std::vector<char> names;
  const int err = fs.inodes().use_in_place(ino, fs.xattr_by_name(), [&](int fd, const char* at) {
    return list_offered_xattrs(fd, at, &names);
  });
  if (err != 0) {
    fuse_reply_err(req, err);
  } else if (size == 0) {  // asks how big the list is
    fuse_reply_xattr(req, names.size());
  } else if (names.size() > size) {
    fuse_reply_err(req, ERANGE);
  } else {
    fuse_reply_buf(req, names.data(), names.size());
  }
}

void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  IdentityFs& fs = fs_of(req);
  const Inode& inode = fs.inodes().get(ino);
  PinnedFd fd;
  if (!pin_or_reply(req, ino, &fd)) return;
  const ProcPath path(fd.get());
  const int res = ::removexattr(path.c_str(), name);
  reply_xattr_change(req, fs, ino, inode, name, res);
}

void op_init(void* userdata, fuse_conn_info* conn) {
  const IdentityFsOptions& o = static_cast<IdentityFs*>(userdata)->options();
  auto want = [conn](unsigned cap) {
    if (conn->capable & cap) conn->want |= cap;
  };
  auto refuse = [conn](unsigned cap) { conn->want &= ~cap; };
  want(FUSE_CAP_FLOCK_LOCKS);
  want(FUSE_CAP_READDIRPLUS);
  want(FUSE_CAP_PARALLEL_DIROPS);
  if (o.splice) {
    want(FUSE_CAP_SPLICE_WRITE);
    want(FUSE_CAP_SPLICE_MOVE);
    want(FUSE_CAP_SPLICE_READ);
    if (o.max_write != 0 && o.max_write < conn->max_write) conn->max_write = o.max_write;
  } else {
    refuse(FUSE_CAP_SPLICE_WRITE);
    refuse(FUSE_CAP_SPLICE_MOVE);
    refuse(FUSE_CAP_SPLICE_READ);
  }
  if (o.writeback_cache) want(FUSE_CAP_WRITEBACK_CACHE);
  if (o.keep_cache) want(FUSE_CAP_CACHE_SYMLINKS);
  // Without a getlk/setlk, POSIX locks stay local to this host's kernel, which
  // is what the backing store would do for us anyway.
  refuse(FUSE_CAP_POSIX_LOCKS);
  // Permissions (and ACLs) are the backing store's business: the kernel must
  // not evaluate them itself.
  refuse(FUSE_CAP_POSIX_ACL);
}

// ------------------------------------------------ rules checked before operations

// The rules that refuse a request whatever the object are checked here, once,
// by wrappers composed where the operation table is filled (make_operations):
// an operation body runs only for requests its rules let through. Wrappers
// nest outermost first, in the order the rules are checked.

// A read-only volume answers EROFS to a request that would modify it, before
// the operation pins or touches anything. The kernel refuses most of these
// itself on the read-only mount; this holds whatever reaches us.
// `Modifies(args...)` says whether the request modifies, from the
// operation's arguments after `req`.
template <auto Op, auto Modifies>
struct ReadOnlyGate;

template <typename... Args, void (*Op)(fuse_req_t, Args...), auto Modifies>
struct ReadOnlyGate<Op, Modifies> {
  static void run(fuse_req_t req, Args... args) {
    if (fs_of(req).options().readonly && Modifies(args...)) {
      fuse_reply_err(req, EROFS);
      return;
    }
    Op(req, args...);
  }
};

inline constexpr auto kAlwaysModifies = [](auto&&...) { return true; };

// `Op` always modifies the volume.
template <auto Op>
constexpr auto modifying = &ReadOnlyGate<Op, kAlwaysModifies>::run;

// `Op` modifies the volume when `Modifies` says so.
template <auto Op, auto Modifies>
constexpr auto modifying_if = &ReadOnlyGate<Op, Modifies>::run;

bool open_modifies(fuse_ino_t /*ino*/, fuse_file_info* fi) { return opens_for_writing(fi->flags); }

bool access_modifies(fuse_ino_t /*ino*/, int mask) { return (mask & W_OK) != 0; }

// get/set/removexattr of a security.* name answer EOPNOTSUPP (see
// is_security_xattr); listxattr leaves those names out itself.
template <auto Op>
struct OfferedXattrsOnly;

template <typename... Rest, void (*Op)(fuse_req_t, fuse_ino_t, const char*, Rest...)>
struct OfferedXattrsOnly<Op> {
  static void run(fuse_req_t req, fuse_ino_t ino, const char* name, Rest... rest) {
    if (is_security_xattr(name)) {
      fuse_reply_err(req, EOPNOTSUPP);
      return;
    }
    Op(req, ino, name, rest...);
  }
};

template <auto Op>
constexpr auto offered_xattrs_only = &OfferedXattrsOnly<Op>::run;

// Device nodes would let a container reach host devices through the backing
// store; the tenant could not make them natively either.
template <auto Op>
void refuse_device_nodes(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
                         dev_t rdev) {
  if (S_ISCHR(mode) || S_ISBLK(mode)) {
    fuse_reply_err(req, EPERM);
    return;
  }
  Op(req, parent, name, mode, rdev);
}

fuse_lowlevel_ops make_operations() {
  fuse_lowlevel_ops ops{};
  ops.init = op_init;
  ops.lookup = op_lookup;
  ops.forget = op_forget;
  ops.forget_multi = op_forget_multi;
  ops.getattr = op_getattr;
  ops.setattr = modifying<op_setattr>;
  ops.readlink = op_readlink;
  ops.mknod = refuse_device_nodes<modifying<op_mknod>>;
  ops.mkdir = modifying<op_mkdir>;
  ops.symlink = modifying<op_symlink>;
  ops.link = modifying<op_link>;
  ops.unlink = modifying<op_unlink>;
  ops.rmdir = modifying<op_rmdir>;
  ops.rename = modifying<op_rename>;
  ops.open = modifying_if<op_open, open_modifies>;
  ops.create = modifying<op_create>;
  ops.read = op_read;
  ops.write_buf = op_write_buf;
  ops.flush = op_flush;
  ops.release = op_release;
  ops.fsync = op_fsync;
  ops.fallocate = modifying<op_fallocate>;
  ops.copy_file_range = modifying<op_copy_file_range>;
  ops.lseek = op_lseek;
  ops.flock = op_flock;
  ops.opendir = op_opendir;
  ops.readdir = op_readdir;
  ops.readdirplus = op_readdirplus;
  ops.releasedir = op_releasedir;
  ops.fsyncdir = op_fsyncdir;
  ops.statfs = op_statfs;
  ops.access = modifying_if<op_access, access_modifies>;
  ops.setxattr = offered_xattrs_only<modifying<op_setxattr>>;
  ops.getxattr = offered_xattrs_only<op_getxattr>;
  ops.listxattr = op_listxattr;
  ops.removexattr = offered_xattrs_only<modifying<op_removexattr>>;
  return ops;
}

}  // namespace

const fuse_lowlevel_ops& IdentityFs::operations() {
  static const fuse_lowlevel_ops ops = make_operations();
  return ops;
}

}  // namespace tenantfs

#include "mapper/inode_table.h"

#include <fcntl.h>
#include <sys/sysmacros.h>

#include <cerrno>
#include <functional>

namespace tenantfs {

int backing_stat(int dirfd, const char* name, int flags, BackingStat* out) {
  struct statx stx;
  if (::statx(dirfd, name, flags, STATX_BASIC_STATS | STATX_MNT_ID, &stx) != 0) {
    return errno != 0 ? errno : EIO;
  }
  // Every filesystem reports the mount id (kernel 5.8 and later); without
  // it no boundary could be checked, so refuse rather than guess.
  if ((stx.stx_mask & STATX_MNT_ID) == 0) return EXDEV;
  struct stat& st = out->st;
  st = {};
  st.st_dev = makedev(stx.stx_dev_major, stx.stx_dev_minor);
  st.st_ino = stx.stx_ino;
  st.st_mode = stx.stx_mode;
  st.st_nlink = stx.stx_nlink;
  st.st_uid = stx.stx_uid;
  st.st_gid = stx.stx_gid;
  st.st_rdev = makedev(stx.stx_rdev_major, stx.stx_rdev_minor);
  st.st_size = static_cast<off_t>(stx.stx_size);
  st.st_blksize = static_cast<blksize_t>(stx.stx_blksize);
  st.st_blocks = static_cast<blkcnt_t>(stx.stx_blocks);
  st.st_atim = {stx.stx_atime.tv_sec, stx.stx_atime.tv_nsec};
  st.st_mtim = {stx.stx_mtime.tv_sec, stx.stx_mtime.tv_nsec};
  st.st_ctim = {stx.stx_ctime.tv_sec, stx.stx_ctime.tv_nsec};
  out->mnt_id = stx.stx_mnt_id;
  return 0;
}

PinnedFd& PinnedFd::operator=(PinnedFd&& o) noexcept {
  if (this != &o) {
    reset();
    table_ = std::exchange(o.table_, nullptr);
    inode_ = std::exchange(o.inode_, nullptr);
    fd_ = std::exchange(o.fd_, -1);
  }
  return *this;
}

void PinnedFd::reset() {
  if (table_ != nullptr) table_->unpin_inode(*inode_);
  table_ = nullptr;
  inode_ = nullptr;
  fd_ = -1;
}

InodeTable::InodeTable(UniqueFd root_fd, const BackingStat& root, size_t max_open)
    : max_open_(max_open), root_mnt_id_(root.mnt_id) {
  auto inode = std::make_unique<Inode>();
  inode->fd = std::move(root_fd);
  inode->ino = root.st.st_ino;
  inode->dev = root.st.st_dev;
  inode->type = root.st.st_mode & S_IFMT;
  // The kernel never forgets the root; one permanent lookup keeps it.
  inode->nlookup = 1;
  root_ = inode.get();
  inodes_.emplace(Key{root.st.st_ino, root.st.st_dev}, std::move(inode));
}

void InodeTable::set_parent_locked(Inode& inode, Inode* parent, const char* name,
                                   std::vector<UniqueFd>* closing) {
  if (&inode == root_) return;
  if (inode.name != name) inode.name = name;
  if (inode.parent == parent) return;
  ++parent->children;
  Inode* old = std::exchange(inode.parent, parent);
  if (old == nullptr) return;
  --old->children;
  // The old parent may have been held by this child alone.
  erase_if_unused_locked(old, closing);
}

fuse_ino_t InodeTable::add_lookup(const struct stat& st, fuse_ino_t parent, const char* name,
                                  UniqueFd fd) {
  std::vector<UniqueFd> closing;  // closed after the lock is released
  MutexLock lock(mutex_);
  auto [it, inserted] = inodes_.try_emplace(Key{st.st_ino, st.st_dev});
  if (inserted) {
    it->second = std::make_unique<Inode>();
    it->second->ino = st.st_ino;
    it->second->dev = st.st_dev;
    it->second->type = st.st_mode & S_IFMT;
  }
  Inode& inode = *it->second;
  ++inode.nlookup;
  set_parent_locked(inode, &get(parent), name, &closing);
  if (fd) {
    if (inode.fd || &inode == root_) {
      closing.push_back(std::move(fd));
    } else {
      inode.fd = std::move(fd);
      lru_.push_front(&inode);
      inode.lru = lru_.begin();
      evict_locked(&closing);
    }
  }
  return id_of(inode);
}

int InodeTable::pin(fuse_ino_t id, PinnedFd* out) { return pin_inode(get(id), out); }

int InodeTable::pin_inode(Inode& inode, PinnedFd* out, int depth) {
  pin_as_is(inode, out);
  if (out->get() >= 0) return 0;
  // Reopened by name; the Inode's pin keeps it meanwhile.
  UniqueFd fd;
  BackingStat now;
  const int err = find_again(inode, depth, &fd, &now);
  std::vector<UniqueFd> closing;
  MutexLock lock(mutex_);
  if (err != 0) {
    --inode.pins;
    erase_if_unused_locked(&inode, &closing);
    return err;
  }
  if (inode.fd) {
    closing.push_back(std::move(fd));  // another request reopened it first
    lru_.splice(lru_.begin(), lru_, inode.lru);
  } else {
    inode.fd = std::move(fd);
    lru_.push_front(&inode);
    inode.lru = lru_.begin();
    evict_locked(&closing);
  }
  out->table_ = this;
  out->inode_ = &inode;
  out->fd_ = inode.fd.get();
  return 0;
}

int InodeTable::find_again(Inode& inode, int depth, UniqueFd* fd, BackingStat* now) {
  return find_by_name(inode, depth, [&](int dir, const char* name) {
    fd->reset(::openat(dir, name, O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (!*fd) return errno != 0 ? errno : EIO;
    return backing_stat(fd->get(), "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, now);
  }, now);
}

int InodeTable::find_by_name(Inode& inode, int depth, const std::function<int(int, const char*)>& use,
                             BackingStat* now) {
  if (depth > kMaxReopenDepth) return ESTALE;
  Inode* parent;
  std::string name;
  {
    MutexLock lock(mutex_);
    // Pinned while we look, so that it cannot go away meanwhile, even if a
    // rename points `inode` at another parent.
    parent = inode.parent;
    if (parent != root_) ++parent->pins;
    name = inode.name;
  }
  PinnedFd dir;
  int err = pin_inode(*parent, &dir, depth + 1);
  unpin_inode(*parent);  // `dir` holds it now, if it could be opened
  if (err != 0) return err;
  err = use(dir.get(), name.c_str());
  // Gone from where it was: the kernel's view is stale.
  if (err == ENOENT || err == ENOTDIR) return ESTALE;
  if (err != 0) return err;
  if (now->st.st_ino != inode.ino || now->st.st_dev != inode.dev || !on_volume(*now)) {
    return ESTALE;  // another object (or another mount) holds the name now
  }
  return 0;
}

void InodeTable::pin_as_is(Inode& inode, PinnedFd* out) {
  out->reset();
  MutexLock lock(mutex_);
  if (&inode == root_) {
    out->fd_ = root_->fd.get();  // never closed: no pin needed
    return;
  }
  ++inode.pins;
  if (!inode.fd) return;
  lru_.splice(lru_.begin(), lru_, inode.lru);
  out->table_ = this;
  out->inode_ = &inode;
  out->fd_ = inode.fd.get();
}

int InodeTable::stat(fuse_ino_t id, struct stat* out) {
  Inode& inode = get(id);
  PinnedFd fd;
  pin_as_is(inode, &fd);
  BackingStat now;
  int err;
  if (fd.get() >= 0) {
    err = backing_stat(fd.get(), "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, &now);
  } else {
    err = find_by_name(inode, 0, [&](int dir, const char* name) {
      return backing_stat(dir, name, AT_SYMLINK_NOFOLLOW, &now);
    }, &now);
    unpin_inode(inode);
  }
  if (err == 0) *out = now.st;
  return err;
}

int InodeTable::use_in_place(fuse_ino_t id, bool by_name,
                             const std::function<int(int, const char*)>& use) {
  Inode& inode = get(id);
  PinnedFd fd;
  if (!by_name) {
    if (int err = pin_inode(inode, &fd); err != 0) return err;
    return use(fd.get(), "");
  }
  pin_as_is(inode, &fd);
  if (fd.get() >= 0) return use(fd.get(), "");
  int result = 0;
  BackingStat now;
  const int err = find_by_name(inode, 0, [&](int dir, const char* name) {
    result = use(dir, name);
    // Checked after the use: a result for another object is never returned.
    return backing_stat(dir, name, AT_SYMLINK_NOFOLLOW, &now);
  }, &now);
  unpin_inode(inode);
  return err != 0 ? err : result;
}

void InodeTable::hold(fuse_ino_t id) {
  if (id == FUSE_ROOT_ID) return;
  MutexLock lock(mutex_);
  ++get(id).pins;
}

void InodeTable::unpin(fuse_ino_t id) { unpin_inode(get(id)); }

void InodeTable::unpin_inode(Inode& inode) {
  if (&inode == root_) return;
  std::vector<UniqueFd> closing;  // closed after the lock is released
  MutexLock lock(mutex_);
  if (inode.pins > 0) --inode.pins;
  erase_if_unused_locked(&inode, &closing);
  evict_locked(&closing);
}

void InodeTable::evict_locked(std::vector<UniqueFd>* closing) {
  // Scan from the least recently used end; pinned fds stay, so the scan
  // may end with more than max_open_ open, until their pins end.
  auto it = lru_.end();
  while (lru_.size() > max_open_ && it != lru_.begin()) {
    --it;
    Inode* victim = *it;
    if (victim->pins > 0) continue;
    closing->push_back(std::move(victim->fd));
    it = lru_.erase(it);
  }
}

void InodeTable::erase_if_unused_locked(Inode* inode, std::vector<UniqueFd>* closing) {
  while (inode != root_ && inode->nlookup == 0 && inode->pins == 0 && inode->children == 0) {
    Inode* parent = inode->parent;
    if (inode->fd) {
      lru_.erase(inode->lru);
      closing->push_back(std::move(inode->fd));
    }
    if (parent != nullptr) --parent->children;
    inodes_.erase(Key{inode->ino, inode->dev});
    if (parent == nullptr) return;
    inode = parent;
  }
}

void InodeTable::forget(fuse_ino_t id, uint64_t n) {
  if (id == FUSE_ROOT_ID) return;
  std::vector<UniqueFd> closing;  // closed after the lock is released
  MutexLock lock(mutex_);
  Inode& inode = get(id);
  inode.nlookup = n >= inode.nlookup ? 0 : inode.nlookup - n;
  erase_if_unused_locked(&inode, &closing);
}

void InodeTable::renamed(ino_t ino, dev_t dev, fuse_ino_t parent, const char* name) {
  std::vector<UniqueFd> closing;  // closed after the lock is released
  MutexLock lock(mutex_);
  auto it = inodes_.find(Key{ino, dev});
  if (it == inodes_.end()) return;
  set_parent_locked(*it->second, &get(parent), name, &closing);
}

std::optional<DirEntryName> InodeTable::entry_name(fuse_ino_t id) {
  if (id == FUSE_ROOT_ID) return std::nullopt;
  MutexLock lock(mutex_);
  const Inode& inode = get(id);
  if (inode.name.empty() || inode.parent == nullptr) return std::nullopt;
  return DirEntryName{id_of(*inode.parent), inode.name};
}

size_t InodeTable::open_fds() {
  MutexLock lock(mutex_);
  return lru_.size();
}

}  // namespace tenantfs

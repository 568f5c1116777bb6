#include "mapper/inode_table.h"

namespace tenantfs {

InodeTable::InodeTable(UniqueFd root_fd, const struct stat& root_st, bool file_names)
    : file_names_(file_names) {
  auto root = std::make_unique<Inode>();
  root->fd = std::move(root_fd);
  root->ino = root_st.st_ino;
  root->dev = root_st.st_dev;
  root->type = root_st.st_mode & S_IFMT;
  // The kernel never forgets the root; one permanent lookup keeps it.
  root->nlookup = 1;
  root_ = root.get();
  inodes_.emplace(Key{root_st.st_ino, root_st.st_dev}, std::move(root));
}

fuse_ino_t InodeTable::add_lookup(UniqueFd fd, const struct stat& st, fuse_ino_t parent,
                                  const char* name) {
  std::lock_guard<std::mutex> lock(inodes_mutex_);
  auto [it, inserted] = inodes_.try_emplace(Key{st.st_ino, st.st_dev});
  if (inserted) {
    it->second = std::make_unique<Inode>();
    Inode& inode = *it->second;
    inode.fd = std::move(fd);
    inode.ino = st.st_ino;
    inode.dev = st.st_dev;
    inode.type = st.st_mode & S_IFMT;
  }
  return count_lookup_locked(*it->second, parent, name);
}

fuse_ino_t InodeTable::add_lookup_if_known(ino_t ino, dev_t dev, fuse_ino_t parent,
                                           const char* name) {
  std::lock_guard<std::mutex> lock(inodes_mutex_);
  auto it = inodes_.find(Key{ino, dev});
  if (it == inodes_.end()) return 0;
  return count_lookup_locked(*it->second, parent, name);
}

fuse_ino_t InodeTable::count_lookup_locked(Inode& inode, fuse_ino_t parent, const char* name) {
  ++inode.nlookup;
  if (keeps_name(inode.type) && &inode != root_ && inode.name != name) {
    inode.parent = parent;
    inode.name = name;
  }
  return id_of(inode);
}

void InodeTable::forget(fuse_ino_t id, uint64_t n) {
  if (id == FUSE_ROOT_ID) return;
  std::unique_ptr<Inode> doomed;  // closed outside the lock
  {
    std::lock_guard<std::mutex> lock(inodes_mutex_);
    Inode& inode = get(id);
    inode.nlookup = n >= inode.nlookup ? 0 : inode.nlookup - n;
    if (inode.nlookup == 0) {
      auto it = inodes_.find(Key{inode.ino, inode.dev});
      doomed = std::move(it->second);
      inodes_.erase(it);
    }
  }
}

void InodeTable::rename_entry(ino_t ino, dev_t dev, fuse_ino_t parent, const char* name) {
  std::lock_guard<std::mutex> lock(inodes_mutex_);
  auto it = inodes_.find(Key{ino, dev});
  if (it == inodes_.end() || it->second.get() == root_ || !keeps_name(it->second->type)) return;
  it->second->parent = parent;
  it->second->name = name;
}

std::optional<DirEntryName> InodeTable::entry_name(fuse_ino_t id) {
  if (id == FUSE_ROOT_ID) return std::nullopt;
  std::lock_guard<std::mutex> lock(inodes_mutex_);
  const Inode& inode = get(id);
  if (!keeps_name(inode.type) || inode.name.empty()) return std::nullopt;
  return DirEntryName{inode.parent, inode.name};
}

size_t InodeTable::size() {
  std::lock_guard<std::mutex> lock(inodes_mutex_);
  return inodes_.size();
}

}  // namespace tenantfs

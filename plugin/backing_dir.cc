#include "plugin/backing_dir.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <random>
#include <set>

#include "common/privileges.h"
#include "plugin/child_reaper.h"

namespace tenantfs {
namespace {

constexpr const char kCreatingPrefix[] = ".creating-";
constexpr const char kTrashDir[] = ".trash";
constexpr const char kOrphanedDir[] = ".orphaned";
// Deeper trees than this are left in .trash (and reported): the deleting
// child recurses on its own stack.
constexpr int kMaxDeleteDepth = 2000;

std::string random_suffix() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  uint64_t v = rng();
  for (int i = 0; i < 12; ++i, v >>= 4) s += kHex[v & 15];
  return s;
}

Result<UniqueFd> open_subdir(int dir_fd, const std::string& name, bool create,
                             const std::string& context) {
  if (create && ::mkdirat(dir_fd, name.c_str(), 0700) != 0 && errno != EEXIST) {
    return PosixError(context + ": mkdir " + name, errno);
  }
  UniqueFd fd(::openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return PosixError(context + ": open " + name, errno);
  return fd;
}

// Deletes everything inside `dir_fd`. Runs in the forked child after the
// privilege drop: only system calls, no allocation. Returns the number of
// entries that could not be deleted.
int delete_contents(int dir_fd, dev_t dev, int depth) {
  if (depth > kMaxDeleteDepth) return 1;
  int failures = 0;
  bool chmodded = false;
  alignas(8) char buf[1024];
  for (;;) {
    bool removed_any = false;
    bool saw_any = false;
    ::lseek(dir_fd, 0, SEEK_SET);
    for (;;) {
      long n = ::syscall(SYS_getdents64, dir_fd, buf, sizeof buf);
      if (n <= 0) break;
      for (long off = 0; off < n;) {
        auto* d = reinterpret_cast<struct dirent64*>(buf + off);
        off += d->d_reclen;
        const char* name = d->d_name;
        if (std::strcmp(name, ".") == 0 || std::strcmp(name, "..") == 0) continue;
        saw_any = true;
        if (::unlinkat(dir_fd, name, 0) == 0) {
          removed_any = true;
          continue;
        }
        int err = errno;
        if (err == EISDIR || err == EPERM) {
          int sub = ::openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
          struct stat st;
          if (sub >= 0 && ::fstat(sub, &st) == 0 && st.st_dev == dev) {
            failures += delete_contents(sub, dev, depth + 1);
          }
          if (sub >= 0) ::close(sub);
          if (::unlinkat(dir_fd, name, AT_REMOVEDIR) == 0) removed_any = true;
        } else if (err == EACCES && !chmodded) {
          // A directory of the owner's that lost its write bit: the owner may
          // give it back, exactly as `rm -rf` after `chmod -R u+w` would.
          chmodded = true;
          if (::fchmod(dir_fd, 0700) == 0) removed_any = true;
        }
      }
    }
    if (!saw_any) return failures;
    // Entries were deleted while listing: list again until a pass changes
    // nothing, then what is left could not be deleted.
    if (!removed_any) return failures + 1;
  }
}

// Deletes the contents of `dir_fd` as `who` in a child process. The top
// directory itself stays (its parent is root's). A tree owned by the user
// running tenantfs (root's own unfinished Create) is deleted as that user,
// without a drop.
Status delete_contents_as(int dir_fd, const Identity& who, const std::string& what) {
  struct stat st;
  if (::fstat(dir_fd, &st) != 0) return PosixError("stat " + what, errno);
  const bool drop = ::geteuid() != who.uid;
  if (drop && ::geteuid() != 0) {
    return Status::FailedPrecondition("cannot delete " + what +
                                      " as its owner: tenantfs is not running as root");
  }
  auto child = ChildReaper::instance().spawn([&]() -> int {
    // The child is the tenant through and through: nothing it does in the
    // tree can use a power the tenant lacks.
    if (drop && !drop_privileges_to(who, ProcessIds::kTenant).ok()) return 100;
    return delete_contents(dir_fd, st.st_dev, 0) == 0 ? 0 : 1;
  });
  if (!child.ok()) return child.status();
  auto status = ChildReaper::instance().wait(*child);
  if (!status || !WIFEXITED(*status) || WEXITSTATUS(*status) != 0) {
    int code = status && WIFEXITED(*status) ? WEXITSTATUS(*status) : -1;
    return Status::IOError("could not delete everything in " + what + " as uid " +
                           std::to_string(who.uid) +
                           (code >= 100 ? " (privilege drop failed)" : "") +
                           "; what is left stays in DATA_DIR/.trash");
  }
  return Status::Ok();
}

// Deletes DATA_DIR/.trash/<entry> as `who`, then the emptied top as root.
Status purge_trash_entry(int trash_fd, const std::string& entry, const Identity& who) {
  auto top = open_subdir(trash_fd, entry, false, "DATA_DIR/.trash");
  if (!top.ok()) return top.status();
  TENANTFS_RETURN_IF_ERROR(delete_contents_as(top->get(), who, "DATA_DIR/.trash/" + entry));
  if (::unlinkat(trash_fd, entry.c_str(), AT_REMOVEDIR) != 0) {
    return PosixError("rmdir DATA_DIR/.trash/" + entry, errno);
  }
  return Status::Ok();
}

}  // namespace

Result<UniqueFd> open_private_dir(const std::string& path, const std::string& what) {
  if (path.empty() || path[0] != '/') {
    return Status::InvalidArgument(what + " must be an absolute path");
  }
  // mkdir -p, each created level 0700.
  for (size_t pos = 1; pos <= path.size(); ++pos) {
    if (pos == path.size() || path[pos] == '/') {
      std::string prefix = path.substr(0, pos);
      if (::mkdir(prefix.c_str(), 0700) != 0 && errno != EEXIST) {
        return PosixError(what + ": mkdir " + prefix, errno);
      }
    }
  }
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return PosixError(what + ": open " + path, errno);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return PosixError(what + ": stat " + path, errno);
  if (st.st_uid != ::geteuid()) {
    return Status::FailedPrecondition(what + " " + path +
                                      " is owned by another user; chown it to the user "
                                      "running tenantfs or choose another directory");
  }
  if (st.st_mode & 022) {
    return Status::FailedPrecondition(what + " " + path +
                                      " is writable by group or others; run chmod 0700 on it");
  }
  return fd;
}

Status create_backing_dir(int data_dir_fd, const std::string& name, uid_t uid, gid_t gid,
                          uint32_t mode) {
  const std::string tmp = kCreatingPrefix + name + "-" + random_suffix();
  if (::mkdirat(data_dir_fd, tmp.c_str(), 0700) != 0) {
    return PosixError("mkdir DATA_DIR/" + tmp, errno);
  }
  auto undo = [&](Status st) {
    if (::unlinkat(data_dir_fd, tmp.c_str(), AT_REMOVEDIR) != 0) {
      spdlog::error("volume \"{}\": could not remove DATA_DIR/{}: {}", name, tmp,
                    std::strerror(errno));
    }
    return st;
  };
  UniqueFd fd(::openat(data_dir_fd, tmp.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return undo(PosixError("open DATA_DIR/" + tmp, errno));
  if (::fchown(fd.get(), uid, gid) != 0) return undo(PosixError("chown DATA_DIR/" + tmp, errno));
  // After the chown: chown clears setuid/setgid bits, and the mode must be
  // exactly what was asked for.
  if (::fchmod(fd.get(), static_cast<mode_t>(mode)) != 0) {
    return undo(PosixError("chmod DATA_DIR/" + tmp, errno));
  }
  if (::renameat2(data_dir_fd, tmp.c_str(), data_dir_fd, name.c_str(), RENAME_NOREPLACE) != 0) {
    int err = errno;
    if (err == EEXIST) {
      return undo(Status::AlreadyExists("DATA_DIR/" + name + " already exists"));
    }
    return undo(PosixError("rename DATA_DIR/" + tmp + " to " + name, err));
  }
  return Status::Ok();
}

Result<UniqueFd> open_backing_dir(int data_dir_fd, const std::string& name) {
  return open_subdir(data_dir_fd, name, false, "DATA_DIR");
}

Result<UniqueFd> open_external_dir(const std::string& volume, const std::string& path,
                                   const std::vector<std::string>& allowed_roots) {
  const std::string pre = "tenantfs: volume \"" + volume + "\": option \"path\" ";
  if (allowed_roots.empty()) {
    return Status::InvalidArgument(
        pre +
        "cannot be used: no allowed roots are configured; set ALLOWED_ROOTS "
        "(docker plugin set tenantfs ALLOWED_ROOTS=/srv/data) to the directories "
        "that may hold existing data");
  }
  for (const std::string& root : allowed_roots) {
    std::string rel;
    if (path == root) {
      rel = ".";
    } else if (path.size() > root.size() && path.compare(0, root.size(), root) == 0 &&
               (root == "/" || path[root.size()] == '/')) {
      rel = path.substr(root == "/" ? 1 : root.size() + 1);
    } else {
      continue;
    }
    UniqueFd root_fd(::open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!root_fd) return PosixError(pre + "allowed root " + root, errno);
    struct open_how how {};
    // RESOLVE_NO_SYMLINKS covers the last component too (ELOOP); O_NOFOLLOW
    // would turn that case into an ENOTDIR that reads as "not a directory".
    how.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    long fd = ::syscall(SYS_openat2, root_fd.get(), rel.c_str(), &how, sizeof how);
    if (fd < 0) {
      int err = errno;
      switch (err) {
        case ENOENT:
          return Status::InvalidArgument(pre +
                                         "names a directory that does not exist; create "
                                         "it inside " +
                                         root + " first");
        case ENOTDIR:
          return Status::InvalidArgument(pre + "is not a directory; give a directory inside " +
                                         root);
        case ELOOP:
          return Status::InvalidArgument(pre +
                                         "has a symlink component; give the real "
                                         "directory path inside " +
                                         root);
        case EACCES:
          return Status::InvalidArgument(pre +
                                         "cannot be opened by tenantfs (permission "
                                         "denied)");
        default:
          return PosixError(pre + "open", err);
      }
    }
    return UniqueFd(static_cast<int>(fd));
  }
  std::string roots;
  for (const auto& r : allowed_roots) {
    if (!roots.empty()) roots += ':';
    roots += r;
  }
  return Status::InvalidArgument(pre + "is outside the allowed roots (" + roots +
                                 "); move the data inside one of them or add its root to "
                                 "ALLOWED_ROOTS");
}

namespace {

// (dev, ino) of `fd` and of every directory above it, up to the root.
Result<std::vector<std::pair<dev_t, ino_t>>> ancestry(int fd) {
  std::vector<std::pair<dev_t, ino_t>> chain;
  UniqueFd cur(::openat(fd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!cur) return PosixError("open directory", errno);
  for (int depth = 0; depth < 4096; ++depth) {
    struct stat st;
    if (::fstat(cur.get(), &st) != 0) return PosixError("stat directory", errno);
    if (!chain.empty() && chain.back() == std::make_pair(st.st_dev, st.st_ino)) return chain;
    chain.emplace_back(st.st_dev, st.st_ino);
    UniqueFd parent(::openat(cur.get(), "..", O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!parent) return PosixError("open ..", errno);
    cur = std::move(parent);
  }
  return Status::IOError("directory nesting deeper than 4096 levels");
}

}  // namespace

Result<bool> dirs_overlap(int a, int b) {
  auto up_a = ancestry(a);
  if (!up_a.ok()) return up_a.status();
  auto up_b = ancestry(b);
  if (!up_b.ok()) return up_b.status();
  const auto& self_a = up_a->front();
  const auto& self_b = up_b->front();
  return std::find(up_a->begin(), up_a->end(), self_b) != up_a->end() ||
         std::find(up_b->begin(), up_b->end(), self_a) != up_b->end();
}

Result<std::string> move_backing_dir_to_trash(int data_dir_fd, const std::string& name) {
  auto trash = open_subdir(data_dir_fd, kTrashDir, true, "DATA_DIR");
  if (!trash.ok()) return trash.status();
  // "<name>-<suffix>": the suffix has no '-', so the name is what precedes
  // the last one (clean_data_dir reads it back).
  const std::string entry = name + "-" + random_suffix();
  if (::renameat(data_dir_fd, name.c_str(), trash->get(), entry.c_str()) != 0) {
    if (errno == ENOENT) return std::string();
    return PosixError("rename DATA_DIR/" + name + " into DATA_DIR/.trash", errno);
  }
  return entry;
}

Status restore_trashed_backing_dir(int data_dir_fd, const std::string& entry,
                                   const std::string& name) {
  auto trash = open_subdir(data_dir_fd, kTrashDir, false, "DATA_DIR");
  if (!trash.ok()) return trash.status();
  if (::renameat2(trash->get(), entry.c_str(), data_dir_fd, name.c_str(), RENAME_NOREPLACE) != 0) {
    return PosixError("rename DATA_DIR/.trash/" + entry + " back to DATA_DIR/" + name, errno);
  }
  return Status::Ok();
}

Status purge_trashed_backing_dir(int data_dir_fd, const std::string& entry, const Identity& owner) {
  auto trash = open_subdir(data_dir_fd, kTrashDir, false, "DATA_DIR");
  if (!trash.ok()) return trash.status();
  return purge_trash_entry(trash->get(), entry, owner);
}

Status delete_backing_dir(int data_dir_fd, const std::string& name, const Identity& owner) {
  auto entry = move_backing_dir_to_trash(data_dir_fd, name);
  if (!entry.ok()) return entry.status();
  if (entry->empty()) return Status::Ok();
  return purge_trashed_backing_dir(data_dir_fd, *entry, owner);
}

Result<std::vector<std::string>> clean_data_dir(int data_dir_fd,
                                                const std::vector<std::string>& bound_names) {
  std::set<std::string> bound(bound_names.begin(), bound_names.end());
  std::vector<std::string> entries;
  {
    int dup_fd = ::openat(data_dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dup_fd < 0) return PosixError("open DATA_DIR", errno);
    DIR* dir = ::fdopendir(dup_fd);
    if (dir == nullptr) {
      int err = errno;
      ::close(dup_fd);
      return PosixError("list DATA_DIR", err);
    }
    while (struct dirent* d = ::readdir(dir)) {
      std::string n = d->d_name;
      if (n != "." && n != "..") entries.push_back(n);
    }
    ::closedir(dir);
  }
  std::vector<std::string> orphaned;
  for (const std::string& n : entries) {
    if (n.rfind(kCreatingPrefix, 0) == 0) {
      // A Create that never finished: empty, unbound, nobody else can reach it.
      auto top = open_subdir(data_dir_fd, n, false, "DATA_DIR");
      if (top.ok()) {
        struct stat st;
        if (::fstat(top->get(), &st) == 0) {
          Status s =
              delete_contents_as(top->get(), Identity{st.st_uid, st.st_gid, {}}, "DATA_DIR/" + n);
          if (!s.ok()) spdlog::warn("start-up clean-up: {}", s.message());
        }
      }
      if (::unlinkat(data_dir_fd, n.c_str(), AT_REMOVEDIR) != 0) {
        spdlog::warn("start-up clean-up: rmdir DATA_DIR/{}: {}", n, std::strerror(errno));
      } else {
        spdlog::info("start-up clean-up: removed unfinished create DATA_DIR/{}", n);
      }
    } else if (n == kTrashDir) {
      auto trash = open_subdir(data_dir_fd, n, false, "DATA_DIR");
      if (!trash.ok()) return trash.status();
      int dup_fd = ::openat(trash->get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      DIR* dir = dup_fd >= 0 ? ::fdopendir(dup_fd) : nullptr;
      std::vector<std::string> trashed;
      if (dir != nullptr) {
        while (struct dirent* d = ::readdir(dir)) {
          std::string t = d->d_name;
          if (t != "." && t != "..") trashed.push_back(t);
        }
        ::closedir(dir);
      } else if (dup_fd >= 0) {
        ::close(dup_fd);
      }
      for (const std::string& t : trashed) {
        struct stat st;
        if (::fstatat(trash->get(), t.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
        if (!S_ISDIR(st.st_mode)) {
          ::unlinkat(trash->get(), t.c_str(), 0);
          continue;
        }
        const size_t dash = t.rfind('-');
        const std::string vol = dash == std::string::npos ? std::string() : t.substr(0, dash);
        if (bound.count(vol) != 0 &&
            ::renameat2(trash->get(), t.c_str(), data_dir_fd, vol.c_str(), RENAME_NOREPLACE) == 0) {
          spdlog::warn("start-up clean-up: volume \"{}\" is still bound; its data is back from "
                       "DATA_DIR/.trash (a Remove that did not finish)",
                       vol);
          continue;
        }
        Status s = purge_trash_entry(trash->get(), t, Identity{st.st_uid, st.st_gid, {}});
        if (!s.ok()) spdlog::warn("start-up clean-up: {}", s.message());
      }
    } else if (n == kOrphanedDir) {
      continue;
    } else if (bound.count(n) == 0) {
      // A directory without a binding: a crash between the rename and the
      // bind of a Create (Remove trashes before it unbinds), or a lost store.
      // Keep it out of the way instead of deleting: if the store was lost,
      // this is real data.
      auto orphan_dir = open_subdir(data_dir_fd, kOrphanedDir, true, "DATA_DIR");
      if (!orphan_dir.ok()) return orphan_dir.status();
      const std::string dest = n + "-" + std::to_string(::time(nullptr));
      if (::renameat(data_dir_fd, n.c_str(), orphan_dir->get(), dest.c_str()) != 0) {
        spdlog::warn("start-up clean-up: move DATA_DIR/{} to .orphaned: {}", n,
                     std::strerror(errno));
        continue;
      }
      spdlog::warn("start-up clean-up: DATA_DIR/{} has no binding; moved to DATA_DIR/{}/{}", n,
                   kOrphanedDir, dest);
      orphaned.push_back(n);
    }
  }
  return orphaned;
}

}  // namespace tenantfs

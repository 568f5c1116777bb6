#include "plugin/mount_table.h"

#include <sys/mount.h>
#include <sys/vfs.h>

#include <cerrno>
#include <fstream>
#include <sstream>

namespace tenantfs {
namespace {

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      const char a = s[i + 1], b = s[i + 2], c = s[i + 3];
      if (a >= '0' && a <= '3' && b >= '0' && b <= '7' && c >= '0' && c <= '7') {
        out += static_cast<char>((a - '0') * 64 + (b - '0') * 8 + (c - '0'));
        i += 3;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

constexpr int kMaxStackedMounts = 16;

}  // namespace

Result<std::vector<MountEntry>> read_mount_table(const std::string& mountinfo_path) {
  std::ifstream in(mountinfo_path);
  if (!in) return PosixError("read " + mountinfo_path, errno);
  std::vector<MountEntry> table;
  std::string line;
  while (std::getline(in, line)) {
    // id parent major:minor root mount_point options [optional...] - fstype source super
    std::istringstream fields(line);
    std::string id, parent, devno, root, mount_point, options, field;
    if (!(fields >> id >> parent >> devno >> root >> mount_point >> options)) continue;
    while (fields >> field && field != "-") {
    }
    MountEntry e;
    if (!(fields >> e.fstype >> e.source)) continue;
    e.mount_point = unescape(mount_point);
    e.source = unescape(e.source);
    table.push_back(std::move(e));
  }
  return table;
}

std::vector<std::string> tenantfs_mounts_under(const std::vector<MountEntry>& table,
                                               const std::string& mount_root) {
  std::vector<std::string> names;
  const std::string prefix = mount_root + "/";
  for (const MountEntry& e : table) {
    if (e.fstype != kMapperFsType) continue;
    if (e.mount_point.rfind(prefix, 0) != 0) continue;
    std::string name = e.mount_point.substr(prefix.size());
    if (name.empty() || name.find('/') != std::string::npos) continue;
    bool seen = false;
    for (const auto& n : names) seen = seen || n == name;
    if (!seen) names.push_back(name);
  }
  return names;
}

bool is_mount_point(const std::vector<MountEntry>& table, const std::string& path) {
  for (const MountEntry& e : table) {
    if (e.mount_point == path) return true;
  }
  return false;
}

bool is_dead_fuse_mount(const std::string& path) {
  struct statfs st;
  if (::statfs(path.c_str(), &st) == 0) return false;
  return errno == ENOTCONN || errno == ECONNABORTED;
}

Status unmount(const std::string& path) {
  for (int i = 0; i < kMaxStackedMounts; ++i) {
    if (::umount2(path.c_str(), UMOUNT_NOFOLLOW) == 0) continue;
    int err = errno;
    if (err == EINVAL || err == ENOENT) return Status::Ok();  // nothing (more) mounted
    if (err == EBUSY) {
      if (::umount2(path.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) == 0) continue;
      err = errno;
      if (err == EINVAL) return Status::Ok();
    }
    return PosixError("unmount " + path, err);
  }
  return Status::IOError("unmount " + path + ": still mounted after " +
                         std::to_string(kMaxStackedMounts) + " unmounts");
}

Status unmount_lazily(const std::string& path) {
  for (int i = 0; i < kMaxStackedMounts; ++i) {
    if (::umount2(path.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) == 0) continue;
    int err = errno;
    if (err == EINVAL || err == ENOENT) return Status::Ok();
    return PosixError("lazy unmount " + path, err);
  }
  return Status::IOError("lazy unmount " + path + ": still mounted after " +
                         std::to_string(kMaxStackedMounts) + " unmounts");
}

Result<std::vector<MountEntry>> KernelMountTable::entries() { return read_mount_table(); }

bool KernelMountTable::is_dead(const std::string& path) { return is_dead_fuse_mount(path); }

Status KernelMountTable::unmount(const std::string& path) { return tenantfs::unmount(path); }

Status KernelMountTable::unmount_lazily(const std::string& path) {
  return tenantfs::unmount_lazily(path);
}

}  // namespace tenantfs

#include "mapper/readahead.h"

#include <fcntl.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <sstream>

#include "common/mountinfo.h"
#include "common/unique_fd.h"

namespace tenantfs {
namespace {

std::optional<uint32_t> read_kb(const std::string& path) {
  std::ifstream in(path);
  unsigned long kb = 0;
  if (!(in >> kb) || kb > UINT32_MAX) return std::nullopt;
  return static_cast<uint32_t>(kb);
}

}  // namespace

std::optional<uint32_t> device_readahead_kb(dev_t dev, const std::string& sys_dir) {
  const std::string mm = std::to_string(major(dev)) + ":" + std::to_string(minor(dev));
  // A filesystem with a bdi of its own (NFS, FUSE), a whole disk, then the
  // disk a partition is on.
  for (const std::string& path :
       {sys_dir + "/class/bdi/" + mm + "/read_ahead_kb",
        sys_dir + "/dev/block/" + mm + "/bdi/read_ahead_kb",
        sys_dir + "/dev/block/" + mm + "/../bdi/read_ahead_kb"}) {
    if (std::optional<uint32_t> kb = read_kb(path)) return kb;
  }
  return std::nullopt;
}

uint32_t mount_readahead_kb(dev_t backing_dev, const std::string& sys_dir) {
  const std::optional<uint32_t> kb = device_readahead_kb(backing_dev, sys_dir);
  if (!kb) return kMinReadaheadKb;
  return std::clamp(*kb, kMinReadaheadKb, kMaxReadaheadKb);
}

std::optional<std::string> mount_device(const std::string& mountpoint,
                                        const std::string& mountinfo) {
  std::ifstream in(mountinfo);
  std::optional<std::string> found;
  for (std::string line; std::getline(in, line);) {
    std::istringstream fields(line);
    std::string id, parent, dev, root, where;
    if (!(fields >> id >> parent >> dev >> root >> where)) continue;
    // Optional fields, then "-", then the filesystem type: only a FUSE
    // mount qualifies, so no other device's setting is ever touched.
    std::string field;
    while (fields >> field && field != "-") {
    }
    std::string fstype;
    if (!(fields >> fstype) || fstype.rfind("fuse", 0) != 0) continue;
    // Later lines are mounted later: the last match is the topmost mount.
    if (unescape_mountinfo(where) == mountpoint) found = dev;
  }
  return found;
}

Status set_mount_readahead_kb(const std::string& mountpoint, uint32_t kb,
                              const std::string& sys_dir) {
  const std::optional<std::string> dev = mount_device(mountpoint);
  if (!dev) return Status::NotFound("no mount at " + mountpoint + " in mountinfo");
  const std::string path = sys_dir + "/class/bdi/" + *dev + "/read_ahead_kb";
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return PosixError("open " + path, errno);
  const std::string text = std::to_string(kb) + "\n";
  if (::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    return PosixError("write " + path, errno);
  }
  return Status::Ok();
}

}  // namespace tenantfs

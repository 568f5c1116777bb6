#include "mapper/xattr_at.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

// Numbers shared by every architecture's table since 6.11.
#ifndef SYS_getxattrat
#define SYS_getxattrat 464
#endif
#ifndef SYS_listxattrat
#define SYS_listxattrat 465
#endif

namespace tenantfs {
namespace {

// struct xattr_args of <linux/xattr.h> (6.13), absent from older headers.
struct XattrArgs {
  alignas(8) uint64_t value;
  uint32_t size;
  uint32_t flags;
};

}  // namespace

ssize_t getxattr_at(int dirfd, const char* name, const char* xattr, void* value, size_t size) {
  XattrArgs args{reinterpret_cast<uintptr_t>(value), static_cast<uint32_t>(size), 0};
  if (size > UINT32_MAX) args.size = UINT32_MAX;
  return ::syscall(SYS_getxattrat, dirfd, name, AT_SYMLINK_NOFOLLOW, xattr, &args, sizeof args);
}

ssize_t listxattr_at(int dirfd, const char* name, char* list, size_t size) {
  return ::syscall(SYS_listxattrat, dirfd, name, AT_SYMLINK_NOFOLLOW, list, size);
}

bool xattr_at_calls_work(int dirfd) {
  char list[1];
  const bool get_works = getxattr_at(dirfd, ".", "user.tenantfs.probe", nullptr, 0) >= 0 ||
                         errno == ENODATA || errno == EOPNOTSUPP;
  const bool list_works = listxattr_at(dirfd, ".", list, 0) >= 0 || errno == EOPNOTSUPP;
  return get_works && list_works;
}

}  // namespace tenantfs

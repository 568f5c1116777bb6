// getxattrat(2) and listxattrat(2) (Linux 6.13): the extended attributes of
// `name` in the directory `dirfd`, never following a final symlink, without
// opening the object. The mapper reads the xattrs of an object it holds no
// fd for this way (InodeTable::use_in_place): `ls -l` asks each file for its
// ACL, and an openat, a statx, a getxattr through /proc and a close become
// one getxattrat and one statx. glibc 2.36 has no wrappers.
#pragma once

#include <sys/types.h>

#include <cstddef>

namespace tenantfs {

// As getxattr/listxattr: the size, or -1 with errno.
ssize_t getxattr_at(int dirfd, const char* name, const char* xattr, void* value, size_t size);
ssize_t listxattr_at(int dirfd, const char* name, char* list, size_t size);

// Whether this process may make both calls (a kernel before 6.13, or a
// seccomp filter that does not know them, refuses them): tried once on the
// directory `dirfd`.
bool xattr_at_calls_work(int dirfd);

}  // namespace tenantfs

// Helpers for the serve unit tests: temp directories and a tenant identity
// usable whether or not the tests run as root.
#pragma once

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <stdexcept>
#include <string>

#include "tests/support/temp_dir.h"

namespace tenantfs::testing {

// The tenant the tests bind volumes to. As root, an unprivileged id that
// exercises the chown; otherwise the caller's own ids (a tenant is never 0).
inline uid_t test_tenant_uid() { return ::geteuid() == 0 ? 2001 : ::geteuid(); }
inline gid_t test_tenant_gid() { return ::geteuid() == 0 ? 2001 : ::getegid(); }

inline struct stat stat_of(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) st.st_mode = 0;
  return st;
}

inline bool exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

}  // namespace tenantfs::testing

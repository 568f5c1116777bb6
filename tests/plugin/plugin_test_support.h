// Helpers for the serve unit tests: temp directories and a tenant identity
// usable whether or not the tests run as root.
#pragma once

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <stdexcept>
#include <string>

namespace tenantfs::testing {

// A fresh 0700 directory, removed with its content at destruction.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/tenantfs-serve-test.XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

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

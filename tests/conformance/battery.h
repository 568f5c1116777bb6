// The conformance battery: named cases modelled on pjdfstest, each a short
// sequence of system calls whose results and errnos are printed on one line.
//
// A case runs in a directory of its own. Root prepares that directory first
// (files of several owners and modes, FIFOs, ACLs); the case then runs there
// as the caller under test, with that directory as its working directory.
// The same battery runs natively as the tenant and through a mount, and the
// two outputs are compared line by line (deviations.h).
//
// Lines hold only what must be equal on both sides: return values, errno
// names, modes, owners, sizes, link counts, attribute values. Never fd
// numbers, inode numbers, devices or the current time.
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/unique_fd.h"

namespace tenantfs::conformance {

// Builds a case's directory as root, relative to the directory's fd. Each
// helper sets owner then mode (a chown would clear setuid bits) and throws
// std::runtime_error naming the path when a call fails.
class Fixture {
 public:
  explicit Fixture(int dir_fd) : dir_(dir_fd) {}

  void file(const std::string& name, uid_t uid, gid_t gid, mode_t mode,
            const std::string& content = "data\n") const;
  void dir(const std::string& name, uid_t uid, gid_t gid, mode_t mode) const;
  void fifo(const std::string& name, uid_t uid, gid_t gid, mode_t mode) const;
  void symlink(const std::string& target, const std::string& name) const;
  void xattr(const std::string& name, const std::string& key, const std::string& value) const;
  // acl: short text form, "u::rw-,u:7002:r--,g::r--,m::r--,o::---".
  void acl(const std::string& name, const std::string& acl, bool default_acl = false) const;

 private:
  int dir_;
};

// Records the steps of one case as "label=result" tokens.
//   ok        the call returned 0
//   N         the call returned a count or value worth comparing
//   ENAME     the call failed with that errno
// Every helper records exactly one token whatever happens (an operation on
// an fd whose open failed records EBADF), so both sides of a comparison
// always hold the same labels in the same order.
class Steps {
 public:
  // ok, or the errno name when ret < 0.
  void call(std::string_view label, long ret);
  // The value itself, or the errno name when ret < 0.
  void value(std::string_view label, long ret);
  void note(std::string_view label, const std::string& text);

  // open/openat with O_CLOEXEC added; the fd is owned by the result.
  UniqueFd open(std::string_view label, const std::string& path, int flags, mode_t mode = 0);
  // "0100644,7001:7001,5B" (size for regular files and symlinks only).
  void stat(std::string_view label, const std::string& path);
  void fstat(std::string_view label, int fd);
  void nlink(std::string_view label, const std::string& path);
  void mtime(std::string_view label, const std::string& path);
  void readlink(std::string_view label, const std::string& path);
  // The value of an attribute, or its errno.
  void getxattr(std::string_view label, const std::string& path, const std::string& key);
  // An ACL in short text form, or the errno.
  void getacl(std::string_view label, const std::string& path, bool default_acl = false);
  void setacl(std::string_view label, const std::string& path, const std::string& acl);
  // The entry names of a directory, sorted, without . and ..
  void list(std::string_view label, const std::string& path);
  // Reads the whole file: its content with newlines shown as '/'.
  void read(std::string_view label, const std::string& path);

  const std::string& line() const { return line_; }

 private:
  void token(std::string_view label, const std::string& result);
  std::string line_;
};

// The ids the cases name: the tenant, a supplementary group of the tenant,
// and another user with its own group.
struct Ids {
  uid_t tenant_uid;
  gid_t tenant_gid;
  gid_t shared_gid;
  uid_t other_uid;
  gid_t other_gid;
};

struct Case {
  const char* name;
  // As root, in the case's directory (owned by the tenant, 0755).
  std::function<void(const Fixture&, const Ids&)> setup;
  // As the caller, with the case's directory as working directory.
  std::function<void(Steps&, const Ids&)> run;
};

// The battery, in the order it runs.
const std::vector<Case>& battery();

// As root: creates base_fd/<case> (owned by the tenant, 0755) for every case
// and runs its setup there. Throws std::runtime_error on failure.
void prepare(int base_fd, const Ids& ids);

// As the caller, in the current process: runs one case with the current
// working directory set to its directory. Returns its line of tokens.
std::string run_case(const Case& c, const Ids& ids);

// As root: what the storage holds in base_fd/<case> after the case, one
// "path=mode,uid:gid[,size][,->target][,acl=...]" token per entry, sorted,
// recursive. Times are left out; sizes of directories too.
std::string snapshot(int base_fd, const std::string& case_name);

// Short text form of an ACL xattr value, and back.
std::string acl_to_text(const std::string& xattr);
std::string acl_from_text(const std::string& text);

}  // namespace tenantfs::conformance

// IdentityFs: the FUSE low-level operations of the mapper.
//
// A passthrough of one backing directory, performed by a process that already
// is the tenant (see privileges.h): every system call it makes is checked by
// the kernel against the tenant's ids, so this layer adds no access checks of
// its own, except:
//   - ownership is presented: an object whose st_uid/st_gid is the tenant's
//     is reported with the presented uid/gid; other owners appear as they are;
//   - chown/chgrp to the presented ids (or to the ids an object already shows)
//     is accepted; any other id fails with EPERM (both in presentation.h);
//   - device nodes cannot be created (EPERM), and a lookup never leaves the
//     backing directory's mount (any other mount under it, even a bind
//     mount of the same filesystem, answers EXDEV; see inode_table.h);
//   - a read-only volume answers EROFS to anything that would modify it,
//     and security.* xattrs are not offered (both checked before the
//     operations run, identity_fs.cc, make_operations);
//   - when a directory's permissions change through the mount (chmod, chown,
//     ACL), the kernel's cached entries below it are dropped, so a revoked
//     search permission takes effect at once, whatever the cache timeouts;
//   - when a write-back of the kernel's buffered writes fails (writeback
//     cache), the kernel's inode of that file is replaced by a fresh one at
//     its next lookup, so the mount shows what the storage holds;
//   - a FIFO the tenant may not open is shown as an unopenable device, as the
//     kernel opens FIFOs without asking (presentation.h).
//
// Thread-safety: the operations run concurrently on libfuse's worker threads.
// Shared state is the InodeTable and the FlockWaiters (both internally
// locked); per-open handles are used by one request at a time, as the kernel
// serialises readdir per open directory. A blocking flock that has to wait
// is answered from a thread of its own (flock_waiters.h).
#pragma once

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "common/unique_fd.h"
#include "mapper/cache_notifier.h"
#include "mapper/flock_waiters.h"
#include "mapper/inode_table.h"
#include "mapper/passthrough_opens.h"

namespace tenantfs {

struct IdentityFsOptions {
  std::string name;  // volume name, for logs
  uid_t tenant_uid = 0;
  gid_t tenant_gid = 0;
  std::vector<gid_t> tenant_groups;  // supplementary
  uid_t present_uid = 0;
  gid_t present_gid = 0;
  bool readonly = false;
  // Kernel cache policy (see mapper.cc for how the values were chosen).
  double entry_timeout = 1.0;
  double attr_timeout = 1.0;
  double negative_timeout = 0.0;
  bool writeback_cache = false;  // kernel buffers writes (exclusive mode only)
  bool keep_cache = false;       // page cache survives open() (exclusive only)
  bool splice = true;            // splice to/from /dev/fuse for data
  // Largest write request in bytes; 0 keeps libfuse's 1 MiB. See mapper.cc.
  unsigned max_write = 0;
  // Forward close() as FLUSH: only network filesystems report write errors
  // at close; on local ones the round trip buys nothing.
  bool flush_on_close = true;
  // Blocking flock requests that may wait at once (see flock_waiters.h).
  size_t max_flock_waiters = FlockWaiters::kDefaultMaxWaiters;
  // O_PATH fds of looked-up objects kept open at most (see inode_table.h).
  size_t max_open_fds = 32768;
};

class IdentityFs {
 public:
  // `root_fd` must be an O_PATH|O_DIRECTORY fd of the backing directory.
  IdentityFs(IdentityFsOptions options, UniqueFd root_fd, const BackingStat& root);

  // The operation table to pass to fuse_session_new together with `this`.
  static const fuse_lowlevel_ops& operations();

  // The session, for notifications to the kernel. Set once, before the
  // session loop starts any worker.
  void set_session(fuse_session* se) { session_ = se; }
  fuse_session* session() const { return session_; }

  const IdentityFsOptions& options() const { return options_; }
  InodeTable& inodes() { return inodes_; }
  FlockWaiters& flock_waiters() { return *flock_waiters_; }
  CacheNotifier& notifier() { return notifier_; }

  // Open files pass through to their backing files where `opens` allows
  // (passthrough_opens.h); null (the default): never. The kernel refuses
  // passthrough together with the writeback cache, so passthrough replaces
  // it. Set once, before the request loop starts any worker.
  void set_passthrough(PassthroughOpens* opens) {
    passthrough_ = opens;
    if (opens != nullptr) options_.writeback_cache = false;
  }
  PassthroughOpens* passthrough() const { return passthrough_; }

  // Whether xattrs of an object without an open fd are read by name
  // (xattr_at.h), which the kernel and seccomp filter allow or not.
  bool xattr_by_name() const { return xattr_by_name_; }

 private:
  IdentityFsOptions options_;
  InodeTable inodes_;
  // Shared with the waiting threads, which may outlive this object.
  std::shared_ptr<FlockWaiters> flock_waiters_;
  CacheNotifier notifier_;
  fuse_session* session_ = nullptr;
  PassthroughOpens* passthrough_ = nullptr;
  bool xattr_by_name_ = false;
};

}  // namespace tenantfs

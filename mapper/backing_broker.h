// BackingBroker: the processes of a volume that may register backing files
// for FUSE passthrough (fuse_passthrough.h), and the mapper's handle on them.
//
// FUSE_DEV_IOC_BACKING_OPEN needs CAP_SYS_ADMIN, and what it registers is
// dangerous: the kernel remembers the caller's credentials and, at every
// FUSE open answered with the id, reopens the registered file's path with the
// opener's flags and no permission check. The mapper runs without any
// capability (privileges.h), so a separate, tiny process does it:
//   - is forked by the mapper after the mount, while still root and
//     single-threaded; it then keeps the tenant's filesystem ids and groups
//     (its real/effective/saved ids are the reserved mapper process ids, so
//     no process of the tenant can signal it) and only CAP_SYS_ADMIN
//     (permitted and effective; the bounding set holds nothing else, no
//     inheritable or ambient capability), is non-dumpable, has no_new_privs,
//     and runs under a seccomp allowlist of the few calls of its loop;
//   - it registers a file only if the file is regular, on the volume's
//     filesystem and mount, not an O_PATH fd, and the broker itself, as the
//     tenant, can reopen it read-write (read-only on read-only volumes);
//   - it holds a dup of /dev/fuse, so it dies with the mapper
//     (PR_SET_PDEATHSIG SIGKILL, and EOF on its socket), or a dead mount would
//     stay alive;
//   - its command line reads "broker" where the mapper's reads "mapper", so
//     the plugin never takes it for a mapper.
//
// Protocol (SOCK_SEQPACKET, one request then one reply): REGISTER carries the
// fd (SCM_RIGHTS) and returns a backing id or -errno; CLOSE carries the id;
// RELEASE is a CLOSE that gets no reply. Backing ids belong to the FUSE
// connection, so any broker may close an id another registered.
//
// Thread-safety: every method may be called from any thread; requests to
// one broker are serialised on its socket, and handled in order.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "common/status.h"
#include "common/thread_annotations.h"
#include "common/unique_fd.h"
#include "common/identity.h"
#include "common/privileges.h"

namespace tenantfs {

struct BrokerConfig {
  Identity tenant;
  int fuse_fd = -1;            // the mount's /dev/fuse fd (the broker keeps a copy)
  dev_t volume_dev = 0;        // st_dev of the backing root
  uint64_t volume_mnt_id = 0;  // statx mount id of the backing root
  bool readonly = false;       // a read-only volume: readable files pass through
  // The CPUs whose callers the brokers serve: one broker per CPU, pinned to
  // it, up to kMaxBrokers (then broker i serves every kMaxBrokers-th CPU).
  // Empty: one broker, not pinned.
  std::vector<int> cpus;
};

// Brokers of one volume at most: each is a process holding CAP_SYS_ADMIN,
// so many-CPU hosts share them between CPUs rather than run one per CPU.
inline constexpr size_t kMaxBrokers = 8;

// The mount id of the object `fd` refers to (statx STATX_MNT_ID).
Status mount_id_of(int fd, uint64_t* mnt_id);

// Confines the calling process the way the broker is confined (credentials,
// capabilities, dumpable, no_new_privs, seccomp allowlist with ioctl only on
// `cfg.fuse_fd`). Irreversible; requires root and a single thread. Exposed
// for the broker's tests, which check that the allowlist kills.
Status confine_as_broker(const BrokerConfig& cfg);

class BackingBroker {
 public:
  // Forks the brokers. Call as root with a single thread; returns once every
  // broker is confined and waiting, or why one could not start.
  static Result<std::unique_ptr<BackingBroker>> start(const BrokerConfig& cfg);

  // Closes the sockets (a broker exits at EOF) and reaps the brokers.
  ~BackingBroker();
  BackingBroker(const BackingBroker&) = delete;
  BackingBroker& operator=(const BackingBroker&) = delete;

  // Asks the calling CPU's broker to register the open file `fd`. Returns
  // the backing id (>= 0), or -errno saying why not (EACCES: the tenant may
  // not open it read-write; EXDEV: not on the volume; EINVAL: not a regular
  // file or an O_PATH fd; EPIPE: the broker is gone).
  int register_file(int fd);
  // Releases a backing id from register_file. Returns 0 or -errno.
  int close_id(int32_t backing_id);
  // As close_id, without waiting for the broker: a broker releases ids in
  // the order they were sent to it, before any later request it gets.
  void release_id(int32_t backing_id);

  // The brokers' process ids, in the order of their CPUs.
  std::vector<pid_t> pids() const;

 private:
  struct Channel {
    pid_t pid = -1;
    Mutex mu;
    UniqueFd sock GUARDED_BY(mu);
  };
  BackingBroker() = default;
  Channel& channel_for_this_cpu();
  static int call(Channel& ch, uint32_t op, int32_t arg, int fd);

  std::vector<std::unique_ptr<Channel>> channels_;
  std::vector<uint8_t> channel_of_cpu_;  // by CPU number
};

}  // namespace tenantfs

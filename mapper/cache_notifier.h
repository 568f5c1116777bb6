// CacheNotifier: tells the kernel to drop what it cached of an inode, from a
// thread of its own, after the request that found the cache wrong has been
// answered.
//
// Why a thread: an invalidation is a write to /dev/fuse that the kernel
// serves synchronously. Dropping an entry takes its directory's lock, and
// dropping pages waits for their write-back, so a request thread writing it
// can wait for a caller that waits for that very thread: the volume hangs.
// Here the requests only queue work; one thread writes it.
//
// Why its own fd: shutdown must not wait for a write the kernel holds up
// (after the loop has stopped, nobody answers the request a lock holder
// waits for), and the session's fd is closed when the session is destroyed,
// after which its number may name another file. The notifier writes on a
// duplicate of that fd, which stays valid for as long as it is needed; once
// close() has returned no notification starts, and one the kernel still
// holds ends with the process.
//
// Bounded: at most kMaxPending inodes wait; beyond that an invalidation is
// dropped (logged once) and that inode's cache lives until its timeout.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/thread_annotations.h"
#include "common/unique_fd.h"

namespace tenantfs {

class CacheNotifier {
 public:
  static constexpr size_t kMaxPending = 1024;

  // `volume_name` for logs.
  explicit CacheNotifier(std::string volume_name);
  CacheNotifier(const CacheNotifier&) = delete;
  CacheNotifier& operator=(const CacheNotifier&) = delete;
  ~CacheNotifier();

  // Takes a duplicate of the FUSE connection's fd. Before any drop_inode.
  void set_fuse_fd(int fd);

  // Queues dropping the kernel's attributes and pages of inode `ino` and,
  // when `name` is not empty, its entry `name` in directory `parent` (so the
  // next path walk looks it up again). Starts the thread on first use, so
  // it is created after the privilege drop, with the tenant's ids.
  void drop_inode(uint64_t ino, uint64_t parent, const std::string& name);

  // No notification starts after this returns; never waits for one.
  void close();

 private:
  struct Job {
    uint64_t ino;
    uint64_t parent;
    std::string name;
  };
  // Shared with the thread, which may outlive this object (see above).
  struct State {
    Mutex mutex;
    std::condition_variable wake;
    std::vector<Job> pending GUARDED_BY(mutex);
    bool closed GUARDED_BY(mutex) = false;
    bool running GUARDED_BY(mutex) = false;  // the thread exists
    bool overflow_logged GUARDED_BY(mutex) = false;
    // Set once, under `mutex`, before the thread starts, and never changed
    // after: the thread writes on it without the lock, so not GUARDED_BY.
    UniqueFd fuse_fd;
    std::string volume;
  };
  static void run(const std::shared_ptr<State>& state);

  std::shared_ptr<State> state_;
};

}  // namespace tenantfs

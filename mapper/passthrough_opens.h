// PassthroughOpens: which of the mapper's open files pass through to the
// backing file (fuse_passthrough.h), per inode.
//
// The kernel's rules, which this class keeps:
//   - one backing id per inode while any passthrough open of it exists (a
//     second id for the same inode fails the open with EIO), so the first
//     passthrough open registers the file and later ones reuse its id;
//   - an inode is either in passthrough or in cached mode: while it has
//     cached (non-passthrough) opens, new opens stay cached, and while it has
//     passthrough opens, new opens pass through too (even O_DIRECT ones);
//   - an O_DIRECT open of an inode in neither mode is served by the mapper
//     (direct_io) and enters no mode;
//   - the id is closed at the last release.
// At most `max_ids` ids live at once: every one pins a file in the kernel
// that no fd table counts. Beyond that, and for every file the broker
// refuses, opens are served by the mapper as before.
//
// The mapper opens the file itself, as the tenant, for every FUSE open
// before attach() is asked: permissions are checked per open exactly as
// without passthrough; only the data path changes.
//
// Thread-safety: all methods may be called from any thread; one mutex
// guards the table. It is not held across a broker round trip: the inode is
// marked as registering meanwhile, and another open of it waits for the
// outcome, so that two opens of one inode cannot register it twice.
#pragma once

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>

#include "common/thread_annotations.h"
#include "mapper/backing_broker.h"

namespace tenantfs {

// Whether an open may register its file for passthrough.
enum class Registration {
  kAllowed,   // OPEN: register the file if its inode has no backing id yet
  kReuseOnly  // CREATE: pass through only if the inode already has an id
};

class PassthroughOpens {
 public:
  PassthroughOpens(BackingBroker* broker, size_t max_ids, std::string volume)
      : broker_(broker), max_ids_(max_ids), volume_(std::move(volume)) {}

  // For the open file `fd` of inode `ino`, just opened by the mapper:
  // returns the backing id to answer the open with, or -1 to serve it
  // without passthrough. `direct`: the open bypasses the page cache
  // (O_DIRECT). With kReuseOnly an inode without a live id gets none, and
  // the mapper serves the open. Every call must be matched by detach(fd).
  int32_t attach(fuse_ino_t ino, int fd, bool direct,
                 Registration registration = Registration::kAllowed) EXCLUDES(mu_);
  // Ends what attach(ino, fd, ...) began: at release, or when the open's
  // reply did not reach the kernel. Call before closing `fd`.
  void detach(int fd) EXCLUDES(mu_);

  // Backing ids registered now, for tests and logs.
  size_t live_ids() const EXCLUDES(mu_);

 private:
  enum class Kind { kPassthrough, kCached };
  struct InodeOpens {
    int32_t backing_id = -1;
    size_t passthrough = 0;
    size_t cached = 0;
    bool registering = false;  // an attach() waits for the broker
  };
  struct OpenFile {
    fuse_ino_t ino;
    Kind kind;
  };

  BackingBroker* const broker_;
  const size_t max_ids_;
  const std::string volume_;
  mutable Mutex mu_;
  std::unordered_map<fuse_ino_t, InodeOpens> inodes_ GUARDED_BY(mu_);
  std::unordered_map<int, OpenFile> opens_ GUARDED_BY(mu_);  // by the mapper's fd
  size_t live_ids_ GUARDED_BY(mu_) = 0;
  size_t registering_ GUARDED_BY(mu_) = 0;  // round trips under way
  std::condition_variable registered_;      // one of them ended
  bool broker_lost_ GUARDED_BY(mu_) = false;
};

}  // namespace tenantfs

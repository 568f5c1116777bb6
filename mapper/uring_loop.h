// UringLoop: FUSE requests served through io_uring (kernel 6.14+,
// FUSE_OVER_IO_URING), one queue per possible CPU, each drained by a thread
// pinned to that CPU.
//
// The kernel hands a request to the queue of the CPU its caller runs on, and
// the reply goes back through the same ring, so a round trip wakes no other
// CPU. /dev/fuse stays open and served by the ordinary loop
// (request_loop.h): FORGET, BATCH_FORGET and INTERRUPT still come from it,
// and notifications still go to it.
//
// Life of a loop (run_mapper):
//   create()           after the INIT request was received, before it is
//                      answered: one thread and ring per queue
//   amend_init_reply() from the writev hook (fuse_custom_io), on the INIT reply:
//                      allocates the entries and sets FUSE_OVER_IO_URING in
//                      the reply only if everything is in place
//   register_queues()  right after the reply: the kernel holds every request
//                      until each queue has an entry registered
//   stop()             once the /dev/fuse loop has ended (unmount, signal)
//
// Replies: libfuse 3.14 knows nothing of the ring; it writes every reply
// through the custom I/O hooks of mapper.cc (fuse_custom_io), which hand replies to
// ring requests to uring_reply_writev() and uring_reply_splice().
//
// Thread-safety: create/register_queues/stop from one thread; the reply
// functions from any thread.
#pragma once

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <cstddef>
#include <memory>
#include <string>

#include "common/status.h"

namespace tenantfs {

// Whether the INIT request in `init` (as received from /dev/fuse) offers
// FUSE_OVER_IO_URING.
bool init_offers_uring(const fuse_buf& init);

// Why the kernel may not offer io_uring, for logs and errors: the module
// parameter's value ("enable_uring is N"), or that it does not exist.
std::string uring_parameter_state();

// Checked as root before mounting when io_uring is required: the module
// parameter and whether io_uring_setup is allowed at all (seccomp). The
// message names the fix.
Status uring_precheck();

// What to tell the user when io_uring was required but is not available.
std::string uring_fix_hint();

class UringLoop {
 public:
  // Starts the queue threads and their rings; fails (nothing left running)
  // when a ring cannot be made. `se` must outlive the loop.
  static Result<std::unique_ptr<UringLoop>> create(fuse_session* se, std::string volume_name);
  ~UringLoop();
  UringLoop(const UringLoop&) = delete;
  UringLoop& operator=(const UringLoop&) = delete;

  // True once amend_init_reply() put FUSE_OVER_IO_URING into the reply.
  bool negotiated() const;
  // Has every queue register its entries. An error means the kernel has
  // turned io_uring off for this connection and serves /dev/fuse alone.
  Status register_queues();
  // Ends the queue and worker threads. Replies that arrive later are
  // dropped; the connection is about to close.
  void stop();

  size_t queue_count() const;
  size_t entries_per_queue() const;

  class Impl;

 private:
  explicit UringLoop(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The INIT reply (fuse_init_out, `len` bytes), on its way to the kernel:
// when a loop was created, allocates its entries for the negotiated sizes
// and sets FUSE_OVER_IO_URING. Does nothing otherwise.
void uring_amend_init_reply(char* init_out, size_t len);

// For the writev hook of fuse_custom_io: a reply to a ring request is copied into its
// entry and committed, `*result` set as writev would; false for anything
// else (notifications, replies to /dev/fuse requests).
bool uring_reply_writev(const struct iovec* iov, int count, ssize_t* result);

// For the splice_send hook of fuse_custom_io: libfuse put a reply (header and data,
// `len` bytes) into `pipe_fd` to splice it into /dev/fuse; for a ring
// request it is read into the entry instead. False for anything else.
bool uring_reply_splice(int pipe_fd, size_t len, ssize_t* result);

}  // namespace tenantfs

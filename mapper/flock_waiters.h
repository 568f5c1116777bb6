// FlockWaiters: blocking flock() requests wait on threads of their own.
//
// A FLOCK request that would block (LOCK_SH/LOCK_EX without LOCK_NB, lock
// held elsewhere) must not wait on a libfuse worker: the loop has at most 16
// of them, and a tenant's 16 waiting `flock -x` would leave none to serve the
// holder's unlock or close, so the volume would hang for every container
// using it. Such a request is handed to a thread of its own, which does the
// blocking flock() on the backing file and replies; the worker returns to
// the loop at once.
//
// Bounded: at most `max_waiters` requests wait at once per mount; beyond
// that the request is answered ENOLCK (as flock(2) documents for "out of
// lock records"), and the first refusal is logged.
//
// Interrupts: the kernel sends FUSE_INTERRUPT when the waiting caller gets a
// signal (Ctrl-C, SIGKILL). The interrupt callback marks the waiter and
// wakes its thread with wake_signal(), whose handler does nothing and is
// installed without SA_RESTART, so flock() returns EINTR and the request is
// answered EINTR. The signal can land just before the thread enters flock();
// the callback therefore signals again until the thread is out of flock().
//
// Each request is answered exactly once, by the thread that ends it, and
// only after the thread is done with the backing fd: until the reply the
// caller holds its file open, so the kernel cannot send the RELEASE that
// closes the fd under the waiter.
//
// Shutdown: when the session loop has ended, close() makes threads still
// waiting drop their request instead of answering it (the session is about
// to be destroyed); they stay blocked until the process exits.
#pragma once

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <pthread.h>

#include <condition_variable>
#include <cstddef>
#include <memory>
#include <string>
#include <unordered_map>

#include "common/status.h"
#include "common/thread_annotations.h"

namespace tenantfs {

class FlockWaiters : public std::enable_shared_from_this<FlockWaiters> {
 public:
  static constexpr size_t kDefaultMaxWaiters = 256;

  // The signal that wakes a waiting thread. Free in the mapper: it handles
  // SIGTERM, SIGINT and SIGHUP and ignores SIGPIPE.
  static int wake_signal();
  // Installs the no-op handler of wake_signal() and blocks the signal in the
  // calling thread, and so in every libfuse worker it starts later; only
  // waiting threads unblock it. Once per process, before the loop starts.
  static Status install_wake_signal();

  FlockWaiters(std::string volume_name, size_t max_waiters);
  FlockWaiters(const FlockWaiters&) = delete;
  FlockWaiters& operator=(const FlockWaiters&) = delete;

  // Takes `req` over: waits for flock(fd, op) (op without LOCK_NB) on a
  // thread of its own and answers the request. `fd` stays open until then
  // (see above).
  void wait(fuse_req_t req, int fd, int op);

  // Call once the session loop has ended, before the session is destroyed:
  // from then on no request is answered; returns when no thread is still
  // answering one.
  void close();

  // Requests waiting now, for tests and logs.
  size_t waiting() const EXCLUDES(mu_);

 private:
  struct Waiter {
    fuse_req_t req;
    int fd;
    int op;
    pthread_t thread{};        // set with in_flock
    bool interrupted = false;  // the caller gave up
    bool in_flock = false;     // the thread is in (or about to enter) flock()
  };
  struct Start;

  static void* thread_main(void* arg);
  static void on_interrupt(fuse_req_t req, void* data);
  // The waiting thread's work: flock, then the one reply.
  void serve(Waiter* w) EXCLUDES(mu_);
  void refuse(fuse_req_t req, const char* why) EXCLUDES(mu_);

  const std::string volume_name_;
  const size_t max_waiters_;
  // Also guards each Waiter's thread, interrupted and in_flock.
  mutable Mutex mu_;
  std::condition_variable left_flock_;  // a thread came out of flock()
  std::condition_variable replied_;     // a thread finished answering
  std::unordered_map<fuse_req_t, Waiter*> waiting_ GUARDED_BY(mu_);
  size_t replying_ GUARDED_BY(mu_) = 0;
  bool closed_ GUARDED_BY(mu_) = false;
  bool warned_ GUARDED_BY(mu_) = false;
};

}  // namespace tenantfs

#include "mapper/flock_waiters.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <utility>

namespace tenantfs {
namespace {

// Does nothing: its only effect is that the waiting thread's flock()
// returns EINTR, because it is installed without SA_RESTART.
void on_wake_signal(int /*sig*/) {}

// How long an interrupt waits for the thread to come out of flock() before
// signalling it again. Only matters when the signal landed just before the
// thread entered flock(); normally flock() returns within microseconds.
constexpr std::chrono::milliseconds kResignalInterval{10};

// A waiting thread runs flock() and one reply; libfuse's reply path needs
// little stack. 256 waiters at glibc's default 8 MiB would reserve 2 GiB of
// address space for nothing.
constexpr size_t kWaiterStackSize = 128 * 1024;

void log_warn(const std::string& msg) {
  if (auto log = spdlog::get("mapper")) {
    log->warn("{}", msg);
  } else {
    spdlog::warn("{}", msg);
  }
}

}  // namespace

// What a new thread receives: its waiter, and a reference that keeps the
// FlockWaiters alive for as long as the thread runs (a thread still blocked
// at exit outlives the IdentityFs that owns the FlockWaiters).
struct FlockWaiters::Start {
  std::shared_ptr<FlockWaiters> self;
  Waiter* waiter;
};

int FlockWaiters::wake_signal() { return SIGRTMIN; }

Status FlockWaiters::install_wake_signal() {
  struct sigaction sa{};
  sa.sa_handler = on_wake_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: see on_wake_signal
  if (::sigaction(wake_signal(), &sa, nullptr) != 0) return PosixError("sigaction", errno);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, wake_signal());
  if (int err = ::pthread_sigmask(SIG_BLOCK, &set, nullptr); err != 0) {
    return PosixError("pthread_sigmask", err);
  }
  return Status::Ok();
}

FlockWaiters::FlockWaiters(std::string volume_name, size_t max_waiters)
    : volume_name_(std::move(volume_name)), max_waiters_(max_waiters) {}

size_t FlockWaiters::waiting() const {
  MutexLock lock(mu_);
  return waiting_.size();
}

void FlockWaiters::refuse(fuse_req_t req, const char* why) {
  bool first;
  {
    MutexLock lock(mu_);
    first = !std::exchange(warned_, true);
  }
  if (first) {
    log_warn("volume " + volume_name_ + ": a blocking flock was refused with ENOLCK (" + why +
             "); further refusals are not logged");
  }
  fuse_reply_err(req, ENOLCK);
}

void FlockWaiters::wait(fuse_req_t req, int fd, int op) {
  auto* w = new Waiter{req, fd, op};
  {
    MutexLock lock(mu_);
    if (waiting_.size() >= max_waiters_) {
      delete w;
      w = nullptr;
    } else {
      waiting_.emplace(req, w);
    }
  }
  if (w == nullptr) {
    refuse(req, ("already " + std::to_string(max_waiters_) + " waiting").c_str());
    return;
  }
  // Registered before the thread exists: once it has replied, `req` is gone.
  // If the interrupt already came, on_interrupt runs right here and the
  // thread will find the waiter marked before it ever calls flock().
  fuse_req_interrupt_func(req, &FlockWaiters::on_interrupt, this);

  auto* start = new Start{shared_from_this(), w};
  pthread_attr_t attr;
  ::pthread_attr_init(&attr);
  ::pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  ::pthread_attr_setstacksize(&attr, kWaiterStackSize);
  // Only the wake signal reaches a waiting thread: the stop signals belong
  // to the main thread.
  sigset_t mask;
  sigfillset(&mask);
  sigdelset(&mask, wake_signal());
  ::pthread_attr_setsigmask_np(&attr, &mask);
  pthread_t thread;
  const int err = ::pthread_create(&thread, &attr, &FlockWaiters::thread_main, start);
  ::pthread_attr_destroy(&attr);
  if (err == 0) return;

  delete start;
  {
    // An interrupt callback looks the waiter up under mu_ and, as the thread
    // never set in_flock, does not wait for it.
    MutexLock lock(mu_);
    waiting_.erase(req);
  }
  delete w;
  refuse(req, (std::string("cannot start a thread: ") + std::strerror(err)).c_str());
}

void* FlockWaiters::thread_main(void* arg) {
  std::unique_ptr<Start> start(static_cast<Start*>(arg));
  start->self->serve(start->waiter);
  return nullptr;
}

void FlockWaiters::serve(Waiter* w) {
  std::unique_ptr<Waiter> owned(w);
  MutexLock lock(mu_);
  int result;
  for (;;) {
    if (w->interrupted) {
      result = EINTR;
      break;
    }
    w->thread = ::pthread_self();
    w->in_flock = true;
    lock.unlock();
    const int res = ::flock(w->fd, w->op);
    const int err = res == 0 ? 0 : errno;
    lock.lock();
    w->in_flock = false;
    left_flock_.notify_all();
    // EINTR without an interrupt: a stray wake signal; wait on. A lock that
    // was granted is reported even if the caller gave up meanwhile: the
    // open file does hold it now.
    if (err != EINTR) {
      result = err;
      break;
    }
  }
  // From here on an interrupt finds nothing to do.
  waiting_.erase(w->req);
  if (closed_) return;
  ++replying_;
  lock.unlock();
  fuse_reply_err(w->req, result);
  lock.lock();
  --replying_;
  replied_.notify_all();
}

void FlockWaiters::on_interrupt(fuse_req_t req, void* data) {
  // Runs on a libfuse worker (or inside fuse_req_interrupt_func), possibly
  // after the waiter has already answered: libfuse keeps `req` alive during
  // the call but does not stop the reply, so the waiter is looked up rather
  // than trusted. A live request's address is never shared by another.
  auto* self = static_cast<FlockWaiters*>(data);
  MutexLock lock(self->mu_);
  for (;;) {
    auto it = self->waiting_.find(req);
    if (it == self->waiting_.end()) return;
    Waiter* w = it->second;
    w->interrupted = true;
    // Not in flock(): the thread checks the mark before it enters again.
    if (!w->in_flock) return;
    ::pthread_kill(w->thread, wake_signal());
    // A signal that landed just before flock() was entered woke nothing:
    // signal again until the thread is out.
    self->mu_.wait_for(self->left_flock_, kResignalInterval);
  }
}

void FlockWaiters::close() {
  MutexLock lock(mu_);
  closed_ = true;
  while (replying_ != 0) mu_.wait(replied_);
}

}  // namespace tenantfs

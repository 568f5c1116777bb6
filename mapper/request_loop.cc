#include "mapper/request_loop.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <thread>
#include <utility>

#include "common/thread_annotations.h"
#include "common/unique_fd.h"

namespace tenantfs {
namespace {

// The eventfd of the running per-CPU loop, for wake_request_loop().
std::atomic<int> g_wake_fd{-1};

class PerCpuLoop {
 public:
  PerCpuLoop(fuse_session* se, std::vector<int> cpus, int max_threads)
      : se_(se), fd_(fuse_session_fd(se)), cpus_(std::move(cpus)), max_threads_(max_threads) {
    if (static_cast<int>(cpus_.size()) > max_threads_) cpus_.resize(max_threads_);
  }

  int run() {
    wake_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!wake_) return errno;
    const int flags = ::fcntl(fd_, F_GETFL);
    if (flags < 0 || ::fcntl(fd_, F_SETFL, flags | O_NONBLOCK) != 0) return errno;
    g_wake_fd.store(wake_.get());
    {
      MutexLock lock(mu_);
      for (int cpu : cpus_) start(cpu);
    }
    {
      // Threads are detached; this object outlives them because run() only
      // returns once the last one has said goodbye.
      MutexLock lock(mu_);
      while (!(stopping_ && live_ == 0)) mu_.wait(done_cv_);
    }
    g_wake_fd.store(-1);
    ::fcntl(fd_, F_SETFL, flags);
    return error_.load();
  }

 private:
  enum class Got { kRequest, kIdle, kStop };

  // cpu < 0: an overflow thread.
  void start(int cpu) REQUIRES(mu_) {
    ++live_;
    start_thread_signals_blocked([this, cpu] { serve(cpu); }).detach();
  }

  void serve(int cpu) {
    if (cpu >= 0) {
      cpu_set_t one;
      CPU_ZERO(&one);
      CPU_SET(cpu, &one);
      // A CPU taken away since (cpuset change) leaves this thread unpinned,
      // which costs speed, not correctness.
      pthread_setaffinity_np(pthread_self(), sizeof one, &one);
    }
    fuse_buf buf{};
    for (;;) {
      receiving_.fetch_add(1);
      const Got got = receive(&buf, cpu < 0);
      receiving_.fetch_sub(1);
      if (got != Got::kRequest) break;
      // Nobody left to take the next request while this one is served.
      if (receiving_.load() == 0) add_receiver();
      fuse_session_process_buf(se_, &buf);
    }
    std::free(buf.mem);
    MutexLock lock(mu_);
    if (--live_ == 0) done_cv_.notify_all();
  }

  Got receive(fuse_buf* buf, bool overflow) {
    for (;;) {
      if (fuse_session_exited(se_)) {
        stop();
        return Got::kStop;
      }
      const int res = fuse_session_receive_buf(se_, buf);
      if (res > 0) return Got::kRequest;
      if (res == 0) {  // unmounted: libfuse has marked the session exited
        stop();
        return Got::kStop;
      }
      if (res != -EAGAIN && res != -EINTR) {
        error_.store(-res);
        fuse_session_exit(se_);
        stop();
        return Got::kStop;
      }
      pollfd p[2] = {{fd_, POLLIN, 0}, {wake_.get(), POLLIN, 0}};
      const int n = ::poll(p, 2, overflow ? kOverflowIdleMs : -1);
      // Written only once the loop is to end (stop(), wake_request_loop()).
      if (n > 0 && p[1].revents != 0) {
        stop();
        return Got::kStop;
      }
      // An overflow thread idle for a while ends if someone else receives.
      if (n == 0 && receiving_.load() > 1) return Got::kIdle;
    }
  }

  // Called with no thread receiving: starts an overflow thread, up to
  // max_threads.
  void add_receiver() {
    MutexLock lock(mu_);
    if (!stopping_ && live_ < max_threads_) start(-1);
  }

  void stop() {
    MutexLock lock(mu_);
    if (stopping_) return;
    stopping_ = true;
    // Left readable: every poll() returns from now on.
    const uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_.get(), &one, sizeof one);
  }

  static constexpr int kOverflowIdleMs = 1000;

  fuse_session* se_;
  int fd_;
  std::vector<int> cpus_;
  int max_threads_;
  UniqueFd wake_;
  std::atomic<int> receiving_{0};
  std::atomic<int> error_{0};
  Mutex mu_;
  std::condition_variable done_cv_;
  int live_ GUARDED_BY(mu_) = 0;
  bool stopping_ GUARDED_BY(mu_) = false;
};

int run_shared_loop(fuse_session* se, int max_threads) {
  fuse_loop_config* cfg = fuse_loop_cfg_create();
  // clone_fd reopens /dev/fuse in each worker, which the tenant cannot do
  // (0600 root): libfuse would warn and share the one fd anyway.
  fuse_loop_cfg_set_clone_fd(cfg, 0);
  fuse_loop_cfg_set_max_threads(cfg, static_cast<unsigned>(max_threads));
  fuse_loop_cfg_set_idle_threads(cfg, 4);
  const int rc = fuse_session_loop_mt(se, cfg);
  fuse_loop_cfg_destroy(cfg);
  return rc < 0 ? -rc : rc;
}

}  // namespace

bool parse_request_loop(const std::string& text, RequestLoop* out) {
  if (text == "auto") {
    *out = RequestLoop::kAuto;
  } else if (text == "per-cpu") {
    *out = RequestLoop::kPerCpu;
  } else if (text == "shared") {
    *out = RequestLoop::kShared;
  } else if (text == "uring") {
    *out = RequestLoop::kUring;
  } else {
    return false;
  }
  return true;
}

const char* request_loop_name(RequestLoop loop) {
  switch (loop) {
    case RequestLoop::kAuto:
      return "auto";
    case RequestLoop::kPerCpu:
      return "per-cpu";
    case RequestLoop::kShared:
      return "shared";
    case RequestLoop::kUring:
      return "uring";
  }
  return "?";
}

RequestLoop resolve_request_loop(RequestLoop wanted, size_t cpus) {
  if (wanted != RequestLoop::kAuto && wanted != RequestLoop::kUring) return wanted;
  return cpus >= 1 && cpus <= kMaxPerCpu ? RequestLoop::kPerCpu : RequestLoop::kShared;
}

int run_request_loop(fuse_session* se, RequestLoop loop, const std::vector<int>& cpus,
                     int max_threads) {
  if (loop == RequestLoop::kShared || cpus.empty()) return run_shared_loop(se, max_threads);
  PerCpuLoop per_cpu(se, cpus, max_threads);
  return per_cpu.run();
}

void wake_request_loop() {
  const int fd = g_wake_fd.load();
  if (fd < 0) return;
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(fd, &one, sizeof one);
}

}  // namespace tenantfs

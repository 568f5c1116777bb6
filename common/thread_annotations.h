// Thread-safety annotations, checked by clang's -Wthread-safety, and the
// annotated Mutex they need.
//
// Shared state names the mutex that guards it (GUARDED_BY), functions that
// expect a lock held say so (REQUIRES), and the compiler proves every access
// against that; a comment saying "guarded by mu_" would be trusted instead.
// The build checks it on every translation unit (tests/thread_safety). Other
// compilers see nothing: every macro expands to nothing there.
//
// std::mutex carries no annotations in libstdc++, so shared state is guarded
// by a Mutex and locked through MutexLock. Reference:
// https://clang.llvm.org/docs/ThreadSafetyAnalysis.html
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>

#if defined(__clang__)
#define TENANTFS_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define TENANTFS_THREAD_ANNOTATION(x)
#endif

// A type that is a lock (Mutex).
#define CAPABILITY(x) TENANTFS_THREAD_ANNOTATION(capability(x))
// A type that holds a lock for its lifetime (MutexLock).
#define SCOPED_CAPABILITY TENANTFS_THREAD_ANNOTATION(scoped_lockable)
// A member read and written only with `x` held.
#define GUARDED_BY(x) TENANTFS_THREAD_ANNOTATION(guarded_by(x))
// A pointer whose pointee is used only with `x` held (the pointer itself is not).
#define PT_GUARDED_BY(x) TENANTFS_THREAD_ANNOTATION(pt_guarded_by(x))
// The caller must hold the locks named.
#define REQUIRES(...) TENANTFS_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
// The caller must not hold the locks named: the function takes them.
#define EXCLUDES(...) TENANTFS_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
// The function takes (ACQUIRE) or gives up (RELEASE) the locks named; with no
// argument, the object it is called on.
#define ACQUIRE(...) TENANTFS_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define RELEASE(...) TENANTFS_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
// Takes the lock when the function returns `x`.
#define TRY_ACQUIRE(...) TENANTFS_THREAD_ANNOTATION(try_acquire_capability(__VA_ARGS__))
// The body is not checked. Each use says why the analysis cannot follow it.
#define NO_THREAD_SAFETY_ANALYSIS TENANTFS_THREAD_ANNOTATION(no_thread_safety_analysis)

namespace tenantfs {

// A std::mutex the analysis knows about. Waiting on a condition variable goes
// through wait()/wait_until(), which release the lock meanwhile, as
// std::condition_variable::wait does, and hold it again on return; the
// caller's predicate loop is then checked like any other code. (A predicate
// passed into the standard library would be a lambda the analysis cannot
// prove holds the lock.)
class CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void lock() ACQUIRE() { mu_.lock(); }
  void unlock() RELEASE() { mu_.unlock(); }
  bool try_lock() TRY_ACQUIRE(true) { return mu_.try_lock(); }

  // Waits for a notification of `cv` (or a spurious wake-up).
  void wait(std::condition_variable& cv) REQUIRES(this) {
    Adopted held(mu_);
    cv.wait(held.lock);
  }
  // As wait(), or until `deadline`: cv_status::timeout when it passed.
  template <typename Clock, typename Duration>
  std::cv_status wait_until(std::condition_variable& cv,
                            const std::chrono::time_point<Clock, Duration>& deadline)
      REQUIRES(this) {
    Adopted held(mu_);
    return cv.wait_until(held.lock, deadline);
  }
  template <typename Rep, typename Period>
  std::cv_status wait_for(std::condition_variable& cv,
                          const std::chrono::duration<Rep, Period>& timeout) REQUIRES(this) {
    return wait_until(cv, std::chrono::steady_clock::now() + timeout);
  }

 private:
  // The caller's lock, lent to a std::unique_lock for one wait and handed
  // back still held, even if the wait throws.
  struct Adopted {
    explicit Adopted(std::mutex& mu) : lock(mu, std::adopt_lock) {}
    Adopted(const Adopted&) = delete;
    Adopted& operator=(const Adopted&) = delete;
    ~Adopted() { lock.release(); }
    std::unique_lock<std::mutex> lock;
  };

  std::mutex mu_;
};

// Holds `mu` from construction to destruction, like std::unique_lock: it may
// be released and taken again in between (unlock()/lock()), and the
// destructor releases it only if held.
class SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mu) ACQUIRE(mu) : mu_(mu) { mu_.lock(); }
  ~MutexLock() RELEASE() {
    if (held_) mu_.unlock();
  }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

  void lock() ACQUIRE() {
    mu_.lock();
    held_ = true;
  }
  void unlock() RELEASE() {
    mu_.unlock();
    held_ = false;
  }

 private:
  Mutex& mu_;
  bool held_ = true;
};

}  // namespace tenantfs

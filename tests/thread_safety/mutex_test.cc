// Mutex and MutexLock behave as std::mutex and std::unique_lock do: a lock
// given up early is not released twice, and a condition-variable wait gives
// the mutex back held, whether it was notified or timed out.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <thread>

#include "common/thread_annotations.h"

namespace tenantfs {
namespace {

// Whether another thread could take `mu` now.
bool free_elsewhere(Mutex& mu) {
  bool took = false;
  std::thread([&] {
    took = mu.try_lock();
    if (took) mu.unlock();
  }).join();
  return took;
}

TEST(MutexLockTest, ReleasesOnlyWhatItStillHolds) {
  Mutex mu;
  {
    MutexLock lock(mu);
    EXPECT_FALSE(free_elsewhere(mu));
    lock.unlock();
    EXPECT_TRUE(free_elsewhere(mu));
    lock.lock();
    EXPECT_FALSE(free_elsewhere(mu));
    lock.unlock();
  }
  EXPECT_TRUE(free_elsewhere(mu));
}

TEST(MutexTest, WaitReturnsWithTheLockHeldOnceNotified) {
  Mutex mu;
  std::condition_variable cv;
  bool ready = false;
  std::thread notifier([&] {
    MutexLock lock(mu);
    ready = true;
    cv.notify_all();
  });
  {
    MutexLock lock(mu);
    while (!ready) mu.wait(cv);
    EXPECT_FALSE(free_elsewhere(mu));
  }
  notifier.join();
}

TEST(MutexTest, WaitUntilReportsTheTimeoutWithTheLockHeld) {
  Mutex mu;
  std::condition_variable cv;
  MutexLock lock(mu);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(20);
  std::cv_status status = std::cv_status::no_timeout;
  while (status == std::cv_status::no_timeout) status = mu.wait_until(cv, deadline);
  EXPECT_GE(std::chrono::steady_clock::now(), deadline);
  EXPECT_FALSE(free_elsewhere(mu));
}

}  // namespace
}  // namespace tenantfs

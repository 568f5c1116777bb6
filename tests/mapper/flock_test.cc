// flock() through the mount: a tenant's blocking locks wait without holding
// the mapper's request threads, so however many processes wait for a lock,
// the volume keeps serving, and a waiter that gives up goes away.
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/mapper/mapper_fixture.h"

namespace tenantfs::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using std::chrono::steady_clock;

// More waiters than the mapper's loop has request threads (16).
constexpr int kManyWaiters = 40;
// Exit codes of a waiter child.
constexpr int kExitLocked = 0;
constexpr int kExitInterrupted = 3;
constexpr int kExitOverlap = 4;
constexpr int kExitOther = 5;
constexpr int kExitNoLock = 6;

// Forks a child that runs fn and exits with its result.
pid_t spawn(const std::function<int()>& fn) {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(fn());
  return pid;
}

// Whether `pid` is inside the flock system call (blocked there: a waiter
// never stays in it otherwise).
bool in_flock_syscall(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/syscall");
  long nr = -1;
  return (in >> nr) && nr == SYS_flock;
}

int thread_count(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  while (in >> key) {
    if (key == "Threads:") {
      int n = -1;
      in >> n;
      return n;
    }
  }
  return -1;
}

class FlockTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SKIP_UNLESS_MAPPER_TESTS_CAN_RUN();
    vol_ = std::make_unique<MountedVolume>();
    ASSERT_EQ(vol_->start(), "ready");
    ASSERT_TRUE(write_file(m("lock"), ""));
    holder_ = UniqueFd(::open(m("lock").c_str(), O_RDWR | O_CLOEXEC));
    ASSERT_TRUE(holder_) << std::strerror(errno);
    ASSERT_EQ(::flock(holder_.get(), LOCK_EX | LOCK_NB), 0) << std::strerror(errno);
  }

  void TearDown() override {
    for (pid_t pid : children_) ::kill(pid, SIGKILL);
    const auto deadline = steady_clock::now() + seconds(5);
    std::erase_if(children_, [&](pid_t pid) { return reap_by(pid, deadline).has_value(); });
    // Children left are waiting for replies the mapper will never send (a
    // failed test): so would the holder's close, which unlocks through the
    // mount. Ending the mapper ends the connection and every such wait.
    if (!children_.empty() && vol_ && vol_->mapper()) vol_->mapper()->signal(SIGKILL);
    holder_.reset();
    vol_.reset();
    for (pid_t pid : children_) wait_for_exit(pid, milliseconds(10'000));
  }

  std::string m(const std::string& rel) const { return vol_->path(rel); }

  // Starts a child that opens "lock" through the mount (an open file of its
  // own: flock locks belong to open files) and waits for LOCK_EX. Once it
  // has the lock it checks that nobody else holds it, counts itself in
  // "count" and unlocks.
  pid_t start_waiter() {
    const std::string lock_path = m("lock"), inside = m("inside"), count = m("count");
    const pid_t pid = spawn([=] {
      UniqueFd fd(::open(lock_path.c_str(), O_RDWR | O_CLOEXEC));
      if (!fd) return kExitOther;
      if (::flock(fd.get(), LOCK_EX) != 0) {
        if (errno == EINTR) return kExitInterrupted;
        return errno == ENOLCK ? kExitNoLock : kExitOther;
      }
      // O_EXCL fails if another holder is inside at the same time.
      UniqueFd mark(::open(inside.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
      if (!mark) return errno == EEXIST ? kExitOverlap : kExitOther;
      UniqueFd c(::open(count.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
      if (!c) return kExitOther;
      char buf[32] = {};
      const ssize_t n = ::pread(c.get(), buf, sizeof buf - 1, 0);
      const std::string next = std::to_string((n > 0 ? std::atoi(buf) : 0) + 1);
      if (n < 0 || ::pwrite(c.get(), next.data(), next.size(), 0) !=
                       static_cast<ssize_t>(next.size())) {
        return kExitOther;
      }
      if (::unlink(inside.c_str()) != 0) return kExitOther;
      return ::flock(fd.get(), LOCK_UN) == 0 ? kExitLocked : kExitOther;
    });
    if (pid > 0) children_.push_back(pid);
    return pid;
  }

  // Starts `n` waiters and returns once every one of them is blocked in
  // flock().
  std::vector<pid_t> start_blocked_waiters(int n) {
    std::vector<pid_t> pids;
    for (int i = 0; i < n; ++i) {
      const pid_t pid = start_waiter();
      EXPECT_GT(pid, 0) << std::strerror(errno);
      if (pid > 0) pids.push_back(pid);
    }
    for (pid_t pid : pids) {
      EXPECT_TRUE(eventually([&] { return in_flock_syscall(pid); }))
          << "waiter " << pid << " never blocked in flock";
    }
    return pids;
  }

  // Reaps `pid` if it ends by `deadline`.
  static std::optional<int> reap_by(pid_t pid, steady_clock::time_point deadline) {
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - steady_clock::now());
    return wait_for_exit(pid, std::max(left, milliseconds(0)));
  }

  // Reaps each of `pids`, which must all end within 30 s; their statuses.
  std::vector<std::optional<int>> reap_all(const std::vector<pid_t>& pids) {
    const auto deadline = steady_clock::now() + seconds(30);
    std::vector<std::optional<int>> statuses;
    for (pid_t pid : pids) {
      statuses.push_back(reap_by(pid, deadline));
      if (statuses.back()) std::erase(children_, pid);
    }
    return statuses;
  }
  std::optional<int> reap(pid_t pid) { return reap_all({pid}).front(); }

  // Ordinary work on the mount, in a child so that a hung volume fails the
  // test instead of hanging it.
  void expect_volume_serves(const std::string& tag) {
    const std::string dir = vol_->mountpoint(), file = m("other-" + tag);
    Outcome o = run_as(Caller{}, [&] {
      struct stat st;
      if (::stat(dir.c_str(), &st) != 0) return sys(-1);
      UniqueFd fd(::open(file.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
      if (!fd) return sys(-1);
      if (::pwrite(fd.get(), tag.data(), tag.size(), 0) != static_cast<ssize_t>(tag.size())) {
        return sys(-1);
      }
      Outcome r;
      r.data.resize(tag.size());
      r.ret = ::pread(fd.get(), r.data.data(), r.data.size(), 0);
      if (r.ret < 0) return sys(-1);
      return r;
    });
    EXPECT_EQ(o.ret, static_cast<long>(tag.size())) << describe(o) << " " << o.data;
    EXPECT_EQ(o.data, tag);
  }

  // Unlocks the holder's lock from a child (the same open file), so that a
  // hung volume fails the test instead of hanging it.
  void unlock_holder() {
    const int fd = holder_.get();
    Outcome o = run_as(Caller{}, [fd] { return sys(::flock(fd, LOCK_UN)); });
    EXPECT_EQ(o.ret, 0) << describe(o);
  }

  std::unique_ptr<MountedVolume> vol_;
  UniqueFd holder_;
  std::vector<pid_t> children_;
};

TEST_F(FlockTest, MoreWaitersThanRequestThreadsNeitherStallTheVolumeNorOverlap) {
  std::vector<pid_t> waiters = start_blocked_waiters(kManyWaiters);
  ASSERT_EQ(waiters.size(), static_cast<size_t>(kManyWaiters));

  expect_volume_serves("while-waiting");
  unlock_holder();

  const std::vector<std::optional<int>> statuses = reap_all(waiters);
  for (size_t i = 0; i < waiters.size(); ++i) {
    EXPECT_TRUE(exited_with(statuses[i], kExitLocked))
        << "waiter " << waiters[i] << ": " << describe_status(statuses[i])
        << " (3 interrupted, 4 overlapped another holder, 5 other error)";
  }
  EXPECT_EQ(read_file(m("count")), std::to_string(kManyWaiters));
  expect_volume_serves("after");
}

TEST_F(FlockTest, KilledAndInterruptedWaitersGoAwayAndLeaveNoThreadBehind) {
  const pid_t mapper = vol_->mapper()->pid();
  std::vector<pid_t> killed = start_blocked_waiters(20);

  // A caller whose signal handler runs while it waits gets EINTR (the
  // handler is installed without SA_RESTART, else the kernel restarts flock).
  const std::string lock_path = m("lock");
  const pid_t interrupted = spawn([&] {
    struct sigaction sa{};
    sa.sa_handler = [](int) {};
    sigemptyset(&sa.sa_mask);
    if (::sigaction(SIGUSR1, &sa, nullptr) != 0) return kExitOther;
    UniqueFd fd(::open(lock_path.c_str(), O_RDWR | O_CLOEXEC));
    if (!fd) return kExitOther;
    if (::flock(fd.get(), LOCK_EX) == 0) return kExitLocked;
    return errno == EINTR ? kExitInterrupted : kExitOther;
  });
  ASSERT_GT(interrupted, 0);
  children_.push_back(interrupted);
  ASSERT_TRUE(eventually([&] { return in_flock_syscall(interrupted); }));

  ASSERT_EQ(::kill(interrupted, SIGUSR1), 0);
  std::optional<int> status = reap(interrupted);
  EXPECT_TRUE(exited_with(status, kExitInterrupted)) << describe_status(status);

  for (pid_t pid : killed) ::kill(pid, SIGKILL);
  const std::vector<std::optional<int>> statuses = reap_all(killed);
  for (size_t i = 0; i < killed.size(); ++i) {
    EXPECT_TRUE(statuses[i] && WIFSIGNALED(*statuses[i]))
        << "waiter " << killed[i] << ": " << describe_status(statuses[i]);
  }

  expect_volume_serves("after-kill");
  unlock_holder();
  // Nobody holds or waits for the lock now: someone else gets it at once.
  Outcome fresh = run_as(Caller{}, [&] {
    UniqueFd fd(::open(lock_path.c_str(), O_RDWR | O_CLOEXEC));
    if (!fd) return sys(-1);
    return sys(::flock(fd.get(), LOCK_EX | LOCK_NB));
  });
  EXPECT_EQ(fresh.ret, 0) << describe(fresh);

  // The waiting threads are gone: what remains is at most the loop's own
  // threads (main and at most 16 workers), not one per waiter that was.
  int threads = -1;
  EXPECT_TRUE(eventually([&] { return (threads = thread_count(mapper)) <= 17; }))
      << "mapper still has " << threads << " threads";
}

TEST_F(FlockTest, WaitersBeyondTheBoundAreRefusedWithEnolckAndLoggedOnce) {
  // The mapper lets 256 blocking locks wait at once; four more are refused.
  constexpr int kBound = 256, kBeyond = 4;
  std::vector<pid_t> waiters;
  for (int i = 0; i < kBound + kBeyond; ++i) {
    const pid_t pid = start_waiter();
    ASSERT_GT(pid, 0) << std::strerror(errno);
    waiters.push_back(pid);
  }
  // While the holder holds the lock nobody gets it, so exactly the ones
  // over the bound end, refused.
  std::vector<std::optional<int>> statuses(waiters.size());
  auto ended = [&] {
    int n = 0;
    for (size_t i = 0; i < waiters.size(); ++i) {
      if (!statuses[i]) statuses[i] = wait_for_exit(waiters[i], milliseconds(0));
      n += statuses[i] ? 1 : 0;
    }
    return n;
  };
  EXPECT_TRUE(eventually([&] { return ended() >= kBeyond; }));
  expect_volume_serves("at-the-bound");
  unlock_holder();
  const auto deadline = steady_clock::now() + seconds(60);
  int locked = 0, refused = 0;
  for (size_t i = 0; i < waiters.size(); ++i) {
    if (!statuses[i]) statuses[i] = reap_by(waiters[i], deadline);
    if (statuses[i]) std::erase(children_, waiters[i]);
    locked += exited_with(statuses[i], kExitLocked) ? 1 : 0;
    refused += exited_with(statuses[i], kExitNoLock) ? 1 : 0;
  }
  EXPECT_EQ(refused, kBeyond);
  EXPECT_EQ(locked, kBound);
  EXPECT_EQ(read_file(m("count")), std::to_string(kBound));
  const std::string log = vol_->log();
  size_t lines = 0;
  for (size_t at = log.find("ENOLCK"); at != std::string::npos; at = log.find("ENOLCK", at + 1)) {
    ++lines;
  }
  EXPECT_EQ(lines, 1u) << log;
}

TEST_F(FlockTest, SharedLocksCoexistAndABlockedExclusiveOneFollowsThem) {
  ASSERT_EQ(::flock(holder_.get(), LOCK_UN), 0) << std::strerror(errno);
  UniqueFd a(::open(m("lock").c_str(), O_RDONLY | O_CLOEXEC));
  UniqueFd b(::open(m("lock").c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(a && b);
  ASSERT_EQ(::flock(a.get(), LOCK_SH | LOCK_NB), 0) << std::strerror(errno);
  ASSERT_EQ(::flock(b.get(), LOCK_SH), 0) << std::strerror(errno);
  EXPECT_EQ(::flock(holder_.get(), LOCK_EX | LOCK_NB), -1);
  EXPECT_EQ(errno, EWOULDBLOCK) << errno_name(errno);

  const pid_t waiter = start_waiter();
  ASSERT_GT(waiter, 0);
  ASSERT_TRUE(eventually([&] { return in_flock_syscall(waiter); }));
  ASSERT_EQ(::flock(a.get(), LOCK_UN), 0);
  ASSERT_EQ(::flock(b.get(), LOCK_UN), 0);
  std::optional<int> status = reap(waiter);
  EXPECT_TRUE(exited_with(status, kExitLocked)) << describe_status(status);
}

// How the mapper is told to stop while waiters are still blocked.
enum class Stop { kSigterm, kForcedUnmount };

class FlockStopTest : public FlockTest, public ::testing::WithParamInterface<Stop> {};

TEST_P(FlockStopTest, MapperExitsZeroWithWaitersStillBlocked) {
  std::vector<pid_t> waiters = start_blocked_waiters(20);
  if (GetParam() == Stop::kSigterm) {
    vol_->mapper()->signal(SIGTERM);
  } else {
    // MNT_FORCE aborts the FUSE connection; the unmount itself may still
    // find the mount busy.
    ::umount2(vol_->mountpoint().c_str(), MNT_FORCE);
  }
  std::optional<int> status = vol_->mapper()->wait_exit(milliseconds(10'000));
  EXPECT_TRUE(exited_with(status, 0)) << describe_status(status);
  // With the connection gone the waiters' flock fails and they end.
  const std::vector<std::optional<int>> statuses = reap_all(waiters);
  for (size_t i = 0; i < waiters.size(); ++i) {
    EXPECT_TRUE(statuses[i].has_value()) << "waiter " << waiters[i] << " still blocked";
  }
  holder_.reset();
  if (status) vol_->drop_mapper();
}

INSTANTIATE_TEST_SUITE_P(Stop, FlockStopTest,
                         ::testing::Values(Stop::kSigterm, Stop::kForcedUnmount),
                         [](const ::testing::TestParamInfo<Stop>& p) {
                           return p.param == Stop::kSigterm ? "Sigterm" : "ForcedUnmount";
                         });

}  // namespace
}  // namespace tenantfs::testing

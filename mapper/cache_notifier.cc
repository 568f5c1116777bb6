#include "mapper/cache_notifier.h"

#include <fcntl.h>
#include <linux/fuse.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>
#include <thread>
#include <utility>

namespace tenantfs {
namespace {

void log_warn(const std::string& msg) {
  if (auto log = spdlog::get("mapper")) {
    log->warn("{}", msg);
  } else {
    spdlog::warn("{}", msg);
  }
}

// One notification: header, argument, and optionally a NUL-terminated name.
// The kernel answers ENOENT for an inode or entry it no longer caches,
// which is what the notification wanted anyway.
int write_notification(int fd, int code, const void* arg, size_t arg_size,
                       const std::string* name) {
  fuse_out_header header{};
  header.error = code;  // notifications carry their code here, unique 0
  iovec iov[3];
  int count = 0;
  iov[count++] = {&header, sizeof header};
  iov[count++] = {const_cast<void*>(arg), arg_size};
  size_t total = sizeof header + arg_size;
  if (name != nullptr) {
    iov[count++] = {const_cast<char*>(name->c_str()), name->size() + 1};
    total += name->size() + 1;
  }
  header.len = static_cast<uint32_t>(total);
  const ssize_t n = ::writev(fd, iov, count);
  if (n < 0) return errno;
  return 0;
}

}  // namespace

CacheNotifier::CacheNotifier(std::string volume_name) : state_(std::make_shared<State>()) {
  state_->volume = std::move(volume_name);
}

CacheNotifier::~CacheNotifier() { close(); }

void CacheNotifier::set_fuse_fd(int fd) {
  MutexLock lock(state_->mutex);
  state_->fuse_fd = UniqueFd(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
}

void CacheNotifier::drop_inode(uint64_t ino, uint64_t parent, const std::string& name) {
  State& s = *state_;
  MutexLock lock(s.mutex);
  if (s.closed || !s.fuse_fd) return;
  for (const Job& j : s.pending) {
    if (j.ino == ino) return;  // already queued
  }
  if (s.pending.size() >= kMaxPending) {
    if (!s.overflow_logged) {
      s.overflow_logged = true;
      log_warn("volume " + s.volume + ": more than " + std::to_string(kMaxPending) +
               " cache invalidations wait; dropping some (further drops are not logged)");
    }
    return;
  }
  s.pending.push_back(Job{ino, parent, name});
  if (!s.running) {
    // Every signal stays blocked in the new thread (it inherits the mask of
    // the request thread, which blocks them all); the stop signals belong to
    // the main thread.
    try {
      std::thread(&CacheNotifier::run, state_).detach();
      s.running = true;
    } catch (const std::system_error& e) {
      s.pending.clear();
      log_warn("volume " + s.volume + ": cannot start the cache notifier: " + e.what());
      return;
    }
  }
  s.wake.notify_one();
}

void CacheNotifier::close() {
  MutexLock lock(state_->mutex);
  state_->closed = true;
  state_->pending.clear();
  state_->wake.notify_one();
}

void CacheNotifier::run(const std::shared_ptr<State>& state) {
  State& s = *state;
  MutexLock lock(s.mutex);
  for (;;) {
    while (!s.closed && s.pending.empty()) s.mutex.wait(s.wake);
    if (s.closed) break;
    Job job = std::move(s.pending.front());
    s.pending.erase(s.pending.begin());
    lock.unlock();
    // Attributes and every page: the next read and stat ask the storage.
    fuse_notify_inval_inode_out inode{};
    inode.ino = job.ino;
    inode.off = 0;
    inode.len = 0;
    int err =
        write_notification(s.fuse_fd.get(), FUSE_NOTIFY_INVAL_INODE, &inode, sizeof inode, nullptr);
    if (err == 0 || err == ENOENT) {
      if (!job.name.empty()) {
        fuse_notify_inval_entry_out entry{};
        entry.parent = job.parent;
        entry.namelen = static_cast<uint32_t>(job.name.size());
        err = write_notification(s.fuse_fd.get(), FUSE_NOTIFY_INVAL_ENTRY, &entry, sizeof entry,
                                 &job.name);
      }
    }
    if (err != 0 && err != ENOENT && err != ENODEV) {
      log_warn("volume " + s.volume +
               ": cannot drop the kernel's cache of an inode: " + std::strerror(err));
    }
    lock.lock();
  }
  s.running = false;
}

}  // namespace tenantfs

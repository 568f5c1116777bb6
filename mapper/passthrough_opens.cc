#include "mapper/passthrough_opens.h"

#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace tenantfs {
namespace {

template <typename... Args>
void log_at(spdlog::level::level_enum level, spdlog::format_string_t<Args...> fmt, Args&&... args) {
  if (auto log = spdlog::get("mapper")) log->log(level, fmt, std::forward<Args>(args)...);
}

}  // namespace

int32_t PassthroughOpens::attach(fuse_ino_t ino, int fd, bool direct,
                                 Registration registration) {
  MutexLock lock(mu_);
  // Another open of this inode is being registered: its outcome decides
  // this one's mode.
  for (;;) {
    auto it = inodes_.find(ino);
    if (it == inodes_.end() || !it->second.registering) break;
    mu_.wait(registered_);
  }
  auto it = inodes_.find(ino);
  if (it != inodes_.end() && it->second.backing_id >= 0) {
    ++it->second.passthrough;
    opens_[fd] = OpenFile{ino, Kind::kPassthrough};
    return it->second.backing_id;
  }
  // Served by the mapper with direct_io: the kernel keeps such an open out
  // of both modes, so it is not counted.
  if (direct) return -1;
  // unordered_map keeps references to its elements valid across inserts;
  // `registering` keeps detach() from erasing this one meanwhile.
  InodeOpens& io = it != inodes_.end() ? it->second : inodes_[ino];
  int32_t id = -1;
  if (registration == Registration::kAllowed && io.cached == 0 && !broker_lost_ &&
      live_ids_ + registering_ < max_ids_) {
    // The round trip runs unlocked: opens of other inodes go on meanwhile.
    io.registering = true;
    ++registering_;
    lock.unlock();
    id = broker_->register_file(fd);
    lock.lock();
    io.registering = false;
    --registering_;
    registered_.notify_all();
    if (id == -EPIPE) {
      if (!broker_lost_) {
        log_at(spdlog::level::warn,
               "volume {}: the backing broker is gone; files open without passthrough from now on",
               volume_);
      }
      broker_lost_ = true;
    } else if (id < 0) {
      log_at(spdlog::level::debug, "volume {}: inode {} not passed through: {}", volume_, ino,
             std::strerror(-id));
    }
  }
  if (id < 0) {
    ++io.cached;
    opens_[fd] = OpenFile{ino, Kind::kCached};
    return -1;
  }
  io.backing_id = id;
  io.passthrough = 1;
  ++live_ids_;
  opens_[fd] = OpenFile{ino, Kind::kPassthrough};
  return id;
}

void PassthroughOpens::detach(int fd) {
  MutexLock lock(mu_);
  auto open = opens_.find(fd);
  if (open == opens_.end()) return;
  const OpenFile f = open->second;
  opens_.erase(open);
  auto it = inodes_.find(f.ino);
  if (it == inodes_.end()) return;
  InodeOpens& io = it->second;
  if (f.kind == Kind::kCached) {
    --io.cached;
  } else if (--io.passthrough == 0) {
    // The kernel dropped the inode's backing file when its last passthrough
    // file was released, before it sent RELEASE; the id only pins the
    // registered file now.
    broker_->release_id(io.backing_id);
    io.backing_id = -1;
    --live_ids_;
  }
  if (io.cached == 0 && io.passthrough == 0 && !io.registering) inodes_.erase(it);
}

size_t PassthroughOpens::live_ids() const {
  MutexLock lock(mu_);
  return live_ids_;
}

}  // namespace tenantfs

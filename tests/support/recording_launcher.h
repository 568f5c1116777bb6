// RecordingLauncher: a MapperLauncher that never forks, for the tests that
// drive the real VolumeDriver without FUSE (tests/plugin and the refcount
// stress test of tests/hardening). Shared so that every such suite checks the
// driver against the same idea of what a launcher sees.
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <map>
#include <mutex>
#include <string>

#include "plugin/mapper_launcher.h"

namespace tenantfs::testing {

// Records starts and stops per volume and counts live mappers; a second start
// while one is live, or a stop without one, is recorded as a violation. Fails
// starts on request. Thread-safe: the stress tests call it from many threads.
class RecordingLauncher final : public MapperLauncher {
 public:
  Result<StartedMapper> start(const VolumeBinding& b, int backing_fd, const std::string&) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!fail_with_.empty()) return Status::IOError(fail_with_);
    // The fd handed over must be the binding's backing directory: serving
    // the fd, not the path, is what keeps a swapped-in symlink out.
    struct stat by_fd {};
    struct stat by_path {};
    if (::fstat(backing_fd, &by_fd) != 0 || ::lstat(b.backing_path.c_str(), &by_path) != 0 ||
        by_fd.st_ino != by_path.st_ino || by_fd.st_dev != by_path.st_dev) {
      return Status::Internal("backing fd is not " + b.backing_path);
    }
    ++starts_[b.name];
    if (live_[b.name]++ != 0) ++violations_;
    last_binding_ = b;
    return StartedMapper{next_pid_++, {}};
  }
  Status stop(pid_t, const std::string& mountpoint) override {
    std::lock_guard<std::mutex> lock(mu_);
    // The driver mounts each volume at <mount root>/<name>.
    const std::string name = mountpoint.substr(mountpoint.rfind('/') + 1);
    ++stops_;
    if (live_[name]-- != 1) ++violations_;
    return Status::Ok();
  }

  // Mappers started for volume `v`, over the launcher's life.
  int starts(const std::string& v) {
    std::lock_guard<std::mutex> lock(mu_);
    return starts_[v];
  }
  int total_stops() {
    std::lock_guard<std::mutex> lock(mu_);
    return stops_;
  }
  // Mappers running for volume `v` now (starts minus stops).
  int live(const std::string& v) {
    std::lock_guard<std::mutex> lock(mu_);
    return live_[v];
  }
  int violations() {
    std::lock_guard<std::mutex> lock(mu_);
    return violations_;
  }
  // Until called again with "", every start fails with `line`, the way a
  // mapper reports an error.
  void fail_with(std::string line) {
    std::lock_guard<std::mutex> lock(mu_);
    fail_with_ = std::move(line);
  }
  VolumeBinding last_binding() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_binding_;
  }

 private:
  std::mutex mu_;
  std::map<std::string, int> starts_;
  std::map<std::string, int> live_;
  int stops_ = 0;
  int violations_ = 0;
  std::string fail_with_;
  VolumeBinding last_binding_;
  pid_t next_pid_ = 4000000;  // beyond pid_max: never a real process
};

}  // namespace tenantfs::testing

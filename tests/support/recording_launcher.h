// RecordingLauncher: a MapperLauncher that never forks, and RecordedExits,
// which ends its "mappers" on request, for the tests that drive the real
// VolumeDriver and VolumeMounts without FUSE (tests/plugin, tests/fuzz and
// the refcount stress test of tests/hardening). Shared so that every such
// suite checks them against the same idea of what a launcher sees.
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <functional>
#include <map>
#include <mutex>
#include <string>

#include "plugin/child_reaper.h"
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
    last_pid_ = next_pid_++;
    return StartedMapper{last_pid_, ready_fields_};
  }
  void stop(pid_t, const std::string& mountpoint) override {
    std::lock_guard<std::mutex> lock(mu_);
    // VolumeMounts mounts each volume at <mount root>/<name>.
    const std::string name = mountpoint.substr(mountpoint.rfind('/') + 1);
    ++stops_;
    if (live_[name]-- != 1) ++violations_;
  }
  void stop_strays(const std::string&, const std::string&) override {}

  // What the "mappers" report on their readiness line from now on.
  void set_ready_fields(ReadyFields fields) {
    std::lock_guard<std::mutex> lock(mu_);
    ready_fields_ = std::move(fields);
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
  pid_t last_pid() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_pid_;
  }

 private:
  std::mutex mu_;
  std::map<std::string, int> starts_;
  std::map<std::string, int> live_;
  int stops_ = 0;
  int violations_ = 0;
  std::string fail_with_;
  VolumeBinding last_binding_;
  pid_t last_pid_ = 0;
  pid_t next_pid_ = 4000000;  // beyond pid_max: never a real process
  ReadyFields ready_fields_;
};

// Keeps the exit callbacks VolumeMounts registers; exit() runs one, as the
// reaper would when that mapper ends. Thread-safe.
class RecordedExits final : public ChildExits {
 public:
  void on_exit(pid_t pid, std::function<void(int)> on_exit) override {
    std::lock_guard<std::mutex> lock(mu_);
    callbacks_[pid] = std::move(on_exit);
  }
  // Reports that `pid` ended with wait status `status`; false when nobody
  // waits for it.
  bool exit(pid_t pid, int status) {
    std::function<void(int)> callback;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = callbacks_.find(pid);
      if (it == callbacks_.end()) return false;
      callback = std::move(it->second);
      callbacks_.erase(it);
    }
    callback(status);
    return true;
  }

 private:
  std::mutex mu_;
  std::map<pid_t, std::function<void(int)>> callbacks_;
};

}  // namespace tenantfs::testing

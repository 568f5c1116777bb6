// VolumeDriver: the Docker VolumeDriver protocol as JSON in, JSON out.
//
// One object serves every /Plugin.Activate and /VolumeDriver.* request. It
// owns no socket: the HTTP layer (plugin_server.h) hands it the endpoint and
// the raw body, and sends back what it returns. The store, the tenant
// directory and the mapper launcher are injected, so the handlers run in unit
// tests without sockets or FUSE.
//
// Volume lifecycle:
//   Create  makes DATA_DIR/<name> (owned by the tenant, with the mode) and
//           the binding, atomically; or validates path= data and binds it.
//   Mount   counts a reference for (volume, ID); starts a mapper when none is
//           live; a failed start keeps no reference.
//   Unmount releases one reference; at zero it stops the mapper.
//   Remove  is refused while referenced or mounted; deletes plugin-created
//           data as the tenant, never path= data.
//
// Thread-safety: handle() may be called from any number of threads. Calls
// for one volume are serialised by that volume's lock; calls for different
// volumes run in parallel. Lock order: a volume lock, then mounts_mu_;
// volume_locks_mu_ and events_mu_ are only held alone.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/status.h"
#include "common/thread_annotations.h"
#include "common/unique_fd.h"
#include "plugin/mapper_launcher.h"
#include "plugin/tenant_directory.h"
#include "store/store.h"

namespace tenantfs {

struct DriverConfig {
  std::string data_dir;                    // root-only; plugin-created volumes live here
  std::string mount_root;                  // mountpoints are mount_root/<name>
  std::vector<std::string> allowed_roots;  // for path=; empty refuses path=
  std::string default_tenant;              // used when Create has no tenant=
  // More directories a path= volume may neither lie in nor contain (the
  // store's, the socket's); data_dir and mount_root always count.
  std::vector<std::string> protected_dirs;
};

// What a request produced: the JSON to send and what to log about it.
struct DriverReply {
  int http_status = 200;
  nlohmann::json body;
  std::string volume;  // the Name of the request, when it had one
  std::string error;   // the Err text, empty on success
  Code code = Code::kOk;
};

class VolumeDriver {
 public:
  // Opens (creating them 0700 when missing) the data directory and the mount
  // root. The store, tenants and launcher must outlive the driver.
  static Result<std::unique_ptr<VolumeDriver>> Open(BindingStore& store, TenantDirectory& tenants,
                                                    MapperLauncher& launcher, DriverConfig config);
  ~VolumeDriver();

  VolumeDriver(const VolumeDriver&) = delete;
  VolumeDriver& operator=(const VolumeDriver&) = delete;

  // Handles one request. `endpoint` is the URL path ("/VolumeDriver.Mount").
  // Never throws: malformed JSON, wrong types and missing fields produce an
  // {"Err": ...} reply.
  DriverReply handle(std::string_view endpoint, std::string_view body);

  // Start-up reconciliation, before serving: cleans DATA_DIR leftovers,
  // lazily unmounts dead tenantfs mounts under the mount root, unmounts live
  // ones of volumes without references, adopts live ones of volumes with
  // references, and mounts again every referenced volume left without a
  // mount. Failures to remount are logged; the references stay so that a
  // later Mount retries.
  Status recover();

  // Starts the supervision thread: mapper exits (reported through
  // ChildReaper's reap-all mode) are logged and their dead mounts lazily
  // unmounted; adopted mounts are checked periodically. Stopped by the
  // destructor.
  void start_supervision();

  // Number of volumes with a live mapper, for shutdown logging.
  size_t live_mounts() const;

 private:
  struct ActiveMount {
    pid_t pid = 0;  // 0: adopted from an earlier serve, not our child
    std::string tenant;
    std::shared_ptr<std::atomic<bool>> exited;  // set by the reaper
  };
  struct MapperExit {
    std::string volume;
    pid_t pid;
    int status;
  };

  VolumeDriver(BindingStore& store, TenantDirectory& tenants, MapperLauncher& launcher,
               DriverConfig config, UniqueFd data_dir_fd);

  // A volume's lock, held from construction to destruction. It shares the
  // mutex, so the mutex lives as long as the lock whatever becomes of the
  // map entry.
  class HeldVolumeLock {
   public:
    explicit HeldVolumeLock(std::shared_ptr<std::mutex> mu) : mu_(std::move(mu)), held_(*mu_) {}

   private:
    std::shared_ptr<std::mutex> mu_;  // declared first: outlives held_
    std::unique_lock<std::mutex> held_;
  };
  // A volume's binding, read while its lock is held; the lock goes with it.
  struct LockedBinding {
    HeldVolumeLock lock;
    VolumeBinding binding;
  };

  [[nodiscard]] HeldVolumeLock lock_volume(const std::string& name);
  // The opening of every handler of an existing volume: takes the volume's
  // lock and reads its binding. Errors are the handlers' Err replies: an
  // unknown volume says how to create it.
  [[nodiscard]] Result<LockedBinding> lock_bound_volume(const std::string& name);
  std::string mountpoint_of(const std::string& name) const;

  // OK when the path= directory `dir_fd` neither lies in nor contains
  // DATA_DIR, MOUNT_ROOT or a protected directory: binding those would hand
  // one tenant every volume's data, or the plugin's own state.
  Status check_external_overlap(const std::string& name, int dir_fd);

  Result<nlohmann::json> create(const std::string& name, const nlohmann::json& opts);
  Result<nlohmann::json> remove(const std::string& name);
  Result<nlohmann::json> mount(const std::string& name, const std::string& id);
  Result<nlohmann::json> unmount(const std::string& name, const std::string& id);
  Result<nlohmann::json> path(const std::string& name);
  Result<nlohmann::json> get(const std::string& name);
  Result<nlohmann::json> list();

  // The rest require the volume's lock.
  bool has_live_mount_locked(const std::string& name);
  Status start_mapper_locked(const VolumeBinding& binding);
  Status stop_mapper_locked(const std::string& name);

  void supervise();
  void on_mapper_exit(const MapperExit& exit);
  void check_adopted_mounts();

  BindingStore& store_;
  TenantDirectory& tenants_;
  MapperLauncher& launcher_;
  const DriverConfig config_;
  const UniqueFd data_dir_fd_;

  // The volume locks themselves stay plain std::mutex: one is made per name
  // at run time, so no annotation can name it, and the *_locked functions
  // above say in words that they need one.
  Mutex volume_locks_mu_;
  std::map<std::string, std::shared_ptr<std::mutex>> volume_locks_ GUARDED_BY(volume_locks_mu_);

  mutable Mutex mounts_mu_;
  std::map<std::string, ActiveMount> mounts_ GUARDED_BY(mounts_mu_);

  Mutex events_mu_;
  std::condition_variable events_cv_;
  std::deque<MapperExit> exits_ GUARDED_BY(events_mu_);
  bool stopping_ GUARDED_BY(events_mu_) = false;
  std::thread supervisor_;
};

}  // namespace tenantfs

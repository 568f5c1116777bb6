// VolumeMounts: the one owner of what is mounted at MOUNT_ROOT/<name>.
//
// It starts a volume's mapper (through the MapperLauncher) and stops it,
// takes down whatever stale mount sits on a mountpoint, adopts at start-up
// the live mounts an earlier serve left, and supervises: a mapper that exits
// (reported through ChildExits) and an adopted mount that dies are forgotten
// and their dead mounts lazily unmounted, so that the next Mount starts a new
// mapper. The driver decides when a volume is mounted; this decides how.
//
// Every dependency is injected: `serve` passes the process launcher, the
// kernel's mount table and the ChildReaper; unit tests pass stand-ins for
// what they cannot run (mapper processes, FUSE mounts).
//
// Thread-safety: every method may be called from any thread. Those taking a
// VolumeLocks::Held need that volume's lock, which keeps the volume's entry
// theirs meanwhile; supervision takes volume locks itself. Lock order: a
// volume lock, then mounts_mu_; events_mu_ is only held alone. Neither is
// held across a mount-table probe, a launch or a stop: those can block on
// one volume (only its lock is held then) and must not stall the others.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "common/mapper_readiness.h"
#include "common/status.h"
#include "common/thread_annotations.h"
#include "plugin/child_reaper.h"
#include "plugin/mapper_launcher.h"
#include "plugin/mount_table.h"
#include "plugin/volume_locks.h"
#include "store/store.h"

namespace tenantfs {

class VolumeMounts {
 public:
  // Opens (creating it 0700 when missing) the mount root. The locks,
  // launcher, mount table and exits must outlive the object.
  static Result<std::unique_ptr<VolumeMounts>> Open(std::string mount_root, VolumeLocks& locks,
                                                    MapperLauncher& launcher, MountTable& table,
                                                    ChildExits& exits);
  // Stops supervision. Mappers keep serving: they outlive serve.
  ~VolumeMounts();

  VolumeMounts(const VolumeMounts&) = delete;
  VolumeMounts& operator=(const VolumeMounts&) = delete;

  const std::string& root() const { return mount_root_; }
  std::string mountpoint(const std::string& name) const;

  // True when a mapper serves the volume. A mapper known to have exited, or
  // an adopted mount that no longer answers, is forgotten and its dead
  // mount lazily unmounted; then false.
  bool live(const VolumeLocks::Held& volume) EXCLUDES(mounts_mu_);

  // Starts the mapper of `binding` (the volume `volume` locks) serving the
  // directory open as `backing_fd`, which the caller opened and checked.
  // Mappers left starting by an earlier serve, and whatever stale mount
  // sits on the mountpoint, are taken down first. On failure nothing the
  // mapper mounted is left.
  Status start(const VolumeLocks::Held& volume, const VolumeBinding& binding, int backing_fd)
      EXCLUDES(mounts_mu_, events_mu_);

  // Takes the volume's mount down and waits for its mapper; without a known
  // mapper, lazily unmounts whatever is left on the mountpoint.
  Status stop(const VolumeLocks::Held& volume) EXCLUDES(mounts_mu_);

  // For a volume about to be removed, which no mapper serves: unmounts
  // whatever is still on its mountpoint, so nothing is ever deleted
  // through a mount. Fails when that cannot be done.
  Status clear(const VolumeLocks::Held& volume);
  // Removes the empty mountpoint directory of a removed volume; failing only
  // leaves an empty root-only directory behind.
  void remove_mountpoint(const VolumeLocks::Held& volume);

  // How the volume's live mapper serves ("request-loop", "passthrough"; see
  // mapper/mapper.h), as its readiness line said; empty for a mount adopted
  // from an earlier serve, or none.
  ReadyFields serving(const VolumeLocks::Held& volume) const EXCLUDES(mounts_mu_);

  // Volumes whose mapper has not exited, for Docker's List.
  std::set<std::string> live_names() const EXCLUDES(mounts_mu_);
  // How many, for shutdown logging.
  size_t live_count() const EXCLUDES(mounts_mu_);

  // What start-up reconciliation needs to know of a volume that holds
  // references.
  struct Referenced {
    std::string tenant;
    int64_t references = 0;
  };
  // Start-up reconciliation of the tenantfs mounts under the mount root,
  // before serving: lazily unmounts dead ones, adopts live ones of volumes
  // in `referenced` (served by their mapper, not our child), and unmounts
  // the others. Referenced volumes left without a mount are the caller's to
  // start again. Fails only when the mount table cannot be read.
  Status reconcile(const std::map<std::string, Referenced>& referenced) EXCLUDES(mounts_mu_);

  // Starts the supervision thread; stopped by the destructor.
  void start_supervision();

 private:
  struct ActiveMount {
    pid_t pid = 0;  // 0: adopted from an earlier serve, not our child
    std::string tenant;
    std::shared_ptr<std::atomic<bool>> exited;  // set by the exit callback
    ReadyFields serving;  // how the mapper serves, from its readiness line
  };
  struct MapperExit {
    std::string volume;
    pid_t pid;
    int status;
  };

  VolumeMounts(std::string mount_root, VolumeLocks& locks, MapperLauncher& launcher,
               MountTable& table, ChildExits& exits);

  // Whether anything is mounted exactly on `mountpoint`.
  bool mounted(const std::string& mountpoint);
  // Lazily unmounts whatever sits on `mountpoint`; OK when nothing does.
  Status take_down_lazily(const std::string& mountpoint);
  // Forgets volume `name`'s entry and returns it; nullopt when there is
  // none, or when `pid` is given and the entry is another mapper's.
  std::optional<ActiveMount> forget(const std::string& name,
                                    std::optional<pid_t> pid = std::nullopt) EXCLUDES(mounts_mu_);

  void supervise() EXCLUDES(events_mu_);
  void on_mapper_exit(const MapperExit& exit) EXCLUDES(mounts_mu_);
  void check_adopted_mounts() EXCLUDES(mounts_mu_);

  const std::string mount_root_;
  VolumeLocks& locks_;
  MapperLauncher& launcher_;
  MountTable& table_;
  ChildExits& exits_;

  mutable Mutex mounts_mu_;
  std::map<std::string, ActiveMount> mounts_ GUARDED_BY(mounts_mu_);

  Mutex events_mu_;
  std::condition_variable events_cv_;
  std::deque<MapperExit> exit_queue_ GUARDED_BY(events_mu_);
  bool stopping_ GUARDED_BY(events_mu_) = false;
  std::thread supervisor_;
};

}  // namespace tenantfs

// MapperLauncher: starts and stops the `tenantfs mapper` process of a volume.
// The mount itself is VolumeMounts's: the mapper makes it, VolumeMounts
// takes it down.
//
// VolumeMounts talks to this interface so that unit tests can count
// launches without FUSE; `serve` uses ProcessMapperLauncher, which runs the
// real mapper binary.
//
// Thread-safety: implementations must allow concurrent calls for different
// volumes; VolumeMounts never calls concurrently for one volume.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "common/mapper_readiness.h"
#include "common/status.h"
#include "store/store.h"

namespace tenantfs {

// A mapper that reported "ready": its pid and the fields of its report
// (common/mapper_readiness.h).
struct StartedMapper {
  pid_t pid = 0;
  ReadyFields fields;
};

class MapperLauncher {
 public:
  virtual ~MapperLauncher() = default;

  // Starts a mapper serving the directory open as `backing_fd` (the
  // binding's backing directory, opened and checked by the caller) at
  // `mountpoint` as the binding's identity, and returns its pid and report
  // once the mapper reported "ready". Handing over the fd, not the path, means the
  // mapper serves exactly what was checked, even if a path component is
  // swapped for a symlink meanwhile. On failure nothing is left running
  // (what the mapper mounted is the caller's to take down), and the Status
  // message carries the mapper's own error line.
  virtual Result<StartedMapper> start(const VolumeBinding& binding, int backing_fd,
                                      const std::string& mountpoint) = 0;

  // Waits for mapper `pid` (from start) to exit once its mount at
  // `mountpoint` was taken down, killing it when it does not.
  virtual void stop(pid_t pid, const std::string& mountpoint) = 0;

  // Kills whatever mapper process of volume `volume` still names
  // `mountpoint`: VolumeMounts starts a mapper only when none serves the
  // volume, so such a process was started by an earlier serve that died
  // before the mapper reported ready (kill -9 mid-Mount). Left alone, it
  // would finish mounting over the new mapper's mount, or under it.
  virtual void stop_strays(const std::string& volume, const std::string& mountpoint) = 0;
};

// Pids of `tenantfs mapper` processes whose command line names `mountpoint`
// (argv[1] onwards parses as a MapperInvocation whose mountpoint it is),
// found under `proc_dir` (/proc).
std::vector<pid_t> find_mapper_processes(const std::string& mountpoint,
                                         const std::string& proc_dir = "/proc");

// True once `pid` is gone or a zombie (per `proc_dir`/PID/stat): either way
// it holds no /dev/fuse fd and will mount nothing any more.
bool process_has_exited(pid_t pid, const std::string& proc_dir = "/proc");

// Runs `<exe> mapper ...` as a child in its own session (setsid), so that it
// outlives a crash of serve, with stderr shared with serve. Strays are found
// by their command line (find_mapper_processes).
class ProcessMapperLauncher final : public MapperLauncher {
 public:
  // `exe`: the tenantfs binary ("/proc/self/exe" inside serve).
  // `ready_timeout`: how long a mapper may take to report readiness; Docker
  // gives Mount 2 minutes in all.
  ProcessMapperLauncher(std::string exe, std::chrono::milliseconds ready_timeout);

  Result<StartedMapper> start(const VolumeBinding& binding, int backing_fd,
                              const std::string& mountpoint) override;
  void stop(pid_t pid, const std::string& mountpoint) override;
  void stop_strays(const std::string& volume, const std::string& mountpoint) override;

 private:
  const std::string exe_;
  const std::chrono::milliseconds ready_timeout_;
};

}  // namespace tenantfs

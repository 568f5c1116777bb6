// The FUSE identity mapper: serves one backing directory at a mountpoint and
// performs every operation on it as one tenant.
//
// Contract of `tenantfs mapper` (what the plugin relies on):
//   tenantfs mapper --backing DIR --mountpoint DIR --uid U --gid G
//                   [--groups G1,G2,...] [--present-uid U] [--present-gid G]
//                   [--cache strict|exclusive] [--readonly] [--name VOLUME]
//                   [--ready-fd N]
// It mounts (fstype "fuse.tenantfs", source "tenantfs:VOLUME"), drops every
// privilege to the tenant and only then writes exactly one line to the ready
// fd: "ready\n" on success, or "error: <what failed and why>\n" followed by a
// non-zero exit that leaves no mount behind. It exits 0 once unmounted; on
// SIGTERM or SIGINT it unmounts itself first.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/status.h"

namespace tenantfs {

enum class CacheMode { kStrict, kExclusive };

struct MapperConfig {
  std::string backing;     // directory to serve (opened as root, before the drop)
  std::string mountpoint;  // where to mount
  std::string name;        // volume name, for the mount source and logs
  uid_t uid = 0;           // the tenant's storage identity
  gid_t gid = 0;
  std::vector<gid_t> groups;
  uid_t present_uid = 0;  // ids shown for tenant-owned objects
  gid_t present_gid = 0;
  CacheMode cache = CacheMode::kStrict;
  bool readonly = false;
  int ready_fd = -1;  // -1: no readiness report
};

// Mounts, drops privileges, serves until unmounted. Returns the process exit
// code. Errors before readiness are reported on cfg.ready_fd and logged.
int run_mapper(const MapperConfig& cfg);

}  // namespace tenantfs

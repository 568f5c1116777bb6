// The FUSE identity mapper: serves one backing directory at a mountpoint and
// performs every operation on it as one tenant.
//
// Contract of `tenantfs mapper` (what the plugin relies on):
//   tenantfs mapper --backing DIR --mountpoint DIR --uid U --gid G
//                   [--groups G1,G2,...] [--present-uid U] [--present-gid G]
//                   [--cache strict|exclusive] [--readonly] [--name VOLUME]
//                   [--ready-fd N] [--max-fds N]
//                   [--request-loop auto|uring|per-cpu|shared]
//                   [--passthrough auto|on|off]
// --present-uid/--present-gid default to --uid/--gid; --name defaults to the
// backing directory's basename and must match [A-Za-z0-9][A-Za-z0-9_.-]*;
// --uid 0 and the reserved id 2147483646 (common/reserved_ids.h) are refused.
// It mounts (fstype "fuse.tenantfs", source "tenantfs:VOLUME"), drops every
// privilege to the tenant, answers the kernel's INIT and only then writes
// exactly one line to the ready fd: "ready" followed by space-separated
// key=value fields and "\n" on success (today
// "ready request-loop=LOOP passthrough=on|off\n", LOOP the request path in
// use), or "error: <what failed and why>\n"
// followed by a non-zero exit that leaves no mount behind (failures that
// only show at INIT, after the drop, leave the mount to the supervisor, as
// a stop does). It exits 0 once unmounted (umount, umount -l,
// fusermount3 -u).
//
// SIGTERM/SIGINT: before "ready" the mapper is still root, unmounts what it
// mounted and exits 0. After "ready" it is the tenant, without capabilities
// and with no_new_privs, so it CANNOT unmount (umount2 needs CAP_SYS_ADMIN;
// the setuid fusermount3 fallback is disabled by no_new_privs and refuses
// mounts made by root anyway). It then stops serving, closes the FUSE
// connection and exits 0; the mount stays listed and answers ENOTCONN until
// the supervisor (root) removes it with umount2(MNT_DETACH). A privileged
// helper that outlives the drop would defeat the drop, so there is none.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "mapper/passthrough_start.h"
#include "mapper/request_loop.h"

#include "common/status.h"

namespace tenantfs {

enum class CacheMode { kStrict, kExclusive };

inline constexpr unsigned kDefaultMaxFds = 65536;
inline constexpr unsigned kMinMaxFds = 64;

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
  RequestLoop request_loop = RequestLoop::kAuto;  // see request_loop.h
  // RLIMIT_NOFILE of the mapper: every fd it holds, half of them at most for
  // looked-up objects (inode_table.h). Bounds what one volume can take of
  // the host's file table.
  unsigned max_fds = kDefaultMaxFds;
  // FUSE passthrough of open files (passthrough_start.h): auto uses it when
  // the kernel offers it and the broker starts; on fails the start without.
  PassthroughMode passthrough = PassthroughMode::kAuto;
};

// Mounts, drops privileges, serves until unmounted. Returns the process exit
// code. Errors before readiness are reported on cfg.ready_fd and logged.
int run_mapper(const MapperConfig& cfg);

}  // namespace tenantfs

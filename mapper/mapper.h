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
// backing directory's basename and must be a valid volume name
// (common/volume_name.h); the identity must pass validate_identity
// (common/identity.h: no root, no reserved id 2147483646).
// The options are those of MapperInvocation (common/mapper_invocation.h).
// It mounts (fstype "fuse.tenantfs", source "tenantfs:VOLUME"), drops every
// privilege to the tenant, answers the kernel's INIT and only then writes
// exactly one line to the ready fd (common/mapper_readiness.h): "ready"
// followed by space-separated key=value fields on success (today
// "ready request-loop=LOOP passthrough=on|off", LOOP the request path in
// use), or "error: <what failed and why>" followed by a non-zero exit that leaves no mount behind
// (failures that only show at INIT, after the drop, leave the mount to the
// supervisor, as a stop does). It exits 0 once unmounted (umount, umount -l,
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

#include "common/mapper_invocation.h"
#include "common/status.h"

namespace tenantfs {

// What one mapper serves, and how: its whole command line.
using MapperConfig = MapperInvocation;

// Mounts, drops privileges, serves until unmounted. Returns the process exit
// code. Errors before readiness are reported on cfg.ready_fd and logged.
int run_mapper(const MapperConfig& cfg);

}  // namespace tenantfs

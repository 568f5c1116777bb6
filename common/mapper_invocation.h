// MapperInvocation: every option of `tenantfs mapper`, as one value.
//
// The plugin's launcher builds a mapper's command line with to_argv(), finds
// running mappers again by parsing /proc/PID/cmdline with from_argv(), and
// the mapper's own command line (mapper/mapper_command.cc) fills the same
// struct, so the three cannot drift apart. Contract of the mapper that runs
// it: mapper/mapper.h. Defaults are the member initialisers below and
// nowhere else.
//
// from_argv() checks syntax only (known flags, well-formed numbers, a known
// cache mode); what an invocation may ask for (a non-root identity, a valid
// volume name, ...) is the mapper's to check before it mounts anything.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/identity.h"
#include "common/status.h"

namespace tenantfs {

// Kernel cache policy of a mount (see fs_options_for in mapper/mapper.cc).
enum class CacheMode { kStrict, kExclusive };

// "strict", "exclusive": the spelling on the command line, in volume options
// and in the store.
const char* cache_mode_name(CacheMode mode);
std::optional<CacheMode> parse_cache_mode(std::string_view name);
// Every name, in declaration order.
std::vector<std::string> cache_mode_names();

inline constexpr unsigned kDefaultMaxFds = 65536;
inline constexpr unsigned kMinMaxFds = 64;
inline constexpr unsigned kMaxMaxFds = 1U << 20;

// The flags, spelled once.
namespace mapper_flag {
inline constexpr char kBacking[] = "--backing";
inline constexpr char kMountpoint[] = "--mountpoint";
inline constexpr char kName[] = "--name";
inline constexpr char kUid[] = "--uid";
inline constexpr char kGid[] = "--gid";
inline constexpr char kGroups[] = "--groups";
inline constexpr char kPresentUid[] = "--present-uid";
inline constexpr char kPresentGid[] = "--present-gid";
inline constexpr char kCache[] = "--cache";
inline constexpr char kReadonly[] = "--readonly";
inline constexpr char kReadyFd[] = "--ready-fd";
inline constexpr char kRequestLoop[] = "--request-loop";
inline constexpr char kMaxFds[] = "--max-fds";
inline constexpr char kPassthrough[] = "--passthrough";
}  // namespace mapper_flag

// The subcommand that runs a mapper: argv[1] of the tenantfs binary.
inline constexpr char kMapperCommand[] = "mapper";

struct MapperInvocation {
  std::string backing;               // directory to serve (opened as root, before the drop)
  std::string mountpoint;            // where to mount
  std::string name;                  // volume name, for the mount source and logs; empty:
                                     // the backing directory's basename (volume_name())
  Identity identity;                 // the tenant's storage identity
  std::optional<uid_t> present_uid;  // shown for tenant-owned objects; unset:
  std::optional<gid_t> present_gid;  // the identity's own uid and gid
  CacheMode cache = CacheMode::kStrict;
  bool readonly = false;
  int ready_fd = -1;  // -1: no readiness report (mapper_readiness.h)
  // Which threads read requests; the mapper knows the names
  // (mapper/request_loop.h) and refuses others.
  std::string request_loop = "auto";
  // RLIMIT_NOFILE of the mapper: every fd it holds, half of them at most for
  // looked-up objects (mapper/inode_table.h). Bounds what one volume can take
  // of the host's file table.
  unsigned max_fds = kDefaultMaxFds;
  // FUSE passthrough of open files: "auto" (when the kernel offers it and
  // the broker starts), "on" (fail without) or "off"; the mapper knows the
  // names (mapper/passthrough_start.h) and refuses others.
  std::string passthrough = "auto";

  uid_t presented_uid() const { return present_uid.value_or(identity.uid); }
  gid_t presented_gid() const { return present_gid.value_or(identity.gid); }
  // `name`, or the backing directory's basename when it is empty.
  std::string volume_name() const;

  // kMapperCommand, then every option that differs from "unset" (empty
  // groups, no present ids, no ready fd and readonly false are left out).
  std::vector<std::string> to_argv() const;
  // The inverse: `args` starts with kMapperCommand (argv[1] of the process);
  // each flag that takes a value takes the next argument as it is.
  static Result<MapperInvocation> from_argv(const std::vector<std::string>& args);

  bool operator==(const MapperInvocation& o) const;
  bool operator!=(const MapperInvocation& o) const { return !(*this == o); }
};

}  // namespace tenantfs

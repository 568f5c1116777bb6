#include "mapper/mapper_command.h"

#include <cstdlib>
#include <memory>
#include <string>
#include <utility>

#include "mapper/mapper.h"

namespace tenantfs {
namespace {

// Flag values as parsed; optional ids stay unset when not given.
struct MapperFlags {
  MapperInvocation inv;
  std::string cache = cache_mode_name(MapperInvocation().cache);
  long long present_uid = -1;
  long long present_gid = -1;
};

}  // namespace

void register_mapper_command(CLI::App& app, std::function<void(const MapperInvocation&)> run) {
  namespace f = mapper_flag;
  auto flags = std::make_shared<MapperFlags>();
  CLI::App* cmd = app.add_subcommand(
      kMapperCommand, "serve one backing directory at a mountpoint as a tenant (started by serve)");
  MapperInvocation& c = flags->inv;
  cmd->add_option(f::kBacking, c.backing, "directory to serve")->required();
  cmd->add_option(f::kMountpoint, c.mountpoint, "where to mount it")->required();
  cmd->add_option(f::kUid, c.identity.uid, "tenant uid (not 0)")->required();
  cmd->add_option(f::kGid, c.identity.gid, "tenant primary gid")->required();
  cmd->add_option(f::kGroups, c.identity.groups, "tenant supplementary gids, comma-separated")
      ->delimiter(',');
  cmd->add_option(f::kPresentUid, flags->present_uid,
                  "uid shown for tenant-owned files (default: --uid)")
      ->check(CLI::Range(0LL, 4294967294LL));
  cmd->add_option(f::kPresentGid, flags->present_gid,
                  "gid shown for tenant-owned files (default: --gid)")
      ->check(CLI::Range(0LL, 4294967294LL));
  cmd->add_option(f::kCache, flags->cache, "kernel cache policy")
      ->check(CLI::IsMember(cache_mode_names()));
  cmd->add_flag(f::kReadonly, c.readonly, "refuse every modification with EROFS");
  cmd->add_option(f::kName, c.name,
                  "volume name (mount source tenantfs:NAME; default: the backing directory's "
                  "name)");
  cmd->add_option(f::kRequestLoop, c.request_loop,
                  "which threads read requests: uring (an io_uring queue per CPU; needs the "
                  "fuse module's enable_uring), per-cpu (a receiver pinned to each CPU), shared "
                  "(libfuse's pool) or auto (uring when the kernel offers it, else per-cpu on up "
                  "to 8 CPUs)")
      ->check(CLI::IsMember({"auto", "per-cpu", "shared", "uring"}));
  cmd->add_option(f::kMaxFds, c.max_fds,
                  "fds the mapper may hold (RLIMIT_NOFILE); half of them at most keep looked-up "
                  "files open, the rest serve open files")
      ->check(CLI::Range(kMinMaxFds, kMaxMaxFds));
  cmd->add_option(f::kPassthrough, c.passthrough,
                  "reads and writes of open files bypass the mapper (FUSE passthrough, through a "
                  "broker process): auto (when the kernel offers it), on (fail without), off")
      ->check(CLI::IsMember({"auto", "on", "off"}));
  cmd->add_option(f::kReadyFd, c.ready_fd, "fd that receives \"ready\" or \"error: ...\"");
  cmd->callback([flags, run = std::move(run)] {
    MapperInvocation inv = flags->inv;
    if (flags->present_uid >= 0) inv.present_uid = static_cast<uid_t>(flags->present_uid);
    if (flags->present_gid >= 0) inv.present_gid = static_cast<gid_t>(flags->present_gid);
    inv.cache = *parse_cache_mode(flags->cache);  // checked above
    run(inv);
  });
}

void register_mapper_command(CLI::App& app) {
  register_mapper_command(app, [](const MapperInvocation& inv) { std::exit(run_mapper(inv)); });
}

}  // namespace tenantfs

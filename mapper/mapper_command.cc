#include "mapper/mapper_command.h"

#include <cstdlib>
#include <memory>
#include <string>

#include "mapper/mapper.h"

namespace tenantfs {
namespace {

// Flag values as parsed; optional ids default to the tenant's own.
struct MapperFlags {
  MapperConfig cfg;
  std::string cache = "strict";
  std::string request_loop = "auto";
  std::string passthrough = "auto";
  long long present_uid = -1;
  long long present_gid = -1;
};

std::string default_name(const std::string& backing) {
  std::string b = backing;
  while (b.size() > 1 && b.back() == '/') b.pop_back();
  const auto slash = b.rfind('/');
  std::string base = slash == std::string::npos ? b : b.substr(slash + 1);
  return base.empty() || base == "/" ? std::string("volume") : base;
}

}  // namespace

void register_mapper_command(CLI::App& app) {
  auto flags = std::make_shared<MapperFlags>();
  CLI::App* cmd = app.add_subcommand(
      "mapper", "serve one backing directory at a mountpoint as a tenant (started by serve)");
  MapperConfig& c = flags->cfg;
  cmd->add_option("--backing", c.backing, "directory to serve")->required();
  cmd->add_option("--mountpoint", c.mountpoint, "where to mount it")->required();
  cmd->add_option("--uid", c.uid, "tenant uid (not 0)")->required();
  cmd->add_option("--gid", c.gid, "tenant primary gid")->required();
  cmd->add_option("--groups", c.groups, "tenant supplementary gids, comma-separated")
      ->delimiter(',');
  cmd->add_option("--present-uid", flags->present_uid,
                  "uid shown for tenant-owned files (default: --uid)")
      ->check(CLI::Range(0LL, 4294967294LL));
  cmd->add_option("--present-gid", flags->present_gid,
                  "gid shown for tenant-owned files (default: --gid)")
      ->check(CLI::Range(0LL, 4294967294LL));
  cmd->add_option("--cache", flags->cache, "kernel cache policy")
      ->check(CLI::IsMember({"strict", "exclusive"}));
  cmd->add_flag("--readonly", c.readonly, "refuse every modification with EROFS");
  cmd->add_option("--name", c.name, "volume name (mount source tenantfs:NAME)");
  cmd->add_option("--request-loop", flags->request_loop,
                  "which threads read requests: uring (an io_uring queue per CPU; needs the "
                  "fuse module's enable_uring), per-cpu (a receiver pinned to each CPU), shared "
                  "(libfuse's pool) or auto (uring when the kernel offers it, else per-cpu on up "
                  "to 8 CPUs)")
      ->check(CLI::IsMember({"auto", "per-cpu", "shared", "uring"}));
  cmd->add_option("--max-fds", c.max_fds,
                  "fds the mapper may hold (RLIMIT_NOFILE); half of them at most keep looked-up "
                  "files open, the rest serve open files")
      ->check(CLI::Range(kMinMaxFds, 1U << 20));
  cmd->add_option("--passthrough", flags->passthrough,
                  "reads and writes of open files bypass the mapper (FUSE passthrough, through a "
                  "broker process): auto (when the kernel offers it), on (fail without), off")
      ->check(CLI::IsMember({"auto", "on", "off"}));
  cmd->add_option("--ready-fd", c.ready_fd, "fd that receives \"ready\" or \"error: ...\"");
  cmd->callback([flags] {
    MapperConfig cfg = flags->cfg;
    cfg.present_uid =
        flags->present_uid >= 0 ? static_cast<uid_t>(flags->present_uid) : cfg.uid;
    cfg.present_gid =
        flags->present_gid >= 0 ? static_cast<gid_t>(flags->present_gid) : cfg.gid;
    cfg.cache = flags->cache == "exclusive" ? CacheMode::kExclusive : CacheMode::kStrict;
    parse_request_loop(flags->request_loop, &cfg.request_loop);   // checked above
    parse_passthrough_mode(flags->passthrough, &cfg.passthrough);  // checked above
    if (cfg.name.empty()) cfg.name = default_name(cfg.backing);
    std::exit(run_mapper(cfg));
  });
}

}  // namespace tenantfs

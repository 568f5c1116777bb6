#include "mapper/passthrough_start.h"

#include <sys/stat.h>
#include <sys/vfs.h>

#include "mapper/fuse_passthrough.h"

namespace tenantfs {
namespace {

// The kernel waits for nothing before it queues INIT; a generous bound only
// guards against a mount that never sends one.
constexpr int kInitTimeoutMs = 10'000;

// max_stack_depth: how many stacked filesystems a backing file may sit on
// (the kernel allows 1 or 2) and, as FUSE's own stack depth, how many
// layers this mount adds for anyone stacking on top of it (an overlay using
// a volume as a lower layer needs the FUSE mount at depth 1). ext4 and tmpfs
// backing files are at depth 0 and need 1; an overlayfs backing (the
// plugin's own root, Docker-in-Docker) is at depth 1 and needs 2, which in
// turn rules out an overlay above the volume.
uint32_t max_stack_depth_for(int backing_fd) {
  constexpr long kOverlayfsMagic = 0x794c7630;
  constexpr long kEcryptfsMagic = 0xf15f;
  struct statfs sfs;
  if (::fstatfs(backing_fd, &sfs) != 0) return 1;
  return sfs.f_type == kOverlayfsMagic || sfs.f_type == kEcryptfsMagic ? 2 : 1;
}

}  // namespace

bool parse_passthrough_mode(const std::string& text, PassthroughMode* mode) {
  if (text == "auto") {
    *mode = PassthroughMode::kAuto;
  } else if (text == "on") {
    *mode = PassthroughMode::kOn;
  } else if (text == "off") {
    *mode = PassthroughMode::kOff;
  } else {
    return false;
  }
  return true;
}

Status start_passthrough(const PassthroughRequest& req, Passthrough* out) {
  *out = Passthrough{};
  auto unavailable = [&](const std::string& why) {
    out->why_off = why;
    if (req.mode != PassthroughMode::kOn) return Status::Ok();
    return Status::FailedPrecondition("--passthrough on: " + why);
  };
  if (req.mode == PassthroughMode::kOff) return unavailable("--passthrough off");

  InitOffer offer;
  TENANTFS_RETURN_IF_ERROR(take_init_request(req.fuse_fd, kInitTimeoutMs, &offer));
  if (!offer.passthrough) {
    return unavailable("the kernel does not offer it (FUSE protocol 7." +
                       std::to_string(offer.minor) + "; needs 7.40 and CONFIG_FUSE_PASSTHROUGH)");
  }

  BrokerConfig cfg;
  cfg.tenant = req.tenant;
  cfg.fuse_fd = req.fuse_fd;
  cfg.readonly = req.readonly;
  cfg.cpus = req.cpus;
  struct stat st;
  if (::fstat(req.backing_fd, &st) != 0) return PosixError("fstat backing directory", errno);
  cfg.volume_dev = st.st_dev;
  if (Status s = mount_id_of(req.backing_fd, &cfg.volume_mnt_id); !s.ok()) {
    return unavailable(s.message());
  }
  auto broker = BackingBroker::start(cfg);
  if (!broker.ok()) return unavailable(broker.status().message());

  out->broker = std::move(broker.value());
  // Every live id pins a file no fd table counts, next to the mapper's own
  // open fd of it: a quarter of the mapper's fd limit.
  out->opens =
      std::make_unique<PassthroughOpens>(out->broker.get(), req.max_fds / 4 + 1, req.volume);
  out->max_stack_depth = max_stack_depth_for(req.backing_fd);
  request_passthrough_in_init_reply(out->max_stack_depth);
  return Status::Ok();
}

}  // namespace tenantfs

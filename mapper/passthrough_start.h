// Whether a volume's open files pass through (fuse_passthrough.h), decided
// once at start, before the privilege drop: the broker (backing_broker.h)
// must be forked while the mapper is still root and single-threaded.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "mapper/backing_broker.h"
#include "mapper/passthrough_opens.h"
#include "common/identity.h"
#include "common/privileges.h"

namespace tenantfs {

enum class PassthroughMode { kAuto, kOn, kOff };

// "auto", "on", "off"; false for anything else.
bool parse_passthrough_mode(const std::string& text, PassthroughMode* mode);

struct PassthroughRequest {
  PassthroughMode mode = PassthroughMode::kAuto;
  std::string volume;
  Identity tenant;
  bool readonly = false;
  int fuse_fd = -1;      // the mount's /dev/fuse fd, INIT not yet answered
  int backing_fd = -1;   // the backing root
  unsigned max_fds = 0;  // the mapper's RLIMIT_NOFILE
  std::vector<int> cpus;  // the CPUs the mapper serves: a broker each (BrokerConfig)
};

// The outcome: `opens` is set when passthrough is on; `why_off` says why not.
struct Passthrough {
  std::unique_ptr<BackingBroker> broker;
  std::unique_ptr<PassthroughOpens> opens;
  uint32_t max_stack_depth = 0;
  std::string why_off;
  bool on() const { return opens != nullptr; }
};

// Reads the kernel's INIT offer (unless the mode is off), starts the broker
// and arms the INIT reply. Fails only when the mode is kOn and passthrough
// is unavailable, saying why; otherwise falls back to off.
Status start_passthrough(const PassthroughRequest& req, Passthrough* out);

}  // namespace tenantfs

#include "plugin/volume_locks.h"

namespace tenantfs {

VolumeLocks::Held VolumeLocks::lock(const std::string& name) {
  std::shared_ptr<std::mutex> mu;
  {
    MutexLock lock(mu_);
    auto& slot = locks_[name];
    if (!slot) slot = std::make_shared<std::mutex>();
    mu = slot;
  }
  // Locked after mu_ is released: that one is only held alone.
  return Held(name, std::move(mu));
}

}  // namespace tenantfs

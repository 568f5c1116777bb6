// DriverStack: a VolumeDriver wired as `serve` wires it (volume locks,
// VolumeMounts on the kernel's mount table) but with the launcher and the
// exits of a test, for the suites that drive the real handlers without
// FUSE. Members go in reverse order: the driver before what it uses.
#pragma once

#include <memory>
#include <string>
#include <utility>

#include "plugin/mount_table.h"
#include "plugin/volume_driver.h"
#include "plugin/volume_locks.h"
#include "plugin/volume_mounts.h"

namespace tenantfs::testing {

struct DriverStack {
  VolumeLocks locks;
  KernelMountTable mount_table;
  std::unique_ptr<VolumeMounts> mounts;
  std::unique_ptr<VolumeDriver> driver;

  static Result<std::unique_ptr<DriverStack>> Open(BindingStore& store, TenantDirectory& tenants,
                                                   MapperLauncher& launcher, ChildExits& exits,
                                                   const std::string& mount_root,
                                                   DriverConfig config) {
    auto stack = std::make_unique<DriverStack>();
    auto mounts = VolumeMounts::Open(mount_root, stack->locks, launcher, stack->mount_table, exits);
    if (!mounts.ok()) return mounts.status();
    stack->mounts = std::move(*mounts);
    auto driver =
        VolumeDriver::Open(store, tenants, stack->locks, *stack->mounts, std::move(config));
    if (!driver.ok()) return driver.status();
    stack->driver = std::move(*driver);
    return stack;
  }
};

}  // namespace tenantfs::testing

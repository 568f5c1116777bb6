// How far the kernel reads ahead on a mapper's mount.
//
// A FUSE mount starts with 128 KiB of readahead, and the FUSE_INIT reply can
// only lower it. The disk below the backing store usually reads ahead much
// further (8 MiB for the virtio disk of the machine this was tuned on), and
// a sequential reader through FUSE then waits for one 128 KiB READ after
// another. Root can raise a mount's readahead through the sysfs file of its
// backing device info (bdi), /sys/class/bdi/MAJ:MIN/read_ahead_kb. The
// mapper does that right after mounting, while still root, and asks for the
// same amount in its INIT reply: the kernel keeps the smaller of the two.
//
// Where /sys is read-only (a container that mounts it so), the mount keeps
// 128 KiB: slower sequential reads, nothing else.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>

#include "common/status.h"

namespace tenantfs {

// The bounds of what the mapper asks for, in KiB.
constexpr uint32_t kMinReadaheadKb = 1024;
constexpr uint32_t kMaxReadaheadKb = 8192;

// read_ahead_kb of the device holding a filesystem whose st_dev is `dev`
// (its own bdi, or that of the disk a partition is on), read under
// `sys_dir`; nullopt when it has none (tmpfs, overlay).
std::optional<uint32_t> device_readahead_kb(dev_t dev, const std::string& sys_dir = "/sys");

// What the mount of a backing store on `backing_dev` should read ahead:
// the device's readahead within [kMinReadaheadKb, kMaxReadaheadKb], or
// kMinReadaheadKb when the device has none.
uint32_t mount_readahead_kb(dev_t backing_dev, const std::string& sys_dir = "/sys");

// "MAJ:MIN" of the topmost FUSE mount at `mountpoint` (absolute, no
// symlinks), from `mountinfo`, without touching the mounted filesystem
// (whose server may not be answering yet). Other filesystems never match.
std::optional<std::string> mount_device(const std::string& mountpoint,
                                        const std::string& mountinfo = "/proc/self/mountinfo");

// Writes `kb` to the bdi of the mount at `mountpoint` (root).
Status set_mount_readahead_kb(const std::string& mountpoint, uint32_t kb,
                              const std::string& sys_dir = "/sys");

}  // namespace tenantfs

#include "plugin/volume_mounts.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <vector>

#include "plugin/backing_dir.h"

namespace tenantfs {
namespace {

// How often supervision checks that adopted mounts still answer: their
// mappers are not our children, so no exit is ever reported for them.
constexpr auto kAdoptedCheckInterval = std::chrono::seconds(5);

}  // namespace

Result<std::unique_ptr<VolumeMounts>> VolumeMounts::Open(std::string mount_root, VolumeLocks& locks,
                                                         MapperLauncher& launcher,
                                                         MountTable& table, ChildExits& exits) {
  auto dir = open_private_dir(mount_root, "MOUNT_ROOT");
  if (!dir.ok()) return dir.status();
  return std::unique_ptr<VolumeMounts>(
      new VolumeMounts(std::move(mount_root), locks, launcher, table, exits));
}

VolumeMounts::VolumeMounts(std::string mount_root, VolumeLocks& locks, MapperLauncher& launcher,
                           MountTable& table, ChildExits& exits)
    : mount_root_(std::move(mount_root)),
      locks_(locks),
      launcher_(launcher),
      table_(table),
      exits_(exits) {}

VolumeMounts::~VolumeMounts() {
  {
    MutexLock lock(events_mu_);
    stopping_ = true;
  }
  events_cv_.notify_all();
  if (supervisor_.joinable()) supervisor_.join();
}

std::string VolumeMounts::mountpoint(const std::string& name) const {
  return mount_root_ + "/" + name;
}

bool VolumeMounts::mounted(const std::string& mountpoint) {
  auto entries = table_.entries();
  return entries.ok() && is_mount_point(*entries, mountpoint);
}

Status VolumeMounts::take_down_lazily(const std::string& mountpoint) {
  if (!mounted(mountpoint)) return Status::Ok();
  return table_.unmount_lazily(mountpoint);
}

std::optional<VolumeMounts::ActiveMount> VolumeMounts::forget(const std::string& name,
                                                              std::optional<pid_t> pid) {
  MutexLock lock(mounts_mu_);
  auto it = mounts_.find(name);
  if (it == mounts_.end() || (pid && it->second.pid != *pid)) return std::nullopt;
  ActiveMount m = std::move(it->second);
  mounts_.erase(it);
  return m;
}

bool VolumeMounts::live(const VolumeLocks::Held& volume) {
  const std::string& name = volume.name();
  ActiveMount m;
  {
    MutexLock lock(mounts_mu_);
    auto it = mounts_.find(name);
    if (it == mounts_.end()) return false;
    m = it->second;
  }
  // Outside mounts_mu_: a statfs on a FUSE mount can block, and must not
  // stall other volumes. The volume lock keeps this entry ours meanwhile.
  const bool exited = m.exited && m.exited->load();
  if (!exited && !(m.pid == 0 && table_.is_dead(mountpoint(name)))) return true;
  forget(name);
  spdlog::warn("volume \"{}\" (tenant \"{}\"): its mapper is gone; unmounting the dead mount", name,
               m.tenant);
  Status st = take_down_lazily(mountpoint(name));
  if (!st.ok()) spdlog::error("volume \"{}\": {}", name, st.message());
  return false;
}

Status VolumeMounts::start(const VolumeLocks::Held& volume, const VolumeBinding& b,
                           int backing_fd) {
  const std::string& name = volume.name();
  const std::string mp = mountpoint(name);
  // Killed before the stale mount goes: one still starting would mount
  // again, over the new mapper's mount or under it.
  launcher_.stop_strays(name, mp);
  // Whatever sits on the mountpoint is stale: no live mapper serves it.
  TENANTFS_RETURN_IF_ERROR(take_down_lazily(mp));
  if (::mkdir(mp.c_str(), 0700) != 0 && errno != EEXIST) {
    return PosixError("mkdir " + mp, errno);
  }
  auto started = launcher_.start(b, backing_fd, mp);
  if (!started.ok()) {
    // The mapper may have mounted before it failed.
    Status cleanup = take_down_lazily(mp);
    if (!cleanup.ok()) spdlog::warn("volume \"{}\": {}", name, cleanup.message());
    return started.status();
  }
  const pid_t pid = started->pid;
  auto exited = std::make_shared<std::atomic<bool>>(false);
  {
    MutexLock lock(mounts_mu_);
    mounts_[name] = ActiveMount{pid, b.tenant, exited, started->fields};
  }
  const pid_t mapper = pid;
  exits_.on_exit(mapper, [this, name, mapper, exited](int status) {
    exited->store(true);
    {
      MutexLock lock(events_mu_);
      exit_queue_.push_back(MapperExit{name, mapper, status});
    }
    events_cv_.notify_all();
  });
  std::string how;
  for (const auto& [key, value] : started->fields) how += " " + key + "=" + value;
  spdlog::info("volume \"{}\" (tenant \"{}\"): mapper pid {} serves {} at {}{}", name, b.tenant,
               mapper, b.backing_path, mp, how);
  return Status::Ok();
}

ReadyFields VolumeMounts::serving(const VolumeLocks::Held& volume) const {
  MutexLock lock(mounts_mu_);
  auto it = mounts_.find(volume.name());
  return it == mounts_.end() ? ReadyFields() : it->second.serving;
}

Status VolumeMounts::stop(const VolumeLocks::Held& volume) {
  const std::string& name = volume.name();
  const std::string mp = mountpoint(name);
  std::optional<ActiveMount> m = forget(name);
  if (!m) return take_down_lazily(mp);
  // As root: the mapper dropped the privileges it would need. Unmounting
  // ends its FUSE session, so it exits on its own.
  Status st = mounted(mp) ? table_.unmount(mp) : Status::Ok();
  if (m->pid != 0) launcher_.stop(m->pid, mp);
  spdlog::info("volume \"{}\" (tenant \"{}\"): unmounted", name, m->tenant);
  return st;
}

Status VolumeMounts::clear(const VolumeLocks::Held& volume) {
  const std::string mp = mountpoint(volume.name());
  if (!mounted(mp)) return Status::Ok();
  return table_.unmount(mp);
}

void VolumeMounts::remove_mountpoint(const VolumeLocks::Held& volume) {
  ::rmdir(mountpoint(volume.name()).c_str());
}

std::set<std::string> VolumeMounts::live_names() const {
  std::set<std::string> live;
  MutexLock lock(mounts_mu_);
  for (const auto& [name, m] : mounts_) {
    if (!(m.exited && m.exited->load())) live.insert(name);
  }
  return live;
}

size_t VolumeMounts::live_count() const {
  MutexLock lock(mounts_mu_);
  return mounts_.size();
}

Status VolumeMounts::reconcile(const std::map<std::string, Referenced>& referenced) {
  auto entries = table_.entries();
  if (!entries.ok()) return entries.status();
  for (const std::string& name : tenantfs_mounts_under(*entries, mount_root_)) {
    const std::string mp = mountpoint(name);
    if (table_.is_dead(mp)) {
      Status st = table_.unmount_lazily(mp);
      spdlog::warn("recovery: volume \"{}\": dead mount at {} {}", name, mp,
                   st.ok() ? "lazily unmounted" : "could not be unmounted: " + st.message());
      continue;
    }
    bool ours = false;  // the topmost mount there is this volume's mapper
    for (const MountEntry& e : *entries) {
      if (e.mount_point == mp) {
        ours = e.fstype == kMapperFsType && e.source == kMapperSourcePrefix + name;
      }
    }
    auto r = referenced.find(name);
    if (ours && r != referenced.end()) {
      {
        MutexLock lock(mounts_mu_);
        mounts_[name] = ActiveMount{0, r->second.tenant, nullptr, {}};
      }
      spdlog::info(
          "recovery: volume \"{}\" (tenant \"{}\"): adopted the live mount with {} "
          "reference(s)",
          name, r->second.tenant, r->second.references);
      continue;
    }
    Status st = table_.unmount(mp);
    spdlog::info("recovery: volume \"{}\": live mount without references {}", name,
                 st.ok() ? "unmounted" : "could not be unmounted: " + st.message());
  }
  return Status::Ok();
}

void VolumeMounts::start_supervision() {
  supervisor_ = std::thread([this] { supervise(); });
}

void VolumeMounts::supervise() {
  MutexLock lock(events_mu_);
  while (!stopping_) {
    const auto deadline = std::chrono::steady_clock::now() + kAdoptedCheckInterval;
    while (!stopping_ && exit_queue_.empty()) {
      if (events_mu_.wait_until(events_cv_, deadline) == std::cv_status::timeout) break;
    }
    while (!exit_queue_.empty() && !stopping_) {
      MapperExit e = exit_queue_.front();
      exit_queue_.pop_front();
      lock.unlock();
      on_mapper_exit(e);
      lock.lock();
    }
    if (stopping_) break;
    lock.unlock();
    check_adopted_mounts();
    lock.lock();
  }
}

void VolumeMounts::on_mapper_exit(const MapperExit& e) {
  VolumeLocks::Held volume = locks_.lock(e.volume);
  // Not the current mapper: a regular Unmount already stopped it, or a
  // Mount already replaced it.
  std::optional<ActiveMount> m = forget(e.volume, e.pid);
  if (!m) return;
  spdlog::error(
      "volume \"{}\" (tenant \"{}\"): mapper pid {} {} while mounted; the next Mount "
      "starts a new one",
      e.volume, m->tenant, e.pid, describe_exit(e.status));
  Status st = take_down_lazily(mountpoint(e.volume));
  if (!st.ok()) spdlog::error("volume \"{}\": {}", e.volume, st.message());
}

void VolumeMounts::check_adopted_mounts() {
  std::vector<std::string> adopted;
  {
    MutexLock lock(mounts_mu_);
    for (const auto& [name, m] : mounts_) {
      if (m.pid == 0) adopted.push_back(name);
    }
  }
  for (const std::string& name : adopted) {
    VolumeLocks::Held volume = locks_.lock(name);
    live(volume);  // unmounts and forgets it when dead
  }
}

}  // namespace tenantfs

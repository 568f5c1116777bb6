#include "plugin/volume_driver.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <set>

#include "plugin/backing_dir.h"
#include "plugin/child_reaper.h"
#include "plugin/mount_table.h"
#include "plugin/request_json.h"
#include "plugin/volume_json.h"
#include "plugin/volume_spec.h"

namespace tenantfs {
namespace {

using json = nlohmann::json;

std::string prefix(const std::string& volume) { return "tenantfs: volume \"" + volume + "\": "; }

std::string rfc3339(int64_t unix_seconds) {
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string describe_exit(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status))
    return std::string("was killed by signal ") + strsignal(WTERMSIG(status));
  return "ended";
}

// A store failure for a volume request, in Docker's words.
Status volume_error(const std::string& volume, const Status& st) {
  return Status(st.code(), prefix(volume) + st.message());
}

Status no_such_volume(const std::string& name) {
  return Status::NotFound(prefix(name) +
                          "no such volume; create it with \"docker volume create "
                          "--driver tenantfs -o tenant=NAME " +
                          name + "\"");
}

// A store failure of a call that names an existing volume: kNotFound means
// the volume itself is unknown.
Status volume_lookup_error(const std::string& name, const Status& st) {
  if (st.code() == Code::kNotFound) return no_such_volume(name);
  return volume_error(name, st);
}

// Fields of a request body, with Docker's "tenantfs: " in front of errors.
Result<json> parse_body(std::string_view body) {
  auto j = parse_request_object(body);
  if (!j.ok()) return Status(j.status().code(), "tenantfs: " + j.status().message());
  return j;
}

Result<std::string> string_field(const json& body, const char* field) {
  auto it = body.find(field);
  if (it == body.end() || it->is_null()) {
    return Status::InvalidArgument(std::string("tenantfs: the request has no \"") + field +
                                   "\" field");
  }
  if (!it->is_string()) {
    return Status::InvalidArgument(std::string("tenantfs: the request's \"") + field +
                                   "\" field must be a string");
  }
  return it->get<std::string>();
}

}  // namespace

Result<std::unique_ptr<VolumeDriver>> VolumeDriver::Open(BindingStore& store,
                                                         TenantDirectory& tenants,
                                                         MapperLauncher& launcher,
                                                         DriverConfig config) {
  auto data = open_private_dir(config.data_dir, "DATA_DIR");
  if (!data.ok()) return data.status();
  auto mounts = open_private_dir(config.mount_root, "MOUNT_ROOT");
  if (!mounts.ok()) return mounts.status();
  return std::unique_ptr<VolumeDriver>(
      new VolumeDriver(store, tenants, launcher, std::move(config), std::move(*data)));
}

VolumeDriver::VolumeDriver(BindingStore& store, TenantDirectory& tenants, MapperLauncher& launcher,
                           DriverConfig config, UniqueFd data_dir_fd)
    : store_(store),
      tenants_(tenants),
      launcher_(launcher),
      config_(std::move(config)),
      data_dir_fd_(std::move(data_dir_fd)) {}

VolumeDriver::~VolumeDriver() {
  {
    MutexLock lock(events_mu_);
    stopping_ = true;
  }
  events_cv_.notify_all();
  if (supervisor_.joinable()) supervisor_.join();
}

VolumeDriver::HeldVolumeLock VolumeDriver::lock_volume(const std::string& name) {
  std::shared_ptr<std::mutex> mu;
  {
    MutexLock lock(volume_locks_mu_);
    auto& slot = volume_locks_[name];
    if (!slot) slot = std::make_shared<std::mutex>();
    mu = slot;
  }
  // Locked after volume_locks_mu_ is released: that one is only held alone.
  return HeldVolumeLock(std::move(mu));
}

Result<VolumeDriver::LockedBinding> VolumeDriver::lock_bound_volume(const std::string& name) {
  HeldVolumeLock lock = lock_volume(name);
  auto b = store_.get_volume(name);
  if (!b.ok()) return volume_lookup_error(name, b.status());
  return LockedBinding{std::move(lock), std::move(b).value()};
}

std::string VolumeDriver::mountpoint_of(const std::string& name) const {
  return config_.mount_root + "/" + name;
}

size_t VolumeDriver::live_mounts() const {
  MutexLock lock(mounts_mu_);
  return mounts_.size();
}

DriverReply VolumeDriver::handle(std::string_view endpoint, std::string_view body) {
  DriverReply reply;
  auto fail = [&](const Status& st) {
    reply.error = st.message();
    reply.code = st.code();
    reply.body = json{{"Err", st.message()}};
    return reply;
  };
  try {
    if (endpoint == "/Plugin.Activate") {
      // One plugin serves both protocols; dockerd uses the authorization
      // side only when started with --authorization-plugin.
      reply.body = json{{"Implements", json::array({"VolumeDriver", "authz"})}};
      return reply;
    }
    if (endpoint == "/VolumeDriver.Capabilities") {
      reply.body = json{{"Capabilities", {{"Scope", "local"}}}};
      return reply;
    }
    auto parsed = parse_body(body);
    if (!parsed.ok()) return fail(parsed.status());
    const json& req = *parsed;
    if (endpoint == "/VolumeDriver.List") {
      auto r = list();
      if (!r.ok()) return fail(r.status());
      reply.body = std::move(*r);
      return reply;
    }
    const bool known = endpoint == "/VolumeDriver.Create" || endpoint == "/VolumeDriver.Remove" ||
                       endpoint == "/VolumeDriver.Mount" || endpoint == "/VolumeDriver.Unmount" ||
                       endpoint == "/VolumeDriver.Path" || endpoint == "/VolumeDriver.Get";
    if (!known) {
      reply.http_status = 404;
      return fail(Status::NotFound("tenantfs: unknown endpoint " + std::string(endpoint)));
    }
    auto name = string_field(req, "Name");
    if (!name.ok()) return fail(name.status());
    reply.volume = *name;
    if (Status st = validate_volume_name(*name); !st.ok()) {
      reply.volume.clear();  // not a name we want in logs verbatim
      return fail(st);
    }
    Result<json> r = json::object();
    if (endpoint == "/VolumeDriver.Create") {
      auto it = req.find("Opts");
      r = create(*name, it == req.end() ? json(nullptr) : *it);
    } else if (endpoint == "/VolumeDriver.Remove") {
      r = remove(*name);
    } else if (endpoint == "/VolumeDriver.Path") {
      r = path(*name);
    } else if (endpoint == "/VolumeDriver.Get") {
      r = get(*name);
    } else {
      auto id = string_field(req, "ID");
      if (!id.ok()) return fail(id.status());
      r = endpoint == "/VolumeDriver.Mount" ? mount(*name, *id) : unmount(*name, *id);
    }
    if (!r.ok()) return fail(r.status());
    reply.body = std::move(*r);
    return reply;
  } catch (const std::exception& e) {
    // nlohmann::json and the standard library are the only throwers here.
    spdlog::error("{}: unexpected exception: {}", endpoint, e.what());
    reply.http_status = 500;
    return fail(Status::Internal("tenantfs: internal error; see the plugin's log"));
  }
}

Status VolumeDriver::check_external_overlap(const std::string& name, int dir_fd) {
  std::vector<std::string> dirs = {config_.data_dir, config_.mount_root};
  dirs.insert(dirs.end(), config_.protected_dirs.begin(), config_.protected_dirs.end());
  for (const std::string& d : dirs) {
    UniqueFd fd(::open(d.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!fd) continue;  // a protected directory that does not exist holds nothing
    auto overlap = dirs_overlap(dir_fd, fd.get());
    if (!overlap.ok()) return volume_error(name, overlap.status());
    if (*overlap) {
      return Status::InvalidArgument(
          prefix(name) + "option \"path\" overlaps tenantfs's own directory " + d +
          "; give a directory that neither contains nor lies inside the plugin's data, "
          "mount or state directories");
    }
  }
  return Status::Ok();
}

Result<json> VolumeDriver::create(const std::string& name, const json& opts_json) {
  std::map<std::string, std::string> opts;
  if (!opts_json.is_null()) {
    if (!opts_json.is_object()) {
      return Status::InvalidArgument(prefix(name) + "\"Opts\" must be a JSON object");
    }
    for (const auto& [key, value] : opts_json.items()) {
      if (!value.is_string()) {
        return Status::InvalidArgument(prefix(name) + "option \"" + key +
                                       "\" must be given as a string");
      }
      opts[key] = value.get<std::string>();
    }
  }
  auto parsed = parse_create_options(name, opts);
  if (!parsed.ok()) return parsed.status();
  const CreateOptions& o = *parsed;

  HeldVolumeLock lock = lock_volume(name);

  auto existing = store_.get_volume(name);
  if (existing.ok()) {
    if (existing->options == opts) return json::object();  // Docker re-creates: a no-op
    std::string differing;
    for (const auto& [k, v] : existing->options) {
      auto it = opts.find(k);
      if (it == opts.end() || it->second != v) {
        differing = k;
        break;
      }
    }
    if (differing.empty()) {
      for (const auto& [k, v] : opts) {
        if (existing->options.count(k) == 0) {
          differing = k;
          break;
        }
      }
    }
    return Status::AlreadyExists(
        prefix(name) + "already exists with different options (option \"" + differing +
        "\" differs); a binding never changes: use the same options, or remove the volume "
        "first with \"docker volume rm " +
        name + "\"");
  }
  if (existing.status().code() != Code::kNotFound) return volume_error(name, existing.status());

  std::string tenant_name = o.tenant.value_or(config_.default_tenant);
  if (tenant_name.empty()) {
    return Status::InvalidArgument(prefix(name) +
                                   "option \"tenant\" is required; create the "
                                   "volume with -o tenant=NAME (tenants: \"tenantfs tenant ls\")");
  }
  auto tenant = tenants_.resolve(tenant_name);
  if (!tenant.ok()) {
    if (tenant.status().code() == Code::kNotFound) {
      return Status::NotFound(prefix(name) + "unknown tenant \"" + tenant_name +
                              "\"; add it with \"tenantfs tenant add " + tenant_name +
                              " --uid UID --gid GID\" or use an existing tenant");
    }
    return volume_error(name, tenant.status());
  }

  VolumeBinding b;
  b.name = name;
  b.tenant = tenant->name;
  b.identity = tenant->identity;
  b.present_uid = o.uid.value_or(tenant->identity.uid);
  b.present_gid = o.gid.value_or(tenant->identity.gid);
  b.mode = o.mode.value_or(0700);
  b.cache = o.cache.value_or("strict");
  b.readonly = o.readonly.value_or(false);
  b.options = opts;
  b.external = o.path.has_value();
  if (b.external) {
    auto dir = open_external_dir(name, *o.path, config_.allowed_roots);
    if (!dir.ok()) return dir.status();
    TENANTFS_RETURN_IF_ERROR(check_external_overlap(name, dir->get()));
    b.backing_path = *o.path;
  } else {
    b.backing_path = config_.data_dir + "/" + name;
    Status st =
        create_backing_dir(data_dir_fd_.get(), name, b.identity.uid, b.identity.gid, b.mode);
    if (st.code() == Code::kAlreadyExists) {
      return Status::FailedPrecondition(prefix(name) + "DATA_DIR/" + name +
                                        " exists without a binding; restart the plugin "
                                        "to move it to DATA_DIR/.orphaned, or choose another name");
    }
    if (!st.ok()) {
      spdlog::error("volume \"{}\": create backing directory: {}", name, st.message());
      return volume_error(name, st);
    }
  }
  auto bound = store_.bind_volume(b);
  if (!bound.ok() || *bound != BindOutcome::kCreated) {
    if (!b.external) {
      Status undo = delete_backing_dir(data_dir_fd_.get(), name, b.identity);
      if (!undo.ok()) spdlog::error("volume \"{}\": undo create: {}", name, undo.message());
    }
    if (!bound.ok()) return volume_error(name, bound.status());
    return Status::AlreadyExists(prefix(name) + "was bound concurrently by another process");
  }
  spdlog::info("volume \"{}\": created for tenant \"{}\" ({})", name, b.tenant,
               b.external ? "existing data" : "new directory");
  return json::object();
}

Result<json> VolumeDriver::remove(const std::string& name) {
  auto locked = lock_bound_volume(name);
  if (!locked.ok()) return locked.status();
  const VolumeBinding& b = locked->binding;
  auto refs = store_.refs(name);
  if (!refs.ok()) return volume_error(name, refs.status());
  if (refs->total() > 0 || has_live_mount_locked(name)) {
    return Status::FailedPrecondition(
        prefix(name) + "is in use (" + std::to_string(refs->total()) +
        " mount(s)); stop and remove the containers using it first (docker ps -a --filter "
        "volume=" +
        name + ")");
  }
  // A mount nobody references any more (dead, or left by a crash): never
  // delete through it.
  const std::string mp = mountpoint_of(name);
  auto table = read_mount_table();
  if (table.ok() && is_mount_point(*table, mp)) {
    Status st = tenantfs::unmount(mp);
    if (!st.ok()) {
      return Status::FailedPrecondition(prefix(name) + "its mountpoint is still mounted and " +
                                        "could not be unmounted (" + st.message() + ")");
    }
  }
  Status st = store_.remove_volume(name);
  if (!st.ok()) return volume_lookup_error(name, st);
  // The empty mountpoint directory goes with the volume; failing to remove
  // it only leaves an empty root-only directory behind.
  ::rmdir(mp.c_str());
  if (!b.external) {
    Status del = delete_backing_dir(data_dir_fd_.get(), name, b.identity);
    if (!del.ok()) {
      // The binding is gone and the name is free; what could not be deleted
      // waits in DATA_DIR/.trash for the next start.
      spdlog::error("volume \"{}\": delete data: {}", name, del.message());
    }
  }
  spdlog::info("volume \"{}\": removed (tenant \"{}\"{})", name, b.tenant,
               b.external ? ", existing data kept" : "");
  return json::object();
}

bool VolumeDriver::has_live_mount_locked(const std::string& name) {
  ActiveMount m;
  {
    MutexLock lock(mounts_mu_);
    auto it = mounts_.find(name);
    if (it == mounts_.end()) return false;
    m = it->second;
  }
  // Outside mounts_mu_: a stat on a FUSE mount can block, and must not stall
  // other volumes. The volume lock keeps this entry ours meanwhile.
  const bool exited = m.exited && m.exited->load();
  if (!exited && !(m.pid == 0 && is_dead_fuse_mount(mountpoint_of(name)))) return true;
  {
    MutexLock lock(mounts_mu_);
    mounts_.erase(name);
  }
  spdlog::warn("volume \"{}\" (tenant \"{}\"): its mapper is gone; unmounting the dead mount", name,
               m.tenant);
  Status st = unmount_lazily(mountpoint_of(name));
  if (!st.ok()) spdlog::error("volume \"{}\": {}", name, st.message());
  return false;
}

Status VolumeDriver::start_mapper_locked(const VolumeBinding& b) {
  const std::string mp = mountpoint_of(b.name);
  // Whatever sits on the mountpoint is stale: no live mapper serves it.
  if (auto table = read_mount_table(); table.ok() && is_mount_point(*table, mp)) {
    TENANTFS_RETURN_IF_ERROR(unmount_lazily(mp));
  }
  if (::mkdir(mp.c_str(), 0700) != 0 && errno != EEXIST) {
    return PosixError("mkdir " + mp, errno);
  }
  // Check the backing directory again: path= data may have been replaced by
  // a symlink since Create, and the allowed roots may have changed.
  Result<UniqueFd> dir = b.external
                             ? open_external_dir(b.name, b.backing_path, config_.allowed_roots)
                             : open_backing_dir(data_dir_fd_.get(), b.name);
  if (!dir.ok()) return dir.status();
  if (b.external) TENANTFS_RETURN_IF_ERROR(check_external_overlap(b.name, dir->get()));
  auto started = launcher_.start(b, dir->get(), mp);
  if (!started.ok()) return started.status();
  const pid_t pid = started->pid;
  auto exited = std::make_shared<std::atomic<bool>>(false);
  {
    MutexLock lock(mounts_mu_);
    mounts_[b.name] = ActiveMount{pid, b.tenant, exited};
  }
  if (ChildReaper::instance().reaping_all()) {
    const std::string name = b.name;
    const pid_t mapper = pid;
    ChildReaper::instance().on_exit(mapper, [this, name, mapper, exited](int status) {
      exited->store(true);
      {
        MutexLock lock(events_mu_);
        exits_.push_back(MapperExit{name, mapper, status});
      }
      events_cv_.notify_all();
    });
  }
  spdlog::info("volume \"{}\" (tenant \"{}\"): mapper pid {} serves {} at {}", b.name, b.tenant,
               pid, b.backing_path, mp);
  return Status::Ok();
}

Status VolumeDriver::stop_mapper_locked(const std::string& name) {
  const std::string mp = mountpoint_of(name);
  ActiveMount m;
  bool found = false;
  {
    MutexLock lock(mounts_mu_);
    auto it = mounts_.find(name);
    if (it != mounts_.end()) {
      m = it->second;
      found = true;
      mounts_.erase(it);
    }
  }
  if (!found) {
    auto table = read_mount_table();
    if (table.ok() && is_mount_point(*table, mp)) return unmount_lazily(mp);
    return Status::Ok();
  }
  Status st = launcher_.stop(m.pid, mp);
  spdlog::info("volume \"{}\" (tenant \"{}\"): unmounted", name, m.tenant);
  return st;
}

Result<json> VolumeDriver::mount(const std::string& name, const std::string& id) {
  auto locked = lock_bound_volume(name);
  if (!locked.ok()) return locked.status();
  const VolumeBinding& b = locked->binding;
  auto total = store_.add_ref(name, id);
  if (!total.ok()) return volume_error(name, total.status());
  if (!has_live_mount_locked(name)) {
    Status st = start_mapper_locked(b);
    if (!st.ok()) {
      auto released = store_.release_ref(name, id);
      if (!released.ok()) {
        spdlog::error("volume \"{}\": release reference after failed mount: {}", name,
                      released.status().message());
      }
      spdlog::error("volume \"{}\" (tenant \"{}\"): mount failed: {}", name, b.tenant,
                    st.message());
      return Status(st.code(), prefix(name) + "mount failed: " + st.message());
    }
  }
  return json{{"Mountpoint", mountpoint_of(name)}};
}

Result<json> VolumeDriver::unmount(const std::string& name, const std::string& id) {
  HeldVolumeLock lock = lock_volume(name);
  auto total = store_.release_ref(name, id);
  if (!total.ok()) return volume_lookup_error(name, total.status());
  if (*total == 0) {
    Status st = stop_mapper_locked(name);
    if (!st.ok()) {
      spdlog::error("volume \"{}\": unmount: {}", name, st.message());
      return Status(st.code(), prefix(name) + "unmount failed: " + st.message());
    }
  }
  return json::object();
}

Result<json> VolumeDriver::path(const std::string& name) {
  auto locked = lock_bound_volume(name);
  if (!locked.ok()) return locked.status();
  return json{{"Mountpoint", has_live_mount_locked(name) ? mountpoint_of(name) : ""}};
}

Result<json> VolumeDriver::get(const std::string& name) {
  auto locked = lock_bound_volume(name);
  if (!locked.ok()) return locked.status();
  const VolumeBinding& b = locked->binding;
  auto refs = store_.refs(name);
  if (!refs.ok()) return volume_error(name, refs.status());
  json v = {{"Name", name},
            {"CreatedAt", rfc3339(b.created_at)},
            {"Status", volume_status_json(b, refs->total())}};
  if (has_live_mount_locked(name)) v["Mountpoint"] = mountpoint_of(name);
  return json{{"Volume", v}};
}

Result<json> VolumeDriver::list() {
  // Docker asks for every volume's name and, when mounted, its mountpoint:
  // the names alone are read from the store, not whole bindings.
  auto names = store_.list_volume_names();
  if (!names.ok()) return Status(names.status().code(), "tenantfs: " + names.status().message());
  std::set<std::string> live;
  {
    MutexLock lock(mounts_mu_);
    for (const auto& [name, m] : mounts_) {
      if (!(m.exited && m.exited->load())) live.insert(name);
    }
  }
  // Built in place and moved into the reply: with 10,000 volumes a copy of
  // the array costs as much as building it.
  json volumes = json::array();
  json::array_t& entries = volumes.get_ref<json::array_t&>();
  entries.reserve(names->size());
  for (std::string& name : *names) {
    json::object_t entry;
    if (live.count(name) != 0) entry.emplace("Mountpoint", mountpoint_of(name));
    entry.emplace("Name", std::move(name));
    entries.emplace_back(std::move(entry));
  }
  json reply = json::object();
  reply["Volumes"] = std::move(volumes);
  return reply;
}

Status VolumeDriver::recover() {
  auto volumes = store_.list_volumes();
  if (!volumes.ok()) return volumes.status();
  std::map<std::string, VolumeBinding> by_name;
  std::vector<std::string> names;
  for (const auto& b : *volumes) {
    by_name[b.name] = b;
    names.push_back(b.name);
  }
  auto orphaned = clean_data_dir(data_dir_fd_.get(), names);
  if (!orphaned.ok()) spdlog::error("start-up clean-up: {}", orphaned.status().message());

  auto referenced = store_.referenced_volumes();
  if (!referenced.ok()) return referenced.status();
  std::map<std::string, int64_t> refs;
  for (const auto& r : *referenced) refs[r.volume] = r.total();

  auto table = read_mount_table();
  if (!table.ok()) return table.status();
  for (const std::string& name : tenantfs_mounts_under(*table, config_.mount_root)) {
    const std::string mp = mountpoint_of(name);
    if (is_dead_fuse_mount(mp)) {
      Status st = unmount_lazily(mp);
      spdlog::warn("recovery: volume \"{}\": dead mount at {} {}", name, mp,
                   st.ok() ? "lazily unmounted" : "could not be unmounted: " + st.message());
      continue;
    }
    bool ours = false;  // the topmost mount there is this volume's mapper
    for (const MountEntry& e : *table) {
      if (e.mount_point == mp) {
        ours = e.fstype == kMapperFsType && e.source == kMapperSourcePrefix + name;
      }
    }
    auto b = by_name.find(name);
    if (ours && b != by_name.end() && refs.count(name) != 0) {
      MutexLock lock(mounts_mu_);
      mounts_[name] = ActiveMount{0, b->second.tenant, nullptr};
      spdlog::info(
          "recovery: volume \"{}\" (tenant \"{}\"): adopted the live mount with {} "
          "reference(s)",
          name, b->second.tenant, refs[name]);
      continue;
    }
    Status st = tenantfs::unmount(mp);
    spdlog::info("recovery: volume \"{}\": live mount without references {}", name,
                 st.ok() ? "unmounted" : "could not be unmounted: " + st.message());
  }

  for (const auto& [name, count] : refs) {
    auto b = by_name.find(name);
    if (b == by_name.end()) continue;
    HeldVolumeLock lock = lock_volume(name);
    if (has_live_mount_locked(name)) continue;
    Status st = start_mapper_locked(b->second);
    if (st.ok()) {
      spdlog::info("recovery: volume \"{}\" (tenant \"{}\"): mounted again for {} reference(s)",
                   name, b->second.tenant, count);
    } else {
      spdlog::error(
          "recovery: volume \"{}\" (tenant \"{}\"): could not mount again: {}; the "
          "next Mount retries",
          name, b->second.tenant, st.message());
    }
  }
  return Status::Ok();
}

void VolumeDriver::start_supervision() {
  supervisor_ = std::thread([this] { supervise(); });
}

void VolumeDriver::supervise() {
  MutexLock lock(events_mu_);
  while (!stopping_) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!stopping_ && exits_.empty()) {
      if (events_mu_.wait_until(events_cv_, deadline) == std::cv_status::timeout) break;
    }
    while (!exits_.empty() && !stopping_) {
      MapperExit e = exits_.front();
      exits_.pop_front();
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

void VolumeDriver::on_mapper_exit(const MapperExit& e) {
  HeldVolumeLock lock = lock_volume(e.volume);
  std::string tenant;
  {
    MutexLock mlock(mounts_mu_);
    auto it = mounts_.find(e.volume);
    // Not the current mapper: a regular Unmount already stopped it, or a
    // Mount already replaced it.
    if (it == mounts_.end() || it->second.pid != e.pid) return;
    tenant = it->second.tenant;
    mounts_.erase(it);
  }
  spdlog::error(
      "volume \"{}\" (tenant \"{}\"): mapper pid {} {} while mounted; the next Mount "
      "starts a new one",
      e.volume, tenant, e.pid, describe_exit(e.status));
  Status st = unmount_lazily(mountpoint_of(e.volume));
  if (!st.ok()) spdlog::error("volume \"{}\": {}", e.volume, st.message());
}

void VolumeDriver::check_adopted_mounts() {
  std::vector<std::string> adopted;
  {
    MutexLock lock(mounts_mu_);
    for (const auto& [name, m] : mounts_) {
      if (m.pid == 0) adopted.push_back(name);
    }
  }
  for (const std::string& name : adopted) {
    HeldVolumeLock lock = lock_volume(name);
    has_live_mount_locked(name);  // unmounts and forgets it when dead
  }
}

}  // namespace tenantfs

#include "plugin/volume_driver.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <set>

#include "http/request_json.h"
#include "plugin/backing_dir.h"
#include "admin/volume_json.h"
#include "plugin/volume_spec.h"
#include "store/binding_rules.h"

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

// A refusal by one of the binding rules (store/binding_rules.h), whose
// message names the volume itself; OK stays OK.
Status rule_error(const Status& st) {
  if (st.ok()) return st;
  return Status(st.code(), "tenantfs: " + st.message());
}

// A store failure of a call that names an existing volume: kNotFound means
// the volume itself is unknown; kAlreadyExists and kFailedPrecondition are
// the store's binding rules refusing.
Status store_error(const std::string& name, const Status& st) {
  switch (st.code()) {
    case Code::kNotFound:
      return no_such_volume(name);
    case Code::kAlreadyExists:
    case Code::kFailedPrecondition:
      return rule_error(st);
    default:
      return volume_error(name, st);
  }
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

const VolumeDriver::Endpoint VolumeDriver::kEndpoints[] = {
    {"/Plugin.Activate", Takes::kNoBody, &VolumeDriver::activate},
    {"/VolumeDriver.Capabilities", Takes::kNoBody, &VolumeDriver::capabilities},
    {"/VolumeDriver.List", Takes::kBody, &VolumeDriver::list},
    {"/VolumeDriver.Create", Takes::kName, &VolumeDriver::create},
    {"/VolumeDriver.Remove", Takes::kName, &VolumeDriver::remove},
    {"/VolumeDriver.Mount", Takes::kNameAndId, &VolumeDriver::mount},
    {"/VolumeDriver.Unmount", Takes::kNameAndId, &VolumeDriver::unmount},
    {"/VolumeDriver.Path", Takes::kName, &VolumeDriver::path},
    {"/VolumeDriver.Get", Takes::kName, &VolumeDriver::get},
};

Result<std::unique_ptr<VolumeDriver>> VolumeDriver::Open(BindingStore& store,
                                                         TenantDirectory& tenants,
                                                         VolumeLocks& locks, VolumeMounts& mounts,
                                                         DriverConfig config) {
  auto data = open_private_dir(config.data_dir, "DATA_DIR");
  if (!data.ok()) return data.status();
  return std::unique_ptr<VolumeDriver>(
      new VolumeDriver(store, tenants, locks, mounts, std::move(config), std::move(*data)));
}

VolumeDriver::VolumeDriver(BindingStore& store, TenantDirectory& tenants, VolumeLocks& locks,
                           VolumeMounts& mounts, DriverConfig config, UniqueFd data_dir_fd)
    : store_(store),
      tenants_(tenants),
      locks_(locks),
      mounts_(mounts),
      config_(std::move(config)),
      data_dir_fd_(std::move(data_dir_fd)) {}

Result<VolumeDriver::LockedBinding> VolumeDriver::lock_bound_volume(const std::string& name) {
  VolumeLocks::Held lock = locks_.lock(name);
  auto b = store_.get_volume(name);
  if (!b.ok()) return store_error(name, b.status());
  return LockedBinding{std::move(lock), std::move(b).value()};
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
    const Endpoint* e = nullptr;
    for (const Endpoint& candidate : kEndpoints) {
      if (candidate.path == endpoint) e = &candidate;
    }
    if (e == nullptr) {
      reply.http_status = 404;
      return fail(Status::NotFound("tenantfs: unknown endpoint " + std::string(endpoint)));
    }
    json parsed = json::object();
    if (e->takes != Takes::kNoBody) {
      auto j = parse_body(body);
      if (!j.ok()) return fail(j.status());
      parsed = std::move(*j);
    }
    Request req{parsed, {}, {}};
    if (e->takes == Takes::kName || e->takes == Takes::kNameAndId) {
      auto name = string_field(parsed, "Name");
      if (!name.ok()) return fail(name.status());
      reply.volume = *name;
      if (Status st = validate_volume_name(*name); !st.ok()) {
        reply.volume.clear();  // not a name we want in logs verbatim
        return fail(st);
      }
      req.name = std::move(name).value();
    }
    if (e->takes == Takes::kNameAndId) {
      auto id = string_field(parsed, "ID");
      if (!id.ok()) return fail(id.status());
      req.id = std::move(id).value();
    }
    Result<json> r = (this->*(e->handler))(req);
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

Result<json> VolumeDriver::activate(const Request&) {
  // One plugin serves both protocols; dockerd uses the authorization side
  // only when started with --authorization-plugin.
  return json{{"Implements", json::array({"VolumeDriver", "authz"})}};
}

Result<json> VolumeDriver::capabilities(const Request&) {
  return json{{"Capabilities", {{"Scope", "local"}}}};
}

Status VolumeDriver::check_external_overlap(const std::string& name, int dir_fd) {
  std::vector<std::string> dirs = {config_.data_dir, mounts_.root()};
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

Result<json> VolumeDriver::create(const Request& req) {
  const std::string& name = req.name;
  const json no_opts;
  auto opts_it = req.body.find("Opts");
  const json& opts_json = opts_it == req.body.end() ? no_opts : *opts_it;
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

  VolumeLocks::Held lock = locks_.lock(name);

  auto existing = store_.get_volume(name);
  if (existing.ok()) {
    // Docker re-creates the volumes it knows: a no-op with the same options.
    // Answered here, before anything is made on the disk.
    TENANTFS_RETURN_IF_ERROR(rule_error(check_rebind(name, existing->options, opts)));
    return json::object();
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
    if (!bound.ok()) return store_error(name, bound.status());
    return Status::AlreadyExists(prefix(name) + "was bound concurrently by another process");
  }
  spdlog::info("volume \"{}\": created for tenant \"{}\" ({})", name, b.tenant,
               b.external ? "existing data" : "new directory");
  return json::object();
}

Result<json> VolumeDriver::remove(const Request& req) {
  const std::string& name = req.name;
  auto locked = lock_bound_volume(name);
  if (!locked.ok()) return locked.status();
  const VolumeBinding& b = locked->binding;
  auto refs = store_.refs(name);
  if (!refs.ok()) return volume_error(name, refs.status());
  // Checked before anything is unmounted below; removing the binding checks
  // again, against other processes.
  TENANTFS_RETURN_IF_ERROR(rule_error(check_unreferenced(name, refs->total())));
  if (mounts_.live(locked->lock)) {
    return Status::FailedPrecondition(
        prefix(name) + "its mapper still serves " + mounts_.mountpoint(name) +
        " although no container references it; restart the plugin, which unmounts it, then "
        "remove the volume again");
  }
  // A mount nobody references any more (dead, or left by a crash): never
  // delete through it.
  if (Status st = mounts_.clear(locked->lock); !st.ok()) {
    return Status::FailedPrecondition(prefix(name) + "its mountpoint is still mounted and " +
                                      "could not be unmounted (" + st.message() + ")");
  }
  // The data leaves DATA_DIR/<name> before the binding goes, so that no
  // crash can leave unbound data behind (backing_dir.h).
  std::string trashed;
  if (!b.external) {
    auto moved = move_backing_dir_to_trash(data_dir_fd_.get(), name);
    if (!moved.ok()) return volume_error(name, moved.status());
    trashed = std::move(*moved);
  }
  Status st = store_.remove_volume(name);
  if (!st.ok()) {
    if (!trashed.empty()) {
      Status back = restore_trashed_backing_dir(data_dir_fd_.get(), trashed, name);
      if (!back.ok()) spdlog::error("volume \"{}\": {}", name, back.message());
    }
    return store_error(name, st);
  }
  mounts_.remove_mountpoint(locked->lock);
  if (!trashed.empty()) {
    Status del = purge_trashed_backing_dir(data_dir_fd_.get(), trashed, b.identity);
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

Status VolumeDriver::start_mapper(const VolumeLocks::Held& volume, const VolumeBinding& b) {
  // Check the backing directory again: path= data may have been replaced by
  // a symlink since Create, and the allowed roots may have changed.
  Result<UniqueFd> dir = b.external
                             ? open_external_dir(b.name, b.backing_path, config_.allowed_roots)
                             : open_backing_dir(data_dir_fd_.get(), b.name);
  if (!dir.ok()) return dir.status();
  if (b.external) TENANTFS_RETURN_IF_ERROR(check_external_overlap(b.name, dir->get()));
  return mounts_.start(volume, b, dir->get());
}

Result<json> VolumeDriver::mount(const Request& req) {
  const std::string& name = req.name;
  auto locked = lock_bound_volume(name);
  if (!locked.ok()) return locked.status();
  const VolumeBinding& b = locked->binding;
  auto total = store_.add_ref(name, req.id);
  if (!total.ok()) return volume_error(name, total.status());
  if (!mounts_.live(locked->lock)) {
    Status st = start_mapper(locked->lock, b);
    if (!st.ok()) {
      auto released = store_.release_ref(name, req.id);
      if (!released.ok()) {
        spdlog::error("volume \"{}\": release reference after failed mount: {}", name,
                      released.status().message());
      }
      spdlog::error("volume \"{}\" (tenant \"{}\"): mount failed: {}", name, b.tenant,
                    st.message());
      return Status(st.code(), prefix(name) + "mount failed: " + st.message());
    }
  }
  return json{{"Mountpoint", mounts_.mountpoint(name)}};
}

Result<json> VolumeDriver::unmount(const Request& req) {
  const std::string& name = req.name;
  VolumeLocks::Held lock = locks_.lock(name);
  auto total = store_.release_ref(name, req.id);
  if (!total.ok()) return store_error(name, total.status());
  if (*total == 0) {
    Status st = mounts_.stop(lock);
    if (!st.ok()) {
      spdlog::error("volume \"{}\": unmount: {}", name, st.message());
      return Status(st.code(), prefix(name) + "unmount failed: " + st.message());
    }
  }
  return json::object();
}

Result<json> VolumeDriver::path(const Request& req) {
  auto locked = lock_bound_volume(req.name);
  if (!locked.ok()) return locked.status();
  return json{{"Mountpoint", mounts_.live(locked->lock) ? mounts_.mountpoint(req.name) : ""}};
}

Result<json> VolumeDriver::get(const Request& req) {
  const std::string& name = req.name;
  auto locked = lock_bound_volume(name);
  if (!locked.ok()) return locked.status();
  const VolumeBinding& b = locked->binding;
  auto refs = store_.refs(name);
  if (!refs.ok()) return volume_error(name, refs.status());
  json v = {{"Name", name},
            {"CreatedAt", rfc3339(b.created_at)},
            {"Status", volume_status_json(b, refs->total())}};
  if (mounts_.live(locked->lock)) {
    v["Mountpoint"] = mounts_.mountpoint(name);
    // How the mapper serves: its request path and whether reads and writes
    // pass through to the storage (docker volume inspect shows both).
    for (const auto& [key, value] : mounts_.serving(locked->lock)) {
      if (key == "request-loop") v["Status"]["request_loop"] = value;
      if (key == "passthrough") v["Status"]["passthrough"] = value;
    }
  }
  return json{{"Volume", v}};
}

Result<json> VolumeDriver::list(const Request&) {
  // Docker asks for every volume's name and, when mounted, its mountpoint:
  // the names alone are read from the store, not whole bindings.
  auto names = store_.list_volume_names();
  if (!names.ok()) return Status(names.status().code(), "tenantfs: " + names.status().message());
  const std::set<std::string> live = mounts_.live_names();
  // Built in place and moved into the reply: with 10,000 volumes a copy of
  // the array costs as much as building it.
  json volumes = json::array();
  json::array_t& entries = volumes.get_ref<json::array_t&>();
  entries.reserve(names->size());
  for (std::string& name : *names) {
    json::object_t entry;
    if (live.count(name) != 0) entry.emplace("Mountpoint", mounts_.mountpoint(name));
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
  std::map<std::string, VolumeMounts::Referenced> bound_refs;
  for (const auto& r : *referenced) {
    auto b = by_name.find(r.volume);
    if (b != by_name.end()) bound_refs[r.volume] = {b->second.tenant, r.total()};
  }
  TENANTFS_RETURN_IF_ERROR(mounts_.reconcile(bound_refs));

  for (const auto& [name, r] : bound_refs) {
    VolumeLocks::Held lock = locks_.lock(name);
    if (mounts_.live(lock)) continue;
    Status st = start_mapper(lock, by_name[name]);
    if (st.ok()) {
      spdlog::info("recovery: volume \"{}\" (tenant \"{}\"): mounted again for {} reference(s)",
                   name, r.tenant, r.references);
    } else {
      spdlog::error(
          "recovery: volume \"{}\" (tenant \"{}\"): could not mount again: {}; the "
          "next Mount retries",
          name, r.tenant, st.message());
    }
  }
  return Status::Ok();
}

}  // namespace tenantfs

// VolumeDriver: the Docker VolumeDriver protocol as JSON in, JSON out.
//
// One object serves every /Plugin.Activate and /VolumeDriver.* request. It
// owns no socket: the HTTP layer (plugin_routes.h) hands it the endpoint and
// the raw body, and sends back what it returns. It keeps the protocol and
// the binding lifecycle; what is mounted is VolumeMounts's. The store, the
// tenant directory, the volume locks and the mounts are injected, so the
// handlers run in unit tests without sockets or FUSE.
//
// Volume lifecycle:
//   Create  makes DATA_DIR/<name> (owned by the tenant, with the mode) and
//           the binding, atomically; or validates path= data and binds it.
//   Mount   counts a reference for (volume, ID); starts a mapper when none is
//           live; a failed start keeps no reference.
//   Unmount releases one reference; at zero it stops the mapper.
//   Remove  is refused while referenced or mounted; deletes plugin-created
//           data as the tenant, never path= data.
//
// Thread-safety: handle() may be called from any number of threads. Calls
// for one volume are serialised by that volume's lock (VolumeLocks), held
// across the whole request; calls for different volumes run in parallel.
// Lock order: a volume lock, then VolumeMounts's own.
#pragma once

#include <sys/types.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "common/unique_fd.h"
#include "admin/tenant_directory.h"
#include "plugin/volume_locks.h"
#include "plugin/volume_mounts.h"
#include "store/store.h"

namespace tenantfs {

// The mount root is VolumeMounts's.
struct DriverConfig {
  std::string data_dir;                    // root-only; plugin-created volumes live here
  std::vector<std::string> allowed_roots;  // for path=; empty refuses path=
  std::string default_tenant;              // used when Create has no tenant=
  // More directories a path= volume may neither lie in nor contain (the
  // store's, the socket's); data_dir and the mount root always count.
  std::vector<std::string> protected_dirs;
};

// What a request produced: the JSON to send and what to log about it.
struct DriverReply {
  int http_status = 200;
  nlohmann::json body;
  std::string volume;  // the Name of the request, when it had one
  std::string error;   // the Err text, empty on success
  Code code = Code::kOk;
};

class VolumeDriver {
 public:
  // Opens (creating it 0700 when missing) the data directory. The store,
  // tenants, locks and mounts must outlive the driver.
  static Result<std::unique_ptr<VolumeDriver>> Open(BindingStore& store, TenantDirectory& tenants,
                                                    VolumeLocks& locks, VolumeMounts& mounts,
                                                    DriverConfig config);

  VolumeDriver(const VolumeDriver&) = delete;
  VolumeDriver& operator=(const VolumeDriver&) = delete;

  // Handles one request. `endpoint` is the URL path ("/VolumeDriver.Mount").
  // Never throws: malformed JSON, wrong types and missing fields produce an
  // {"Err": ...} reply.
  DriverReply handle(std::string_view endpoint, std::string_view body);

  // Start-up reconciliation, before serving: cleans DATA_DIR leftovers, has
  // VolumeMounts reconcile the mounts under the mount root with the volumes
  // that hold references, and mounts again every referenced volume left
  // without a mount. Failures to remount are logged; the references stay so
  // that a later Mount retries.
  Status recover();

 private:
  // What an endpoint's request must carry besides a JSON object body.
  enum class Takes {
    kNoBody,     // not even a body (Activate, Capabilities)
    kBody,       // a body, maybe empty (List)
    kName,       // "Name", a valid volume name
    kNameAndId,  // "Name" and Docker's mount "ID"
  };
  struct Request {
    const nlohmann::json& body;
    std::string name;
    std::string id;
  };
  using Handler = Result<nlohmann::json> (VolumeDriver::*)(const Request&);
  struct Endpoint {
    std::string_view path;
    Takes takes;
    Handler handler;
  };
  // The protocol: every endpoint and its handler, listed once.
  static const Endpoint kEndpoints[];

  VolumeDriver(BindingStore& store, TenantDirectory& tenants, VolumeLocks& locks,
               VolumeMounts& mounts, DriverConfig config, UniqueFd data_dir_fd);

  // A volume's binding, read while its lock is held; the lock goes with it.
  struct LockedBinding {
    VolumeLocks::Held lock;
    VolumeBinding binding;
  };
  // The opening of every handler of an existing volume: takes the volume's
  // lock and reads its binding. Errors are the handlers' Err replies: an
  // unknown volume says how to create it.
  [[nodiscard]] Result<LockedBinding> lock_bound_volume(const std::string& name);

  // OK when the path= directory `dir_fd` neither lies in nor contains
  // DATA_DIR, MOUNT_ROOT or a protected directory: binding those would hand
  // one tenant every volume's data, or the plugin's own state.
  Status check_external_overlap(const std::string& name, int dir_fd);

  Result<nlohmann::json> activate(const Request& req);
  Result<nlohmann::json> capabilities(const Request& req);
  Result<nlohmann::json> create(const Request& req);
  Result<nlohmann::json> remove(const Request& req);
  Result<nlohmann::json> mount(const Request& req);
  Result<nlohmann::json> unmount(const Request& req);
  Result<nlohmann::json> path(const Request& req);
  Result<nlohmann::json> get(const Request& req);
  Result<nlohmann::json> list(const Request& req);

  // Checks the backing directory again and has VolumeMounts start the
  // volume's mapper on it.
  Status start_mapper(const VolumeLocks::Held& volume, const VolumeBinding& binding);

  BindingStore& store_;
  TenantDirectory& tenants_;
  VolumeLocks& locks_;
  VolumeMounts& mounts_;
  const DriverConfig config_;
  const UniqueFd data_dir_fd_;
};

}  // namespace tenantfs

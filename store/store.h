// The binding store: tenants, volume bindings and mount references.
//
// BindingStore is the interface the plugin programs against; SqliteStore
// (sqlite_store.h) is the implementation used on a single host. A later
// implementation may keep bindings beside the data on shared storage, so
// everything here is plain, small and serialisable.
//
// Thread-safety: every method of a BindingStore may be called concurrently
// from several threads. Several processes may open the same store file; each
// sees the writes the others committed.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/identity.h"
#include "common/status.h"

namespace tenantfs {

// A named identity: files reach the storage as its uid/gid with its groups.
struct Tenant {
  std::string name;
  Identity identity;       // groups sorted, without duplicates
  int64_t created_at = 0;  // unix seconds, set by the store
};

// A volume bound, once and for ever, to a tenant's identity. The identity is
// copied in at bind time, so a tenant edited or removed later cannot change
// what an existing volume acts as.
struct VolumeBinding {
  std::string name;
  std::string tenant;  // the tenant's name at bind time
  Identity identity;   // storage identity (the tenant's)
  uid_t present_uid = 0;  // ids shown inside the container for tenant-owned files
  gid_t present_gid = 0;
  uint32_t mode = 0700;      // mode of the volume root when tenantfs creates it
  std::string backing_path;  // absolute directory the mapper serves
  bool external = false;     // true for path= data: never chowned, chmoded or deleted
  std::string cache = "strict";
  bool readonly = false;
  // Every option given at create time, exactly as given. Idempotent re-binds
  // compare these.
  std::map<std::string, std::string> options;
  int64_t created_at = 0;  // unix seconds, set by the store
};

// Reference counts held on one volume, per Docker mount ID.
struct VolumeRefs {
  std::string volume;
  std::map<std::string, int64_t> ids;  // mount ID -> count (> 0)
  int64_t total() const {
    int64_t t = 0;
    for (const auto& [id, n] : ids) t += n;
    return t;
  }
};

enum class BindOutcome { kCreated, kAlreadyBound };

// A Docker user (the common name of a TLS client certificate, as Docker
// passes it to authorization plugins) allowed to create, mount and remove
// the volumes of one tenant.
struct AccessGrant {
  std::string tenant;
  std::string user;
  int64_t created_at = 0;  // unix seconds, set by the store
};

class BindingStore {
 public:
  virtual ~BindingStore() = default;

  // Tenants. add fails with kAlreadyExists for a taken name; remove fails
  // with kFailedPrecondition while any volume is bound to the name.
  virtual Status add_tenant(const Tenant& tenant) = 0;
  virtual Result<Tenant> get_tenant(const std::string& name) = 0;
  virtual Result<std::vector<Tenant>> list_tenants() = 0;
  virtual Status remove_tenant(const std::string& name) = 0;

  // Binds binding.name. Binding the same name again with identical
  // `options` is a no-op returning kAlreadyBound; with different options it
  // fails with kAlreadyExists and a message naming the first option that
  // differs.
  virtual Result<BindOutcome> bind_volume(const VolumeBinding& binding) = 0;
  virtual Result<VolumeBinding> get_volume(const std::string& name) = 0;
  virtual Result<std::vector<VolumeBinding>> list_volumes() = 0;
  // The name of every volume, and nothing else: all Docker's List asks for.
  // Cheaper than list_volumes(), which reads and decodes whole bindings.
  virtual Result<std::vector<std::string>> list_volume_names() = 0;
  // Fails with kFailedPrecondition while the volume holds references, and
  // with kNotFound for an unknown name.
  virtual Status remove_volume(const std::string& name) = 0;

  // Mount references. add_ref counts one more for (volume, id) and returns
  // the volume's total after it. release_ref counts one less, never below
  // zero; an unknown id is accepted and changes nothing. Both fail with
  // kNotFound for an unknown volume.
  virtual Result<int64_t> add_ref(const std::string& volume, const std::string& id) = 0;
  virtual Result<int64_t> release_ref(const std::string& volume, const std::string& id) = 0;
  virtual Result<VolumeRefs> refs(const std::string& volume) = 0;
  // Every volume with at least one reference: what a restarted service must
  // mount again.
  virtual Result<std::vector<VolumeRefs>> referenced_volumes() = 0;

  // Authorization policy. Users and tenants are names; whether the tenant
  // exists is the caller's to check (tenants may come from a passwd file).
  // allow_user is a no-op when the grant exists; deny_user fails with
  // kNotFound when it does not. remove_tenant drops the tenant's grants, so
  // a later tenant of the same name starts with none.
  virtual Status allow_user(const std::string& tenant, const std::string& user) = 0;
  virtual Status deny_user(const std::string& tenant, const std::string& user) = 0;
  virtual Result<bool> user_allowed(const std::string& tenant, const std::string& user) = 0;
  // Ordered by tenant, then user.
  virtual Result<std::vector<AccessGrant>> list_grants() = 0;
  // Admins may act for every tenant and manage the plugin itself. add_admin
  // is a no-op for an admin; remove_admin fails with kNotFound for a user
  // who is not one.
  virtual Status add_admin(const std::string& user) = 0;
  virtual Status remove_admin(const std::string& user) = 0;
  virtual Result<bool> is_admin(const std::string& user) = 0;
  virtual Result<std::vector<std::string>> list_admins() = 0;  // ordered
};

}  // namespace tenantfs

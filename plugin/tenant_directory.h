// TenantDirectory: resolves tenant names to identities.
//
// Two sources: the plugin's own registry (the BindingStore's tenants table,
// managed through the admin API) and, optionally, a passwd/group file pair the
// host shares with the plugin, so existing host users work as they are. On a
// name present in both, the registry wins.
//
// Thread-safety: all methods may be called concurrently. The files are re-read
// when their mtime changes, so edits on the host take effect without restart.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "store/store.h"

namespace tenantfs {

struct TenantEntry {
  Tenant tenant;
  std::string source;  // "registry" or "passwd"
};

class TenantDirectory {
 public:
  // Either file path may be empty: that source is then not used. Supplementary
  // groups of a passwd user come from the group file's member lists.
  TenantDirectory(BindingStore& store, std::string passwd_file, std::string group_file);

  // kNotFound with a message that says how to add the tenant when the name is
  // in neither source.
  Result<Tenant> resolve(const std::string& name);
  Result<std::vector<TenantEntry>> list();

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace tenantfs

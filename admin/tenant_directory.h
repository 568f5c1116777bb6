// TenantDirectory: resolves tenant names to identities.
//
// Two sources: the plugin's own registry (the BindingStore's tenants table,
// managed through the admin API) and, optionally, a passwd/group file pair the
// host shares with the plugin, so existing host users work as they are. On a
// name present in both, the registry wins.
//
// A tenant is never root: uid 0, gid 0 and supplementary gid 0 are refused
// when a tenant is added (validate_tenant) and passwd users with uid 0 or
// gid 0 never resolve. Names follow validate_tenant_name.
//
// Thread-safety: all methods may be called concurrently. The files are re-read
// when their identity, size, mtime or ctime changes, and on every call while
// they changed less than 2 s ago (a rewrite within one timestamp tick leaves
// the stamp as it was), so edits on the host take effect without restart.
// Readers always see one whole version of the files. A file that is missing
// or unreadable counts as empty (logged once per change) until it comes back.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/identity.h"
#include "common/status.h"
#include "store/store.h"

namespace tenantfs {

struct TenantEntry {
  Tenant tenant;
  std::string source;  // "registry" or "passwd"
};

// Longest tenant name, as for Linux user names.
inline constexpr size_t kMaxTenantNameLength = 32;
// Most supplementary groups a tenant may carry.
inline constexpr size_t kMaxTenantGroups = kMaxIdentityGroups;
// Passwd and group files are read up to this size; the rest is ignored with
// a warning, so a runaway file cannot exhaust the service's memory.
inline constexpr size_t kMaxIdentityFileBytes = size_t{16} * 1024 * 1024;

// OK when `name` matches [a-z_][a-z0-9_.-]{0,31}; otherwise kInvalidArgument
// with a message that quotes the name and states the rule.
Status validate_tenant_name(std::string_view name);

// Checks a tenant about to be added to the registry: its name and its
// identity (validate_identity, common/identity.h). kInvalidArgument names the
// tenant and the offending field.
Status validate_tenant(const Tenant& tenant);

// One parsed line of a passwd file ("name:x:uid:gid:gecos:home:shell").
struct PasswdRecord {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
};

// One parsed line of a group file ("name:x:gid:member1,member2").
struct GroupRecord {
  std::string name;
  gid_t gid = 0;
  std::vector<std::string> members;
};

// Parse passwd/group text. Comments (#), blank lines and malformed lines
// (wrong field count, non-numeric or out-of-range ids, invalid names, lines
// over 4 KiB) are skipped; each skipped malformed line appends
// "<origin>:<line number>: <reason>" to *warnings when warnings is non-null.
// Records keep the file's order, including uid/gid 0: refusing root is the
// directory's job, not the parser's.
std::vector<PasswdRecord> parse_passwd(std::string_view text, std::string_view origin,
                                       std::vector<std::string>* warnings);
std::vector<GroupRecord> parse_group(std::string_view text, std::string_view origin,
                                     std::vector<std::string>* warnings);

// Tenants derived from parsed files: each passwd user with uid != 0 and
// gid != 0, its supplementary gids being the gids of every group that lists
// it as a member (sorted, without duplicates, without its primary gid and
// without gid 0). The first record of a repeated name wins. Users left out
// are described in *warnings when non-null.
std::vector<Tenant> tenants_from_files(const std::vector<PasswdRecord>& passwd,
                                       const std::vector<GroupRecord>& groups,
                                       std::vector<std::string>* warnings);

class TenantDirectory {
 public:
  // Either file path may be empty: that source is then not used. Supplementary
  // groups of a passwd user come from the group file's member lists. `store`
  // must outlive the directory.
  TenantDirectory(BindingStore& store, std::string passwd_file, std::string group_file);

  // The registry's tenant of that name, else the passwd user of that name.
  // kNotFound with a message that says how to add the tenant when the name is
  // in neither source; kInvalidArgument for an invalid name;
  // kFailedPrecondition for a root identity (a passwd user whose uid or gid is
  // 0, or a registry entry with a 0 id written around the admin API).
  Result<Tenant> resolve(const std::string& name);

  // Every tenant of both sources, sorted by name, a registry tenant hiding a
  // passwd user of the same name.
  Result<std::vector<TenantEntry>> list();

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace tenantfs

#include "common/identity.h"

#include <string>

#include "common/reserved_ids.h"

namespace tenantfs {
namespace {

constexpr uint64_t kMaxId = uint64_t{kNoId} - 1;

std::string out_of_range(const char* what, uint64_t id) {
  return std::string(what) + " " + std::to_string(id) + " is out of range (1.." +
         std::to_string(kMaxId) + ")";
}

}  // namespace

bool is_tenant_id(uint64_t id) { return id != 0 && id <= kMaxId && !is_reserved_id(id); }

bool is_presentable_id(uint64_t id) { return id <= kMaxId && !is_reserved_id(id); }

Status validate_identity(const Identity& id) {
  if (id.uid == 0) {
    return Status::InvalidArgument(
        "uid 0 is root; a tenant must never be root, pick the uid that should own the "
        "tenant's files");
  }
  if (id.gid == 0) {
    return Status::InvalidArgument(
        "gid 0 is root's group; a tenant must never be root, pick another primary gid");
  }
  bool reserved = is_reserved_id(id.uid) || is_reserved_id(id.gid);
  for (gid_t g : id.groups) reserved = reserved || is_reserved_id(g);
  if (reserved) {
    return Status::InvalidArgument("id " + std::to_string(kMapperProcessUid) +
                                   " is reserved for tenantfs's own processes and cannot be "
                                   "a tenant's uid, gid or group; pick another id");
  }
  if (!is_tenant_id(id.uid)) return Status::InvalidArgument(out_of_range("uid", id.uid));
  if (!is_tenant_id(id.gid)) return Status::InvalidArgument(out_of_range("gid", id.gid));
  if (id.groups.size() > kMaxIdentityGroups) {
    return Status::InvalidArgument(std::to_string(id.groups.size()) +
                                   " supplementary groups, at most " +
                                   std::to_string(kMaxIdentityGroups) + " are allowed");
  }
  for (gid_t g : id.groups) {
    if (g == 0) {
      return Status::InvalidArgument(
          "supplementary group 0 is root's group; a tenant must never be root, remove 0 from "
          "--groups");
    }
    if (!is_tenant_id(g)) return Status::InvalidArgument(out_of_range("supplementary gid", g));
  }
  return Status::Ok();
}

}  // namespace tenantfs

#include "admin/volume_json.h"

#include "common/file_mode.h"

namespace tenantfs {

nlohmann::json volume_status_json(const VolumeBinding& b, int64_t mounts) {
  return nlohmann::json{
      {"tenant", b.tenant},           {"uid", b.identity.uid},
      {"gid", b.identity.gid},        {"groups", b.identity.groups},
      {"present_uid", b.present_uid}, {"present_gid", b.present_gid},
      {"mode", format_mode(b.mode)},  {"cache", b.cache},
      {"readonly", b.readonly},       {"path", b.backing_path},
      {"external", b.external},       {"mounts", mounts},
  };
}

}  // namespace tenantfs

#include "mapper/presentation.h"

#include <endian.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <vector>

namespace tenantfs {

void present_owner(const IdentityFsOptions& o, struct stat* st) {
  if (st->st_uid == o.tenant_uid) st->st_uid = o.present_uid;
  if (st->st_gid == o.tenant_gid) st->st_gid = o.present_gid;
}

bool tenant_in_group(const IdentityFsOptions& o, gid_t gid) {
  return gid == o.tenant_gid ||
         std::find(o.tenant_groups.begin(), o.tenant_groups.end(), gid) != o.tenant_groups.end();
}

bool fifo_shown_as_device(const IdentityFsOptions& o, const FoundAt& at, const struct stat& st) {
  // AT_EACCESS: the check of the filesystem ids, which are the tenant's;
  // the mapper's real uid is not (privileges.h).
  const int flags = AT_EACCESS | AT_SYMLINK_NOFOLLOW | (at.name[0] == '\0' ? AT_EMPTY_PATH : 0);
  return st.st_uid != o.tenant_uid && ::faccessat(at.dirfd, at.name, R_OK | W_OK, flags) != 0;
}

void present_attr(const IdentityFsOptions& o, bool fifo_as_device, struct stat* st) {
  if (S_ISFIFO(st->st_mode) && fifo_as_device) {
    st->st_mode = S_IFCHR | (st->st_mode & 07777);
    st->st_rdev = 0;
  }
  present_owner(o, st);
}

bool presents_other_ids(const IdentityFsOptions& o) {
  return o.present_uid != o.tenant_uid || o.present_gid != o.tenant_gid;
}

AclIdMap storage_to_mount(const IdentityFsOptions& o) {
  return {o.tenant_uid, o.present_uid, o.tenant_gid, o.present_gid};
}

AclIdMap mount_to_storage(const IdentityFsOptions& o) {
  return {o.present_uid, o.tenant_uid, o.present_gid, o.tenant_gid};
}

void map_acl_ids(char* data, size_t size, const AclIdMap& map) {
  constexpr size_t kHeader = 4;
  constexpr size_t kEntrySize = 8;
  constexpr uint32_t kVersion = 2;
  constexpr uint16_t kUser = 0x02;
  constexpr uint16_t kGroup = 0x08;
  if (size < kHeader || (size - kHeader) % kEntrySize != 0) return;
  uint32_t version;
  std::memcpy(&version, data, sizeof version);
  if (le32toh(version) != kVersion) return;
  struct Entry {
    uint16_t tag;
    uint16_t perm;
    uint32_t id;
  };
  static_assert(sizeof(Entry) == kEntrySize);
  std::vector<Entry> entries((size - kHeader) / kEntrySize);
  std::memcpy(entries.data(), data + kHeader, size - kHeader);
  bool changed = false;
  for (Entry& e : entries) {
    const uint16_t tag = le16toh(e.tag);
    const uint32_t id = le32toh(e.id);
    if ((tag == kUser && id == map.from_uid) || (tag == kGroup && id == map.from_gid)) {
      e.id = htole32(tag == kUser ? map.to_uid : map.to_gid);
      changed = true;
    }
  }
  if (!changed) return;
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    const uint16_t ta = le16toh(a.tag);
    const uint16_t tb = le16toh(b.tag);
    return ta != tb ? ta < tb : le32toh(a.id) < le32toh(b.id);
  });
  std::memcpy(data + kHeader, entries.data(), size - kHeader);
}

ChownDecision decide_chown(const IdentityFsOptions& o, const struct stat& cur,
                           std::optional<uid_t> uid, std::optional<gid_t> gid) {
  struct stat shown = cur;
  present_owner(o, &shown);
  ChownDecision d;
  if (uid) {
    if (*uid == o.present_uid) {
      if (cur.st_uid != o.tenant_uid) d.uid = o.tenant_uid;
    } else if (*uid != shown.st_uid) {
      return ChownDecision{.err = EPERM};
    }
  }
  if (gid) {
    if (*gid == o.present_gid) {
      if (cur.st_gid != o.tenant_gid) d.gid = o.tenant_gid;
    } else if (*gid != o.tenant_gid && tenant_in_group(o, *gid)) {
      if (cur.st_gid != *gid) d.gid = *gid;
    } else if (*gid != shown.st_gid) {
      return ChownDecision{.err = EPERM};
    }
  }
  return d;
}

mode_t mode_after_unchanged_chown(const IdentityFsOptions& o, const struct stat& cur) {
  mode_t mode = cur.st_mode & 07777;
  if (S_ISDIR(cur.st_mode) || S_ISLNK(cur.st_mode)) return mode;
  mode &= ~S_ISUID;
  if ((mode & S_ISGID) && ((mode & S_IXGRP) || !tenant_in_group(o, cur.st_gid))) {
    mode &= ~S_ISGID;
  }
  return mode;
}

}  // namespace tenantfs

#include "common/privileges.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <sys/fsuid.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <string>

#include "common/reserved_ids.h"

namespace tenantfs {
namespace {

// Raw capset/capget: libcap would add a shared library to the plugin image
// for two system calls.
int raw_capset(const __user_cap_data_struct (&data)[_LINUX_CAPABILITY_U32S_3]) {
  __user_cap_header_struct header{};
  header.version = _LINUX_CAPABILITY_VERSION_3;
  header.pid = 0;
  return static_cast<int>(::syscall(SYS_capset, &header, data));
}

int raw_capget(__user_cap_data_struct (&data)[_LINUX_CAPABILITY_U32S_3]) {
  __user_cap_header_struct header{};
  header.version = _LINUX_CAPABILITY_VERSION_3;
  header.pid = 0;
  return static_cast<int>(::syscall(SYS_capget, &header, data));
}

// The highest capability number this kernel knows; the bounding set may hold
// capabilities newer than the headers we were built with. Plain system
// calls: a forked child may run this (see privileges.h).
int last_capability() {
  int last = CAP_LAST_CAP;
  const int fd = ::open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return last;
  char buf[16];
  const ssize_t n = ::read(fd, buf, sizeof buf);
  ::close(fd);
  int v = 0;
  for (ssize_t i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; ++i) v = v * 10 + (buf[i] - '0');
  return v > 0 ? v : last;
}

uid_t process_uid(const Identity& id, ProcessIds which) {
  return which == ProcessIds::kTenant ? id.uid : kMapperProcessUid;
}
gid_t process_gid(const Identity& id, ProcessIds which) {
  return which == ProcessIds::kTenant ? id.gid : kMapperProcessGid;
}

bool contains(const gid_t* ids, size_t n, gid_t id) {
  for (size_t i = 0; i < n; ++i) {
    if (ids[i] == id) return true;
  }
  return false;
}

// The capabilities a drop keeps, as a mask of the low 32 capability bits
// (CAP_SYS_ADMIN, the only one ever kept, is 21).
uint32_t kept_mask(KeptCapability keep) {
  return keep == KeptCapability::kSysAdmin ? 1u << CAP_SYS_ADMIN : 0;
}

bool kept(uint32_t mask, int cap) { return cap < 32 && (mask & (1u << cap)) != 0; }

}  // namespace

Status drop_privileges_to(const Identity& id, ProcessIds process_ids, KeptCapability keep) {
  const uint32_t keep_mask = kept_mask(keep);
  TENANTFS_RETURN_IF_ERROR(validate_identity(id));
  const uid_t puid = process_uid(id, process_ids);
  const gid_t pgid = process_gid(id, process_ids);
  if (::setgroups(id.groups.size(), id.groups.data()) != 0) {
    return PosixError("setgroups(" + std::to_string(id.groups.size()) + " groups)", errno);
  }
  if (::setresgid(pgid, pgid, pgid) != 0) {
    return PosixError("setresgid(" + std::to_string(pgid) + ")", errno);
  }
  // The bounding set can only shrink while CAP_SETPCAP is held, i.e. before
  // the uid change below clears the effective set.
  const int last = last_capability();
  for (int cap = 0; cap <= last; ++cap) {
    if (kept(keep_mask, cap)) continue;
    if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) {
      return PosixError("prctl(PR_CAPBSET_DROP, " + std::to_string(cap) + ")", errno);
    }
  }
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) {
    return PosixError("prctl(PR_CAP_AMBIENT_CLEAR_ALL)", errno);
  }
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    return PosixError("prctl(PR_SET_NO_NEW_PRIVS)", errno);
  }
  // setresuid sets the filesystem uid to the new effective one; setting it
  // to the tenant's afterwards needs CAP_SETUID, kept across the change
  // (in the permitted set only) by KEEPCAPS.
  if (::prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) return PosixError("prctl(PR_SET_KEEPCAPS)", errno);
  // Last fallible step: what follows only sets ids that the capabilities
  // still held allow, and lowers capabilities, which needs no privilege.
  if (::setresuid(puid, puid, puid) != 0) {
    return PosixError("setresuid(" + std::to_string(puid) + ")", errno);
  }
  __user_cap_data_struct setid[_LINUX_CAPABILITY_U32S_3] = {};
  setid[0].effective = setid[0].permitted =
      (1u << CAP_SETUID) | (1u << CAP_SETGID) | keep_mask;
  if (raw_capset(setid) != 0) return PosixError("capset(CAP_SETUID, CAP_SETGID)", errno);
  // Per thread: every thread the mapper starts later inherits them.
  ::setfsgid(id.gid);
  ::setfsuid(id.uid);
  __user_cap_data_struct left[_LINUX_CAPABILITY_U32S_3] = {};
  left[0].effective = left[0].permitted = keep_mask;
  if (raw_capset(left) != 0) return PosixError("capset(kept capabilities only)", errno);
  if (::prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) != 0) return PosixError("prctl(PR_SET_KEEPCAPS)", errno);
  return verify_privileges_are(id, process_ids, keep);
}

Status verify_privileges_are(const Identity& id, ProcessIds process_ids, KeptCapability keep) {
  const uint32_t keep_mask = kept_mask(keep);
  const uid_t puid = process_uid(id, process_ids);
  const gid_t pgid = process_gid(id, process_ids);
  uid_t ru = 0, eu = 0, su = 0;
  gid_t rg = 0, eg = 0, sg = 0;
  if (::getresuid(&ru, &eu, &su) != 0) return PosixError("getresuid", errno);
  if (::getresgid(&rg, &eg, &sg) != 0) return PosixError("getresgid", errno);
  if (ru != puid || eu != puid || su != puid) {
    return Status::Internal("uid is " + std::to_string(eu) + ", expected " + std::to_string(puid));
  }
  if (rg != pgid || eg != pgid || sg != pgid) {
    return Status::Internal("gid is " + std::to_string(eg) + ", expected " + std::to_string(pgid));
  }
  // An invalid id changes nothing and returns the current one.
  const auto fsuid = static_cast<uid_t>(::setfsuid(static_cast<uid_t>(-1)));
  const auto fsgid = static_cast<gid_t>(::setfsgid(static_cast<gid_t>(-1)));
  if (fsuid != id.uid || fsgid != id.gid) {
    return Status::Internal("filesystem ids are " + std::to_string(fsuid) + ":" +
                            std::to_string(fsgid) + ", expected " + std::to_string(id.uid) + ":" +
                            std::to_string(id.gid));
  }
  // On the stack, compared without sorting: no allocation (see privileges.h).
  gid_t have[kMaxIdentityGroups];
  const int n = ::getgroups(static_cast<int>(kMaxIdentityGroups), have);
  if (n < 0) return PosixError("getgroups", errno);
  bool same = true;
  for (int i = 0; i < n; ++i) same = same && contains(id.groups.data(), id.groups.size(), have[i]);
  for (gid_t g : id.groups) same = same && contains(have, static_cast<size_t>(n), g);
  if (!same) return Status::Internal("supplementary groups differ from the tenant's");

  __user_cap_data_struct caps[_LINUX_CAPABILITY_U32S_3] = {};
  if (raw_capget(caps) != 0) return PosixError("capget", errno);
  for (size_t i = 0; i < _LINUX_CAPABILITY_U32S_3; ++i) {
    const uint32_t held = i == 0 ? keep_mask : 0;
    if (caps[i].effective != held || caps[i].permitted != held || caps[i].inheritable != 0) {
      return Status::Internal("capabilities other than the kept ones remain after the drop");
    }
  }
  const int last = last_capability();
  for (int cap = 0; cap <= last; ++cap) {
    if (kept(keep_mask, cap)) continue;
    if (::prctl(PR_CAPBSET_READ, cap, 0, 0, 0) > 0) {
      return Status::Internal("capability " + std::to_string(cap) + " remains in the bounding set");
    }
  }
  if (::prctl(PR_GET_KEEPCAPS, 0, 0, 0, 0) != 0) return Status::Internal("keepcaps is still set");
  if (::prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1) {
    return Status::Internal("no_new_privs is not set");
  }
  return Status::Ok();
}

}  // namespace tenantfs

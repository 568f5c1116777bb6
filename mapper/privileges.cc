#include "mapper/privileges.h"

#include <grp.h>
#include <linux/capability.h>
#include <sys/fsuid.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
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
// capabilities newer than the headers we were built with.
int last_capability() {
  int last = CAP_LAST_CAP;
  if (FILE* f = std::fopen("/proc/sys/kernel/cap_last_cap", "re")) {
    int v = 0;
    if (std::fscanf(f, "%d", &v) == 1 && v > 0) last = v;
    std::fclose(f);
  }
  return last;
}

// The capabilities a drop keeps, as a mask of the low 32 capability bits
// (CAP_SYS_ADMIN, the only one ever kept, is 21).
using CapMask = uint32_t;

Status drop_to(const TenantIdentity& id, CapMask keep);
Status verify(const TenantIdentity& id, CapMask keep);

}  // namespace

Status drop_privileges_to(const TenantIdentity& id) { return drop_to(id, 0); }

Status drop_privileges_keeping_sys_admin(const TenantIdentity& id) {
  return drop_to(id, 1u << CAP_SYS_ADMIN);
}

Status verify_privileges_are(const TenantIdentity& id) { return verify(id, 0); }

Status verify_privileges_keeping_sys_admin(const TenantIdentity& id) {
  return verify(id, 1u << CAP_SYS_ADMIN);
}

namespace {

Status drop_to(const TenantIdentity& id, CapMask keep) {
  if (id.uid == 0) {
    return Status::InvalidArgument("tenant uid 0 is root; refusing to serve as root");
  }
  if (is_reserved_id(id.uid) || is_reserved_id(id.gid)) {
    return Status::InvalidArgument(
        "tenant uid " + std::to_string(id.uid) + " gid " + std::to_string(id.gid) + ": " +
        std::to_string(kMapperProcessUid) + " is reserved for the mapper's own process ids");
  }
  if (::setgroups(id.groups.size(), id.groups.data()) != 0) {
    return PosixError("setgroups(" + std::to_string(id.groups.size()) + " groups)", errno);
  }
  if (::setresgid(kMapperProcessGid, kMapperProcessGid, kMapperProcessGid) != 0) {
    return PosixError("setresgid(" + std::to_string(kMapperProcessGid) + ")", errno);
  }
  // The bounding set can only shrink while CAP_SETPCAP is held, i.e. before
  // the uid change below clears the effective set.
  const int last = last_capability();
  for (int cap = 0; cap <= last; ++cap) {
    if (cap < 32 && (keep & (1u << cap)) != 0) continue;
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
  if (::setresuid(kMapperProcessUid, kMapperProcessUid, kMapperProcessUid) != 0) {
    return PosixError("setresuid(" + std::to_string(kMapperProcessUid) + ")", errno);
  }
  __user_cap_data_struct setid[_LINUX_CAPABILITY_U32S_3] = {};
  setid[0].effective = setid[0].permitted = (1u << CAP_SETUID) | (1u << CAP_SETGID) | keep;
  if (raw_capset(setid) != 0) return PosixError("capset(CAP_SETUID, CAP_SETGID)", errno);
  // Per thread: every thread the mapper starts later inherits them.
  ::setfsgid(id.gid);
  ::setfsuid(id.uid);
  __user_cap_data_struct kept[_LINUX_CAPABILITY_U32S_3] = {};
  kept[0].effective = kept[0].permitted = keep;
  if (raw_capset(kept) != 0) return PosixError("capset(kept capabilities)", errno);
  if (::prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) != 0) return PosixError("prctl(PR_SET_KEEPCAPS)", errno);
  return verify(id, keep);
}

Status verify(const TenantIdentity& id, CapMask keep) {
  uid_t ru = 0, eu = 0, su = 0;
  gid_t rg = 0, eg = 0, sg = 0;
  if (::getresuid(&ru, &eu, &su) != 0) return PosixError("getresuid", errno);
  if (::getresgid(&rg, &eg, &sg) != 0) return PosixError("getresgid", errno);
  if (ru != kMapperProcessUid || eu != kMapperProcessUid || su != kMapperProcessUid) {
    return Status::Internal("uid is " + std::to_string(eu) + ", expected " +
                            std::to_string(kMapperProcessUid));
  }
  if (rg != kMapperProcessGid || eg != kMapperProcessGid || sg != kMapperProcessGid) {
    return Status::Internal("gid is " + std::to_string(eg) + ", expected " +
                            std::to_string(kMapperProcessGid));
  }
  // An invalid id changes nothing and returns the current one.
  const auto fsuid = static_cast<uid_t>(::setfsuid(static_cast<uid_t>(-1)));
  const auto fsgid = static_cast<gid_t>(::setfsgid(static_cast<gid_t>(-1)));
  if (fsuid != id.uid || fsgid != id.gid) {
    return Status::Internal("filesystem ids are " + std::to_string(fsuid) + ":" +
                            std::to_string(fsgid) + ", expected " + std::to_string(id.uid) + ":" +
                            std::to_string(id.gid));
  }
  const int n = ::getgroups(0, nullptr);
  if (n < 0) return PosixError("getgroups", errno);
  std::vector<gid_t> have(static_cast<size_t>(n));
  if (::getgroups(n, have.data()) != n) return PosixError("getgroups", errno);
  std::vector<gid_t> want = id.groups;
  std::sort(have.begin(), have.end());
  std::sort(want.begin(), want.end());
  want.erase(std::unique(want.begin(), want.end()), want.end());
  have.erase(std::unique(have.begin(), have.end()), have.end());
  if (have != want) return Status::Internal("supplementary groups differ from the tenant's");

  __user_cap_data_struct caps[_LINUX_CAPABILITY_U32S_3] = {};
  if (raw_capget(caps) != 0) return PosixError("capget", errno);
  for (size_t i = 0; i < _LINUX_CAPABILITY_U32S_3; ++i) {
    const CapMask held = i == 0 ? keep : 0;
    if (caps[i].effective != held || caps[i].permitted != held || caps[i].inheritable != 0) {
      return Status::Internal("capabilities remain after the drop");
    }
  }
  const int last = last_capability();
  for (int cap = 0; cap <= last; ++cap) {
    if (cap < 32 && (keep & (1u << cap)) != 0) continue;
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

}  // namespace
}  // namespace tenantfs

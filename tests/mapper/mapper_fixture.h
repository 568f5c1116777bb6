// Helpers for the mapper integration tests: a real `tenantfs mapper` mounted
// on temporary directories, and child processes running as other users.
//
// Every helper is meant for the single-threaded test process: they fork, and
// a fork from a multi-threaded process could inherit a held lock.
#pragma once

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "common/mapper_readiness.h"
#include "common/unique_fd.h"

namespace tenantfs::testing {

// The storage identities used throughout: the volume's tenant, another user
// whose files the tenant must not reach, and a group shared with the tenant.
inline constexpr uid_t kTenantUid = 7001;
inline constexpr gid_t kTenantGid = 7001;
inline constexpr uid_t kOtherUid = 7002;
inline constexpr gid_t kOtherGid = 7002;
inline constexpr gid_t kSharedGid = 7100;

// Empty when the tests can run here, else why not (for GTEST_SKIP).
std::string why_mapper_tests_cannot_run();

#define SKIP_UNLESS_MAPPER_TESTS_CAN_RUN()                                 \
  do {                                                                     \
    std::string why_ = ::tenantfs::testing::why_mapper_tests_cannot_run(); \
    if (!why_.empty()) GTEST_SKIP() << why_;                               \
  } while (0)

// The result of one system call (or a short sequence of them) made in a child
// process: the return value, errno when it failed, and optional bytes read.
struct Outcome {
  long ret = 0;
  int err = 0;
  std::string data;
};

// Wraps a system call's return value, capturing errno when it is negative.
Outcome sys(long ret);

// "ret=-1 errno=EACCES (Permission denied)" for assertion messages.
std::string describe(const Outcome& o);
std::string errno_name(int err);

// A caller identity. uid 0 keeps every capability of the test process.
struct Caller {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;
  std::string name() const;  // "root", "uid1000", for test names
};
inline void PrintTo(const Caller& c, std::ostream* os) { *os << c.name(); }

// Forks, switches the child to `who` (groups, gid, then uid), runs fn there
// and returns what it returned. A child that crashes or hangs (30 s) yields
// ret=-1 with err=ECHILD or ETIMEDOUT.
Outcome run_as(const Caller& who, const std::function<Outcome()>& fn);
Outcome run_as(uid_t uid, gid_t gid, const std::vector<gid_t>& groups,
               const std::function<Outcome()>& fn);

// The options of one `tenantfs mapper` invocation.
struct VolumeOptions {
  uid_t uid = kTenantUid;
  gid_t gid = kTenantGid;
  std::vector<gid_t> groups;
  std::optional<uid_t> present_uid;
  std::optional<gid_t> present_gid;
  bool readonly = false;
  std::string cache;                // --cache value; empty: the mapper's default
  std::optional<unsigned> max_fds;  // --max-fds; unset: the mapper's default
  std::string name = "testvol";
};

// The default options with the --cache value `cache`.
inline VolumeOptions cache_options(const std::string& cache) {
  VolumeOptions opts;
  opts.cache = cache;
  return opts;
}

// A running mapper child process, with the read end of its ready pipe and a
// log file holding its stdout and stderr. Destruction kills and reaps it.
class MapperProcess {
 public:
  // Forks and execs the tenantfs binary with `args`; the ready pipe is the
  // child's fd 3. pre_exec runs in the child just before exec.
  MapperProcess(const std::vector<std::string>& args, const std::string& log_path,
                const std::function<void()>& pre_exec = {});
  MapperProcess(const MapperProcess&) = delete;
  MapperProcess& operator=(const MapperProcess&) = delete;
  ~MapperProcess();

  pid_t pid() const { return pid_; }
  // The readiness line without its newline; "" if the pipe closed without
  // one; "<timeout>" if nothing came within `timeout`. "ready" followed by
  // fields comes back as "ready" when it has every field the run asked for
  // (test_mapper_settings: so that a suite run for one loop proves that loop
  // served it), else whole.
  std::string wait_ready_line(std::chrono::milliseconds timeout);
  // The last readiness line as the mapper wrote it, fields and all.
  const std::string& full_ready_line() const { return full_ready_line_; }
  // The value of field `key` of the readiness line ("on" for
  // "ready passthrough=on"), or "" if it had none.
  std::string ready_field(const std::string& key) const;
  // What the ready pipe holds after the readiness line, once the writer is
  // gone (call after wait_exit).
  std::string read_rest_of_ready_pipe();
  // The wait status once the process has exited, or nullopt after `timeout`.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);
  void signal(int sig) const;
  bool running() const { return pid_ > 0; }

 private:
  std::string read_ready_line(std::chrono::milliseconds timeout);

  pid_t pid_ = -1;
  UniqueFd ready_;
  std::string full_ready_line_;
};

// A directory tree for one volume, removed (without crossing mounts) on
// destruction:
//   root/            0755 root
//   root/store/      0700 root      the root-only parent of the backing dir
//   root/store/vol   0700 tenant    the backing directory
//   root/mnt/        0755 root      the mountpoint
class VolumeDirs {
 public:
  explicit VolumeDirs(uid_t tenant_uid = kTenantUid, gid_t tenant_gid = kTenantGid);
  VolumeDirs(const VolumeDirs&) = delete;
  VolumeDirs& operator=(const VolumeDirs&) = delete;
  ~VolumeDirs();

  const std::string& root() const { return root_; }
  const std::string& backing() const { return backing_; }
  const std::string& mountpoint() const { return mountpoint_; }

 private:
  std::string root_, backing_, mountpoint_;
};

// How this run of the suite starts the mapper: $TENANTFS_TEST_MAPPER holds
// readiness fields ("request-loop=uring passthrough=off"), which the mapper's
// readiness line must then show (MapperProcess::wait_ready_line).
ReadyFields test_mapper_settings();
// Its passthrough= field (on, off), else "auto" (no flag).
std::string test_passthrough_mode();

// The mapper mounted on VolumeDirs. Two phases so that a test can prepare
// the backing store first:
//   MountedVolume vol(opts);            // directories only
//   ... populate vol.backing_path(...)
//   ASSERT_EQ(vol.start(), "ready");    // spawn and wait (10 s)
// Destruction unmounts (lazily if busy), reaps the mapper, prints its log if
// the test failed, and removes the directories.
class MountedVolume {
 public:
  explicit MountedVolume(VolumeOptions opts = {});
  MountedVolume(const MountedVolume&) = delete;
  MountedVolume& operator=(const MountedVolume&) = delete;
  ~MountedVolume();

  // Spawns the mapper and returns its readiness line (see MapperProcess).
  std::string start(const std::function<void()>& pre_exec = {});
  // The command line start() uses, for tests that spawn by hand.
  std::vector<std::string> mapper_args() const;

  const std::string& backing() const { return dirs_.backing(); }
  const std::string& mountpoint() const { return dirs_.mountpoint(); }
  const std::string& root() const { return dirs_.root(); }
  std::string path(const std::string& rel) const { return mountpoint() + "/" + rel; }
  std::string backing_path(const std::string& rel) const { return backing() + "/" + rel; }
  MapperProcess* mapper() { return mapper_ ? &*mapper_ : nullptr; }
  const VolumeOptions& options() const { return opts_; }
  std::string log() const;
  const std::string& log_path() const { return log_path_; }

  // Unmounts (umount2, then MNT_DETACH if busy) and reaps the mapper; returns
  // its wait status if it exited within 10 s.
  std::optional<int> stop();
  // Forgets the current mapper after the test reaped or replaced it.
  void drop_mapper() { mapper_.reset(); }

 private:
  VolumeOptions opts_;
  VolumeDirs dirs_;
  std::string log_path_;
  std::optional<MapperProcess> mapper_;
};

// A line of /proc/self/mountinfo.
struct MountEntry {
  std::string mountpoint;
  std::string fstype;
  std::string source;
  std::string options;  // per-mount and per-superblock options joined by ','
};
// The topmost mount at exactly `path`, if any.
std::optional<MountEntry> find_mount(const std::string& path);

// Number of fds process `pid` holds (entries of /proc/PID/fd), or -1.
int count_fds(pid_t pid);

// Path of the tenantfs binary under test: $TENANTFS_TEST_BINARY if set, else
// the one built beside the tests.
const char* tenantfs_binary();

// Waits up to `timeout` for a child (or adopted orphan) to exit; its wait
// status, or nullopt if it is still running.
std::optional<int> wait_for_exit(pid_t pid, std::chrono::milliseconds timeout);

// Whether a wait status says the process exited with `code`.
bool exited_with(const std::optional<int>& status, int code);
// "exit 1", "killed by signal 9", or "still running" for nullopt.
std::string describe_status(const std::optional<int>& status);

// Polls `done` until it holds or `timeout` passes; whether it held.
bool eventually(const std::function<bool()>& done,
                std::chrono::milliseconds timeout = std::chrono::milliseconds(30'000));

// Runs argv[0] (PATH lookup) with argv and returns its wait status.
int run_command(const std::vector<std::string>& argv);

// Small file helpers acting in the current process; they ADD_FAILURE and
// return an empty value on error, so tests read linearly.
std::string read_file(const std::string& path);
bool write_file(const std::string& path, const std::string& data, mode_t mode = 0644);
struct stat lstat_path(const std::string& path);

// Deterministic pseudo-random bytes.
std::string random_bytes(size_t n, unsigned seed);

// Mounts a fresh tmpfs at `where` and unmounts it (lazily) on destruction.
class ScopedTmpfs {
 public:
  explicit ScopedTmpfs(const std::string& where);
  ScopedTmpfs(const ScopedTmpfs&) = delete;
  ScopedTmpfs& operator=(const ScopedTmpfs&) = delete;
  ~ScopedTmpfs();
  bool mounted() const { return mounted_; }

 private:
  std::string where_;
  bool mounted_ = false;
};

// POSIX ACLs in their xattr form (system.posix_acl_access), built by hand so
// that the tests need no libacl.
struct AclEntry {
  uint16_t tag;
  uint16_t perm;  // 4 read, 2 write, 1 execute
  uint32_t id;    // kAclNoId for the entries that name no one
};
inline constexpr uint16_t kAclUserObj = 0x01, kAclUser = 0x02, kAclGroupObj = 0x04,
                          kAclGroup = 0x08, kAclMask = 0x10, kAclOther = 0x20;
inline constexpr uint32_t kAclNoId = 0xffffffffu;
inline constexpr const char* kAclAccessXattr = "system.posix_acl_access";
std::string encode_acl(const std::vector<AclEntry>& entries);
std::vector<AclEntry> decode_acl(const std::string& xattr);
// Whether the filesystem holding `dir` stores POSIX ACLs (tried on a scratch
// file there, as root).
bool supports_posix_acl(const std::string& dir);
// getxattr as the current process; nullopt (and errno set) on failure.
std::optional<std::string> get_xattr(const std::string& path, const std::string& name);

}  // namespace tenantfs::testing

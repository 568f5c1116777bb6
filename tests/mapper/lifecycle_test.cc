// The mapper's process contract: readiness line, mount identity, how it ends,
// and what a failure or a crash leaves behind.
#include <fcntl.h>
#include <linux/capability.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "tests/mapper/mapper_fixture.h"

namespace tenantfs::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

class MapperLifecycleTest : public ::testing::Test {
 protected:
  void SetUp() override { SKIP_UNLESS_MAPPER_TESTS_CAN_RUN(); }
};

// Removes CAP_SETUID and CAP_SETGID from every capability set of this
// process, so that the exec'd mapper (still uid 0, still CAP_SYS_ADMIN) can
// mount but cannot switch to the tenant.
void drop_setid_capabilities() {
  ::prctl(PR_CAPBSET_DROP, CAP_SETUID, 0, 0, 0);
  ::prctl(PR_CAPBSET_DROP, CAP_SETGID, 0, 0, 0);
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (::syscall(SYS_capget, &header, data) != 0) ::_exit(126);
  const unsigned int mask = ~((1u << CAP_SETUID) | (1u << CAP_SETGID));
  data[0].effective &= mask;
  data[0].permitted &= mask;
  data[0].inheritable &= mask;
  if (::syscall(SYS_capset, &header, data) != 0) ::_exit(126);
}

TEST_F(MapperLifecycleTest, ReportsReadyAndMountsAsFuseTenantfsWithVolumeName) {
  VolumeOptions opts;
  opts.name = "lifecycle-vol";
  MountedVolume vol(opts);
  ASSERT_EQ(vol.start(), "ready");
  std::optional<MountEntry> m = find_mount(vol.mountpoint());
  ASSERT_TRUE(m) << vol.mountpoint() << " is not in /proc/self/mountinfo";
  EXPECT_EQ(m->fstype, "fuse.tenantfs");
  EXPECT_EQ(m->source, "tenantfs:lifecycle-vol");
  // allow_other: without it no caller but the mounter's uid could enter.
  EXPECT_NE(m->options.find("allow_other"), std::string::npos) << m->options;
  // The kernel must not apply permission checks of its own on presented ids.
  EXPECT_EQ(m->options.find("default_permissions"), std::string::npos) << m->options;
}

TEST_F(MapperLifecycleTest, MapperRunsAsTenantAfterReady) {
  VolumeOptions opts;
  opts.groups = {kSharedGid, 7200};
  MountedVolume vol(opts);
  ASSERT_EQ(vol.start(), "ready");
  std::string status = read_file("/proc/" + std::to_string(vol.mapper()->pid()) + "/status");
  auto field = [&](const std::string& key) {
    size_t at = status.find("\n" + key + ":");
    if (at == std::string::npos) return std::string();
    size_t begin = at + key.size() + 2;
    std::string value = status.substr(begin, status.find('\n', begin) - begin);
    // Normalise tabs and runs of spaces to single spaces.
    std::string out;
    for (char c : value) {
      if (c == '\t' || c == ' ') {
        if (!out.empty() && out.back() != ' ') out.push_back(' ');
      } else {
        out.push_back(c);
      }
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    return out;
  };
  // Real, effective and saved ids are the reserved process id; only the
  // filesystem ids (the last column) are the tenant's.
  EXPECT_EQ(field("Uid"), "2147483646 2147483646 2147483646 7001");
  EXPECT_EQ(field("Gid"), "2147483646 2147483646 2147483646 7001");
  EXPECT_EQ(field("Groups"), "7100 7200");
  EXPECT_EQ(field("CapEff"), "0000000000000000");
  EXPECT_EQ(field("CapPrm"), "0000000000000000");
  EXPECT_EQ(field("NoNewPrivs"), "1");
}

TEST_F(MapperLifecycleTest, TenantsOtherProcessesCannotSignalTheMapper) {
  MountedVolume vol;
  ASSERT_EQ(vol.start(), "ready");
  const pid_t mapper = vol.mapper()->pid();
  for (int sig : {0, SIGSTOP, SIGKILL}) {
    Outcome o =
        run_as(Caller{kTenantUid, kTenantGid, {}}, [&] { return sys(::kill(mapper, sig)); });
    EXPECT_EQ(o.err, EPERM) << "kill(mapper, " << sig << ") as the tenant: " << describe(o);
  }
  // Still serving, as the tenant on the storage.
  ASSERT_TRUE(write_file(vol.path("after-kill"), "x"));
  struct stat st = lstat_path(vol.backing_path("after-kill"));
  EXPECT_EQ(st.st_uid, kTenantUid);
  EXPECT_EQ(st.st_gid, kTenantGid);
}

TEST_F(MapperLifecycleTest, MissingBackingDirectoryReportsErrorAndLeavesNoMount) {
  MountedVolume vol;
  std::vector<std::string> args = vol.mapper_args();
  for (size_t i = 0; i + 1 < args.size(); ++i)
    if (args[i] == "--backing") args[i + 1] = vol.root() + "/store/does-not-exist";
  MapperProcess mapper(args, vol.log_path());
  std::string line = mapper.wait_ready_line(seconds(10));
  EXPECT_EQ(line.rfind("error: ", 0), 0u) << "ready line: \"" << line << "\"";
  EXPECT_GT(line.size(), std::string("error: ").size()) << "the error must say what failed";
  std::optional<int> status = mapper.wait_exit(seconds(10));
  ASSERT_TRUE(status) << "mapper still running after reporting an error";
  EXPECT_FALSE(exited_with(status, 0)) << describe_status(status);
  EXPECT_FALSE(find_mount(vol.mountpoint())) << "a failed start left a mount behind";
}

TEST_F(MapperLifecycleTest, FailedPrivilegeDropReportsErrorAndLeavesNoMount) {
  MountedVolume vol;
  std::string line = vol.start(drop_setid_capabilities);
  EXPECT_EQ(line.rfind("error: ", 0), 0u) << "ready line: \"" << line << "\"";
  std::optional<int> status = vol.mapper()->wait_exit(seconds(10));
  ASSERT_TRUE(status) << "mapper still running although it could not drop privileges";
  EXPECT_FALSE(exited_with(status, 0)) << describe_status(status);
  EXPECT_FALSE(find_mount(vol.mountpoint())) << "a failed privilege drop left a mount behind";
  vol.drop_mapper();
}

TEST_F(MapperLifecycleTest, UmountMakesMapperExitZero) {
  MountedVolume vol;
  ASSERT_EQ(vol.start(), "ready");
  ASSERT_EQ(::umount2(vol.mountpoint().c_str(), 0), 0) << std::strerror(errno);
  std::optional<int> status = vol.mapper()->wait_exit(seconds(10));
  EXPECT_TRUE(exited_with(status, 0)) << describe_status(status);
  vol.drop_mapper();
}

TEST_F(MapperLifecycleTest, FusermountUnmountMakesMapperExitZero) {
  MountedVolume vol;
  ASSERT_EQ(vol.start(), "ready");
  int rc = run_command({"fusermount3", "-u", vol.mountpoint()});
  ASSERT_TRUE(WIFEXITED(rc) && WEXITSTATUS(rc) == 0) << "fusermount3 -u: status " << rc;
  std::optional<int> status = vol.mapper()->wait_exit(seconds(10));
  EXPECT_TRUE(exited_with(status, 0)) << describe_status(status);
  EXPECT_FALSE(find_mount(vol.mountpoint()));
  vol.drop_mapper();
}

// mapper.h: after "ready" the mapper has no privilege left to unmount with;
// on SIGTERM/SIGINT it closes the FUSE connection and exits 0, and the mount
// answers ENOTCONN until the supervisor detaches it.
void expect_signal_after_ready_exits_zero_leaving_dead_mount(int sig) {
  MountedVolume vol;
  ASSERT_EQ(vol.start(), "ready");
  vol.mapper()->signal(sig);
  std::optional<int> status = vol.mapper()->wait_exit(seconds(10));
  EXPECT_TRUE(exited_with(status, 0)) << describe_status(status);
  vol.drop_mapper();
  ASSERT_TRUE(find_mount(vol.mountpoint()))
      << "the contract says the mount stays for root to remove";
  struct stat st {};
  EXPECT_EQ(::stat(vol.mountpoint().c_str(), &st), -1);
  EXPECT_EQ(errno, ENOTCONN) << errno_name(errno);
  EXPECT_EQ(::umount2(vol.mountpoint().c_str(), MNT_DETACH), 0) << std::strerror(errno);
  EXPECT_FALSE(find_mount(vol.mountpoint()));
}

TEST_F(MapperLifecycleTest, SigtermAfterReadyExitsZeroAndLeavesDeadMountForSupervisor) {
  expect_signal_after_ready_exits_zero_leaving_dead_mount(SIGTERM);
}

TEST_F(MapperLifecycleTest, SigintAfterReadyExitsZeroAndLeavesDeadMountForSupervisor) {
  expect_signal_after_ready_exits_zero_leaving_dead_mount(SIGINT);
}

// Starts the mapper with one option replaced and expects a refusal before
// anything is mounted.
void expect_refused_with(const std::string& flag, const std::string& value) {
  MountedVolume vol;
  std::vector<std::string> args = vol.mapper_args();
  for (size_t i = 0; i + 1 < args.size(); ++i)
    if (args[i] == flag) args[i + 1] = value;
  MapperProcess mapper(args, vol.log_path());
  std::string line = mapper.wait_ready_line(seconds(10));
  std::optional<int> status = mapper.wait_exit(seconds(10));
  ASSERT_TRUE(status) << "mapper still running with " << flag << " " << value;
  EXPECT_FALSE(exited_with(status, 0)) << describe_status(status);
  // Argument errors may be reported before the ready fd is used; either
  // way there must be no "ready" and no mount.
  EXPECT_NE(line, "ready");
  EXPECT_FALSE(find_mount(vol.mountpoint()));
}

TEST_F(MapperLifecycleTest, TenantUidZeroIsRefused) { expect_refused_with("--uid", "0"); }

TEST_F(MapperLifecycleTest, VolumeNameWithSlashIsRefused) {
  expect_refused_with("--name", "../evil");
}

TEST_F(MapperLifecycleTest, KilledMapperLeavesMountThatReportsNotConnected) {
  MountedVolume vol;
  ASSERT_EQ(vol.start(), "ready");
  vol.mapper()->signal(SIGKILL);
  ASSERT_TRUE(vol.mapper()->wait_exit(seconds(10)));
  vol.drop_mapper();
  ASSERT_TRUE(find_mount(vol.mountpoint())) << "expected the dead mount to stay listed";
  // With io_uring queues the connection ends when the dead process's rings
  // are torn down, which the kernel finishes asynchronously after the exit:
  // until then a request is cancelled (ECANCELED). Whatever the path, the
  // mount must settle on ENOTCONN, and never answer.
  int err = 0;
  for (int i = 0; i < 500; ++i) {
    struct stat st {};
    ASSERT_EQ(::stat(vol.mountpoint().c_str(), &st), -1) << "a dead mapper's mount answered";
    err = errno;
    if (err == ENOTCONN) break;
    ASSERT_EQ(err, ECANCELED) << errno_name(err);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(err, ENOTCONN) << errno_name(err);
}

TEST_F(MapperLifecycleTest, StaleMountCanBeLazilyUnmountedAndMountedAgain) {
  MountedVolume vol;
  ASSERT_EQ(vol.start(), "ready");
  ASSERT_TRUE(write_file(vol.path("kept"), "survives the crash"));
  vol.mapper()->signal(SIGKILL);
  ASSERT_TRUE(vol.mapper()->wait_exit(seconds(10)));
  vol.drop_mapper();

  ASSERT_EQ(::umount2(vol.mountpoint().c_str(), MNT_DETACH), 0) << std::strerror(errno);
  EXPECT_FALSE(find_mount(vol.mountpoint()));

  ASSERT_EQ(vol.start(), "ready");
  EXPECT_EQ(read_file(vol.path("kept")), "survives the crash");
  std::optional<MountEntry> m = find_mount(vol.mountpoint());
  ASSERT_TRUE(m);
  EXPECT_EQ(m->fstype, "fuse.tenantfs");
}

TEST_F(MapperLifecycleTest, UmountCommandMakesMapperExitZero) {
  MountedVolume vol;
  ASSERT_EQ(vol.start(), "ready");
  int rc = run_command({"umount", vol.mountpoint()});
  ASSERT_TRUE(WIFEXITED(rc) && WEXITSTATUS(rc) == 0) << "umount: status " << rc;
  std::optional<int> status = vol.mapper()->wait_exit(seconds(10));
  EXPECT_TRUE(exited_with(status, 0)) << describe_status(status);
  EXPECT_FALSE(find_mount(vol.mountpoint()));
  vol.drop_mapper();
}

TEST_F(MapperLifecycleTest, LazyUmountMakesMapperExitZero) {
  MountedVolume vol;
  ASSERT_EQ(vol.start(), "ready");
  int rc = run_command({"umount", "-l", vol.mountpoint()});
  ASSERT_TRUE(WIFEXITED(rc) && WEXITSTATUS(rc) == 0) << "umount -l: status " << rc;
  std::optional<int> status = vol.mapper()->wait_exit(seconds(10));
  EXPECT_TRUE(exited_with(status, 0)) << describe_status(status);
  EXPECT_FALSE(find_mount(vol.mountpoint()));
  vol.drop_mapper();
}

TEST_F(MapperLifecycleTest, ReadyFdCarriesExactlyOneLine) {
  MountedVolume vol;
  ASSERT_EQ(vol.start(), "ready");
  ASSERT_EQ(::umount2(vol.mountpoint().c_str(), 0), 0) << std::strerror(errno);
  ASSERT_TRUE(vol.mapper()->wait_exit(seconds(10)));
  EXPECT_EQ(vol.mapper()->read_rest_of_ready_pipe(), "") << "more than one line on the ready fd";
  vol.drop_mapper();
}

// Kills and reaps an adopted mapper if a test ends before it exited.
struct AdoptedProcess {
  pid_t pid = -1;
  ~AdoptedProcess() {
    if (pid > 0 && !wait_for_exit(pid, milliseconds(0))) {
      ::kill(pid, SIGKILL);
      wait_for_exit(pid, seconds(10));
    }
  }
};

// DESIGN: a mapper outlives a crash of `serve`. Here the process that started
// it (and held the read end of its ready pipe) exits right after "ready".
TEST_F(MapperLifecycleTest, MapperKeepsServingAfterItsStarterExits) {
  // Orphans are re-parented to this process, so the mapper can be reaped.
  ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0) << std::strerror(errno);
  MountedVolume vol;
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  UniqueFd report_rd(fds[0]), report_wr(fds[1]);
  pid_t starter = ::fork();
  ASSERT_GE(starter, 0);
  if (starter == 0) {
    // Leaked on purpose: its destructor would kill the mapper.
    auto* mapper = new MapperProcess(vol.mapper_args(), vol.log_path());
    bool ready = mapper->wait_ready_line(seconds(10)) == "ready";
    pid_t pid = mapper->pid();
    if (::write(report_wr.get(), &pid, sizeof pid) != sizeof pid) ::_exit(2);
    ::_exit(ready ? 0 : 1);
  }
  report_wr.reset();
  AdoptedProcess mapper;
  ASSERT_EQ(::read(report_rd.get(), &mapper.pid, sizeof mapper.pid),
            static_cast<ssize_t>(sizeof mapper.pid));
  std::optional<int> starter_status = wait_for_exit(starter, seconds(10));
  ASSERT_TRUE(exited_with(starter_status, 0)) << "starter: " << describe_status(starter_status);

  ASSERT_TRUE(write_file(vol.path("after-starter"), "still served"));
  EXPECT_EQ(read_file(vol.path("after-starter")), "still served");
  EXPECT_EQ(lstat_path(vol.backing_path("after-starter")).st_uid, kTenantUid);

  ASSERT_EQ(::umount2(vol.mountpoint().c_str(), 0), 0) << std::strerror(errno);
  std::optional<int> status = wait_for_exit(mapper.pid, seconds(10));
  EXPECT_TRUE(exited_with(status, 0)) << describe_status(status);
  if (status) mapper.pid = -1;
}

// More callers at once than the request loop has receivers (one per CPU in
// the per-cpu loop): extra threads join while every receiver is busy, end
// once idle, are started again for the next burst, and none of that stands
// in the way of a clean end.
int write_fsync_read_back(const std::string& path, char fill, size_t size) {
  const std::string data(size, fill);
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd) return errno;
  if (::write(fd.get(), data.data(), data.size()) != static_cast<ssize_t>(data.size())) return EIO;
  if (::fsync(fd.get()) != 0) return errno;
  std::string back(size, '\0');
  if (::pread(fd.get(), back.data(), back.size(), 0) != static_cast<ssize_t>(size)) return EIO;
  return back == data ? 0 : EILSEQ;
}

std::vector<int> in_parallel(int n, const std::function<int(int)>& fn) {
  std::vector<int> errs(n, -1);
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i) threads.emplace_back([&, i] { errs[i] = fn(i); });
  for (std::thread& t : threads) t.join();
  return errs;
}

TEST_F(MapperLifecycleTest, BurstsOfConcurrentCallersAreServedAndSigtermStillEndsIt) {
  MountedVolume vol;
  ASSERT_EQ(vol.start(), "ready");
  constexpr int kCallers = 24;
  constexpr size_t kSize = 1 << 20;
  const std::vector<int> zeros(kCallers, 0);
  EXPECT_EQ(in_parallel(kCallers,
                        [&](int i) {
                          return write_fsync_read_back(vol.path("burst1-" + std::to_string(i)),
                                                       static_cast<char>('a' + i), kSize);
                        }),
            zeros);
  for (int i = 0; i < kCallers; ++i) {
    struct stat st = lstat_path(vol.backing_path("burst1-" + std::to_string(i)));
    EXPECT_EQ(st.st_size, static_cast<off_t>(kSize));
    EXPECT_EQ(st.st_uid, kTenantUid);
  }
  // Longer than an idle extra thread waits before it ends.
  std::this_thread::sleep_for(milliseconds(1500));
  EXPECT_EQ(in_parallel(kCallers,
                        [&](int i) {
                          return write_fsync_read_back(vol.path("burst2-" + std::to_string(i)),
                                                       static_cast<char>('A' + i), 4096);
                        }),
            zeros);
  EXPECT_NE(vol.log().find("request loop "), std::string::npos) << vol.log();

  vol.mapper()->signal(SIGTERM);
  std::optional<int> status = vol.mapper()->wait_exit(seconds(10));
  EXPECT_TRUE(exited_with(status, 0)) << describe_status(status);
  vol.drop_mapper();
  EXPECT_EQ(::umount2(vol.mountpoint().c_str(), MNT_DETACH), 0) << std::strerror(errno);
}

TEST_F(MapperLifecycleTest, NameDefaultsToBackingDirectoryName) {
  MountedVolume vol;
  std::vector<std::string> args;
  for (const std::string& a : vol.mapper_args()) {
    if (!args.empty() && args.back() == "--name") {
      args.pop_back();
      continue;
    }
    args.push_back(a);
  }
  MapperProcess mapper(args, vol.log_path());
  ASSERT_EQ(mapper.wait_ready_line(seconds(10)), "ready");
  std::optional<MountEntry> m = find_mount(vol.mountpoint());
  ASSERT_TRUE(m);
  std::string base = vol.backing().substr(vol.backing().rfind('/') + 1);
  EXPECT_EQ(m->source, "tenantfs:" + base);
  ASSERT_EQ(::umount2(vol.mountpoint().c_str(), 0), 0) << std::strerror(errno);
  EXPECT_TRUE(exited_with(mapper.wait_exit(seconds(10)), 0));
}

}  // namespace
}  // namespace tenantfs::testing

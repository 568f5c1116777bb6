// Finding the mapper processes of a mountpoint by their command line, over a
// made-up /proc: the launcher kills those an earlier serve left starting.
// And what the launcher takes for readiness, with a stand-in for the mapper.
#include "plugin/mapper_launcher.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "common/mapper_invocation.h"
#include "common/unique_fd.h"
#include "plugin/child_reaper.h"
#include "tests/support/temp_dir.h"

namespace tenantfs {
namespace {

class FindMapperProcessesTest : public ::testing::Test {
 protected:
  // A /proc/<pid>/cmdline with `args` NUL-separated, as the kernel shows it.
  void Process(const std::string& pid, const std::vector<std::string>& args) {
    ASSERT_EQ(::mkdir(proc_.sub(pid).c_str(), 0700), 0);
    std::string cmdline;
    for (const auto& a : args) cmdline += a + '\0';
    proc_.write(pid + "/cmdline", cmdline);
  }
  std::vector<pid_t> Find(const std::string& mountpoint) {
    std::vector<pid_t> pids = find_mapper_processes(mountpoint, proc_.path());
    std::sort(pids.begin(), pids.end());
    return pids;
  }
  testing::TempDir proc_;
};

TEST_F(FindMapperProcessesTest, FindsTheMappersOfExactlyThatMountpoint) {
  Process("100", {"tenantfs", "mapper", "--backing", "/proc/self/fd/4/.", "--mountpoint",
                  "/mnt/tenantfs/a", "--name", "a"});
  Process("101", {"tenantfs", "mapper", "--mountpoint", "/mnt/tenantfs/a"});
  Process("102", {"tenantfs", "mapper", "--mountpoint", "/mnt/tenantfs/ab"});
  Process("103", {"tenantfs", "mapper", "--mountpoint", "/mnt/tenantfs"});
  EXPECT_EQ(Find("/mnt/tenantfs/a"), (std::vector<pid_t>{100, 101}));
  EXPECT_EQ(Find("/mnt/tenantfs/ab"), (std::vector<pid_t>{102}));
  EXPECT_EQ(Find("/mnt/tenantfs/b"), (std::vector<pid_t>{}));
}

TEST_F(FindMapperProcessesTest, FindsAMapperByTheCommandLineItsInvocationMakes) {
  MapperInvocation inv;
  inv.backing = "/proc/self/fd/4/.";
  inv.mountpoint = "/mnt/tenantfs/c";
  inv.name = "c";
  inv.identity = Identity{7001, 7001, {7100}};
  inv.readonly = true;
  inv.ready_fd = 3;
  std::vector<std::string> args = inv.to_argv();
  args.insert(args.begin(), "/usr/bin/tenantfs");
  Process("300", args);
  EXPECT_EQ(Find("/mnt/tenantfs/c"), (std::vector<pid_t>{300}));
  EXPECT_EQ(Find("/mnt/tenantfs"), (std::vector<pid_t>{}));
}

TEST_F(FindMapperProcessesTest, IgnoresWhatIsNotAMapperNamingTheMountpoint) {
  // serve itself, a shell whose arguments happen to mention the mountpoint,
  // the mountpoint given as some other option's value, a kernel thread (no
  // command line), an exited process's empty command line, no mountpoint.
  Process("200", {"tenantfs", "serve", "--mount-root", "/mnt/tenantfs"});
  Process("201", {"sh", "-c", "mapper --mountpoint /mnt/tenantfs/a"});
  Process("202", {"tenantfs", "mapper", "--name", "--mountpoint", "--backing", "/mnt/tenantfs/a"});
  Process("203", {});
  Process("204", {"tenantfs", "mapper"});
  Process("205", {"tenantfs", "mapper", "--mountpoint"});
  ASSERT_EQ(::mkdir(proc_.sub("self").c_str(), 0700), 0);
  ASSERT_EQ(::mkdir(proc_.sub("sys").c_str(), 0700), 0);
  EXPECT_EQ(Find("/mnt/tenantfs/a"), (std::vector<pid_t>{}));
}

// A mapper's passthrough broker (mapper/backing_broker.h) is forked from it
// and rewrites its command line in place, "mapper" becoming "broker": it
// dies with its mapper and must never be taken for one.
TEST_F(FindMapperProcessesTest, IgnoresTheBrokerOfAMapper) {
  Process("300", {"tenantfs", "mapper", "--backing", "/b", "--mountpoint", "/mnt/tenantfs/a"});
  Process("301", {"tenantfs", "broker", "--backing", "/b", "--mountpoint", "/mnt/tenantfs/a"});
  EXPECT_EQ(Find("/mnt/tenantfs/a"), (std::vector<pid_t>{300}));
}

TEST_F(FindMapperProcessesTest, AMissingProcDirectoryFindsNothing) {
  EXPECT_TRUE(find_mapper_processes("/mnt/tenantfs/a", proc_.sub("absent")).empty());
}

// A stand-in for `tenantfs mapper` that writes one readiness line to the
// ready fd (3), then stays up when the line is "ready" or starts with
// "ready " (as a serving mapper does) and exits 1 otherwise.
class LauncherReadinessTest : public ::testing::Test {
 protected:
  Result<StartedMapper> StartReporting(const std::string& line) {
    const std::string exe =
        dir_.write("fake-mapper", "#!/bin/sh\nprintf '%s\\n' '" + line + "' >&3\ncase '" + line +
                                      "' in ready | 'ready '*) exec sleep 30 ;; esac\nexit 1\n");
    EXPECT_EQ(::chmod(exe.c_str(), 0755), 0);
    EXPECT_EQ(::mkdir(dir_.sub("mnt").c_str(), 0755), 0);
    UniqueFd backing(::open(dir_.path().c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    VolumeBinding b;
    b.name = "vol";
    b.identity.uid = b.identity.gid = b.present_uid = b.present_gid = 7001;
    ProcessMapperLauncher launcher(exe, std::chrono::seconds(10));
    return launcher.start(b, backing.get(), dir_.sub("mnt"));
  }
  void Stop(pid_t pid) {
    ::kill(pid, SIGKILL);
    ChildReaper::instance().wait(pid, std::chrono::seconds(10));
  }
  testing::TempDir dir_;
};

TEST_F(LauncherReadinessTest, ReadyFollowedByKeyValueFieldsIsReady) {
  Result<StartedMapper> started = StartReporting("ready request-loop=uring");
  ASSERT_TRUE(started.ok()) << started.status().message();
  EXPECT_EQ(started->fields, (ReadyFields{{"request-loop", "uring"}}));
  Stop(started->pid);
}

TEST_F(LauncherReadinessTest, BareReadyIsReady) {
  Result<StartedMapper> started = StartReporting("ready");
  ASSERT_TRUE(started.ok()) << started.status().message();
  EXPECT_TRUE(started->fields.empty());
  Stop(started->pid);
}

TEST_F(LauncherReadinessTest, AWordThatOnlyStartsWithReadyIsAFailure) {
  Result<StartedMapper> started = StartReporting("readying");
  EXPECT_FALSE(started.ok());
  if (started.ok()) Stop(started->pid);
}

}  // namespace
}  // namespace tenantfs

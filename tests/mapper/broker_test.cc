// Attacks on the backing broker (mapper/backing_broker.h): this test plays a
// compromised mapper. It mounts a FUSE connection of its own with
// passthrough negotiated, starts the real broker on it and sends it files a
// mapper acting as the tenant could never open read-write. Each must be
// refused; the one legitimate file must get a backing id. The broker's own
// confinement is read from /proc, and its seccomp allowlist is shown to kill.
//
// Needs root and /dev/fuse, like the mapper suite.
#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sched.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/cpus.h"
#include "mapper/backing_broker.h"
#include "mapper/fuse_passthrough.h"
#include "tests/mapper/mapper_fixture.h"

namespace tenantfs::testing {
namespace {

// A FUSE mount whose INIT this test answers itself, asking for passthrough.
// Nothing serves it afterwards: the test never touches the mount.
class PassthroughConnection {
 public:
  explicit PassthroughConnection(const std::string& mountpoint) : mountpoint_(mountpoint) {
    fd_.reset(::open("/dev/fuse", O_RDWR | O_CLOEXEC));
    if (!fd_) return;
    const std::string opts =
        "fd=" + std::to_string(fd_.get()) + ",rootmode=40000,user_id=0,group_id=0,allow_other";
    if (::mount("broker-test", mountpoint.c_str(), "fuse.brokertest", MS_NOSUID | MS_NODEV,
                opts.c_str()) != 0) {
      error_ = std::string("mount: ") + std::strerror(errno);
      return;
    }
    mounted_ = true;
    answer_init();
  }
  ~PassthroughConnection() {
    if (mounted_) ::umount2(mountpoint_.c_str(), MNT_DETACH);
  }
  int fd() const { return fd_.get(); }
  // Empty once passthrough was offered and asked for.
  const std::string& error() const { return error_; }

 private:
  void answer_init() {
    std::string buf((1u << 20) + 4096, '\0');
    const ssize_t n = ::read(fd_.get(), buf.data(), buf.size());
    if (n < 40 + 20) {
      error_ = "no INIT request";
      return;
    }
    uint64_t unique;
    uint32_t in[5];  // major, minor, max_readahead, flags, flags2
    std::memcpy(&unique, buf.data() + 8, sizeof unique);
    std::memcpy(in, buf.data() + 40, sizeof in);
    const uint64_t offered = in[3] | static_cast<uint64_t>(in[4]) << 32;
    if ((offered & kFusePassthroughFlag) == 0) {
      error_ = "the kernel does not offer FUSE_PASSTHROUGH";
      return;
    }
    struct {
      uint32_t len;
      int32_t error;
      uint64_t unique;
      uint32_t out[16];  // fuse_init_out
    } reply{};
    reply.len = sizeof reply;
    reply.unique = unique;
    reply.out[0] = 7;
    reply.out[1] = in[1];
    reply.out[2] = in[2];
    reply.out[3] = kFuseInitExt;
    reply.out[5] = 4096;                                               // max_write
    reply.out[8] = static_cast<uint32_t>(kFusePassthroughFlag >> 32);  // flags2 (byte 32)
    reply.out[9] = 1;                                                  // max_stack_depth (36)
    if (::write(fd_.get(), &reply, sizeof reply) != static_cast<ssize_t>(sizeof reply)) {
      error_ = std::string("INIT reply: ") + std::strerror(errno);
    }
  }

  std::string mountpoint_;
  UniqueFd fd_;
  bool mounted_ = false;
  std::string error_;
};

class BrokerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SKIP_UNLESS_MAPPER_TESTS_CAN_RUN();
    dirs_ = std::make_unique<VolumeDirs>();
    conn_ = std::make_unique<PassthroughConnection>(dirs_->mountpoint());
    ASSERT_EQ(conn_->error(), "");
    UniqueFd root(::open(dirs_->backing().c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    ASSERT_TRUE(root);
    struct stat st {};
    ASSERT_EQ(::fstat(root.get(), &st), 0);
    cfg_.tenant = Identity{kTenantUid, kTenantGid, {kSharedGid}};
    cfg_.fuse_fd = conn_->fd();
    cfg_.volume_dev = st.st_dev;
    ASSERT_TRUE(mount_id_of(root.get(), &cfg_.volume_mnt_id).ok());
  }
  void TearDown() override {
    broker_.reset();
    conn_.reset();
    dirs_.reset();
  }

  void start_broker() {
    auto b = BackingBroker::start(cfg_);
    ASSERT_TRUE(b.ok()) << b.status().message();
    broker_ = std::move(b.value());
  }
  std::string backing(const std::string& rel) const { return dirs_->backing() + "/" + rel; }
  // A file of the volume, made as root and given to uid:gid with `mode`.
  std::string make_file(const std::string& rel, uid_t uid, gid_t gid, mode_t mode) {
    const std::string path = backing(rel);
    EXPECT_TRUE(write_file(path, "data", mode));
    EXPECT_EQ(::chown(path.c_str(), uid, gid), 0);
    EXPECT_EQ(::chmod(path.c_str(), mode), 0);
    return path;
  }
  // Sends the file at `path`, opened by this (root) process with `flags`.
  int register_path(const std::string& path, int flags) {
    UniqueFd fd(::open(path.c_str(), flags | O_CLOEXEC));
    EXPECT_TRUE(fd) << path << ": " << std::strerror(errno);
    return broker_->register_file(fd.get());
  }

  std::unique_ptr<VolumeDirs> dirs_;
  std::unique_ptr<PassthroughConnection> conn_;
  BrokerConfig cfg_;
  std::unique_ptr<BackingBroker> broker_;
};

TEST_F(BrokerTest, RegistersAFileTheTenantMayReadAndWrite) {
  start_broker();
  const int id = register_path(make_file("rw", kTenantUid, kTenantGid, 0600), O_RDONLY);
  ASSERT_GE(id, 0) << std::strerror(-id);
  EXPECT_EQ(broker_->close_id(id), 0);
  // A closed id is gone.
  EXPECT_EQ(broker_->close_id(id), -ENOENT);
}

TEST_F(BrokerTest, ReleasedIdsAreGoneBeforeTheNextRequest) {
  start_broker();
  const int id = register_path(make_file("rw", kTenantUid, kTenantGid, 0600), O_RDWR);
  ASSERT_GE(id, 0) << std::strerror(-id);
  broker_->release_id(id);  // no reply
  EXPECT_EQ(broker_->close_id(id), -ENOENT);
}

TEST_F(BrokerTest, RefusesAFileTheTenantMayOnlyRead) {
  start_broker();
  EXPECT_EQ(register_path(make_file("ro", kOtherUid, kOtherGid, 0644), O_RDWR), -EACCES);
  EXPECT_EQ(register_path(make_file("ro-own", kTenantUid, kTenantGid, 0444), O_RDWR), -EACCES);
}

TEST_F(BrokerTest, RefusesAFileOfAnotherUid) {
  start_broker();
  EXPECT_EQ(register_path(make_file("private", kOtherUid, kOtherGid, 0600), O_RDWR), -EACCES);
}

TEST_F(BrokerTest, RefusesAnOPathFd) {
  start_broker();
  EXPECT_EQ(register_path(make_file("rw", kTenantUid, kTenantGid, 0600), O_PATH), -EINVAL);
}

TEST_F(BrokerTest, RefusesAFileOnAnotherFilesystem) {
  const std::string sub = dirs_->backing() + "/tmpfs";
  ASSERT_EQ(::mkdir(sub.c_str(), 0755), 0);
  ScopedTmpfs tmpfs(sub);
  ASSERT_TRUE(tmpfs.mounted());
  start_broker();
  EXPECT_EQ(register_path(make_file("tmpfs/rw", kTenantUid, kTenantGid, 0666), O_RDWR), -EXDEV);
}

TEST_F(BrokerTest, RefusesAFileOfAnotherMountOfTheSameFilesystem) {
  const std::string sub = dirs_->backing() + "/bind";
  ASSERT_EQ(::mkdir(sub.c_str(), 0755), 0);
  ASSERT_EQ(::mount(dirs_->backing().c_str(), sub.c_str(), nullptr, MS_BIND, nullptr), 0);
  make_file("rw", kTenantUid, kTenantGid, 0600);
  start_broker();
  EXPECT_EQ(register_path(sub + "/rw", O_RDWR), -EXDEV);
  ::umount2(sub.c_str(), MNT_DETACH);
}

TEST_F(BrokerTest, RefusesAFifo) {
  const std::string path = backing("fifo");
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
  ASSERT_EQ(::chown(path.c_str(), kTenantUid, kTenantGid), 0);
  start_broker();
  EXPECT_EQ(register_path(path, O_RDWR | O_NONBLOCK), -EINVAL);
}

TEST_F(BrokerTest, RefusesADirectory) {
  start_broker();
  EXPECT_EQ(register_path(dirs_->backing(), O_RDONLY | O_DIRECTORY), -EINVAL);
}

// /proc/PID/status fields of the broker.
std::map<std::string, std::string> status_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::map<std::string, std::string> fields;
  for (std::string line; std::getline(in, line);) {
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(" \t"));
    value.erase(value.find_last_not_of(" \t") + 1);
    fields[line.substr(0, colon)] = value;
  }
  return fields;
}

void expect_confined(pid_t pid);

// Every broker of a volume: one per CPU here (the machine has at most
// kMaxBrokers CPUs), each pinned to its own.
TEST_F(BrokerTest, RunsWithOnlyCapSysAdminAsTheTenantUnderSeccomp) {
  cfg_.cpus = allowed_cpus();
  ASSERT_FALSE(cfg_.cpus.empty());
  start_broker();
  const std::vector<pid_t> pids = broker_->pids();
  ASSERT_EQ(pids.size(), std::min(cfg_.cpus.size(), kMaxBrokers));
  for (size_t i = 0; i < pids.size(); ++i) {
    SCOPED_TRACE("broker " + std::to_string(i) + ", pid " + std::to_string(pids[i]));
    expect_confined(pids[i]);
    if (cfg_.cpus.size() <= kMaxBrokers) {
      EXPECT_EQ(status_of(pids[i])["Cpus_allowed_list"], std::to_string(cfg_.cpus[i]));
    }
  }
}

// An id registered by one CPU's broker can be closed through another's:
// ids belong to the FUSE connection.
TEST_F(BrokerTest, AnyBrokerClosesAnIdAnotherRegistered) {
  cfg_.cpus = allowed_cpus();
  if (cfg_.cpus.size() < 2) GTEST_SKIP() << "needs two CPUs";
  start_broker();
  const std::string path = make_file("rw", kTenantUid, kTenantGid, 0600);
  int id = -1;
  std::thread([&] {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cfg_.cpus[0], &set);
    ASSERT_EQ(::sched_setaffinity(0, sizeof set, &set), 0);
    id = register_path(path, O_RDWR);
  }).join();
  ASSERT_GE(id, 0) << std::strerror(-id);
  std::thread([&] {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cfg_.cpus[1], &set);
    ASSERT_EQ(::sched_setaffinity(0, sizeof set, &set), 0);
    EXPECT_EQ(broker_->close_id(id), 0);
    EXPECT_EQ(broker_->close_id(id), -ENOENT);
  }).join();
}

void expect_confined(pid_t pid) {
  auto st = status_of(pid);
  const std::string sys_admin = "0000000000200000";  // bit 21
  EXPECT_EQ(st["CapEff"], sys_admin);
  EXPECT_EQ(st["CapPrm"], sys_admin);
  EXPECT_EQ(st["CapBnd"], sys_admin);
  EXPECT_EQ(st["CapInh"], "0000000000000000");
  EXPECT_EQ(st["CapAmb"], "0000000000000000");
  EXPECT_EQ(st["NoNewPrivs"], "1");
  EXPECT_EQ(st["Seccomp"], "2");
  // real, effective, saved: the reserved process id; filesystem: the tenant.
  EXPECT_EQ(st["Uid"], "2147483646\t2147483646\t2147483646\t" + std::to_string(kTenantUid));
  EXPECT_EQ(st["Gid"], "2147483646\t2147483646\t2147483646\t" + std::to_string(kTenantGid));
  EXPECT_EQ(st["Groups"], std::to_string(kSharedGid));
  // Non-dumpable: /proc/PID files belong to root, not to the process's uid.
  struct stat proc {};
  ASSERT_EQ(::stat(("/proc/" + std::to_string(pid) + "/status").c_str(), &proc), 0);
  EXPECT_EQ(proc.st_uid, 0u);
}

TEST_F(BrokerTest, ExitsWhenTheMapperClosesItsSocket) {
  cfg_.cpus = allowed_cpus();
  start_broker();
  const std::vector<pid_t> pids = broker_->pids();
  ASSERT_FALSE(pids.empty());
  broker_.reset();  // closes the sockets and reaps the brokers
  for (pid_t pid : pids) EXPECT_NE(::kill(pid, 0), 0) << pid;
}

// Runs `act` in a child confined as the broker; its wait status.
int status_after_confined(const BrokerConfig& cfg, const std::function<void()>& act) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    if (!confine_as_broker(cfg).ok()) ::_exit(2);
    act();
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return status;
}

bool killed_by_seccomp(int status) { return WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS; }

TEST_F(BrokerTest, SeccompAllowlistKillsAnythingElse) {
  const int fuse = cfg_.fuse_fd;
  // What the loop uses survives.
  int status = status_after_confined(cfg_, [fuse] {
    if (::fcntl(fuse, F_GETFL) < 0) ::_exit(3);
    uint32_t none = 12345;
    ::ioctl(fuse, kFuseDevIocBackingClose, &none);  // ENOENT, not a kill
  });
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;

  const std::map<std::string, std::function<void()>> forbidden = {
      {"getpid", [] { ::syscall(SYS_getpid); }},
      {"write", [] { [[maybe_unused]] ssize_t n = ::write(2, "x", 1); }},
      {"socket", [] { ::socket(AF_UNIX, SOCK_STREAM, 0); }},
      {"another fuse ioctl (CLONE)",
       [fuse] {
         uint32_t other = static_cast<uint32_t>(fuse);
         ::ioctl(fuse, 0x8004e500, &other);
       }},
      {"backing ioctl on another fd",
       [] {
         FuseBackingMap map{0, 0, 0};
         ::ioctl(0, kFuseDevIocBackingOpen, &map);
       }},
      {"openat with O_CREAT",
       [] { ::syscall(SYS_openat, AT_FDCWD, "x", O_RDWR | O_CREAT | O_CLOEXEC, 0600); }},
      {"openat with O_PATH", [] { ::syscall(SYS_openat, AT_FDCWD, "/", O_PATH | O_CLOEXEC); }},
      {"fcntl other than F_GETFL",
       [fuse] {
         struct flock lk {};
         lk.l_type = F_RDLCK;
         ::fcntl(fuse, F_SETLK, &lk);
       }},
  };
  for (const auto& [what, act] : forbidden) {
    EXPECT_TRUE(killed_by_seccomp(status_after_confined(cfg_, act))) << what;
  }
}

}  // namespace
}  // namespace tenantfs::testing

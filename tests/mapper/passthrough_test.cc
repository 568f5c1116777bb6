// FUSE passthrough (mapper/fuse_passthrough.h, mapper/backing_broker.h) as a
// container sees it: the same permissions per open, the same owners on the
// storage, the data path bypassing the mapper when it is on, and files the
// broker refuses still working.
#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/cpus.h"
#include "mapper/backing_broker.h"
#include "tests/mapper/mapper_fixture.h"

namespace tenantfs::testing {
namespace {

using std::chrono::milliseconds;

// Whether this run of the suite expects passthrough on in strict mode.
bool passthrough_expected() { return test_passthrough_mode() != "off"; }

std::string pread_string(int fd, size_t len, off_t off) {
  std::string out(len, '\0');
  const ssize_t n = ::pread(fd, out.data(), len, off);
  out.resize(n > 0 ? static_cast<size_t>(n) : 0);
  return out;
}

class PassthroughTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SKIP_UNLESS_MAPPER_TESTS_CAN_RUN();
    vol_ = std::make_unique<MountedVolume>();
  }
  void start() { ASSERT_EQ(vol_->start(), "ready"); }
  std::string m(const std::string& rel) const { return vol_->path(rel); }
  std::string b(const std::string& rel) const { return vol_->backing_path(rel); }
  // A file on the storage with `data`, owned by uid:gid with `mode`.
  void make_backing_file(const std::string& rel, const std::string& data, uid_t uid, gid_t gid,
                         mode_t mode) {
    ASSERT_TRUE(write_file(b(rel), data, mode));
    ASSERT_EQ(::chown(b(rel).c_str(), uid, gid), 0);
    ASSERT_EQ(::chmod(b(rel).c_str(), mode), 0);
  }
  // Overwrites bytes of a storage file behind the mount's back, at `off`.
  bool overwrite_on_storage(const std::string& rel, const std::string& data, off_t off = 0) {
    UniqueFd w(::open(b(rel).c_str(), O_WRONLY | O_CLOEXEC));
    return w && ::pwrite(w.get(), data.data(), data.size(), off) ==
                    static_cast<ssize_t>(data.size());
  }
  // Whether a change made on the storage behind `fd` (its last byte within
  // the first 64) shows in the fd's next read at once. Through a passthrough
  // open it always does. Through the mapper the page cache keeps the bytes
  // read until strict mode's attributes expire (1 s), so on a loaded host a
  // try that takes longer sees the change too.
  bool change_shows_at_once(int fd, const std::string& rel) {
    const std::string before = pread_string(fd, 64, 0);
    if (before.empty()) return false;
    const std::string mark = before.back() == '#' ? "%" : "#";
    if (!overwrite_on_storage(rel, mark, static_cast<off_t>(before.size() - 1))) return false;
    const std::string after = pread_string(fd, 64, 0);
    return after.size() == before.size() && after.back() == mark[0];
  }
  // Proof that `fd` is served by the mapper: a try that shows the cached
  // bytes, retried because a slow try proves nothing.
  bool served_by_the_mapper(int fd, const std::string& rel) {
    return eventually([&] { return !change_shows_at_once(fd, rel); }, milliseconds(5000));
  }
  // What this run expects of `fd`: with passthrough on, every read sees the
  // storage; with it off, the mapper serves it.
  void expect_reads_as_configured(int fd, const std::string& rel) {
    if (passthrough_expected()) {
      EXPECT_TRUE(change_shows_at_once(fd, rel)) << "reads of " << rel << " do not pass through";
    } else {
      EXPECT_TRUE(served_by_the_mapper(fd, rel)) << "reads of " << rel << " pass through";
    }
  }
  // Whether an open made now passes through. The kernel sends RELEASE after
  // close() returns, so an open right after the last close may still find
  // the file open on the mapper's path: callers retry (eventually).
  bool next_open_passes_through(const std::string& rel) {
    UniqueFd fd(::open(m(rel).c_str(), O_RDWR | O_CLOEXEC));
    return fd && change_shows_at_once(fd.get(), rel);
  }
  std::unique_ptr<MountedVolume> vol_;
};

// The pids whose parent is `ppid`.
std::vector<pid_t> children_of(pid_t ppid) {
  std::vector<pid_t> out;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return out;
  while (const dirent* d = ::readdir(proc)) {
    const pid_t pid = static_cast<pid_t>(std::atoi(d->d_name));
    if (pid <= 0) continue;
    std::ifstream in("/proc/" + std::string(d->d_name) + "/stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const size_t paren = stat.rfind(')');
    if (paren == std::string::npos) continue;
    int parent = 0;
    char state = 0;
    if (std::sscanf(stat.c_str() + paren + 1, " %c %d", &state, &parent) == 2 && parent == ppid &&
        state != 'Z') {
      out.push_back(pid);
    }
  }
  ::closedir(proc);
  return out;
}

// Whether `pid` exists and is not a zombie.
bool running(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] != 'Z' &&
         stat[paren + 2] != 'X';
}

std::vector<std::string> cmdline_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline");
  std::vector<std::string> args;
  for (std::string arg; std::getline(in, arg, '\0');) args.push_back(arg);
  return args;
}

TEST_F(PassthroughTest, ReadinessSaysWhetherPassthroughIsOn) {
  start();
  EXPECT_EQ(vol_->mapper()->ready_field("passthrough"), passthrough_expected() ? "on" : "off")
      << vol_->log();
}

// Passthrough replaces exclusive mode's writeback cache (the kernel refuses
// both together): data written stays visible through the mount either way.
TEST_F(PassthroughTest, ExclusiveModeUsesPassthroughInsteadOfTheWritebackCache) {
  vol_ = std::make_unique<MountedVolume>(cache_options("exclusive"));
  start();
  EXPECT_EQ(vol_->mapper()->ready_field("passthrough"), passthrough_expected() ? "on" : "off");
  ASSERT_TRUE(write_file(m("f"), "exclusive"));
  EXPECT_EQ(read_file(b("f")), "exclusive");
  EXPECT_EQ(read_file(m("f")), "exclusive");
}

// With passthrough the kernel reads the storage itself on every read; the
// mapper's cached path serves a second read of an open file from the page
// cache (strict mode keeps pages until the attributes time out). So a
// change made on the storage behind an open file shows at once exactly when
// the reads bypass the mapper.
TEST_F(PassthroughTest, ReadsOfAnOpenFileSeeTheStorageAtOnceOnlyWithPassthrough) {
  make_backing_file("f", "first version", kTenantUid, kTenantGid, 0644);
  start();
  UniqueFd fd(::open(m("f").c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(fd) << std::strerror(errno);
  ASSERT_EQ(pread_string(fd.get(), 13, 0), "first version");
  expect_reads_as_configured(fd.get(), "f");
}

// A CREATE is answered without passthrough (registering costs more than
// most new files' writes, identity_fs.cc attach_backing): the creating open
// is served by the mapper, and the file passes through from its next open
// on. Each try creates a new file, since only its creating open counts.
TEST_F(PassthroughTest, CreatedFilesPassThroughFromTheirNextOpen) {
  start();
  int tries = 0;
  std::string name;
  EXPECT_TRUE(eventually(
      [&] {
        name = "f" + std::to_string(tries++);
        UniqueFd created(::open(m(name).c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600));
        return created && ::pwrite(created.get(), "first version", 13, 0) == 13 &&
               !change_shows_at_once(created.get(), name);
      },
      milliseconds(5000)))
      << "the creating open of " << name << " passes through";
  if (passthrough_expected()) {
    EXPECT_TRUE(eventually([&] { return next_open_passes_through(name); }, milliseconds(5000)));
  }
  EXPECT_EQ(read_file(b(name)).substr(0, 12), "first versio");
}

TEST_F(PassthroughTest, OpenForWritingAFileTheTenantMayOnlyReadFailsWithEacces) {
  make_backing_file("readable", "read me", kOtherUid, kOtherGid, 0644);
  start();
  const Caller root{0, 0, {}};
  Outcome w = run_as(root, [&] { return sys(::open(m("readable").c_str(), O_RDWR)); });
  EXPECT_EQ(w.err, EACCES) << describe(w);
  // The read-only open still works, served by the mapper.
  Outcome r = run_as(root, [&] {
    Outcome o;
    o.data = read_file(m("readable"));
    return o;
  });
  EXPECT_EQ(r.data, "read me");
  // Refused registrations must not leave the file writable by any route.
  struct stat st = lstat_path(b("readable"));
  EXPECT_EQ(st.st_size, 7);
}

TEST_F(PassthroughTest, WritesReadsAndMmapReachTheStorageAsTheTenant) {
  start();
  const std::string data = random_bytes(3 * 1024 * 1024 + 123, 7);
  const auto before = std::chrono::system_clock::now() - std::chrono::seconds(2);
  {
    UniqueFd fd(::open(m("new").c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0640));
    ASSERT_TRUE(fd) << std::strerror(errno);
    ASSERT_EQ(::pwrite(fd.get(), data.data(), data.size(), 0), static_cast<ssize_t>(data.size()));
    // Size and mtime come from the mapper's GETATTR; they must show the
    // writes that bypassed it.
    struct stat through {};
    ASSERT_EQ(::fstat(fd.get(), &through), 0);
    EXPECT_EQ(through.st_size, static_cast<off_t>(data.size()));
    EXPECT_GT(through.st_mtim.tv_sec, std::chrono::system_clock::to_time_t(before));
    void* map = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
    ASSERT_NE(map, MAP_FAILED) << std::strerror(errno);
    std::memcpy(map, "MMAP", 4);
    ASSERT_EQ(::msync(map, 4096, MS_SYNC), 0);
    ::munmap(map, 4096);
    EXPECT_EQ(pread_string(fd.get(), 4, 0), "MMAP");
  }
  std::string expect = data;
  expect.replace(0, 4, "MMAP");
  EXPECT_TRUE(read_file(b("new")) == expect) << "storage differs from what was written";
  EXPECT_TRUE(read_file(m("new")) == expect) << "mount differs from what was written";
  struct stat st = lstat_path(b("new"));
  EXPECT_EQ(st.st_uid, kTenantUid);
  EXPECT_EQ(st.st_gid, kTenantGid);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
}

TEST_F(PassthroughTest, TwoOpensOfOneFileShareItsDataAndReopenAfterClose) {
  make_backing_file("shared", "0123456789", kTenantUid, kTenantGid, 0600);
  start();
  for (int round = 0; round < 3; ++round) {
    UniqueFd a(::open(m("shared").c_str(), O_RDWR | O_CLOEXEC));
    UniqueFd r(::open(m("shared").c_str(), O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(a && r) << "round " << round << ": " << std::strerror(errno);
    const std::string mark = "r" + std::to_string(round);
    ASSERT_EQ(::pwrite(a.get(), mark.data(), mark.size(), 0), 2);
    EXPECT_EQ(pread_string(r.get(), 10, 0), mark + "23456789");
  }
  EXPECT_EQ(read_file(b("shared")), "r223456789");
}

// The broker refuses files the tenant may only read, and files on another
// mount; both stay on the mapper's path and keep working, also when opened
// next to a passthrough open of another file.
TEST_F(PassthroughTest, FilesTheBrokerRefusesStillWork) {
  make_backing_file("readonly", "only for reading", kTenantUid, kTenantGid, 0444);
  make_backing_file("rw", "rw", kTenantUid, kTenantGid, 0644);
  start();
  UniqueFd rw(::open(m("rw").c_str(), O_RDWR | O_CLOEXEC));
  ASSERT_TRUE(rw);
  UniqueFd ro(::open(m("readonly").c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(ro) << std::strerror(errno);
  EXPECT_EQ(pread_string(ro.get(), 64, 0), "only for reading");
  EXPECT_EQ(::pwrite(rw.get(), "RW", 2, 0), 2);
  EXPECT_EQ(read_file(b("rw")), "RW");
}

// The kernel fails an open with EIO when one inode would mix passthrough and
// cached opens: a file opened while the broker refused it (read-only then)
// stays on the mapper's path for every open until the last one closes, and
// passes through again afterwards.
TEST_F(PassthroughTest, OpensOfAFileTheBrokerRefusedStayConsistentUntilItIsClosed) {
  make_backing_file("f", "0123456789", kTenantUid, kTenantGid, 0444);
  start();
  UniqueFd refused(::open(m("f").c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(refused) << std::strerror(errno);
  ASSERT_EQ(::chmod(b("f").c_str(), 0644), 0);
  {
    UniqueFd rw(::open(m("f").c_str(), O_RDWR | O_CLOEXEC));
    ASSERT_TRUE(rw) << std::strerror(errno);
    ASSERT_EQ(::pwrite(rw.get(), "AB", 2, 0), 2);
    EXPECT_EQ(pread_string(refused.get(), 10, 0), "AB23456789");
  }
  refused.reset();
  if (passthrough_expected()) {
    EXPECT_TRUE(eventually([&] { return next_open_passes_through("f"); }, milliseconds(5000)));
  } else {
    UniqueFd fd(::open(m("f").c_str(), O_RDWR | O_CLOEXEC));
    ASSERT_TRUE(fd) << std::strerror(errno);
    EXPECT_TRUE(served_by_the_mapper(fd.get(), "f"));
  }
  EXPECT_EQ(read_file(b("f")).substr(0, 2), "AB");
}

// O_DIRECT opens are served by the mapper (direct_io) unless the file is
// open for passthrough already, when the kernel insists on passthrough too;
// either order works, and the data is the same through both.
TEST_F(PassthroughTest, DirectAndBufferedOpensOfOneFileMix) {
  const std::string block(4096, 'x');
  make_backing_file("f", block, kTenantUid, kTenantGid, 0644);
  start();
  void* buf = nullptr;
  ASSERT_EQ(::posix_memalign(&buf, 4096, 4096), 0);
  std::unique_ptr<void, decltype(&std::free)> owned(buf, &std::free);
  std::memset(buf, 'd', 4096);
  for (bool direct_first : {true, false}) {
    UniqueFd first(::open(m("f").c_str(), (direct_first ? O_DIRECT : 0) | O_RDWR | O_CLOEXEC));
    UniqueFd second(::open(m("f").c_str(), (direct_first ? 0 : O_DIRECT) | O_RDWR | O_CLOEXEC));
    ASSERT_TRUE(first && second) << "direct first " << direct_first << ": " << std::strerror(errno);
    const int direct = direct_first ? first.get() : second.get();
    const int buffered = direct_first ? second.get() : first.get();
    ASSERT_EQ(::pwrite(direct, buf, 4096, 0), 4096) << std::strerror(errno);
    EXPECT_EQ(pread_string(buffered, 4, 0), "dddd");
    ASSERT_EQ(::pwrite(buffered, "bb", 2, 0), 2);
    ASSERT_EQ(::fsync(buffered), 0);
    ASSERT_EQ(::pread(direct, buf, 4096, 0), 4096) << std::strerror(errno);
    EXPECT_EQ(std::string(static_cast<char*>(buf), 4), "bbdd");
    std::memset(buf, 'd', 4096);
  }
}

// First opens of one file made at once from threads on every CPU: each CPU
// has its own broker, and registration runs outside the open table's lock,
// so only the table's "registering" mark keeps two of them from registering
// the inode twice (the kernel fails an open answered with a second id with
// EIO). Every open must succeed and, with passthrough, see a change made on
// the storage at once.
TEST_F(PassthroughTest, SimultaneousFirstOpensOfOneFileFromEveryCpuAllSucceed) {
  constexpr int kFiles = 20;
  constexpr int kThreadsPerCpu = 3;
  const std::vector<int> cpus = allowed_cpus();
  ASSERT_FALSE(cpus.empty());
  for (int f = 0; f < kFiles; ++f) {
    make_backing_file("f" + std::to_string(f), "stored", kTenantUid, kTenantGid, 0600);
  }
  start();
  for (int f = 0; f < kFiles; ++f) {
    SCOPED_TRACE("file f" + std::to_string(f));
    const std::string path = m("f" + std::to_string(f));
    const size_t n = cpus.size() * kThreadsPerCpu;
    std::vector<UniqueFd> fds(n);
    std::vector<int> errs(n, 0);
    std::atomic<size_t> waiting{n};
    std::vector<std::thread> threads;
    for (size_t i = 0; i < n; ++i) {
      threads.emplace_back([&, i] {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpus[i % cpus.size()], &set);
        ::sched_setaffinity(0, sizeof set, &set);
        waiting.fetch_sub(1);
        while (waiting.load() != 0) {
        }
        fds[i].reset(::open(path.c_str(), O_RDWR | O_CLOEXEC));
        errs[i] = fds[i] ? 0 : errno;
      });
    }
    for (auto& t : threads) t.join();
    for (size_t i = 0; i < n; ++i) {
      ASSERT_TRUE(fds[i]) << "open " << i << ": " << std::strerror(errs[i]);
      EXPECT_EQ(pread_string(fds[i].get(), 6, 0), "stored");
    }
    for (size_t i = 0; i < n; ++i) {
      SCOPED_TRACE("open " + std::to_string(i));
      expect_reads_as_configured(fds[i].get(), "f" + std::to_string(f));
    }
  }
}

// A broker that dies takes passthrough with it, not the volume: files open
// through the mapper from then on, and their data is right.
TEST_F(PassthroughTest, FilesStillWorkAfterTheBrokersAreKilled) {
  start();
  if (!passthrough_expected()) GTEST_SKIP() << "no broker without passthrough";
  ASSERT_TRUE(write_file(m("before"), "written with passthrough"));
  for (pid_t broker : children_of(vol_->mapper()->pid())) ASSERT_EQ(::kill(broker, SIGKILL), 0);
  ASSERT_TRUE(eventually([&] { return children_of(vol_->mapper()->pid()).empty(); },
                         milliseconds(5000)));
  EXPECT_EQ(read_file(m("before")), "written with passthrough");
  ASSERT_TRUE(write_file(m("after"), "written through the mapper"));
  EXPECT_EQ(read_file(b("after")), "written through the mapper");
  EXPECT_EQ(read_file(m("after")), "written through the mapper");
  UniqueFd fd(::open(m("before").c_str(), O_RDWR | O_APPEND | O_CLOEXEC));
  ASSERT_TRUE(fd) << std::strerror(errno);
  ASSERT_EQ(::write(fd.get(), "!", 1), 1);
  fd.reset();
  EXPECT_EQ(read_file(b("before")), "written with passthrough!");
  EXPECT_TRUE(running(vol_->mapper()->pid())) << vol_->log();
}

TEST_F(PassthroughTest, BrokerIsNamedBrokerAndDiesWithTheMapper) {
  start();
  const pid_t mapper = vol_->mapper()->pid();
  const std::vector<pid_t> kids = children_of(mapper);
  if (!passthrough_expected()) {
    EXPECT_TRUE(kids.empty()) << "a broker runs with passthrough off";
    return;
  }
  // One per CPU the mapper may run on (backing_broker.h).
  EXPECT_EQ(kids.size(), std::min(allowed_cpus().size(), kMaxBrokers));
  for (pid_t broker : kids) {
    const std::vector<std::string> args = cmdline_of(broker);
    ASSERT_GE(args.size(), 2u);
    // The plugin finds mappers by args[1] == "mapper" (find_mapper_processes).
    EXPECT_EQ(args[1], "broker");
  }
  EXPECT_EQ(cmdline_of(mapper).at(1), "mapper");
  vol_->mapper()->signal(SIGKILL);
  // Dead: gone, or a zombie until whoever inherited it reaps it.
  EXPECT_TRUE(eventually([&] {
    for (pid_t broker : kids) {
      if (running(broker)) return false;
    }
    return true;
  }, milliseconds(5000)))
      << "a broker outlived its mapper";
}

}  // namespace
}  // namespace tenantfs::testing

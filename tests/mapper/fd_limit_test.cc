// The mapper holds a bounded number of fds however many files the kernel
// caches (inode_table.h): walks, creates at the fd limit, and objects
// replaced on the storage after their fd was closed.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <vector>

#include "tests/mapper/mapper_fixture.h"

namespace tenantfs::testing {
namespace {

const Caller kRoot{0, 0, {}};

// Small enough that a few thousand files are far beyond it.
constexpr unsigned kMaxFds = 64;

VolumeOptions with_max_fds(unsigned max_fds, const std::string& cache = "") {
  VolumeOptions o;
  o.max_fds = max_fds;
  o.cache = cache;
  return o;
}

class FdLimitTest : public ::testing::Test {
 protected:
  void SetUp() override { SKIP_UNLESS_MAPPER_TESTS_CAN_RUN(); }
};

// `dirs` directories of `files` files each, owned by the tenant.
void populate(const MountedVolume& vol, int dirs, int files) {
  for (int d = 0; d < dirs; ++d) {
    const std::string dir = vol.backing_path("d" + std::to_string(d));
    ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0) << std::strerror(errno);
    ASSERT_EQ(::chown(dir.c_str(), kTenantUid, kTenantGid), 0);
    for (int f = 0; f < files; ++f) {
      const std::string path = dir + "/f" + std::to_string(f);
      ASSERT_TRUE(write_file(path, "file " + std::to_string(f)));
      ASSERT_EQ(::chown(path.c_str(), kTenantUid, kTenantGid), 0);
    }
  }
}

// What a walk through the mount met: entries seen, and every failed call
// ("what path: errno").
struct Walk {
  long entries = 0;
  std::vector<std::string> errors;
};

// Lists every directory under `dir`, lstats every entry and reads every
// file, as `find -type f -exec cat`, `ls -lR` and `du` together would.
void walk(const std::string& dir, Walk* w) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) {
    w->errors.push_back("opendir " + dir + ": " + errno_name(errno));
    return;
  }
  std::vector<std::string> subdirs;
  errno = 0;
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    const std::string path = dir + "/" + name;
    ++w->entries;
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0) {
      w->errors.push_back("lstat " + path + ": " + errno_name(errno));
    } else if (S_ISDIR(st.st_mode)) {
      subdirs.push_back(path);
    } else if (S_ISREG(st.st_mode)) {
      UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
      char buf[64];
      if (!fd || ::read(fd.get(), buf, sizeof buf) < 0) {
        w->errors.push_back("read " + path + ": " + errno_name(errno));
      }
    }
    errno = 0;
  }
  if (errno != 0) w->errors.push_back("readdir " + dir + ": " + errno_name(errno));
  ::closedir(d);
  for (const std::string& sub : subdirs) walk(sub, w);
}

// Runs walk() as container root in a child; ret is the number of entries,
// data the errors (at most 5, then how many more).
Outcome walk_as_root(const std::string& dir) {
  return run_as(kRoot, [&] {
    Walk w;
    walk(dir, &w);
    Outcome o;
    o.ret = w.entries;
    for (size_t i = 0; i < w.errors.size() && i < 5; ++i) o.data += w.errors[i] + "\n";
    if (w.errors.size() > 5) o.data += "... " + std::to_string(w.errors.size() - 5) + " more\n";
    return o;
  });
}

TEST_F(FdLimitTest, WalkOfThousandsOfFilesHasNoErrorAndStaysUnderTheLimit) {
  MountedVolume vol(with_max_fds(kMaxFds));
  populate(vol, 30, 100);
  ASSERT_EQ(vol.start(), "ready");
  // Twice: the second walk finds every object cached by the kernel, with
  // most of their fds closed since.
  for (int round = 0; round < 2; ++round) {
    Outcome o = walk_as_root(vol.mountpoint());
    EXPECT_EQ(o.ret, 30 + 30 * 100) << "round " << round;
    EXPECT_EQ(o.data, "") << "round " << round;
    const int fds = count_fds(vol.mapper()->pid());
    EXPECT_GT(fds, 0);
    EXPECT_LE(fds, static_cast<int>(kMaxFds)) << "round " << round;
  }
}

TEST_F(FdLimitTest, CreateThatFailsAtTheFdLimitLeavesNoFileBehind) {
  MountedVolume vol(with_max_fds(kMaxFds));
  ASSERT_EQ(vol.start(), "ready");
  // Open files each hold fds in the mapper until they are closed: create
  // (and keep open) until the mapper has none left, then close one and
  // create again, so that creates meet every number of free fds down to 0.
  // Whatever a create answers, the storage must agree.
  Outcome o = run_as(kRoot, [&] {
    std::vector<UniqueFd> open_files;
    std::string report;
    int refused = 0;
    for (int i = 0; i < 4 * static_cast<int>(kMaxFds); ++i) {
      const std::string name = "f" + std::to_string(i);
      UniqueFd fd(::open(vol.path(name).c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
      const int err = errno;
      const bool exists = ::access(vol.backing_path(name).c_str(), F_OK) == 0;
      if (fd) {
        if (!exists) report += name + " created but not on the storage\n";
        open_files.push_back(std::move(fd));
        continue;
      }
      ++refused;
      const bool room = std::count(report.begin(), report.end(), '\n') < 10;  // a few say enough
      if (room && exists)
        report += name + " refused (" + errno_name(err) + ") but on the storage\n";
      if (room && err != EMFILE && err != ENFILE) report += name + ": " + errno_name(err) + "\n";
      // Free one of the mapper's fds (every other time), and try again.
      if (refused % 2 == 1 && !open_files.empty()) open_files.pop_back();
    }
    Outcome r;
    r.ret = refused;
    r.data = report;
    return r;
  });
  EXPECT_EQ(o.data, "");
  EXPECT_GT(o.ret, 0) << "the mapper's fd limit was never reached";
}

TEST_F(FdLimitTest, FileReplacedOnStorageAfterItsFdWasClosedIsServedAsTheNewFile) {
  // Exclusive: the kernel keeps names for an hour, so it keeps asking for
  // the objects it looked up first, whatever happened on the storage.
  MountedVolume vol(with_max_fds(kMaxFds, "exclusive"));
  ASSERT_TRUE(write_file(vol.backing_path("victim"), "old content"));
  ASSERT_TRUE(write_file(vol.backing_path("gone"), "removed on the storage"));
  populate(vol, 2, 200);
  ASSERT_EQ(vol.start(), "ready");
  Outcome first = run_as(kRoot, [&] {
    Outcome o;
    o.data = read_file(vol.path("victim")) + "|" + read_file(vol.path("gone"));
    return o;
  });
  ASSERT_EQ(first.data, "old content|removed on the storage");
  // Far more objects than the mapper keeps open: the two above lose their fds.
  ASSERT_EQ(walk_as_root(vol.mountpoint()).data, "");

  ASSERT_TRUE(write_file(vol.backing_path("victim.new"), "new content"));
  ASSERT_EQ(::rename(vol.backing_path("victim.new").c_str(), vol.backing_path("victim").c_str()),
            0);
  ASSERT_EQ(::unlink(vol.backing_path("gone").c_str()), 0);
  const struct stat on_storage = lstat_path(vol.backing_path("victim"));

  Outcome victim = run_as(kRoot, [&] {
    Outcome o;
    o.data = read_file(vol.path("victim"));
    struct stat st;
    o.ret = ::lstat(vol.path("victim").c_str(), &st) == 0 ? static_cast<long>(st.st_ino) : -1;
    return o;
  });
  EXPECT_EQ(victim.data, "new content");
  EXPECT_EQ(victim.ret, static_cast<long>(on_storage.st_ino));
  Outcome gone = run_as(kRoot, [&] {
    UniqueFd fd(::open(vol.path("gone").c_str(), O_RDONLY | O_CLOEXEC));
    return sys(fd ? 0 : -1);
  });
  EXPECT_EQ(gone.ret, -1) << "a file removed on the storage was still served";
  EXPECT_EQ(gone.err, ENOENT) << describe(gone);
}

TEST_F(FdLimitTest, FileUnlinkedWhileOpenStaysReachableThroughItsFd) {
  MountedVolume vol(with_max_fds(kMaxFds));
  populate(vol, 2, 200);
  ASSERT_EQ(vol.start(), "ready");
  Outcome o = run_as(kRoot, [&] {
    UniqueFd fd(::open(vol.path("kept").c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (!fd) return sys(-1);
    if (::unlink(vol.path("kept").c_str()) != 0) return sys(-1);
    // Far more objects than the mapper keeps open come and go meanwhile.
    Walk w;
    walk(vol.mountpoint(), &w);
    if (!w.errors.empty()) {
      Outcome bad = sys(-1);
      bad.data = w.errors.front();
      return bad;
    }
    // Reaches the mapper without a file handle: only the object's own fd,
    // kept while the file is open, can serve it (its name is gone).
    return sys(::fchmod(fd.get(), 0600));
  });
  EXPECT_EQ(o.ret, 0) << describe(o) << " " << o.data;
}

TEST_F(FdLimitTest, MaxFdsBelowTheMinimumIsRefusedWithTheReason) {
  MountedVolume vol(with_max_fds(8));
  EXPECT_NE(vol.start(), "ready");
  EXPECT_FALSE(find_mount(vol.mountpoint()));
  EXPECT_NE(vol.log().find("--max-fds"), std::string::npos) << vol.log();
}

}  // namespace
}  // namespace tenantfs::testing

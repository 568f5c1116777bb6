// The mapper must be indistinguishable from the storage itself as seen by the
// tenant. A table of system calls runs twice, in order, in one process each:
// on a native directory owned by the tenant while running as the tenant, and
// through the mount while running as root. Every step's result and errno
// must match. (The method of mergerfs's own tests.)
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <sstream>

#include "tests/mapper/mapper_fixture.h"

namespace tenantfs::testing {
namespace {

// A step returns a value to compare (0 for plain success) or -1 with errno
// set. File descriptors never leak into results: their numbers may differ.
struct Step {
  const char* name;
  std::function<long(const std::string& base)> run;
};

long open_close(const std::string& path, int flags, mode_t mode = 0644) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
  if (fd < 0) return -1;
  ::close(fd);
  return 0;
}

// Runs fn on a fresh fd of path; -1 with errno if the open fails.
long with_fd(const std::string& path, int flags, const std::function<long(int)>& fn) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC, 0644);
  if (fd < 0) return -1;
  long r = fn(fd);
  int saved = errno;
  ::close(fd);
  errno = saved;
  return r;
}

long type_and_mode(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return -1;
  return static_cast<long>(st.st_mode);
}

long size_of(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return -1;
  return static_cast<long>(st.st_size);
}

long entries_in(const std::string& path) {
  DIR* d = ::opendir(path.c_str());
  if (!d) return -1;
  long n = 0;
  while (::readdir(d)) ++n;
  ::closedir(d);
  return n;
}

const std::vector<Step>& steps() {
  static const std::vector<Step> table = {
      {"mkdir d", [](auto& b) { return static_cast<long>(::mkdir((b + "/d").c_str(), 0755)); }},
      {"mkdir d again",
       [](auto& b) { return static_cast<long>(::mkdir((b + "/d").c_str(), 0755)); }},
      {"stat d", [](auto& b) { return type_and_mode(b + "/d"); }},
      {"create f exclusively and write",
       [](auto& b) {
         return with_fd(b + "/f", O_WRONLY | O_CREAT | O_EXCL,
                        [](int fd) { return static_cast<long>(::write(fd, "hello", 5)); });
       }},
      {"create f exclusively again",
       [](auto& b) { return open_close(b + "/f", O_WRONLY | O_CREAT | O_EXCL); }},
      {"stat f", [](auto& b) { return type_and_mode(b + "/f"); }},
      {"size of f", [](auto& b) { return size_of(b + "/f"); }},
      {"open missing", [](auto& b) { return open_close(b + "/missing", O_RDONLY); }},
      {"open directory for writing", [](auto& b) { return open_close(b + "/d", O_WRONLY); }},
      {"open file with O_DIRECTORY",
       [](auto& b) { return open_close(b + "/f", O_RDONLY | O_DIRECTORY); }},
      {"open below a file", [](auto& b) { return open_close(b + "/f/x", O_RDONLY); }},
      {"create in missing directory",
       [](auto& b) { return open_close(b + "/missing/x", O_WRONLY | O_CREAT); }},
      {"create with O_CREAT|O_DIRECTORY",
       [](auto& b) { return open_close(b + "/cd", O_RDONLY | O_CREAT | O_DIRECTORY); }},
      {"mkdir below a file",
       [](auto& b) { return static_cast<long>(::mkdir((b + "/f/x").c_str(), 0755)); }},
      {"rmdir a file", [](auto& b) { return static_cast<long>(::rmdir((b + "/f").c_str())); }},
      {"unlink a directory",
       [](auto& b) { return static_cast<long>(::unlink((b + "/d").c_str())); }},
      {"unlink missing",
       [](auto& b) { return static_cast<long>(::unlink((b + "/missing").c_str())); }},
      {"create d/inner", [](auto& b) { return open_close(b + "/d/inner", O_WRONLY | O_CREAT); }},
      {"rmdir non-empty", [](auto& b) { return static_cast<long>(::rmdir((b + "/d").c_str())); }},
      {"rmdir dot", [](auto& b) { return static_cast<long>(::rmdir((b + "/d/.").c_str())); }},
      {"rename dir into itself",
       [](auto& b) {
         return static_cast<long>(::rename((b + "/d").c_str(), (b + "/d/sub").c_str()));
       }},
      {"rename file over dir",
       [](auto& b) { return static_cast<long>(::rename((b + "/f").c_str(), (b + "/d").c_str())); }},
      {"mkdir e", [](auto& b) { return static_cast<long>(::mkdir((b + "/e").c_str(), 0700)); }},
      {"rename dir over file",
       [](auto& b) { return static_cast<long>(::rename((b + "/e").c_str(), (b + "/f").c_str())); }},
      {"rename dir over non-empty dir",
       [](auto& b) { return static_cast<long>(::rename((b + "/e").c_str(), (b + "/d").c_str())); }},
      {"rename missing",
       [](auto& b) {
         return static_cast<long>(::rename((b + "/missing").c_str(), (b + "/x").c_str()));
       }},
      {"rename noreplace onto existing",
       [](auto& b) {
         return static_cast<long>(::renameat2(AT_FDCWD, (b + "/f").c_str(), AT_FDCWD,
                                              (b + "/e").c_str(), RENAME_NOREPLACE));
       }},
      {"rename exchange with missing",
       [](auto& b) {
         return static_cast<long>(::renameat2(AT_FDCWD, (b + "/f").c_str(), AT_FDCWD,
                                              (b + "/missing").c_str(), RENAME_EXCHANGE));
       }},
      {"rename with noreplace and exchange",
       [](auto& b) {
         return static_cast<long>(::renameat2(AT_FDCWD, (b + "/f").c_str(), AT_FDCWD,
                                              (b + "/e").c_str(),
                                              RENAME_NOREPLACE | RENAME_EXCHANGE));
       }},
      {"link a directory",
       [](auto& b) { return static_cast<long>(::link((b + "/d").c_str(), (b + "/dl").c_str())); }},
      {"link onto existing name",
       [](auto& b) { return static_cast<long>(::link((b + "/f").c_str(), (b + "/e").c_str())); }},
      {"link f to g",
       [](auto& b) { return static_cast<long>(::link((b + "/f").c_str(), (b + "/g").c_str())); }},
      {"link count of f",
       [](auto& b) {
         struct stat st {};
         return ::lstat((b + "/f").c_str(), &st) == 0 ? static_cast<long>(st.st_nlink) : -1L;
       }},
      {"symlink onto existing name",
       [](auto& b) { return static_cast<long>(::symlink("f", (b + "/f").c_str())); }},
      {"symlink with empty target",
       [](auto& b) { return static_cast<long>(::symlink("", (b + "/empty").c_str())); }},
      {"symlink s -> f",
       [](auto& b) { return static_cast<long>(::symlink("f", (b + "/s").c_str())); }},
      {"readlink s",
       [](auto& b) {
         char buf[16];
         return static_cast<long>(::readlink((b + "/s").c_str(), buf, sizeof buf));
       }},
      {"readlink a regular file",
       [](auto& b) {
         char buf[16];
         return static_cast<long>(::readlink((b + "/f").c_str(), buf, sizeof buf));
       }},
      {"open symlink with O_NOFOLLOW",
       [](auto& b) { return open_close(b + "/s", O_RDONLY | O_NOFOLLOW); }},
      {"truncate a directory",
       [](auto& b) { return static_cast<long>(::truncate((b + "/d").c_str(), 0)); }},
      {"truncate to negative size",
       [](auto& b) { return static_cast<long>(::truncate((b + "/f").c_str(), -1)); }},
      {"name too long",
       [](auto& b) { return open_close(b + "/" + std::string(256, 'a'), O_WRONLY | O_CREAT); }},
      {"longest name",
       [](auto& b) { return open_close(b + "/" + std::string(255, 'a'), O_WRONLY | O_CREAT); }},
      {"write to read-only fd",
       [](auto& b) {
         return with_fd(b + "/f", O_RDONLY,
                        [](int fd) { return static_cast<long>(::write(fd, "x", 1)); });
       }},
      {"read from write-only fd",
       [](auto& b) {
         char c;
         return with_fd(b + "/f", O_WRONLY,
                        [&](int fd) { return static_cast<long>(::read(fd, &c, 1)); });
       }},
      {"read a directory",
       [](auto& b) {
         char c;
         return with_fd(b + "/d", O_RDONLY,
                        [&](int fd) { return static_cast<long>(::read(fd, &c, 1)); });
       }},
      {"read past end",
       [](auto& b) {
         char c;
         return with_fd(b + "/f", O_RDONLY,
                        [&](int fd) { return static_cast<long>(::pread(fd, &c, 1, 1000)); });
       }},
      {"append",
       [](auto& b) {
         return with_fd(b + "/f", O_WRONLY | O_APPEND,
                        [](int fd) { return static_cast<long>(::write(fd, "!!", 2)); });
       }},
      {"size after append", [](auto& b) { return size_of(b + "/f"); }},
      {"fallocate on read-only fd",
       [](auto& b) {
         return with_fd(b + "/f", O_RDONLY,
                        [](int fd) { return static_cast<long>(::fallocate(fd, 0, 0, 10)); });
       }},
      {"getxattr missing",
       [](auto& b) {
         char v[8];
         return static_cast<long>(::getxattr((b + "/f").c_str(), "user.missing", v, sizeof v));
       }},
      {"setxattr create",
       [](auto& b) {
         return static_cast<long>(::setxattr((b + "/f").c_str(), "user.a", "1", 1, XATTR_CREATE));
       }},
      {"setxattr create again",
       [](auto& b) {
         return static_cast<long>(::setxattr((b + "/f").c_str(), "user.a", "1", 1, XATTR_CREATE));
       }},
      {"setxattr replace missing",
       [](auto& b) {
         return static_cast<long>(::setxattr((b + "/f").c_str(), "user.b", "1", 1, XATTR_REPLACE));
       }},
      {"getxattr size query",
       [](auto& b) {
         return static_cast<long>(::getxattr((b + "/f").c_str(), "user.a", nullptr, 0));
       }},
      {"getxattr buffer too small",
       [](auto& b) {
         ::setxattr((b + "/f").c_str(), "user.long", "0123456789", 10, 0);
         char v[4];
         return static_cast<long>(::getxattr((b + "/f").c_str(), "user.long", v, sizeof v));
       }},
      {"listxattr buffer too small",
       [](auto& b) {
         char v[1];
         return static_cast<long>(::listxattr((b + "/f").c_str(), v, sizeof v));
       }},
      {"removexattr missing",
       [](auto& b) {
         return static_cast<long>(::removexattr((b + "/f").c_str(), "user.missing"));
       }},
      {"setxattr trusted namespace",
       [](auto& b) {
         return static_cast<long>(::setxattr((b + "/f").c_str(), "trusted.t", "1", 1, 0));
       }},
      {"setxattr value too large",
       [](auto& b) {
         std::string big(70000, 'v');
         return static_cast<long>(
             ::setxattr((b + "/f").c_str(), "user.big", big.data(), big.size(), 0));
       }},
      {"setxattr on a symlink",
       [](auto& b) {
         return static_cast<long>(::lsetxattr((b + "/s").c_str(), "user.l", "1", 1, 0));
       }},
      {"chmod f 000", [](auto& b) { return static_cast<long>(::chmod((b + "/f").c_str(), 0)); }},
      {"open mode-000 file", [](auto& b) { return open_close(b + "/f", O_RDONLY); }},
      {"access W_OK on mode-000 file",
       [](auto& b) { return static_cast<long>(::access((b + "/f").c_str(), W_OK)); }},
      {"chmod f 0644",
       [](auto& b) { return static_cast<long>(::chmod((b + "/f").c_str(), 0644)); }},
      {"chmod d 0500",
       [](auto& b) { return static_cast<long>(::chmod((b + "/d").c_str(), 0500)); }},
      {"create in read-only dir",
       [](auto& b) { return open_close(b + "/d/new", O_WRONLY | O_CREAT); }},
      {"unlink in read-only dir",
       [](auto& b) { return static_cast<long>(::unlink((b + "/d/inner").c_str())); }},
      {"chmod d 0755",
       [](auto& b) { return static_cast<long>(::chmod((b + "/d").c_str(), 0755)); }},
      {"setuid bit kept by owner",
       [](auto& b) {
         if (::chmod((b + "/g").c_str(), 04755) != 0) return -1L;
         return type_and_mode(b + "/g");
       }},
      {"mknod char device",
       [](auto& b) {
         return static_cast<long>(::mknod((b + "/cdev").c_str(), S_IFCHR | 0600, makedev(1, 3)));
       }},
      {"mknod fifo",
       [](auto& b) {
         return static_cast<long>(::mknod((b + "/fifo").c_str(), S_IFIFO | 0600, 0));
       }},
      {"mknod socket",
       [](auto& b) {
         return static_cast<long>(::mknod((b + "/sock").c_str(), S_IFSOCK | 0600, 0));
       }},
      {"chown to own ids",
       [](auto& b) {
         return static_cast<long>(::chown((b + "/f").c_str(), kTenantUid, kTenantGid));
       }},
      {"chown to root uid",
       [](auto& b) {
         return static_cast<long>(::chown((b + "/f").c_str(), 0, static_cast<gid_t>(-1)));
       }},
      {"chown to root gid",
       [](auto& b) {
         return static_cast<long>(::chown((b + "/f").c_str(), static_cast<uid_t>(-1), 0));
       }},
      {"utimensat explicit times",
       [](auto& b) {
         struct timespec t[2] = {{1000, 0}, {2000, 0}};
         return static_cast<long>(::utimensat(AT_FDCWD, (b + "/f").c_str(), t, 0));
       }},
      {"mtime after utimensat",
       [](auto& b) {
         struct stat st {};
         return ::lstat((b + "/f").c_str(), &st) == 0 ? static_cast<long>(st.st_mtim.tv_sec) : -1L;
       }},
      {"utimensat on symlink itself",
       [](auto& b) {
         struct timespec t[2] = {{3000, 0}, {4000, 0}};
         return static_cast<long>(
             ::utimensat(AT_FDCWD, (b + "/s").c_str(), t, AT_SYMLINK_NOFOLLOW));
       }},
      {"mkdir x", [](auto& b) { return static_cast<long>(::mkdir((b + "/x").c_str(), 0700)); }},
      {"create x/f", [](auto& b) { return open_close(b + "/x/f", O_WRONLY | O_CREAT); }},
      {"chmod x 0300 (no read)",
       [](auto& b) { return static_cast<long>(::chmod((b + "/x").c_str(), 0300)); }},
      {"list non-readable dir", [](auto& b) { return entries_in(b + "/x"); }},
      {"chmod x 0700",
       [](auto& b) { return static_cast<long>(::chmod((b + "/x").c_str(), 0700)); }},
      {"access R_OK on 0644 file",
       [](auto& b) { return static_cast<long>(::access((b + "/f").c_str(), R_OK)); }},
      {"access X_OK on 0644 file",
       [](auto& b) { return static_cast<long>(::access((b + "/f").c_str(), X_OK)); }},
      {"entries in base", [](auto& b) { return entries_in(b); }},
      {"unlink g", [](auto& b) { return static_cast<long>(::unlink((b + "/g").c_str())); }},
      {"link count of f after unlink",
       [](auto& b) {
         struct stat st {};
         return ::lstat((b + "/f").c_str(), &st) == 0 ? static_cast<long>(st.st_nlink) : -1L;
       }},
  };
  return table;
}

// Runs the whole table in one child process as `who`, inside `dir`. The
// child enters dir through an fd opened beforehand, so the tenant needs no
// search permission on the root-only directories above it.
std::vector<std::pair<long, int>> run_table(const Caller& who, const std::string& dir) {
  UniqueFd dir_fd(::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  EXPECT_TRUE(dir_fd) << dir << ": " << std::strerror(errno);
  Outcome o = run_as(who, [&] {
    if (::fchdir(dir_fd.get()) != 0) return sys(-1);
    Outcome r;
    for (const Step& s : steps()) {
      errno = 0;
      long ret = s.run(".");
      r.data += std::to_string(ret) + " " + std::to_string(ret < 0 ? errno : 0) + "\n";
    }
    return r;
  });
  std::vector<std::pair<long, int>> out;
  EXPECT_EQ(o.ret, 0) << describe(o) << " " << o.data;
  std::istringstream in(o.data);
  long ret;
  int err;
  while (in >> ret >> err) out.emplace_back(ret, err);
  return out;
}

std::string show(const std::pair<long, int>& r) {
  return r.first < 0 ? "-1 " + errno_name(r.second) : std::to_string(r.first);
}

// The caller through the mount: root, and an ordinary uid; neither may make
// a difference.
class SyscallComparisonTest : public ::testing::TestWithParam<Caller> {};

TEST_P(SyscallComparisonTest, MountBehavesLikeNativeDirectoryAsTenant) {
  SKIP_UNLESS_MAPPER_TESTS_CAN_RUN();
  VolumeDirs native;  // its backing directory is the tenant's, 0700
  MountedVolume vol;
  ASSERT_EQ(vol.start(), "ready");

  auto expected = run_table(Caller{kTenantUid, kTenantGid, {}}, native.backing());
  auto actual = run_table(GetParam(), vol.mountpoint());
  ASSERT_EQ(expected.size(), steps().size());
  ASSERT_EQ(actual.size(), steps().size());
  // The native run itself must be meaningful: the first mkdir works, the
  // second reports EEXIST.
  EXPECT_EQ(show(expected[0]), "0");
  EXPECT_EQ(show(expected[1]), "-1 EEXIST");
  for (size_t i = 0; i < steps().size(); ++i)
    EXPECT_EQ(show(actual[i]), show(expected[i])) << "step " << i << ": " << steps()[i].name;
  if (::testing::Test::HasFailure() || std::getenv("TENANTFS_SHOW_TABLE")) {
    for (size_t i = 0; i < steps().size(); ++i)
      std::cout << steps()[i].name << ": native " << show(expected[i]) << ", mount "
                << show(actual[i]) << "\n";
  }
}

INSTANTIATE_TEST_SUITE_P(Callers, SyscallComparisonTest,
                         ::testing::Values(Caller{0, 0, {}}, Caller{1000, 1000, {1000}}),
                         [](const ::testing::TestParamInfo<Caller>& p) { return p.param.name(); });

}  // namespace
}  // namespace tenantfs::testing

// Access control: the storage's own permissions, checked against the tenant,
// decide; root in the caller's seat gains nothing, device nodes cannot be
// made, symlinks and foreign mounts inside the volume never make the mapper
// serve files from outside it.
#include <dirent.h>
#include <fcntl.h>
#include <libgen.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>

#include "tests/mapper/mapper_fixture.h"

namespace tenantfs::testing {
namespace {

Outcome read_whole(const std::string& path, int flags = 0) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | flags));
  if (!fd) return sys(-1);
  Outcome o;
  char buf[4096];
  for (ssize_t n; (n = ::read(fd.get(), buf, sizeof buf)) != 0;) {
    if (n < 0) return sys(-1);
    o.data.append(buf, static_cast<size_t>(n));
  }
  return o;
}

Outcome open_for_write(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return sys(-1);
  return sys(::write(fd.get(), "overwritten", 11));
}

// Creates a file directly on the backing store with the given owner and mode.
void put_on_backing(const std::string& path, const std::string& content, uid_t uid, gid_t gid,
                    mode_t mode) {
  ASSERT_TRUE(write_file(path, content, mode));
  ASSERT_EQ(::chown(path.c_str(), uid, gid), 0) << std::strerror(errno);
  ASSERT_EQ(::chmod(path.c_str(), mode), 0) << std::strerror(errno);
}

const Caller kRoot{0, 0, {}};
const Caller kUser1000{1000, 1000, {1000}};

class AccessTest : public ::testing::Test {
 protected:
  void SetUp() override { SKIP_UNLESS_MAPPER_TESTS_CAN_RUN(); }
};

TEST_F(AccessTest, RootCannotReadAnotherUsersPrivateFile) {
  MountedVolume vol;
  put_on_backing(vol.backing_path("private"), "secret of 7002", kOtherUid, kOtherGid, 0600);
  ASSERT_EQ(vol.start(), "ready");
  Outcome o = run_as(kRoot, [&] { return read_whole(vol.path("private")); });
  EXPECT_EQ(o.ret, -1) << "read returned \"" << o.data << "\"";
  EXPECT_EQ(o.err, EACCES) << describe(o);
  EXPECT_EQ(o.data.find("secret"), std::string::npos);
}

TEST_F(AccessTest, RootCannotWriteAnotherUsersPrivateFile) {
  MountedVolume vol;
  put_on_backing(vol.backing_path("private"), "secret of 7002", kOtherUid, kOtherGid, 0600);
  ASSERT_EQ(vol.start(), "ready");
  Outcome o = run_as(kRoot, [&] { return open_for_write(vol.path("private")); });
  EXPECT_EQ(o.ret, -1);
  EXPECT_EQ(o.err, EACCES) << describe(o);
  Outcome t = run_as(kRoot, [&] { return sys(::truncate(vol.path("private").c_str(), 0)); });
  EXPECT_EQ(t.ret, -1);
  EXPECT_EQ(t.err, EACCES) << describe(t);
  EXPECT_EQ(read_file(vol.backing_path("private")), "secret of 7002");
}

TEST_F(AccessTest, RootCannotChmodAnotherUsersFile) {
  MountedVolume vol;
  put_on_backing(vol.backing_path("private"), "x", kOtherUid, kOtherGid, 0600);
  ASSERT_EQ(vol.start(), "ready");
  Outcome o = run_as(kRoot, [&] { return sys(::chmod(vol.path("private").c_str(), 0666)); });
  EXPECT_EQ(o.ret, -1);
  EXPECT_EQ(o.err, EPERM) << describe(o);
  EXPECT_EQ(lstat_path(vol.backing_path("private")).st_mode & 07777, 0600u);
}

TEST_F(AccessTest, GroupReadableFileIsReadableWithSupplementaryGroup) {
  VolumeOptions opts;
  opts.groups = {kSharedGid};
  MountedVolume vol(opts);
  put_on_backing(vol.backing_path("shared"), "for group 7100", kOtherUid, kSharedGid, 0640);
  ASSERT_EQ(vol.start(), "ready");
  Outcome o = run_as(kUser1000, [&] { return read_whole(vol.path("shared")); });
  ASSERT_EQ(o.ret, 0) << describe(o);
  EXPECT_EQ(o.data, "for group 7100");
  // Group read does not imply group write.
  Outcome w = run_as(kUser1000, [&] { return open_for_write(vol.path("shared")); });
  EXPECT_EQ(w.err, EACCES) << describe(w);
}

TEST_F(AccessTest, GroupReadableFileIsNotReadableWithoutSupplementaryGroup) {
  MountedVolume vol;
  put_on_backing(vol.backing_path("shared"), "for group 7100", kOtherUid, kSharedGid, 0640);
  ASSERT_EQ(vol.start(), "ready");
  Outcome o = run_as(kRoot, [&] { return read_whole(vol.path("shared")); });
  EXPECT_EQ(o.ret, -1);
  EXPECT_EQ(o.err, EACCES) << describe(o);
}

TEST_F(AccessTest, CallersOwnSupplementaryGroupsGrantNothing) {
  // The caller holds group 7100 but the tenant does not: the tenant decides.
  MountedVolume vol;
  put_on_backing(vol.backing_path("shared"), "for group 7100", kOtherUid, kSharedGid, 0640);
  ASSERT_EQ(vol.start(), "ready");
  Outcome o = run_as(Caller{1000, kSharedGid, {kSharedGid}},
                     [&] { return read_whole(vol.path("shared")); });
  EXPECT_EQ(o.ret, -1);
  EXPECT_EQ(o.err, EACCES) << describe(o);
}

TEST_F(AccessTest, StorageAclGrantingTenantMakesOtherUsersFileReadable) {
  MountedVolume vol;
  if (!supports_posix_acl(vol.backing()))
    GTEST_SKIP() << "the backing filesystem has no POSIX ACLs";
  put_on_backing(vol.backing_path("granted"), "acl says yes", kOtherUid, kOtherGid, 0600);
  put_on_backing(vol.backing_path("denied"), "no acl", kOtherUid, kOtherGid, 0600);
  std::string acl = encode_acl({{kAclUserObj, 6, kAclNoId},
                                {kAclUser, 4, kTenantUid},
                                {kAclGroupObj, 0, kAclNoId},
                                {kAclMask, 4, kAclNoId},
                                {kAclOther, 0, kAclNoId}});
  ASSERT_EQ(
      ::setxattr(vol.backing_path("granted").c_str(), kAclAccessXattr, acl.data(), acl.size(), 0),
      0)
      << std::strerror(errno);
  ASSERT_EQ(vol.start(), "ready");
  Outcome yes = run_as(kUser1000, [&] { return read_whole(vol.path("granted")); });
  ASSERT_EQ(yes.ret, 0) << describe(yes);
  EXPECT_EQ(yes.data, "acl says yes");
  Outcome no = run_as(kUser1000, [&] { return read_whole(vol.path("denied")); });
  EXPECT_EQ(no.err, EACCES) << describe(no);
}

TEST_F(AccessTest, CharacterDeviceCannotBeCreated) {
  MountedVolume vol;
  ASSERT_EQ(vol.start(), "ready");
  Outcome o = run_as(
      kRoot, [&] { return sys(::mknod(vol.path("null").c_str(), S_IFCHR | 0666, makedev(1, 3))); });
  EXPECT_EQ(o.ret, -1);
  EXPECT_EQ(o.err, EPERM) << describe(o);
  EXPECT_EQ(::access(vol.backing_path("null").c_str(), F_OK), -1)
      << "a device node reached the storage";
}

TEST_F(AccessTest, BlockDeviceCannotBeCreated) {
  MountedVolume vol;
  ASSERT_EQ(vol.start(), "ready");
  Outcome o = run_as(
      kRoot, [&] { return sys(::mknod(vol.path("disk").c_str(), S_IFBLK | 0660, makedev(8, 0))); });
  EXPECT_EQ(o.ret, -1);
  EXPECT_EQ(o.err, EPERM) << describe(o);
  EXPECT_EQ(::access(vol.backing_path("disk").c_str(), F_OK), -1)
      << "a device node reached the storage";
}

class SymlinkEscapeTest : public AccessTest {
 protected:
  void SetUp() override {
    AccessTest::SetUp();
    if (IsSkipped()) return;
    vol_ = std::make_unique<MountedVolume>();
    make_link("shadow", "/etc/shadow");
    make_link("passwd", "/etc/passwd");
    make_link("up", "../..");
    ASSERT_EQ(vol_->start(), "ready");
  }
  void TearDown() override { vol_.reset(); }

  // A tenant-owned symlink made directly on the storage, as data brought in
  // from outside would be.
  void make_link(const std::string& name, const std::string& target) {
    std::string p = vol_->backing_path(name);
    ASSERT_EQ(::symlink(target.c_str(), p.c_str()), 0) << std::strerror(errno);
    ASSERT_EQ(::lchown(p.c_str(), kTenantUid, kTenantGid), 0) << std::strerror(errno);
  }

  std::unique_ptr<MountedVolume> vol_;
};

TEST_F(SymlinkEscapeTest, ReadlinkReturnsTargetVerbatim) {
  for (auto [name, target] : {std::pair{"shadow", "/etc/shadow"}, std::pair{"up", "../.."}}) {
    char buf[256] = {};
    ssize_t n = ::readlink(vol_->path(name).c_str(), buf, sizeof buf - 1);
    ASSERT_GE(n, 0) << name << ": " << std::strerror(errno);
    EXPECT_STREQ(buf, target) << name;
    EXPECT_TRUE(S_ISLNK(lstat_path(vol_->path(name)).st_mode)) << name << " must stay a symlink";
  }
}

TEST_F(SymlinkEscapeTest, OpenWithNoFollowFailsWithEloop) {
  Outcome o = run_as(kRoot, [&] { return read_whole(vol_->path("shadow"), O_NOFOLLOW); });
  EXPECT_EQ(o.ret, -1);
  EXPECT_EQ(o.err, ELOOP) << describe(o);
  EXPECT_TRUE(o.data.empty());
}

TEST_F(SymlinkEscapeTest, UnprivilegedCallerNeverGetsShadowThroughLink) {
  // Following the link is the caller's own lookup of /etc/shadow, which
  // uid 1000 may not read; the mapper adds no access of its own.
  Outcome o = run_as(kUser1000, [&] { return read_whole(vol_->path("shadow")); });
  EXPECT_EQ(o.ret, -1);
  EXPECT_EQ(o.err, EACCES) << describe(o);
  EXPECT_TRUE(o.data.empty());
}

TEST_F(SymlinkEscapeTest, AbsoluteLinkIsResolvedInCallersMountNamespace) {
  // The caller gets a private mount namespace in which /etc/passwd and
  // /etc/shadow are covered by decoys. Whatever comes back through the links
  // must be the decoy: a mapper that followed them itself would see the
  // host's files instead.
  std::string decoy = vol_->root() + "/decoy";
  ASSERT_TRUE(write_file(decoy, "decoy seen by the caller\n", 0644));
  std::string real_passwd = read_file("/etc/passwd");
  Outcome o = run_as(kRoot, [&] {
    if (::unshare(CLONE_NEWNS) != 0) return sys(-1);
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return sys(-1);
    for (const char* target : {"/etc/passwd", "/etc/shadow"})
      if (::mount(decoy.c_str(), target, nullptr, MS_BIND, nullptr) != 0) return sys(-1);
    Outcome p = read_whole(vol_->path("passwd"));
    if (p.ret != 0) return p;
    Outcome s = read_whole(vol_->path("shadow"));
    if (s.ret != 0) return s;
    p.data += "|" + s.data;
    return p;
  });
  ASSERT_EQ(o.ret, 0) << describe(o);
  EXPECT_EQ(o.data, "decoy seen by the caller\n|decoy seen by the caller\n");
  EXPECT_EQ(o.data.find(real_passwd), std::string::npos) << "host /etc/passwd came back";
}

TEST_F(SymlinkEscapeTest, DotDotLinkResolvesFromMountpointNotFromBacking) {
  // mnt/up -> ../.. names the mountpoint's grandparent for the caller; had the
  // mapper followed it on the storage it would reach the backing's
  // grandparent, the root-only tree above the volume.
  std::string mnt = vol_->mountpoint();
  std::string grandparent = mnt.substr(0, mnt.rfind('/'));
  grandparent = grandparent.substr(0, grandparent.rfind('/'));
  struct stat expected {
  }, got{}, backing_side{};
  ASSERT_EQ(::stat(grandparent.c_str(), &expected), 0);
  ASSERT_EQ(::stat((vol_->backing() + "/../..").c_str(), &backing_side), 0);
  ASSERT_EQ(::stat(vol_->path("up").c_str(), &got), 0) << std::strerror(errno);
  EXPECT_EQ(got.st_dev, expected.st_dev);
  EXPECT_EQ(got.st_ino, expected.st_ino);
  EXPECT_FALSE(got.st_dev == backing_side.st_dev && got.st_ino == backing_side.st_ino);
}

TEST_F(AccessTest, LookupIntoFilesystemMountedInsideBackingIsRefused) {
  MountedVolume vol;
  // A plain directory, as control: the same content there is served.
  ASSERT_EQ(::mkdir(vol.backing_path("plain").c_str(), 0700), 0);
  ASSERT_EQ(::chown(vol.backing_path("plain").c_str(), kTenantUid, kTenantGid), 0);
  put_on_backing(vol.backing_path("plain/secret"), "inside the volume", kTenantUid, kTenantGid,
                 0644);
  ASSERT_EQ(::mkdir(vol.backing_path("sub").c_str(), 0700), 0);
  ScopedTmpfs tmpfs(vol.backing_path("sub"));
  ASSERT_TRUE(tmpfs.mounted());
  // Owned by the tenant, so only the mount boundary can stop the mapper.
  ASSERT_EQ(::chown(vol.backing_path("sub").c_str(), kTenantUid, kTenantGid), 0);
  put_on_backing(vol.backing_path("sub/secret"), "another filesystem", kTenantUid, kTenantGid,
                 0644);
  ASSERT_EQ(vol.start(), "ready");

  Outcome control = run_as(kRoot, [&] { return read_whole(vol.path("plain/secret")); });
  ASSERT_EQ(control.ret, 0) << describe(control);
  EXPECT_EQ(control.data, "inside the volume");

  Outcome o = run_as(kRoot, [&] { return read_whole(vol.path("sub/secret")); });
  EXPECT_EQ(o.ret, -1) << "served from the foreign filesystem: \"" << o.data << "\"";
  EXPECT_EQ(o.data.find("another filesystem"), std::string::npos);
  Outcome create = run_as(kRoot, [&] {
    UniqueFd fd(::open(vol.path("sub/planted").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
    return sys(fd ? 0 : -1);
  });
  EXPECT_EQ(create.ret, -1) << "created a file on the foreign filesystem";
  EXPECT_EQ(::access(vol.backing_path("sub/planted").c_str(), F_OK), -1);
}

TEST_F(AccessTest, RootCannotListAnotherUsersPrivateDirectory) {
  MountedVolume vol;
  ASSERT_EQ(::mkdir(vol.backing_path("theirs").c_str(), 0700), 0);
  ASSERT_EQ(::chown(vol.backing_path("theirs").c_str(), kOtherUid, kOtherGid), 0);
  put_on_backing(vol.backing_path("theirs/inside"), "x", kOtherUid, kOtherGid, 0644);
  ASSERT_EQ(vol.start(), "ready");
  Outcome list = run_as(kRoot, [&] {
    DIR* d = ::opendir(vol.path("theirs").c_str());
    if (!d) return sys(-1);
    ::closedir(d);
    return Outcome{};
  });
  EXPECT_EQ(list.ret, -1);
  EXPECT_EQ(list.err, EACCES) << describe(list);
  Outcome enter = run_as(kRoot, [&] { return read_whole(vol.path("theirs/inside")); });
  EXPECT_EQ(enter.ret, -1);
  EXPECT_EQ(enter.err, EACCES) << describe(enter);
}

TEST_F(AccessTest, StickyDirectoryProtectsOtherUsersFilesEvenFromRoot) {
  MountedVolume vol;
  ASSERT_EQ(::mkdir(vol.backing_path("shared-tmp").c_str(), 0777), 0);
  ASSERT_EQ(::chown(vol.backing_path("shared-tmp").c_str(), kOtherUid, kOtherGid), 0);
  ASSERT_EQ(::chmod(vol.backing_path("shared-tmp").c_str(), 01777), 0);
  put_on_backing(vol.backing_path("shared-tmp/theirs"), "keep", kOtherUid, kOtherGid, 0666);
  ASSERT_EQ(vol.start(), "ready");
  Outcome del = run_as(kRoot, [&] { return sys(::unlink(vol.path("shared-tmp/theirs").c_str())); });
  EXPECT_EQ(del.ret, -1);
  EXPECT_EQ(del.err, EPERM) << describe(del);
  EXPECT_EQ(read_file(vol.backing_path("shared-tmp/theirs")), "keep");
  // The tenant's own file in the same directory can be removed.
  Outcome own = run_as(kRoot, [&] {
    UniqueFd fd(::open(vol.path("shared-tmp/mine").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
    if (!fd) return sys(-1);
    return sys(::unlink(vol.path("shared-tmp/mine").c_str()));
  });
  EXPECT_EQ(own.ret, 0) << describe(own);
}

TEST_F(AccessTest, HardLinkToAnotherUsersUnreadableFileIsRefused) {
  if (read_file("/proc/sys/fs/protected_hardlinks") != "1\n")
    GTEST_SKIP() << "fs.protected_hardlinks is off on this host";
  MountedVolume vol;
  put_on_backing(vol.backing_path("private"), "secret of 7002", kOtherUid, kOtherGid, 0600);
  ASSERT_EQ(vol.start(), "ready");
  Outcome o = run_as(
      kRoot, [&] { return sys(::link(vol.path("private").c_str(), vol.path("grab").c_str())); });
  EXPECT_EQ(o.ret, -1);
  EXPECT_EQ(o.err, EPERM) << describe(o);
  EXPECT_EQ(::access(vol.backing_path("grab").c_str(), F_OK), -1);
}

TEST_F(AccessTest, SetgidDirectoryGivesNewFilesItsGroupOnBacking) {
  VolumeOptions opts;
  opts.groups = {kSharedGid};
  MountedVolume vol(opts);
  ASSERT_EQ(::mkdir(vol.backing_path("project").c_str(), 0770), 0);
  ASSERT_EQ(::chown(vol.backing_path("project").c_str(), kOtherUid, kSharedGid), 0);
  ASSERT_EQ(::chmod(vol.backing_path("project").c_str(), 02770), 0);
  ASSERT_EQ(vol.start(), "ready");
  Outcome o = run_as(kUser1000, [&] {
    UniqueFd fd(::open(vol.path("project/report").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0640));
    if (!fd) return sys(-1);
    return sys(::mkdir(vol.path("project/sub").c_str(), 0770));
  });
  ASSERT_EQ(o.ret, 0) << describe(o);
  struct stat st = lstat_path(vol.backing_path("project/report"));
  EXPECT_EQ(st.st_uid, kTenantUid);
  EXPECT_EQ(st.st_gid, kSharedGid) << "the setgid directory's group must be inherited";
  struct stat sub = lstat_path(vol.backing_path("project/sub"));
  EXPECT_EQ(sub.st_gid, kSharedGid);
  EXPECT_TRUE(sub.st_mode & S_ISGID) << "a subdirectory keeps the setgid bit";
}

TEST_F(AccessTest, TouchOfGroupWritableFileOwnedByAnotherUserSucceeds) {
  // Setting times to "now" needs only write permission; explicit times need
  // ownership. A mapper that turns "now" into explicit times breaks touch.
  VolumeOptions opts;
  opts.groups = {kSharedGid};
  MountedVolume vol(opts);
  put_on_backing(vol.backing_path("team"), "x", kOtherUid, kSharedGid, 0660);
  struct timespec old_times[2] = {{1000, 0}, {1000, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, vol.backing_path("team").c_str(), old_times, 0), 0);
  ASSERT_EQ(vol.start(), "ready");
  Outcome now = run_as(
      kUser1000, [&] { return sys(::utimensat(AT_FDCWD, vol.path("team").c_str(), nullptr, 0)); });
  ASSERT_EQ(now.ret, 0) << describe(now);
  EXPECT_GT(lstat_path(vol.backing_path("team")).st_mtim.tv_sec, 1000);
  Outcome explicit_times = run_as(kUser1000, [&] {
    struct timespec t[2] = {{5000, 0}, {5000, 0}};
    return sys(::utimensat(AT_FDCWD, vol.path("team").c_str(), t, 0));
  });
  EXPECT_EQ(explicit_times.ret, -1);
  EXPECT_EQ(explicit_times.err, EPERM) << describe(explicit_times);
}

TEST_F(AccessTest, GroupWritableFileOwnedByAnotherUserCanBeTruncatedAndWritten) {
  VolumeOptions opts;
  opts.groups = {kSharedGid};
  MountedVolume vol(opts);
  put_on_backing(vol.backing_path("team"), "old content", kOtherUid, kSharedGid, 0660);
  ASSERT_EQ(vol.start(), "ready");
  Outcome o = run_as(kUser1000, [&] {
    UniqueFd fd(::open(vol.path("team").c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC));
    if (!fd) return sys(-1);
    if (::write(fd.get(), "new", 3) != 3) return sys(-1);
    return sys(::truncate(vol.path("team").c_str(), 2));
  });
  ASSERT_EQ(o.ret, 0) << describe(o);
  EXPECT_EQ(read_file(vol.backing_path("team")), "ne");
  struct stat st = lstat_path(vol.backing_path("team"));
  EXPECT_EQ(st.st_uid, kOtherUid) << "writing must not change the owner";
}

TEST_F(AccessTest, FilesystemMountedInsideBackingAfterStartIsRefused) {
  MountedVolume vol;
  ASSERT_EQ(::mkdir(vol.backing_path("sub").c_str(), 0700), 0);
  ASSERT_EQ(vol.start(), "ready");
  ScopedTmpfs tmpfs(vol.backing_path("sub"));
  ASSERT_TRUE(tmpfs.mounted());
  ASSERT_EQ(::chown(vol.backing_path("sub").c_str(), kTenantUid, kTenantGid), 0);
  put_on_backing(vol.backing_path("sub/secret"), "another filesystem", kTenantUid, kTenantGid,
                 0644);
  Outcome o = run_as(kRoot, [&] { return read_whole(vol.path("sub/secret")); });
  EXPECT_EQ(o.ret, -1) << "served from the foreign filesystem: \"" << o.data << "\"";
  EXPECT_EQ(o.data.find("another filesystem"), std::string::npos);
}

TEST_F(AccessTest, DeviceNodeAlreadyOnStorageCannotBeOpened) {
  MountedVolume vol;
  std::string dev = vol.backing_path("null");
  ASSERT_EQ(::mknod(dev.c_str(), S_IFCHR | 0666, makedev(1, 3)), 0) << std::strerror(errno);
  ASSERT_EQ(::chown(dev.c_str(), kTenantUid, kTenantGid), 0);
  ASSERT_EQ(vol.start(), "ready");
  std::optional<MountEntry> m = find_mount(vol.mountpoint());
  ASSERT_TRUE(m);
  EXPECT_NE(m->options.find("nodev"), std::string::npos) << m->options;
  Outcome o = run_as(kRoot, [&] {
    UniqueFd fd(::open(vol.path("null").c_str(), O_RDWR | O_CLOEXEC));
    return sys(fd ? 0 : -1);
  });
  EXPECT_EQ(o.ret, -1) << "a device node on the volume was opened";
  EXPECT_EQ(o.err, EACCES) << describe(o);
}

TEST_F(AccessTest, SetuidRootProgramOnStorageGrantsNoPrivilege) {
  // A root-owned setuid program put on the storage by someone else keeps
  // its owner through the mount ("other owners appear as they are"), so
  // only nosuid stands between a container user and root.
  MountedVolume vol;
  std::string prog = vol.backing_path("id");
  ASSERT_TRUE(write_file(prog, read_file("/usr/bin/id"), 0755));
  ASSERT_EQ(::chown(prog.c_str(), 0, 0), 0);
  ASSERT_EQ(::chmod(prog.c_str(), 04755), 0);
  ASSERT_EQ(vol.start(), "ready");
  std::optional<MountEntry> m = find_mount(vol.mountpoint());
  ASSERT_TRUE(m);
  EXPECT_NE(m->options.find("nosuid"), std::string::npos) << m->options;
  Outcome o = run_as(kUser1000, [&] {
    int fds[2];
    if (::pipe(fds) != 0) return sys(-1);
    pid_t pid = ::fork();
    if (pid == 0) {
      ::dup2(fds[1], 1);
      ::execl(vol.path("id").c_str(), "id", "-u", static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::close(fds[1]);
    Outcome r;
    char buf[64];
    for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;)
      r.data.append(buf, static_cast<size_t>(n));
    ::close(fds[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    r.ret = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return r;
  });
  ASSERT_EQ(o.ret, 0) << "running the program through the mount: " << describe(o);
  EXPECT_EQ(o.data, "1000\n") << "the setuid bit took effect";
}

TEST_F(AccessTest, ServesTheDirectoryItOpenedEvenAfterItsPathIsSwapped) {
  // The mapper holds an fd of the backing directory: replacing the path by a
  // symlink to /etc afterwards must not redirect the volume.
  MountedVolume vol;
  put_on_backing(vol.backing_path("marker"), "original volume", kTenantUid, kTenantGid, 0644);
  ASSERT_EQ(vol.start(), "ready");
  std::string moved = vol.backing() + ".moved";
  ASSERT_EQ(::rename(vol.backing().c_str(), moved.c_str()), 0) << std::strerror(errno);
  ASSERT_EQ(::symlink("/etc", vol.backing().c_str()), 0) << std::strerror(errno);
  EXPECT_EQ(read_file(vol.path("marker")), "original volume");
  struct stat st {};
  EXPECT_EQ(::stat(vol.path("passwd").c_str(), &st), -1) << "the volume now shows /etc";
  EXPECT_EQ(errno, ENOENT) << errno_name(errno);
  ASSERT_TRUE(write_file(vol.path("written-after-swap"), "x"));
  EXPECT_EQ(::access((moved + "/written-after-swap").c_str(), F_OK), 0);
  EXPECT_EQ(::access("/etc/written-after-swap", F_OK), -1);
  // Put the tree back so that cleanup finds it where it expects it.
  ASSERT_EQ(::unlink(vol.backing().c_str()), 0);
  ASSERT_EQ(::rename(moved.c_str(), vol.backing().c_str()), 0);
}

// Taking search permission away from a directory must hide what is below it
// at once, as on the storage itself, even for entries the kernel has already
// looked up (and may hold in its dentry cache).
class SearchPermissionTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { SKIP_UNLESS_MAPPER_TESTS_CAN_RUN(); }
};

TEST_P(SearchPermissionTest, RevokedSearchPermissionHidesEntriesAtOnce) {
  VolumeOptions opts;
  opts.cache = GetParam();
  MountedVolume vol(opts);
  ASSERT_EQ(vol.start(), "ready");
  ASSERT_EQ(::mkdir(vol.path("x").c_str(), 0700), 0) << std::strerror(errno);
  ASSERT_TRUE(write_file(vol.path("x/f"), "below x"));
  EXPECT_EQ(read_file(vol.path("x/f")), "below x");
  ASSERT_EQ(::chmod(vol.path("x").c_str(), 0600), 0) << std::strerror(errno);
  Outcome o = run_as(kRoot, [&] { return read_whole(vol.path("x/f")); });
  EXPECT_EQ(o.ret, -1) << "read \"" << o.data << "\" below a directory the tenant may not search";
  EXPECT_EQ(o.err, EACCES) << describe(o);
  Outcome st = run_as(kRoot, [&] {
    struct stat s {};
    return sys(::stat(vol.path("x/f").c_str(), &s));
  });
  EXPECT_EQ(st.err, EACCES) << "stat: " << describe(st);
}

INSTANTIATE_TEST_SUITE_P(Cache, SearchPermissionTest, ::testing::Values("strict", "exclusive"),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });

}  // namespace
}  // namespace tenantfs::testing

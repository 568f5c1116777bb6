// Whoever the caller is (root, uid 1000, uid 2000), what it does through the
// mount reaches the storage as the tenant, and the mount presents the tenant's
// objects with the configured ids.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>
#include <vector>

#include "tests/mapper/mapper_fixture.h"

namespace tenantfs::testing {
namespace {

// Reads the whole file at path, as the calling process; the content goes to
// Outcome::data.
Outcome slurp(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return sys(-1);
  Outcome o;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) return sys(-1);
    if (n == 0) return o;
    o.data.append(buf, static_cast<size_t>(n));
  }
}

Outcome create_with(const std::string& path, const std::string& content, mode_t mode = 0640) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode));
  if (!fd) return sys(-1);
  if (::write(fd.get(), content.data(), content.size()) != static_cast<ssize_t>(content.size()))
    return sys(-1);
  return {};
}

class CallerIdentityTest : public ::testing::TestWithParam<Caller> {
 protected:
  void SetUp() override {
    SKIP_UNLESS_MAPPER_TESTS_CAN_RUN();
    vol_ = std::make_unique<MountedVolume>();
    ASSERT_EQ(vol_->start(), "ready");
  }
  void TearDown() override { vol_.reset(); }

  Outcome as_caller(const std::function<Outcome()>& fn) { return run_as(GetParam(), fn); }
  std::string m(const std::string& rel) const { return vol_->path(rel); }
  std::string b(const std::string& rel) const { return vol_->backing_path(rel); }

  // The owner that matters: the one the storage records.
  void expect_tenant_owned_on_backing(const std::string& rel) {
    struct stat st = lstat_path(b(rel));
    EXPECT_EQ(st.st_uid, kTenantUid) << rel << " on the backing store";
    EXPECT_EQ(st.st_gid, kTenantGid) << rel << " on the backing store";
  }

  std::unique_ptr<MountedVolume> vol_;
};

TEST_P(CallerIdentityTest, CreatedFileIsOwnedByTenantOnBacking) {
  Outcome o = as_caller([&] { return create_with(m("file"), "data"); });
  ASSERT_EQ(o.ret, 0) << describe(o);
  expect_tenant_owned_on_backing("file");
  struct stat st = lstat_path(b("file"));
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  EXPECT_EQ(read_file(b("file")), "data");
}

TEST_P(CallerIdentityTest, CreatedDirectoryAndItsContentAreOwnedByTenantOnBacking) {
  Outcome o = as_caller([&] {
    if (::mkdir(m("dir").c_str(), 0750) != 0) return sys(-1);
    if (::mkdir(m("dir/sub").c_str(), 0700) != 0) return sys(-1);
    return create_with(m("dir/sub/file"), "nested");
  });
  ASSERT_EQ(o.ret, 0) << describe(o);
  struct stat st = lstat_path(b("dir"));
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0750u);
  expect_tenant_owned_on_backing("dir");
  expect_tenant_owned_on_backing("dir/sub");
  expect_tenant_owned_on_backing("dir/sub/file");
}

TEST_P(CallerIdentityTest, CreatedSymlinkIsOwnedByTenantOnBacking) {
  Outcome o = as_caller([&] { return sys(::symlink("some/target", m("link").c_str())); });
  ASSERT_EQ(o.ret, 0) << describe(o);
  struct stat st = lstat_path(b("link"));
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  expect_tenant_owned_on_backing("link");
  char target[64] = {};
  EXPECT_EQ(::readlink(b("link").c_str(), target, sizeof target - 1), 11);
  EXPECT_STREQ(target, "some/target");
}

TEST_P(CallerIdentityTest, CreatedFifoIsOwnedByTenantOnBacking) {
  Outcome o = as_caller([&] { return sys(::mkfifo(m("fifo").c_str(), 0640)); });
  ASSERT_EQ(o.ret, 0) << describe(o);
  struct stat st = lstat_path(b("fifo"));
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  expect_tenant_owned_on_backing("fifo");
}

TEST_P(CallerIdentityTest, WriteAppendTruncateAndReadBackGiveExpectedContent) {
  Outcome o = as_caller([&] {
    if (Outcome c = create_with(m("f"), "hello"); c.ret != 0) return c;
    {
      UniqueFd fd(::open(m("f").c_str(), O_WRONLY | O_APPEND | O_CLOEXEC));
      if (!fd || ::write(fd.get(), " world", 6) != 6) return sys(-1);
    }
    Outcome whole = slurp(m("f"));
    if (whole.ret != 0) return whole;
    if (::truncate(m("f").c_str(), 5) != 0) return sys(-1);
    {
      UniqueFd fd(::open(m("f").c_str(), O_RDWR | O_CLOEXEC));
      if (!fd || ::ftruncate(fd.get(), 8) != 0) return sys(-1);
    }
    Outcome after = slurp(m("f"));
    after.data = whole.data + "|" + after.data;
    return after;
  });
  ASSERT_EQ(o.ret, 0) << describe(o);
  EXPECT_EQ(o.data, std::string("hello world|hello\0\0\0", 20));
  EXPECT_EQ(read_file(b("f")), std::string("hello\0\0\0", 8));
  expect_tenant_owned_on_backing("f");
}

TEST_P(CallerIdentityTest, RenameReplacesExistingTarget) {
  ASSERT_TRUE(write_file(m("a"), "from a"));
  ASSERT_TRUE(write_file(m("b"), "from b"));
  Outcome o = as_caller([&] { return sys(::rename(m("a").c_str(), m("b").c_str())); });
  ASSERT_EQ(o.ret, 0) << describe(o);
  EXPECT_EQ(::access(b("a").c_str(), F_OK), -1);
  EXPECT_EQ(read_file(b("b")), "from a");
  expect_tenant_owned_on_backing("b");
}

TEST_P(CallerIdentityTest, RenameNoreplaceFailsWithEexistWhenTargetExists) {
  ASSERT_TRUE(write_file(m("a"), "from a"));
  ASSERT_TRUE(write_file(m("b"), "from b"));
  Outcome o = as_caller([&] {
    return sys(::renameat2(AT_FDCWD, m("a").c_str(), AT_FDCWD, m("b").c_str(), RENAME_NOREPLACE));
  });
  EXPECT_EQ(o.ret, -1);
  EXPECT_EQ(o.err, EEXIST) << describe(o);
  EXPECT_EQ(read_file(b("a")), "from a");
  EXPECT_EQ(read_file(b("b")), "from b");
}

TEST_P(CallerIdentityTest, RenameNoreplaceMovesToFreeName) {
  ASSERT_TRUE(write_file(m("a"), "from a"));
  Outcome o = as_caller([&] {
    return sys(::renameat2(AT_FDCWD, m("a").c_str(), AT_FDCWD, m("c").c_str(), RENAME_NOREPLACE));
  });
  ASSERT_EQ(o.ret, 0) << describe(o);
  EXPECT_EQ(read_file(b("c")), "from a");
  EXPECT_EQ(::access(b("a").c_str(), F_OK), -1);
}

TEST_P(CallerIdentityTest, RenameExchangeSwapsFileAndDirectory) {
  ASSERT_TRUE(write_file(m("a"), "file a"));
  ASSERT_EQ(::mkdir(m("b").c_str(), 0755), 0) << std::strerror(errno);
  ASSERT_TRUE(write_file(m("b/inside"), "in b"));
  Outcome o = as_caller([&] {
    return sys(::renameat2(AT_FDCWD, m("a").c_str(), AT_FDCWD, m("b").c_str(), RENAME_EXCHANGE));
  });
  ASSERT_EQ(o.ret, 0) << describe(o);
  EXPECT_TRUE(S_ISDIR(lstat_path(b("a")).st_mode));
  EXPECT_EQ(read_file(b("a/inside")), "in b");
  EXPECT_EQ(read_file(b("b")), "file a");
  // And the mount sees the swap too (no stale cached entries).
  EXPECT_TRUE(S_ISDIR(lstat_path(m("a")).st_mode));
  EXPECT_EQ(read_file(m("b")), "file a");
}

TEST_P(CallerIdentityTest, HardLinkSharesTheInodeOnBacking) {
  ASSERT_TRUE(write_file(m("a"), "linked"));
  Outcome o = as_caller([&] { return sys(::link(m("a").c_str(), m("b").c_str())); });
  ASSERT_EQ(o.ret, 0) << describe(o);
  struct stat sa = lstat_path(b("a")), sb = lstat_path(b("b"));
  EXPECT_EQ(sa.st_ino, sb.st_ino);
  EXPECT_EQ(sb.st_nlink, 2u);
  EXPECT_EQ(lstat_path(m("b")).st_nlink, 2u) << "link count seen through the mount";
  EXPECT_EQ(lstat_path(m("a")).st_ino, lstat_path(m("b")).st_ino)
      << "one inode, seen through the mount";
  EXPECT_EQ(read_file(m("b")), "linked");
}

TEST_P(CallerIdentityTest, UserXattrIsStoredOnBackingAndReadBack) {
  ASSERT_TRUE(write_file(m("f"), ""));
  Outcome o = as_caller([&] {
    if (::setxattr(m("f").c_str(), "user.color", "blue", 4, 0) != 0) return sys(-1);
    char buf[64];
    ssize_t n = ::getxattr(m("f").c_str(), "user.color", buf, sizeof buf);
    if (n < 0) return sys(-1);
    Outcome r;
    r.data.assign(buf, static_cast<size_t>(n));
    char names[256];
    ssize_t len = ::listxattr(m("f").c_str(), names, sizeof names);
    if (len < 0) return sys(-1);
    r.data += "|" + std::string(names, static_cast<size_t>(len));
    return r;
  });
  ASSERT_EQ(o.ret, 0) << describe(o);
  EXPECT_EQ(o.data.substr(0, 5), "blue|");
  EXPECT_NE(o.data.find(std::string("user.color\0", 11)), std::string::npos) << "listxattr";
  EXPECT_EQ(get_xattr(b("f"), "user.color"), std::optional<std::string>("blue"));
}

TEST_P(CallerIdentityTest, RemovedUserXattrIsGoneFromBacking) {
  ASSERT_TRUE(write_file(m("f"), ""));
  ASSERT_EQ(::setxattr(b("f").c_str(), "user.gone", "x", 1, 0), 0) << std::strerror(errno);
  Outcome o = as_caller([&] { return sys(::removexattr(m("f").c_str(), "user.gone")); });
  ASSERT_EQ(o.ret, 0) << describe(o);
  EXPECT_FALSE(get_xattr(b("f"), "user.gone"));
  EXPECT_EQ(errno, ENODATA);
}

TEST_P(CallerIdentityTest, ChmodChangesModeOnBacking) {
  ASSERT_TRUE(write_file(m("f"), "x", 0600));
  Outcome o = as_caller([&] { return sys(::chmod(m("f").c_str(), 0604)); });
  ASSERT_EQ(o.ret, 0) << describe(o);
  EXPECT_EQ(lstat_path(b("f")).st_mode & 07777, 0604u);
  EXPECT_EQ(lstat_path(m("f")).st_mode & 07777, 0604u);
  expect_tenant_owned_on_backing("f");
}

TEST_P(CallerIdentityTest, ChownToPresentedIdsIsAcceptedAsNoOp) {
  ASSERT_TRUE(write_file(m("f"), "x"));
  Outcome o = as_caller([&] {
    if (::chown(m("f").c_str(), kTenantUid, kTenantGid) != 0) return sys(-1);
    return sys(::lchown(m("f").c_str(), static_cast<uid_t>(-1), static_cast<gid_t>(-1)));
  });
  ASSERT_EQ(o.ret, 0) << describe(o);
  expect_tenant_owned_on_backing("f");
}

TEST_P(CallerIdentityTest, ChownToAnotherUidFailsWithEperm) {
  ASSERT_TRUE(write_file(m("f"), "x"));
  Outcome o = as_caller([&] { return sys(::chown(m("f").c_str(), 4242, static_cast<gid_t>(-1))); });
  EXPECT_EQ(o.ret, -1);
  EXPECT_EQ(o.err, EPERM) << describe(o);
  expect_tenant_owned_on_backing("f");
}

TEST_P(CallerIdentityTest, ChownToAnotherGidFailsWithEperm) {
  ASSERT_TRUE(write_file(m("f"), "x"));
  Outcome o = as_caller([&] { return sys(::chown(m("f").c_str(), static_cast<uid_t>(-1), 4242)); });
  EXPECT_EQ(o.ret, -1);
  EXPECT_EQ(o.err, EPERM) << describe(o);
  expect_tenant_owned_on_backing("f");
}

TEST_P(CallerIdentityTest, UtimensSetsTimesOnBacking) {
  ASSERT_TRUE(write_file(m("f"), "x"));
  Outcome o = as_caller([&] {
    struct timespec times[2] = {{1'000'000'000, 123}, {1'200'000'000, 456'789}};
    return sys(::utimensat(AT_FDCWD, m("f").c_str(), times, 0));
  });
  ASSERT_EQ(o.ret, 0) << describe(o);
  struct stat st = lstat_path(b("f"));
  EXPECT_EQ(st.st_atim.tv_sec, 1'000'000'000);
  EXPECT_EQ(st.st_atim.tv_nsec, 123);
  EXPECT_EQ(st.st_mtim.tv_sec, 1'200'000'000);
  EXPECT_EQ(st.st_mtim.tv_nsec, 456'789);
  EXPECT_EQ(lstat_path(m("f")).st_mtim.tv_sec, 1'200'000'000) << "mtime seen through the mount";
}

TEST_P(CallerIdentityTest, CallersUmaskAloneDecidesModeOnBacking) {
  // The mapper's own umask must not be applied on top of the caller's.
  Outcome o = as_caller([&] {
    ::umask(0);
    UniqueFd open_fd(::open(m("open0").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0666));
    if (!open_fd || ::mkdir(m("dir0").c_str(), 0777) != 0 ||
        ::mkfifo(m("fifo0").c_str(), 0666) != 0)
      return sys(-1);
    ::umask(077);
    UniqueFd strict_fd(::open(m("open077").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0666));
    if (!strict_fd || ::mkdir(m("dir077").c_str(), 0777) != 0) return sys(-1);
    return Outcome{};
  });
  ASSERT_EQ(o.ret, 0) << describe(o);
  EXPECT_EQ(lstat_path(b("open0")).st_mode & 07777, 0666u);
  EXPECT_EQ(lstat_path(b("dir0")).st_mode & 07777, 0777u);
  EXPECT_EQ(lstat_path(b("fifo0")).st_mode & 07777, 0666u);
  EXPECT_EQ(lstat_path(b("open077")).st_mode & 07777, 0600u);
  EXPECT_EQ(lstat_path(b("dir077")).st_mode & 07777, 0700u);
}

TEST_P(CallerIdentityTest, UnlinkAndRmdirRemoveFromBacking) {
  ASSERT_TRUE(write_file(m("f"), "x"));
  ASSERT_EQ(::mkdir(m("d").c_str(), 0755), 0) << std::strerror(errno);
  Outcome o = as_caller([&] {
    if (::unlink(m("f").c_str()) != 0) return sys(-1);
    return sys(::rmdir(m("d").c_str()));
  });
  ASSERT_EQ(o.ret, 0) << describe(o);
  EXPECT_EQ(::access(b("f").c_str(), F_OK), -1);
  EXPECT_EQ(::access(b("d").c_str(), F_OK), -1);
}

INSTANTIATE_TEST_SUITE_P(AsSeveralUsers, CallerIdentityTest,
                         ::testing::Values(Caller{0, 0, {}}, Caller{1000, 1000, {1000}},
                                           Caller{2000, 2000, {2000}}),
                         [](const ::testing::TestParamInfo<Caller>& p) { return p.param.name(); });

// Mounts a volume with `opts` holding one file, "f", into `vol`; skips the
// test where the backing filesystem does not store POSIX ACLs.
void mount_acl_volume(const VolumeOptions& opts, std::unique_ptr<MountedVolume>* vol) {
  *vol = std::make_unique<MountedVolume>(opts);
  if (!supports_posix_acl((*vol)->backing()))
    GTEST_SKIP() << "the backing filesystem does not store POSIX ACLs";
  ASSERT_EQ((*vol)->start(), "ready");
  ASSERT_TRUE(write_file((*vol)->path("f"), "acl"));
}

// The kernel lets only the file's (presented) owner, or a caller with
// CAP_FOWNER, change an ACL, before the mapper is asked. So each caller gets a
// volume presented with its own ids, as a container running as that uid would.
class CallerAclTest : public ::testing::TestWithParam<Caller> {
 protected:
  void SetUp() override {
    SKIP_UNLESS_MAPPER_TESTS_CAN_RUN();
    VolumeOptions opts;
    if (GetParam().uid != 0) {
      opts.present_uid = GetParam().uid;
      opts.present_gid = GetParam().gid;
    }
    mount_acl_volume(opts, &vol_);
  }
  void TearDown() override { vol_.reset(); }
  std::unique_ptr<MountedVolume> vol_;
};

const std::string& acl_granting_other_read() {
  static const std::string acl = encode_acl({{kAclUserObj, 6, kAclNoId},
                                             {kAclUser, 4, kOtherUid},
                                             {kAclGroupObj, 4, kAclNoId},
                                             {kAclMask, 4, kAclNoId},
                                             {kAclOther, 0, kAclNoId}});
  return acl;
}

TEST_P(CallerAclTest, AclSetThroughMountIsStoredOnBacking) {
  const std::string& acl = acl_granting_other_read();
  std::string f = vol_->path("f");
  Outcome o = run_as(GetParam(), [&] {
    return sys(::setxattr(f.c_str(), kAclAccessXattr, acl.data(), acl.size(), 0));
  });
  ASSERT_EQ(o.ret, 0) << describe(o);
  std::optional<std::string> stored = get_xattr(vol_->backing_path("f"), kAclAccessXattr);
  ASSERT_TRUE(stored) << std::strerror(errno);
  bool grants_other = false;
  for (const AclEntry& e : decode_acl(*stored))
    if (e.tag == kAclUser && e.id == kOtherUid && e.perm == 4) grants_other = true;
  EXPECT_TRUE(grants_other) << "user:7002:r-- missing from the backing file's ACL";
  EXPECT_EQ(get_xattr(f, kAclAccessXattr), stored) << "the ACL read back through the mount";
  struct stat st = lstat_path(vol_->backing_path("f"));
  EXPECT_EQ(st.st_uid, kTenantUid);
}

INSTANTIATE_TEST_SUITE_P(AsSeveralUsers, CallerAclTest,
                         ::testing::Values(Caller{0, 0, {}}, Caller{1000, 1000, {1000}},
                                           Caller{2000, 2000, {2000}}),
                         [](const ::testing::TestParamInfo<Caller>& p) { return p.param.name(); });

TEST(AclOwnershipTest, AclChangeByCallerNotPresentedAsOwnerFailsWithEperm) {
  SKIP_UNLESS_MAPPER_TESTS_CAN_RUN();
  VolumeOptions opts;
  opts.present_uid = 1000;
  opts.present_gid = 1000;
  MountedVolume vol(opts);
  if (!supports_posix_acl(vol.backing()))
    GTEST_SKIP() << "the backing filesystem has no POSIX ACLs";
  ASSERT_EQ(vol.start(), "ready");
  ASSERT_TRUE(write_file(vol.path("f"), "acl"));
  const std::string& acl = acl_granting_other_read();
  std::string f = vol.path("f");
  Outcome o = run_as(Caller{2000, 2000, {2000}}, [&] {
    return sys(::setxattr(f.c_str(), kAclAccessXattr, acl.data(), acl.size(), 0));
  });
  EXPECT_EQ(o.ret, -1);
  EXPECT_EQ(o.err, EPERM) << describe(o);
  EXPECT_FALSE(get_xattr(vol.backing_path("f"), kAclAccessXattr)) << "an ACL reached the storage";
}

// ACL entries that name the tenant are presented the way the tenant's files
// are: with the volume's ids inside the mount, with the tenant's on the
// storage. Entries naming anyone else keep their ids.
class AclIdPresentationTest : public ::testing::Test {
 protected:
  static constexpr uid_t kPresentUid = 1000;
  static constexpr gid_t kPresentGid = 1000;
  // Sorts after the presented ids and before the tenant's, so that mapping
  // an entry moves it past this one.
  static constexpr uid_t kBetweenUid = 5000;

  void SetUp() override {
    SKIP_UNLESS_MAPPER_TESTS_CAN_RUN();
    VolumeOptions opts;
    opts.present_uid = kPresentUid;
    opts.present_gid = kPresentGid;
    mount_acl_volume(opts, &vol_);
  }
  void TearDown() override { vol_.reset(); }

  // Sets `acl` as `name` of `path` as the presented owner, as a container
  // process running as that uid would.
  Outcome set_as_owner(const std::string& path, const char* name, const std::string& acl) {
    return run_as(Caller{kPresentUid, kPresentGid, {kPresentGid}}, [&] {
      return sys(::setxattr(path.c_str(), name, acl.data(), acl.size(), 0));
    });
  }

  std::unique_ptr<MountedVolume> vol_;
};

// The named entries (tag, id) of an ACL, in stored order.
using Named = std::vector<std::pair<uint16_t, uint32_t>>;
Named named_entries(const std::string& xattr) {
  Named out;
  for (const AclEntry& e : decode_acl(xattr))
    if (e.tag == kAclUser || e.tag == kAclGroup) out.emplace_back(e.tag, e.id);
  return out;
}

// An access ACL granting read to users `low` and `high` (in that order, as
// the kernel demands) and to group `group`.
std::string acl_granting_read(uid_t low, uid_t high, gid_t group) {
  return encode_acl({{kAclUserObj, 6, kAclNoId},
                     {kAclUser, 4, low},
                     {kAclUser, 4, high},
                     {kAclGroupObj, 4, kAclNoId},
                     {kAclGroup, 4, group},
                     {kAclMask, 4, kAclNoId},
                     {kAclOther, 0, kAclNoId}});
}

TEST_F(AclIdPresentationTest, StorageAclNamingTheTenantShowsThePresentedIds) {
  const std::string stored = acl_granting_read(kBetweenUid, kTenantUid, kTenantGid);
  ASSERT_EQ(::setxattr(vol_->backing_path("f").c_str(), kAclAccessXattr, stored.data(),
                       stored.size(), 0),
            0)
      << std::strerror(errno);
  std::optional<std::string> shown = get_xattr(vol_->path("f"), kAclAccessXattr);
  ASSERT_TRUE(shown) << std::strerror(errno);
  // Sorted as the kernel demands: the presented uid now comes first.
  EXPECT_EQ(named_entries(*shown),
            (Named{{kAclUser, kPresentUid}, {kAclUser, kBetweenUid}, {kAclGroup, kPresentGid}}));
  // What getfacl prints through the mount: the tenant appears as the
  // volume's ids.
  const std::string cmd = "getfacl -n --omit-header '" + vol_->path("f") + "' 2>&1";
  std::string printed;
  if (FILE* p = ::popen(cmd.c_str(), "r")) {
    char buf[512];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) printed.append(buf, n);
    EXPECT_EQ(::pclose(p), 0) << printed;
  }
  EXPECT_NE(printed.find("user:1000:r--"), std::string::npos) << printed;
  EXPECT_NE(printed.find("group:1000:r--"), std::string::npos) << printed;
  EXPECT_EQ(printed.find("7001"), std::string::npos) << printed;
}

TEST_F(AclIdPresentationTest, AclNamingThePresentedIdsIsStoredForTheTenant) {
  const std::string acl = acl_granting_read(kPresentUid, kBetweenUid, kPresentGid);
  Outcome o = set_as_owner(vol_->path("f"), kAclAccessXattr, acl);
  ASSERT_EQ(o.ret, 0) << describe(o);
  std::optional<std::string> stored = get_xattr(vol_->backing_path("f"), kAclAccessXattr);
  ASSERT_TRUE(stored) << std::strerror(errno);
  EXPECT_EQ(named_entries(*stored),
            (Named{{kAclUser, kBetweenUid}, {kAclUser, kTenantUid}, {kAclGroup, kTenantGid}}));
  EXPECT_EQ(get_xattr(vol_->path("f"), kAclAccessXattr), acl)
      << "the ACL read back through the mount is the one that was set";
}

TEST_F(AclIdPresentationTest, DefaultAclForThePresentedIdsIsInheritedByNewFiles) {
  ASSERT_EQ(::mkdir(vol_->path("d").c_str(), 0750), 0) << std::strerror(errno);
  const std::string acl = encode_acl({{kAclUserObj, 7, kAclNoId},
                                      {kAclUser, 5, kPresentUid},
                                      {kAclGroupObj, 5, kAclNoId},
                                      {kAclGroup, 5, kPresentGid},
                                      {kAclMask, 7, kAclNoId},
                                      {kAclOther, 0, kAclNoId}});
  Outcome o = set_as_owner(vol_->path("d"), "system.posix_acl_default", acl);
  ASSERT_EQ(o.ret, 0) << describe(o);
  ASSERT_TRUE(write_file(vol_->path("d/new"), "inherits"));
  std::optional<std::string> stored = get_xattr(vol_->backing_path("d/new"), kAclAccessXattr);
  ASSERT_TRUE(stored) << "no ACL inherited on the storage: " << std::strerror(errno);
  EXPECT_EQ(named_entries(*stored), (Named{{kAclUser, kTenantUid}, {kAclGroup, kTenantGid}}));
  std::optional<std::string> shown = get_xattr(vol_->path("d/new"), kAclAccessXattr);
  ASSERT_TRUE(shown) << std::strerror(errno);
  EXPECT_EQ(named_entries(*shown), (Named{{kAclUser, kPresentUid}, {kAclGroup, kPresentGid}}));
}

// How the mount presents ownership, for each --present-uid/--present-gid.
struct Presentation {
  std::string name;
  std::optional<uid_t> present_uid;
  std::optional<gid_t> present_gid;
  uid_t shown_uid;
  gid_t shown_gid;
};
void PrintTo(const Presentation& p, std::ostream* os) { *os << p.name; }

class PresentationTest : public ::testing::TestWithParam<Presentation> {
 protected:
  void SetUp() override {
    SKIP_UNLESS_MAPPER_TESTS_CAN_RUN();
    VolumeOptions opts;
    opts.present_uid = GetParam().present_uid;
    opts.present_gid = GetParam().present_gid;
    vol_ = std::make_unique<MountedVolume>(opts);
    ASSERT_TRUE(write_file(vol_->backing_path("others"), "not the tenant's"));
    ASSERT_EQ(::chown(vol_->backing_path("others").c_str(), kOtherUid, kOtherGid), 0);
    ASSERT_EQ(vol_->start(), "ready");
  }
  void TearDown() override { vol_.reset(); }
  std::unique_ptr<MountedVolume> vol_;
};

TEST_P(PresentationTest, MountRootShowsPresentedIds) {
  struct stat st = lstat_path(vol_->mountpoint());
  EXPECT_EQ(st.st_uid, GetParam().shown_uid);
  EXPECT_EQ(st.st_gid, GetParam().shown_gid);
  EXPECT_EQ(st.st_mode & 07777, 0700u) << "the root keeps the backing directory's mode";
}

TEST_P(PresentationTest, CreatedFileShowsPresentedIdsButIsTenantOwnedOnBacking) {
  Outcome o = run_as(1000, 1000, {1000}, [&] {
    UniqueFd fd(::open(vol_->path("new").c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    return sys(fd ? 0 : -1);
  });
  ASSERT_EQ(o.ret, 0) << describe(o);
  struct stat in_mount = lstat_path(vol_->path("new"));
  EXPECT_EQ(in_mount.st_uid, GetParam().shown_uid);
  EXPECT_EQ(in_mount.st_gid, GetParam().shown_gid);
  struct stat on_backing = lstat_path(vol_->backing_path("new"));
  EXPECT_EQ(on_backing.st_uid, kTenantUid);
  EXPECT_EQ(on_backing.st_gid, kTenantGid);
}

TEST_P(PresentationTest, DirectoryListingShowsPresentedIds) {
  // Entries never looked up before: their attributes come from the listing
  // itself (readdirplus), which must map ids exactly like a lookup does.
  ASSERT_EQ(::mkdir(vol_->backing_path("fresh").c_str(), 0755), 0);
  ASSERT_EQ(::chown(vol_->backing_path("fresh").c_str(), kTenantUid, kTenantGid), 0);
  for (const char* name : {"one", "two", "three"}) {
    std::string p = vol_->backing_path(std::string("fresh/") + name);
    ASSERT_TRUE(write_file(p, name));
    ASSERT_EQ(::chown(p.c_str(), kTenantUid, kTenantGid), 0);
  }
  UniqueFd dir(::open(vol_->path("fresh").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ASSERT_TRUE(dir) << std::strerror(errno);
  DIR* d = ::fdopendir(::dup(dir.get()));
  ASSERT_NE(d, nullptr);
  int seen = 0;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    struct stat st {};
    ASSERT_EQ(::fstatat(dir.get(), e->d_name, &st, AT_SYMLINK_NOFOLLOW), 0) << e->d_name;
    EXPECT_EQ(st.st_uid, GetParam().shown_uid) << e->d_name;
    EXPECT_EQ(st.st_gid, GetParam().shown_gid) << e->d_name;
    ++seen;
  }
  ::closedir(d);
  EXPECT_EQ(seen, 3);
}

TEST_P(PresentationTest, OtherOwnersAppearAsTheyAre) {
  struct stat st = lstat_path(vol_->path("others"));
  EXPECT_EQ(st.st_uid, kOtherUid);
  EXPECT_EQ(st.st_gid, kOtherGid);
}

TEST_P(PresentationTest, ChownToPresentedIdsIsAcceptedAsNoOp) {
  ASSERT_TRUE(write_file(vol_->path("f"), "x"));
  EXPECT_EQ(::chown(vol_->path("f").c_str(), GetParam().shown_uid, GetParam().shown_gid), 0)
      << std::strerror(errno);
  struct stat st = lstat_path(vol_->backing_path("f"));
  EXPECT_EQ(st.st_uid, kTenantUid);
  EXPECT_EQ(st.st_gid, kTenantGid);
}

TEST_P(PresentationTest, RootCannotChownToAnyoneElse) {
  ASSERT_TRUE(write_file(vol_->path("f"), "x"));
  EXPECT_EQ(::chown(vol_->path("f").c_str(), 4242, 4242), -1);
  EXPECT_EQ(errno, EPERM) << errno_name(errno);
  struct stat st = lstat_path(vol_->backing_path("f"));
  EXPECT_EQ(st.st_uid, kTenantUid);
  EXPECT_EQ(st.st_gid, kTenantGid);
}

INSTANTIATE_TEST_SUITE_P(
    Ids, PresentationTest,
    ::testing::Values(Presentation{"Default", std::nullopt, std::nullopt, kTenantUid, kTenantGid},
                      Presentation{"AsRoot", 0, 0, 0, 0},
                      Presentation{"As1000", 1000, 1000, 1000, 1000}),
    [](const ::testing::TestParamInfo<Presentation>& p) { return p.param.name; });

}  // namespace
}  // namespace tenantfs::testing

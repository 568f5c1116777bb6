// Extended attributes through the mount: the security.* namespace (host LSM
// labels, file capabilities) is not offered, everything else is the backing
// store's; and writes through the mount still strip suid, sgid and file
// capabilities from the backing file, as a write by the tenant would.
#include <fcntl.h>
#include <linux/capability.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "tests/mapper/mapper_fixture.h"

namespace tenantfs::testing {
namespace {

// Any security.* name root may set without an LSM (cap_inode_setxattr only
// asks for CAP_SYS_ADMIN).
constexpr const char* kLabelXattr = "security.tenantfs_test";
constexpr const char* kCapsXattr = "security.capability";

// A valid file capability set (revision 2: cap_net_bind_service=ep), as
// setcap would store it.
std::string file_caps() {
  vfs_cap_data caps{};
  caps.magic_etc = VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE;
  caps.data[0].permitted = 1u << CAP_NET_BIND_SERVICE;
  return std::string(reinterpret_cast<const char*>(&caps), XATTR_CAPS_SZ_2);
}

// The names listxattr returns for `path`, through its size query first, as
// getfattr does.
std::vector<std::string> list_names(const std::string& path) {
  const ssize_t size = ::listxattr(path.c_str(), nullptr, 0);
  EXPECT_GE(size, 0) << "listxattr size query of " << path << ": " << std::strerror(errno);
  if (size <= 0) return {};
  std::string buf(static_cast<size_t>(size), '\0');
  const ssize_t n = ::listxattr(path.c_str(), buf.data(), buf.size());
  EXPECT_EQ(n, size) << "listxattr of " << path << " returned another size than its query";
  if (n <= 0) return {};
  std::vector<std::string> names;
  for (size_t at = 0; at < static_cast<size_t>(n);) {
    names.emplace_back(buf.c_str() + at);
    at += names.back().size() + 1;
  }
  return names;
}

bool contains(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

class XattrTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SKIP_UNLESS_MAPPER_TESTS_CAN_RUN();
    vol_ = std::make_unique<MountedVolume>();
    f_ = vol_->backing_path("f");
    ASSERT_TRUE(write_file(f_, "content", 0644));
    ASSERT_EQ(::chown(f_.c_str(), kTenantUid, kTenantGid), 0) << std::strerror(errno);
  }
  void TearDown() override { vol_.reset(); }

  // Puts `name` on the backing file as root, or skips the test if the
  // backing filesystem refuses it.
  void put_backing_xattr(const char* name, const std::string& value) {
    if (::setxattr(f_.c_str(), name, value.data(), value.size(), 0) != 0) {
      GTEST_SKIP() << "cannot set " << name << " on the backing filesystem: "
                   << std::strerror(errno);
    }
  }

  std::unique_ptr<MountedVolume> vol_;
  std::string f_;  // a tenant-owned file, on the backing store
};

TEST_F(XattrTest, SecurityXattrsOfTheBackingFileAreNeitherReadableNorListed) {
  put_backing_xattr(kLabelXattr, "host-label");
  put_backing_xattr(kCapsXattr, file_caps());
  ASSERT_EQ(::setxattr(f_.c_str(), "user.kept", "1", 1, 0), 0) << std::strerror(errno);
  ASSERT_EQ(vol_->start(), "ready");
  const std::string f = vol_->path("f");

  for (const char* name : {kLabelXattr, kCapsXattr, "security.selinux"}) {
    char buf[256];
    Outcome o = sys(::getxattr(f.c_str(), name, buf, sizeof buf));
    EXPECT_EQ(o.err, EOPNOTSUPP) << "getxattr " << name << " through the mount: " << describe(o);
    o = sys(::getxattr(f.c_str(), name, nullptr, 0));
    EXPECT_EQ(o.err, EOPNOTSUPP) << "size query of " << name << ": " << describe(o);
  }
  const std::vector<std::string> names = list_names(f);
  EXPECT_TRUE(contains(names, "user.kept")) << "user.* must still be listed";
  for (const std::string& name : names) {
    EXPECT_NE(name.rfind("security.", 0), 0u) << name << " was listed through the mount";
  }
  // The list is exactly the backing list without security.*: a buffer of the
  // filtered size is enough, one byte less is ERANGE.
  std::string exact(std::string("user.kept").size() + 1, '\0');
  EXPECT_EQ(::listxattr(f.c_str(), exact.data(), exact.size()),
            static_cast<ssize_t>(exact.size()));
  Outcome short_buf = sys(::listxattr(f.c_str(), exact.data(), exact.size() - 1));
  EXPECT_EQ(short_buf.err, ERANGE) << describe(short_buf);
}

TEST_F(XattrTest, SecurityXattrsCannotBeSetOrRemovedThroughTheMount) {
  put_backing_xattr(kLabelXattr, "host-label");
  ASSERT_EQ(vol_->start(), "ready");
  const std::string f = vol_->path("f");

  Outcome o = sys(::setxattr(f.c_str(), "security.other", "x", 1, 0));
  EXPECT_EQ(o.err, EOPNOTSUPP) << "setxattr security.other: " << describe(o);
  const std::string caps = file_caps();
  o = sys(::setxattr(f.c_str(), kCapsXattr, caps.data(), caps.size(), 0));
  EXPECT_EQ(o.err, EOPNOTSUPP) << "setxattr security.capability: " << describe(o);
  o = sys(::removexattr(f.c_str(), kLabelXattr));
  EXPECT_EQ(o.err, EOPNOTSUPP) << "removexattr " << kLabelXattr << ": " << describe(o);

  EXPECT_FALSE(get_xattr(f_, "security.other")) << "security.other reached the storage";
  EXPECT_FALSE(get_xattr(f_, kCapsXattr)) << "file capabilities reached the storage";
  EXPECT_EQ(get_xattr(f_, kLabelXattr), "host-label") << "the host's label was removed";
}

TEST_F(XattrTest, UserXattrsRoundTripBetweenMountAndBacking) {
  ASSERT_EQ(vol_->start(), "ready");
  const std::string f = vol_->path("f");
  ASSERT_EQ(::setxattr(f.c_str(), "user.through", "mount", 5, 0), 0) << std::strerror(errno);
  EXPECT_EQ(get_xattr(f_, "user.through"), "mount");
  ASSERT_EQ(::setxattr(f_.c_str(), "user.direct", "backing", 7, 0), 0) << std::strerror(errno);
  EXPECT_EQ(get_xattr(f, "user.direct"), "backing");
  const std::vector<std::string> names = list_names(f);
  EXPECT_TRUE(contains(names, "user.through") && contains(names, "user.direct"));
  ASSERT_EQ(::removexattr(f.c_str(), "user.through"), 0) << std::strerror(errno);
  EXPECT_FALSE(get_xattr(f_, "user.through")) << "removal did not reach the storage";
}

// Killing privileges is the backing kernel's job (the mapper writes as the
// tenant, without CAP_FSETID), whoever writes through the mount.
TEST_F(XattrTest, WriteThroughMountStripsSuidSgidAndFileCapabilities) {
  ASSERT_EQ(::chmod(f_.c_str(), 06775), 0) << std::strerror(errno);
  put_backing_xattr(kCapsXattr, file_caps());
  ASSERT_EQ(vol_->start(), "ready");
  {
    UniqueFd fd(::open(vol_->path("f").c_str(), O_WRONLY | O_APPEND | O_CLOEXEC));
    ASSERT_TRUE(fd) << std::strerror(errno);
    ASSERT_EQ(::write(fd.get(), "!", 1), 1) << std::strerror(errno);
  }
  struct stat st = lstat_path(f_);
  EXPECT_EQ(st.st_mode & 07777, 0775u) << "suid/sgid survived a write through the mount";
  EXPECT_FALSE(get_xattr(f_, kCapsXattr)) << "file capabilities survived a write through the mount";
  EXPECT_EQ(read_file(f_), "content!");
}

TEST_F(XattrTest, TruncateThroughMountStripsSuid) {
  ASSERT_EQ(::chmod(f_.c_str(), 04755), 0) << std::strerror(errno);
  ASSERT_EQ(vol_->start(), "ready");
  ASSERT_EQ(::truncate(vol_->path("f").c_str(), 3), 0) << std::strerror(errno);
  struct stat st = lstat_path(f_);
  EXPECT_EQ(st.st_mode & 07777, 0755u) << "suid survived a truncate through the mount";
  EXPECT_EQ(st.st_size, 3);
}

}  // namespace
}  // namespace tenantfs::testing

#include "plugin/mount_table.h"

#include <gtest/gtest.h>

#include <fstream>

#include "plugin_test_support.h"

namespace tenantfs {
namespace {

TEST(MountTable, ParsesMountinfoWithOptionalFieldsAndEscapes) {
  testing::TempDir tmp;
  const std::string file = tmp.sub("mountinfo");
  std::ofstream(file)
      << "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
      << "40 22 0:39 / /srv/mounts/data rw,nosuid,nodev shared:7 master:2 - fuse.tenantfs "
         "tenantfs:data rw,user_id=0\n"
      << "41 22 0:40 / /srv/mounts/with\\040space rw - fuse.tenantfs tenantfs:x rw\n"
      << "42 22 0:41 / /srv/mounts/other rw - fuse.sshfs host:/ rw\n"
      << "43 22 0:42 / /srv/mounts/deep/er rw - fuse.tenantfs tenantfs:y rw\n"
      << "44 22 0:43 / /srv/mountsX/z rw - fuse.tenantfs tenantfs:z rw\n"
      << "garbage line\n";
  auto table = read_mount_table(file);
  ASSERT_TRUE(table.ok()) << table.status().message();
  ASSERT_EQ(table->size(), 6u);
  EXPECT_EQ((*table)[1].mount_point, "/srv/mounts/data");
  EXPECT_EQ((*table)[1].fstype, "fuse.tenantfs");
  EXPECT_EQ((*table)[1].source, "tenantfs:data");
  EXPECT_EQ((*table)[2].mount_point, "/srv/mounts/with space");
  EXPECT_TRUE(is_mount_point(*table, "/srv/mounts/data"));
  EXPECT_FALSE(is_mount_point(*table, "/srv/mounts"));

  // Only direct children of the mount root, only our fstype.
  EXPECT_EQ(tenantfs_mounts_under(*table, "/srv/mounts"),
            (std::vector<std::string>{"data", "with space"}));
}

TEST(MountTable, MissingFileIsAnErrorNamingIt) {
  auto table = read_mount_table("/nonexistent/mountinfo");
  ASSERT_FALSE(table.ok());
  EXPECT_NE(table.status().message().find("/nonexistent/mountinfo"), std::string::npos);
}

TEST(MountTable, UnmountingWhatIsNotMountedIsOk) {
  if (::geteuid() != 0) GTEST_SKIP() << "umount2 needs root even to find nothing mounted";
  testing::TempDir tmp;
  EXPECT_TRUE(unmount(tmp.path()).ok());
  EXPECT_TRUE(unmount_lazily(tmp.path()).ok());
  EXPECT_FALSE(is_dead_fuse_mount(tmp.path()));
}

}  // namespace
}  // namespace tenantfs

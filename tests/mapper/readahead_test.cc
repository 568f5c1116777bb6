// Unit tests of mapper/readahead.h over a made-up /sys and mountinfo.
#include "mapper/readahead.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace tenantfs {
namespace {

namespace fs = std::filesystem;

class ReadaheadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/tenantfs-readahead-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
  }
  void TearDown() override { fs::remove_all(root_); }

  void write(const std::string& rel, const std::string& text) {
    fs::create_directories(fs::path(root_ + "/" + rel).parent_path());
    std::ofstream(root_ + "/" + rel) << text;
  }
  std::string read(const std::string& rel) {
    std::ifstream in(root_ + "/" + rel);
    std::string s;
    std::getline(in, s);
    return s;
  }

  std::string root_;
};

TEST_F(ReadaheadTest, DeviceReadaheadComesFromTheFilesystemsOwnBdiFirst) {
  write("class/bdi/0:52/read_ahead_kb", "960\n");
  EXPECT_EQ(device_readahead_kb(makedev(0, 52), root_), 960u);
}

TEST_F(ReadaheadTest, DeviceReadaheadOfAWholeDiskAndOfAPartition) {
  write("dev/block/254:0/bdi/read_ahead_kb", "8192\n");
  EXPECT_EQ(device_readahead_kb(makedev(254, 0), root_), 8192u);
  // A partition's directory sits inside its disk's: ../bdi is the disk's.
  write("block/vda/bdi/read_ahead_kb", "4096\n");
  fs::create_directories(root_ + "/block/vda/vda1");
  fs::create_directories(root_ + "/dev/block");
  fs::create_symlink(root_ + "/block/vda/vda1", root_ + "/dev/block/254:1");
  EXPECT_EQ(device_readahead_kb(makedev(254, 1), root_), 4096u);
}

TEST_F(ReadaheadTest, NoBdiMeansNoDeviceReadahead) {
  EXPECT_EQ(device_readahead_kb(makedev(0, 33), root_), std::nullopt);
  write("class/bdi/0:34/read_ahead_kb", "garbage\n");
  EXPECT_EQ(device_readahead_kb(makedev(0, 34), root_), std::nullopt);
}

TEST_F(ReadaheadTest, MountReadaheadFollowsTheDeviceWithinBounds) {
  write("dev/block/8:0/bdi/read_ahead_kb", "128\n");
  write("dev/block/8:16/bdi/read_ahead_kb", "2048\n");
  write("dev/block/8:32/bdi/read_ahead_kb", "65536\n");
  EXPECT_EQ(mount_readahead_kb(makedev(8, 0), root_), kMinReadaheadKb);
  EXPECT_EQ(mount_readahead_kb(makedev(8, 16), root_), 2048u);
  EXPECT_EQ(mount_readahead_kb(makedev(8, 32), root_), kMaxReadaheadKb);
  // tmpfs, overlay: no device, the lower bound.
  EXPECT_EQ(mount_readahead_kb(makedev(0, 99), root_), kMinReadaheadKb);
}

TEST_F(ReadaheadTest, MountDeviceIsTheTopmostFuseMountAtThePathWithEscapesUndone) {
  write("mountinfo",
        "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
        "40 22 0:39 / /mnt/with\\040space rw,nosuid,nodev shared:2 - fuse.tenantfs tenantfs:a "
        "rw,user_id=0,group_id=0,allow_other\n"
        "41 22 0:40 / /mnt/vol rw - fuse.tenantfs tenantfs:b rw\n"
        "42 41 0:41 / /mnt/vol rw - fuse.tenantfs tenantfs:c rw\n"
        "43 22 0:42 / /mnt/tmp rw - tmpfs tmpfs rw\n"
        "44 22 0:43 / /mnt/over rw - fuse.tenantfs tenantfs:d rw\n"
        "45 44 254:0 / /mnt/over rw shared:9 - ext4 /dev/vda rw\n");
  const std::string mi = root_ + "/mountinfo";
  EXPECT_EQ(mount_device("/mnt/with space", mi), "0:39");
  EXPECT_EQ(mount_device("/mnt/vol", mi), "0:41");
  EXPECT_EQ(mount_device("/mnt/with\\040space", mi), std::nullopt);
  EXPECT_EQ(mount_device("/mnt", mi), std::nullopt);
  // Only FUSE mounts: never a disk's or tmpfs' setting.
  EXPECT_EQ(mount_device("/mnt/tmp", mi), std::nullopt);
  EXPECT_EQ(mount_device("/mnt/over", mi), "0:43");
}

}  // namespace
}  // namespace tenantfs

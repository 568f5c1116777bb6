// A volume whose storage fills up: the writer learns it no later than at
// fsync or close, and afterwards the mount shows what the storage holds —
// the size and the bytes that landed, not what the kernel buffered. The
// backing directory is a 4 MiB tmpfs; the writer tries to put 6 MiB on it.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>

#include "tests/mapper/mapper_fixture.h"

namespace tenantfs::testing {
namespace {

constexpr size_t kMiB = 1 << 20;
constexpr size_t kAttempt = 6 * kMiB;  // more than the 4 MiB tmpfs holds

class FullDiskTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    SKIP_UNLESS_MAPPER_TESTS_CAN_RUN();
    vol_ = std::make_unique<MountedVolume>(cache_options(GetParam()));
    small_ = std::make_unique<ScopedTmpfs>(vol_->backing());
    ASSERT_TRUE(small_->mounted());
    ASSERT_EQ(::chown(vol_->backing().c_str(), kTenantUid, kTenantGid), 0);
    ASSERT_EQ(::chmod(vol_->backing().c_str(), 0700), 0);
    ASSERT_EQ(vol_->start(), "ready");
  }
  void TearDown() override {
    // The mapper first: it holds the tmpfs busy.
    if (vol_) vol_->stop();
    small_.reset();
    vol_.reset();
  }

  // What the mount shows of `rel` equals what the storage holds. The mapper
  // drops the kernel's cache right after answering the failed write, from
  // a thread of its own: allow it a while on a loaded machine, but far less
  // than the ~20 s after which the kernel, left alone, sometimes drops the
  // inode by itself.
  void expect_mount_shows_storage(const std::string& rel) {
    const off_t stored = lstat_path(vol_->backing_path(rel)).st_size;
    EXPECT_TRUE(eventually([&] { return lstat_path(vol_->path(rel)).st_size == stored; },
                           std::chrono::seconds(5)))
        << "the mount shows " << lstat_path(vol_->path(rel)).st_size << " bytes, the storage "
        << stored;
    EXPECT_EQ(read_file(vol_->path(rel)), read_file(vol_->backing_path(rel)));
  }

  std::unique_ptr<MountedVolume> vol_;
  std::unique_ptr<ScopedTmpfs> small_;
};

// Writes kAttempt bytes in 1 MiB blocks, as a container user would, and
// notes the first error of write, fsync and close.
struct WriteResult {
  int write_err = 0;
  int fsync_err = 0;
  int close_err = 0;
  int first() const { return write_err ? write_err : fsync_err ? fsync_err : close_err; }
};

WriteResult write_too_much(int fd) {
  WriteResult r;
  const std::string block = random_bytes(kMiB, 7);
  for (size_t done = 0; done < kAttempt && r.write_err == 0;) {
    const ssize_t n = ::write(fd, block.data(), block.size());
    if (n < 0) {
      r.write_err = errno;
    } else {
      done += static_cast<size_t>(n);
    }
  }
  if (::fsync(fd) != 0) r.fsync_err = errno;
  return r;
}

TEST_P(FullDiskTest, WriterGetsEnospcAndTheMountShowsWhatTheStorageHolds) {
  UniqueFd fd(::open(vol_->path("big").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  ASSERT_TRUE(fd) << std::strerror(errno);
  WriteResult r = write_too_much(fd.get());
  if (::close(fd.release()) != 0) r.close_err = errno;
  EXPECT_EQ(r.first(), ENOSPC) << "write " << errno_name(r.write_err) << ", fsync "
                               << errno_name(r.fsync_err) << ", close " << errno_name(r.close_err);
  EXPECT_LT(lstat_path(vol_->backing_path("big")).st_size, static_cast<off_t>(kAttempt));
  expect_mount_shows_storage("big");
}

TEST_P(FullDiskTest, WhileTheWriterStillHoldsTheFileTheMountShowsWhatTheStorageHolds) {
  UniqueFd fd(::open(vol_->path("big").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  ASSERT_TRUE(fd) << std::strerror(errno);
  const WriteResult r = write_too_much(fd.get());
  EXPECT_EQ(r.first(), ENOSPC) << "write " << errno_name(r.write_err) << ", fsync "
                               << errno_name(r.fsync_err);
  expect_mount_shows_storage("big");
  // Space again: the same volume takes a whole file. The RELEASE that lets
  // the mapper close the unlinked file follows close() asynchronously.
  fd.reset();
  ASSERT_EQ(::unlink(vol_->path("big").c_str()), 0);
  EXPECT_TRUE(eventually([&] {
    struct statvfs v {};
    return ::statvfs(vol_->backing().c_str(), &v) == 0 && v.f_bavail * v.f_frsize >= 2 * kMiB;
  }));
  const std::string data = random_bytes(kMiB, 9);
  EXPECT_TRUE(write_file(vol_->path("after"), data));
  EXPECT_EQ(read_file(vol_->backing_path("after")), data);
  EXPECT_EQ(read_file(vol_->path("after")), data);
}

INSTANTIATE_TEST_SUITE_P(Cache, FullDiskTest, ::testing::Values("strict", "exclusive"),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });

}  // namespace
}  // namespace tenantfs::testing

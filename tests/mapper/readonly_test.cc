// --readonly: every modification fails with EROFS, reads still work, and the
// storage is left exactly as it was.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>

#include "tests/mapper/mapper_fixture.h"

namespace tenantfs::testing {
namespace {

class ReadonlyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SKIP_UNLESS_MAPPER_TESTS_CAN_RUN();
    VolumeOptions opts;
    opts.readonly = true;
    vol_ = std::make_unique<MountedVolume>(opts);
    std::string f = vol_->backing_path("file");
    ASSERT_TRUE(write_file(f, "original", 0644));
    ASSERT_EQ(::chown(f.c_str(), kTenantUid, kTenantGid), 0);
    std::string d = vol_->backing_path("dir");
    ASSERT_EQ(::mkdir(d.c_str(), 0755), 0);
    ASSERT_EQ(::chown(d.c_str(), kTenantUid, kTenantGid), 0);
    ASSERT_EQ(vol_->start(), "ready");
  }
  void TearDown() override { vol_.reset(); }

  std::string m(const std::string& rel) const { return vol_->path(rel); }
  std::unique_ptr<MountedVolume> vol_;
};

Outcome open_and_close(const std::string& path, int flags) {
  UniqueFd fd(::open(path.c_str(), flags | O_CLOEXEC, 0644));
  return sys(fd ? 0 : -1);
}

TEST_F(ReadonlyTest, EveryModificationFailsWithErofs) {
  struct Op {
    const char* what;
    std::function<Outcome()> run;
  };
  const std::vector<Op> ops = {
      {"open for writing", [&] { return open_and_close(m("file"), O_WRONLY); }},
      {"open with O_TRUNC", [&] { return open_and_close(m("file"), O_RDONLY | O_TRUNC); }},
      {"create", [&] { return open_and_close(m("new"), O_WRONLY | O_CREAT); }},
      {"truncate", [&] { return sys(::truncate(m("file").c_str(), 0)); }},
      {"mkdir", [&] { return sys(::mkdir(m("newdir").c_str(), 0755)); }},
      {"rmdir", [&] { return sys(::rmdir(m("dir").c_str())); }},
      {"unlink", [&] { return sys(::unlink(m("file").c_str())); }},
      {"rename", [&] { return sys(::rename(m("file").c_str(), m("moved").c_str())); }},
      {"link", [&] { return sys(::link(m("file").c_str(), m("hard").c_str())); }},
      {"symlink", [&] { return sys(::symlink("file", m("soft").c_str())); }},
      {"mkfifo", [&] { return sys(::mkfifo(m("fifo").c_str(), 0644)); }},
      {"chmod", [&] { return sys(::chmod(m("file").c_str(), 0600)); }},
      {"chown", [&] { return sys(::chown(m("file").c_str(), kTenantUid, kTenantGid)); }},
      {"utimensat", [&] { return sys(::utimensat(AT_FDCWD, m("file").c_str(), nullptr, 0)); }},
      {"setxattr", [&] { return sys(::setxattr(m("file").c_str(), "user.k", "v", 1, 0)); }},
  };
  for (const Op& op : ops) {
    Outcome o = run_as(Caller{}, op.run);
    EXPECT_EQ(o.ret, -1) << op.what << " succeeded on a read-only volume";
    EXPECT_EQ(o.err, EROFS) << op.what << ": " << describe(o);
  }
  std::string b = vol_->backing_path("");
  EXPECT_EQ(read_file(b + "file"), "original");
  EXPECT_EQ(lstat_path(b + "file").st_mode & 07777, 0644u);
  EXPECT_TRUE(S_ISDIR(lstat_path(b + "dir").st_mode));
  for (const char* absent : {"new", "newdir", "moved", "hard", "soft", "fifo"})
    EXPECT_EQ(::access((b + absent).c_str(), F_OK), -1) << absent << " appeared on the storage";
  EXPECT_FALSE(get_xattr(b + "file", "user.k"));
}

TEST_F(ReadonlyTest, ReadsAndListingStillWork) {
  Outcome o = run_as(Caller{1000, 1000, {1000}}, [&] {
    UniqueFd fd(::open(m("file").c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return sys(-1);
    Outcome r;
    char buf[64];
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) return sys(-1);
    r.data.assign(buf, static_cast<size_t>(n));
    struct stat st {};
    if (::stat(m("dir").c_str(), &st) != 0) return sys(-1);
    return r;
  });
  ASSERT_EQ(o.ret, 0) << describe(o);
  EXPECT_EQ(o.data, "original");
}

}  // namespace
}  // namespace tenantfs::testing

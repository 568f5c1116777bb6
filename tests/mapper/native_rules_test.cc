// Rules the kernel applies to the tenant natively, which the mount must
// apply too, under both cache policies: timestamps and syncs of files the
// tenant may write but does not own, what chown without a change clears,
// chgrp to the tenant's own groups, and who may open a FIFO. Each test makes
// the same objects on a native directory of the tenant and on the backing
// store, runs the same calls natively as the tenant and through the mount as
// a container user, and expects both to give what the kernel gives natively.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <functional>
#include <memory>
#include <string>

#include "tests/mapper/mapper_fixture.h"

namespace tenantfs::testing {
namespace {

// A caller inside a container: any uid, acting as the tenant on the mount.
const Caller kContainerUser{1000, 1000, {1000}};
const Caller kTenantNatively{kTenantUid, kTenantGid, {kSharedGid}};

// Runs the steps of a sequence and reports the first that failed, by name,
// in Outcome::data; ret 0 when all succeeded.
class Steps {
 public:
  Steps& then(const char* name, const std::function<long()>& step) {
    if (failed_.ret != 0) return *this;
    if (step() < 0) {
      failed_ = sys(-1);
      failed_.data = name;
    }
    return *this;
  }
  Outcome outcome() const { return failed_; }

 private:
  Outcome failed_;
};

class NativeRulesTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    SKIP_UNLESS_MAPPER_TESTS_CAN_RUN();
    VolumeOptions opts;
    opts.groups = {kSharedGid};
    opts.cache = GetParam();
    vol_ = std::make_unique<MountedVolume>(opts);
    native_ = std::make_unique<VolumeDirs>();
    // The native tenant walks to its directory through the root-only parent.
    ASSERT_EQ(::chmod((native_->root() + "/store").c_str(), 0711), 0);
    ASSERT_EQ(vol_->start(), "ready");
  }
  void TearDown() override {
    vol_.reset();
    native_.reset();
  }

  // Makes `rel` in the native directory and on the backing store (as root,
  // before the mount first looks it up) with `make(path)`.
  void make_in_both(const std::string& rel, const std::function<void(const std::string&)>& make) {
    make(native_->backing() + "/" + rel);
    make(vol_->backing_path(rel));
  }

  // Runs `calls(path)` natively as the tenant and through the mount as a
  // container user; expects both outcomes to equal `want`.
  void expect_native_and_mount(const std::string& rel,
                               const std::function<Outcome(const std::string&)>& calls,
                               const Outcome& want) {
    const Outcome native =
        run_as(kTenantNatively, [&] { return calls(native_->backing() + "/" + rel); });
    const Outcome mounted = run_as(kContainerUser, [&] { return calls(vol_->path(rel)); });
    EXPECT_EQ(native.ret, want.ret) << "natively: " << native.data << ": " << describe(native);
    EXPECT_EQ(native.err, want.err) << "natively: " << native.data << ": " << describe(native);
    EXPECT_EQ(mounted.ret, native.ret)
        << "through the mount: " << mounted.data << ": " << describe(mounted);
    EXPECT_EQ(mounted.err, native.err)
        << "through the mount: " << mounted.data << ": " << describe(mounted);
  }

  std::string native_path(const std::string& rel) const { return native_->backing() + "/" + rel; }

  std::unique_ptr<MountedVolume> vol_;
  std::unique_ptr<VolumeDirs> native_;
};

// A file of another user that the tenant may write through a group.
void make_group_writable_file_of_other(const std::string& path) {
  ASSERT_TRUE(write_file(path, "shared\n"));
  ASSERT_EQ(::chown(path.c_str(), kOtherUid, kSharedGid), 0);
  ASSERT_EQ(::chmod(path.c_str(), 0664), 0);
}

Outcome write_sync_touch(const std::string& path) {
  Steps s;
  int fd = -1;
  s.then("open", [&] { return fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC); })
      .then("write", [&] { return ::write(fd, "more\n", 5); })
      .then("fsync", [&] { return ::fsync(fd); })
      .then("write again", [&] { return ::write(fd, "last\n", 5); })
      .then("fdatasync", [&] { return ::fdatasync(fd); })
      .then("close",
            [&] {
              const int res = ::close(fd);
              fd = -1;
              return res;
            })
      .then("touch", [&] { return ::utimensat(AT_FDCWD, path.c_str(), nullptr, 0); });
  if (fd >= 0) ::close(fd);
  return s.outcome();
}

TEST_P(NativeRulesTest, WriterThatDoesNotOwnAFileMayWriteSyncAndTouchIt) {
  make_in_both("shared", make_group_writable_file_of_other);
  expect_native_and_mount("shared", write_sync_touch, Outcome{});
  EXPECT_EQ(read_file(vol_->backing_path("shared")), "shared\nmore\nlast\n");
}

TEST_P(NativeRulesTest, WriterThatDoesNotOwnAFileMayTruncateIt) {
  make_in_both("shared", make_group_writable_file_of_other);
  expect_native_and_mount(
      "shared",
      [](const std::string& path) {
        Steps s;
        int fd = -1;
        s.then("open", [&] { return fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC); })
            .then("ftruncate", [&] { return ::ftruncate(fd, 3); })
            .then("fsync", [&] { return ::fsync(fd); })
            .then("truncate", [&] { return ::truncate(path.c_str(), 2); });
        if (fd >= 0) ::close(fd);
        return s.outcome();
      },
      Outcome{});
  EXPECT_EQ(read_file(vol_->backing_path("shared")), "sh");
}

TEST_P(NativeRulesTest, ExplicitTimesOnAFileNotOwnedFailWithEperm) {
  make_in_both("shared", make_group_writable_file_of_other);
  const struct timespec both[2] = {{1000000000, 0}, {1000000000, 0}};
  const struct timespec mtime_only[2] = {{0, UTIME_OMIT}, {1000000000, 0}};
  Outcome eperm = sys(-1);
  eperm.err = EPERM;
  // touch -d, touch -m -d
  for (const struct timespec* tv : {both, mtime_only}) {
    expect_native_and_mount(
        "shared",
        [&](const std::string& path) { return sys(::utimensat(AT_FDCWD, path.c_str(), tv, 0)); },
        eperm);
  }
  EXPECT_NE(lstat_path(vol_->backing_path("shared")).st_mtim.tv_sec, 1000000000);
}

// The tenant's file, setuid and setgid, once with group execute and once
// in a group the tenant is not in: chown without a change clears each bit
// natively (chown_common).
void make_setid_file(const std::string& path, gid_t group, mode_t mode) {
  ASSERT_TRUE(write_file(path, "#!/bin/sh\n"));
  ASSERT_EQ(::chown(path.c_str(), kTenantUid, group), 0);
  ASSERT_EQ(::chmod(path.c_str(), mode), 0);
}

TEST_P(NativeRulesTest, ChownToNoOneClearsSetuidAndSetgidAsNatively) {
  make_in_both("exec", [](const std::string& p) { make_setid_file(p, kTenantGid, 06755); });
  make_in_both("other-group", [](const std::string& p) { make_setid_file(p, kOtherGid, 06644); });
  for (const char* rel : {"exec", "other-group"}) {
    expect_native_and_mount(
        rel,
        [](const std::string& path) {
          return sys(::chown(path.c_str(), static_cast<uid_t>(-1), static_cast<gid_t>(-1)));
        },
        Outcome{});
    const mode_t native = lstat_path(native_path(rel)).st_mode & 07777;
    EXPECT_EQ(native & 06000, 0u) << rel << " natively: " << std::oct << native;
    EXPECT_EQ(lstat_path(vol_->backing_path(rel)).st_mode & 07777, native)
        << rel << " on the backing store";
    EXPECT_EQ(lstat_path(vol_->path(rel)).st_mode & 07777, native) << rel << " on the mount";
  }
}

TEST_P(NativeRulesTest, ChgrpToOneOfTheTenantsGroupsIsAllowed) {
  make_in_both("mine", [](const std::string& p) {
    ASSERT_TRUE(write_file(p, "x"));
    ASSERT_EQ(::chown(p.c_str(), kTenantUid, kTenantGid), 0);
  });
  expect_native_and_mount(
      "mine",
      [](const std::string& path) {
        return sys(::chown(path.c_str(), static_cast<uid_t>(-1), kSharedGid));
      },
      Outcome{});
  EXPECT_EQ(lstat_path(vol_->backing_path("mine")).st_gid, kSharedGid);
  // A supplementary group is shown as itself: only the primary is presented.
  EXPECT_EQ(lstat_path(vol_->path("mine")).st_gid, kSharedGid);
  EXPECT_EQ(lstat_path(vol_->path("mine")).st_uid, kTenantUid);

  // Back to the primary group, by its presented id.
  EXPECT_EQ(run_as(kContainerUser,
                   [&] { return sys(::chown(vol_->path("mine").c_str(), -1, kTenantGid)); })
                .ret,
            0);
  EXPECT_EQ(lstat_path(vol_->backing_path("mine")).st_gid, kTenantGid);

  // A group the tenant is not in stays refused, as natively.
  Outcome eperm = sys(-1);
  eperm.err = EPERM;
  expect_native_and_mount(
      "mine",
      [](const std::string& path) {
        return sys(::chown(path.c_str(), static_cast<uid_t>(-1), kOtherGid));
      },
      eperm);
  EXPECT_EQ(lstat_path(vol_->backing_path("mine")).st_gid, kTenantGid);
}

void make_fifo(const std::string& path, uid_t uid, gid_t gid, mode_t mode) {
  ASSERT_EQ(::mkfifo(path.c_str(), mode), 0);
  ASSERT_EQ(::chown(path.c_str(), uid, gid), 0);
  ASSERT_EQ(::chmod(path.c_str(), mode), 0);
}

// O_NONBLOCK: a FIFO opened for reading alone must not wait for a writer.
std::function<Outcome(const std::string&)> open_fifo(int flags) {
  return [flags](const std::string& path) {
    UniqueFd fd(::open(path.c_str(), flags | O_NONBLOCK | O_CLOEXEC));
    return fd ? Outcome{} : sys(-1);
  };
}

TEST_P(NativeRulesTest, FifoOfAnotherUserOpensOnlyAsTheTenantMay) {
  make_in_both("private", [](const std::string& p) { make_fifo(p, kOtherUid, kOtherGid, 0600); });
  make_in_both("group", [](const std::string& p) { make_fifo(p, kOtherUid, kSharedGid, 0660); });
  make_in_both("mine", [](const std::string& p) { make_fifo(p, kTenantUid, kTenantGid, 0600); });
  Outcome eacces = sys(-1);
  eacces.err = EACCES;
  expect_native_and_mount("private", open_fifo(O_RDWR), eacces);
  expect_native_and_mount("private", open_fifo(O_RDONLY), eacces);
  expect_native_and_mount("group", open_fifo(O_RDWR), Outcome{});
  expect_native_and_mount("mine", open_fifo(O_RDWR), Outcome{});
  EXPECT_TRUE(S_ISFIFO(lstat_path(vol_->path("group")).st_mode));
  EXPECT_TRUE(S_ISFIFO(lstat_path(vol_->path("mine")).st_mode));
}

INSTANTIATE_TEST_SUITE_P(Cache, NativeRulesTest, ::testing::Values("strict", "exclusive"),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });

}  // namespace
}  // namespace tenantfs::testing

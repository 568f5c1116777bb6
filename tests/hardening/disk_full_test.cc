// DATA_DIR on a full filesystem (an 8 MiB tmpfs) while STATE_DIR lives
// elsewhere: a writer through the mount gets ENOSPC, the service keeps
// answering, and the store stays intact.
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <vector>

#include "serve_harness.h"
#include "store/sqlite_store.h"

namespace tenantfs::hardening {
namespace {

// Writes 1 MiB blocks to `path` until a write, fsync or close fails or
// `limit` bytes are written; returns the errno of the failure (0: none).
int fill(const std::string& path, size_t limit) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return errno;
  std::string block(1 << 20, 'x');
  int err = 0;
  for (size_t done = 0; done < limit && err == 0;) {
    ssize_t n = ::write(fd, block.data(), block.size());
    if (n < 0) {
      err = errno;
    } else {
      done += static_cast<size_t>(n);
    }
  }
  if (err == 0 && ::fsync(fd) != 0) err = errno;
  if (::close(fd) != 0 && err == 0) err = errno;
  return err;
}

class DiskFullTest : public ServeHarness {
 protected:
  void SetUp() override {
    if (::geteuid() != 0 || ::access("/dev/fuse", R_OK | W_OK) != 0) {
      GTEST_SKIP() << "needs root and /dev/fuse";
    }
    char tmpl[] = "/tmp/tenantfs-small.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    small_ = tmpl;
    ASSERT_EQ(::mount("tmpfs", small_.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "size=8m,mode=0700"),
              0);
    data_dir_ = small_ + "/data";
    ServeHarness::SetUp();
  }
  void TearDown() override {
    if (!root_.empty() && serve_pid_ > 0) {
      Call("Unmount", json{{"Name", "full"}, {"ID", "c"}});
    }
    ServeHarness::TearDown();
    if (!small_.empty()) {
      ::umount2(small_.c_str(), MNT_DETACH);
      ::rmdir(small_.c_str());
    }
  }
  std::string small_;
};

TEST_F(DiskFullTest, WriterGetsEnospcAndTheServiceAndStoreStayHealthy) {
  CreateVolume("full", {{"tenant", "alice"}});
  CreateVolume("other", {{"tenant", "bob"}});
  ASSERT_EQ(MountVolume("full", "c"), mp("full"));
  EXPECT_EQ(fill(mp("full") + "/big", size_t{64} << 20), ENOSPC);

  // Everything that does not need space on DATA_DIR still works.
  EXPECT_TRUE(ServiceAnswers());
  EXPECT_EQ(Mounts("full"), 1);
  EXPECT_EQ(MountVolume("other", "c2"), mp("other"));
  EXPECT_EQ(Call("Unmount", json{{"Name", "other"}, {"ID", "c2"}}).err(), "");
  Reply list = Call("List", json::object());
  EXPECT_EQ(list.body["Volumes"].size(), 2u) << list.body;
  // A Create either succeeds or says why; it never breaks the store.
  Reply create = Call("Create", json{{"Name", "while-full"}, {"Opts", {{"tenant", "alice"}}}});
  EXPECT_EQ(create.status, 200);
  const bool created = create.err().empty();
  if (!created) {
    EXPECT_NE(create.err().find("space"), std::string::npos) << create.body;
  }

  // Space comes back: the volume works again. FUSE sends RELEASE after
  // close() returns, so the mapper may still hold the unlinked file open for
  // a moment: its blocks are free once the backing filesystem says so.
  ASSERT_EQ(::unlink((mp("full") + "/big").c_str()), 0);
  EXPECT_TRUE(eventually([&] {
    struct statvfs vfs {};
    return ::statvfs(small_.c_str(), &vfs) == 0 && vfs.f_bavail * vfs.f_frsize >= (size_t{4} << 20);
  })) << "the space of the unlinked file never came back";
  EXPECT_EQ(fill(mp("full") + "/small", 1 << 20), 0);
  EXPECT_EQ(Call("Create", json{{"Name", "after"}, {"Opts", {{"tenant", "alice"}}}}).err(), "");

  // The store, read independently, holds exactly what was answered.
  auto store = SqliteStore::Open(root_ + "/state/tenantfs.db");
  ASSERT_TRUE(store.ok()) << store.status().message();
  auto volumes = (*store)->list_volumes();
  ASSERT_TRUE(volumes.ok());
  std::vector<std::string> names;
  for (const auto& v : *volumes) names.push_back(v.name);
  std::vector<std::string> want = {"after", "full", "other"};
  if (created) want.push_back("while-full");
  std::sort(want.begin(), want.end());
  EXPECT_EQ(names, want);
  auto refs = (*store)->refs("full");
  ASSERT_TRUE(refs.ok());
  EXPECT_EQ(refs->total(), 1);
  for (const std::string& n : want) {
    struct stat st {};
    EXPECT_EQ(::stat(backing(n).c_str(), &st), 0) << n;
  }
}

}  // namespace
}  // namespace tenantfs::hardening

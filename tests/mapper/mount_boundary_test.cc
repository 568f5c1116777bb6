// Mounts below a volume's backing directory are not part of the volume: a
// bind mount of the same filesystem (which can show data from outside the
// volume) is refused like another filesystem, and the mapper holds nothing
// inside either, so both can be unmounted while the volume is served.
#include <dirent.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "tests/mapper/mapper_fixture.h"

namespace tenantfs::testing {
namespace {

const Caller kRoot{0, 0, {}};

// Bind-mounts `from` at `to` and detaches it on destruction if still there.
class ScopedBind {
 public:
  ScopedBind(const std::string& from, const std::string& to) : to_(to) {
    mounted_ = ::mount(from.c_str(), to.c_str(), nullptr, MS_BIND, nullptr) == 0;
  }
  ScopedBind(const ScopedBind&) = delete;
  ScopedBind& operator=(const ScopedBind&) = delete;
  ~ScopedBind() {
    if (find_mount(to_)) ::umount2(to_.c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }

 private:
  std::string to_;
  bool mounted_ = false;
};

// A directory on the backing store owned by the tenant, so that only the
// mount boundary can keep the mapper out of what is mounted on it.
void tenant_dir(const std::string& path) {
  ASSERT_EQ(::mkdir(path.c_str(), 0755), 0) << path << ": " << std::strerror(errno);
  ASSERT_EQ(::chown(path.c_str(), kTenantUid, kTenantGid), 0) << std::strerror(errno);
}

void tenant_file(const std::string& path, const std::string& content) {
  ASSERT_TRUE(write_file(path, content, 0644));
  ASSERT_EQ(::chown(path.c_str(), kTenantUid, kTenantGid), 0) << std::strerror(errno);
}

// A directory outside the volume, on the same filesystem, holding a file
// "secret" that the tenant may read: what a bind mount could expose.
std::string make_outside(const MountedVolume& vol) {
  const std::string outside = vol.root() + "/outside";
  tenant_dir(outside);
  tenant_file(outside + "/secret", "outside the volume");
  return outside;
}

// Reads `path` through the mount as container root: ret 0 and the content,
// or -1 and errno.
Outcome read_as_root(const std::string& path) {
  return run_as(kRoot, [&] {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return sys(-1);
    Outcome o;
    char buf[256];
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) return sys(-1);
    o.data.assign(buf, static_cast<size_t>(n));
    return o;
  });
}

// Lists `path` through the mount: ret is the number of entries besides
// "." and "..", or -1 and errno.
Outcome list_as_root(const std::string& path) {
  return run_as(kRoot, [&] {
    DIR* d = ::opendir(path.c_str());
    if (d == nullptr) return sys(-1);
    long n = 0;
    while (const dirent* e = ::readdir(d)) {
      if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) ++n;
    }
    ::closedir(d);
    return sys(n);
  });
}

Outcome create_as_root(const std::string& path) {
  return run_as(kRoot, [&] {
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
    return sys(fd ? 0 : -1);
  });
}

class MountBoundaryTest : public ::testing::Test {
 protected:
  void SetUp() override { SKIP_UNLESS_MAPPER_TESTS_CAN_RUN(); }
};

TEST_F(MountBoundaryTest, NestedMountsAreRefusedAndCanBeUnmountedWhileServed) {
  MountedVolume vol;
  const std::string outside = make_outside(vol);
  tenant_dir(vol.backing_path("bound"));
  tenant_dir(vol.backing_path("tmp"));
  tenant_file(vol.backing_path("control"), "inside the volume");
  ScopedBind bind(outside, vol.backing_path("bound"));
  ASSERT_TRUE(bind.mounted()) << std::strerror(errno);
  ScopedTmpfs tmpfs(vol.backing_path("tmp"));
  ASSERT_TRUE(tmpfs.mounted());
  ASSERT_EQ(::chown(vol.backing_path("tmp").c_str(), kTenantUid, kTenantGid), 0);
  tenant_file(vol.backing_path("tmp/secret"), "another filesystem");
  ASSERT_EQ(vol.start(), "ready");

  // Listing the volume's root looks every entry up (readdirplus).
  Outcome root = list_as_root(vol.mountpoint());
  EXPECT_EQ(root.ret, 3) << describe(root);
  Outcome control = read_as_root(vol.path("control"));
  ASSERT_EQ(control.ret, 0) << describe(control);
  EXPECT_EQ(control.data, "inside the volume");

  for (const char* dir : {"bound", "tmp"}) {
    SCOPED_TRACE(dir);
    Outcome secret = read_as_root(vol.path(std::string(dir) + "/secret"));
    EXPECT_EQ(secret.ret, -1) << "served from a nested mount: \"" << secret.data << "\"";
    EXPECT_EQ(secret.err, EXDEV) << describe(secret);
    Outcome list = list_as_root(vol.path(dir));
    EXPECT_EQ(list.ret, -1) << "listed a nested mount: " << describe(list);
    EXPECT_EQ(list.err, EXDEV) << describe(list);
    Outcome planted = create_as_root(vol.path(std::string(dir) + "/planted"));
    EXPECT_EQ(planted.ret, -1) << "created a file in a nested mount";
  }
  EXPECT_NE(::access((outside + "/planted").c_str(), F_OK), 0);

  // The mapper holds nothing in them: both unmount (not lazily) while the
  // volume is mounted and serving.
  EXPECT_EQ(::umount2(vol.backing_path("bound").c_str(), 0), 0) << std::strerror(errno);
  EXPECT_EQ(::umount2(vol.backing_path("tmp").c_str(), 0), 0) << std::strerror(errno);
  ASSERT_TRUE(find_mount(vol.mountpoint()));
  Outcome after = read_as_root(vol.path("control"));
  EXPECT_EQ(after.data, "inside the volume") << describe(after);
}

TEST_F(MountBoundaryTest, BindMountOverADirectoryAlreadyLookedUpIsRefused) {
  MountedVolume vol;
  const std::string outside = make_outside(vol);
  tenant_dir(vol.backing_path("later"));
  tenant_file(vol.backing_path("later/own"), "inside the volume");
  ASSERT_EQ(vol.start(), "ready");
  // The kernel caches the directory and what it holds before the mount.
  Outcome own = read_as_root(vol.path("later/own"));
  ASSERT_EQ(own.data, "inside the volume") << describe(own);

  ScopedBind bind(outside, vol.backing_path("later"));
  ASSERT_TRUE(bind.mounted()) << std::strerror(errno);
  Outcome secret = read_as_root(vol.path("later/secret"));
  EXPECT_EQ(secret.ret, -1) << "served from a bind mount: \"" << secret.data << "\"";
  Outcome listed = run_as(kRoot, [&] {
    // Whatever the listing shows, the outside file must not be in it.
    DIR* d = ::opendir(vol.path("later").c_str());
    if (d == nullptr) return sys(0);
    long found = 0;
    while (const dirent* e = ::readdir(d)) found += std::strcmp(e->d_name, "secret") == 0;
    ::closedir(d);
    return sys(found);
  });
  EXPECT_EQ(listed.ret, 0) << "the bind mount's content was listed";
  EXPECT_EQ(::umount2(vol.backing_path("later").c_str(), 0), 0) << std::strerror(errno);
}

// A directory the mapper looked up but holds no fd for has its xattrs read
// by name in its parent (getxattrat): once a bind mount covers that name,
// what such a read finds is the mount's, and it must be discarded, never
// answered.
TEST_F(MountBoundaryTest, XattrsOfANameCoveredByAMountSinceItsLookupAreNotTheMounts) {
  MountedVolume vol;
  const std::string outside = make_outside(vol);
  ASSERT_EQ(::setxattr(outside.c_str(), "user.mark", "outside", 7, 0), 0) << std::strerror(errno);
  ASSERT_EQ(::setxattr(outside.c_str(), "user.outside_only", "1", 1, 0), 0);
  tenant_dir(vol.backing_path("later"));
  ASSERT_EQ(::setxattr(vol.backing_path("later").c_str(), "user.mark", "inside", 6, 0), 0);
  ASSERT_EQ(vol.start(), "ready");
  auto mark = [&] {
    return run_as(kRoot, [&] {
      char buf[64];
      const ssize_t n = ::getxattr(vol.path("later").c_str(), "user.mark", buf, sizeof buf);
      if (n < 0) return sys(-1);
      Outcome o;
      o.data.assign(buf, static_cast<size_t>(n));
      return o;
    });
  };
  auto names = [&] {
    return run_as(kRoot, [&] {
      char buf[256];
      const ssize_t n = ::listxattr(vol.path("later").c_str(), buf, sizeof buf);
      if (n < 0) return sys(-1);
      Outcome o;
      o.data.assign(buf, static_cast<size_t>(n));
      return o;
    });
  };
  Outcome before = mark();
  ASSERT_EQ(before.data, "inside") << describe(before);

  ScopedBind bind(outside, vol.backing_path("later"));
  ASSERT_TRUE(bind.mounted()) << std::strerror(errno);
  Outcome after = mark();
  EXPECT_NE(after.data, "outside") << "answered with the bind mount's xattr";
  EXPECT_EQ(after.ret, -1) << describe(after);
  Outcome listed = names();
  EXPECT_EQ(listed.data.find("user.outside_only"), std::string::npos)
      << "listed the bind mount's xattrs";
  // Nothing of the mount is held: it unmounts, and the name is the
  // volume's own directory again.
  EXPECT_EQ(::umount2(vol.backing_path("later").c_str(), 0), 0) << std::strerror(errno);
  EXPECT_TRUE(eventually([&] { return mark().data == "inside"; }, std::chrono::milliseconds(5000)));
}

}  // namespace
}  // namespace tenantfs::testing

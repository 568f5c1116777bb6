// Attacks from inside a container (any uid, root included) on tenantfs
// volumes: reaching another tenant's data, taking ownership, gaining
// privilege through file modes, and path traversal through Create options.
// Every assertion is what the attacker sees (errno) or what lands on the
// storage (owner, mode).
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <string>

#include "serve_harness.h"

namespace tenantfs::hardening {
namespace {

// Reads `path` whole; 0 when it held `expect`, else the errno (or EBADMSG
// for other content).
int read_expect(const std::string& path, const std::string& expect) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  char buf[256];
  ssize_t n = ::read(fd, buf, sizeof buf);
  int err = n < 0 ? errno : 0;
  ::close(fd);
  if (err != 0) return err;
  return std::string(buf, static_cast<size_t>(n)) == expect ? 0 : EBADMSG;
}

int write_text(const std::string& path, const std::string& text, mode_t mode = 0644) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return errno;
  ssize_t n = ::write(fd, text.data(), text.size());
  int err = n == static_cast<ssize_t>(text.size()) ? 0 : (n < 0 ? errno : EIO);
  if (::close(fd) != 0 && err == 0) err = errno;
  return err;
}

struct stat lstat_of(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) st.st_mode = 0;
  return st;
}

class AttackTest : public ServeHarness {
 protected:
  void SetUp() override {
    ServeHarness::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    CreateVolume("va", {{"tenant", "alice"}});
    CreateVolume("vb", {{"tenant", "bob"}});
    ASSERT_EQ(MountVolume("va", "ctr"), mp("va"));
    ASSERT_EQ(MountVolume("vb", "ctr"), mp("vb"));
    // Bob's secret, written through bob's volume: 0600 bob on the storage.
    ASSERT_EQ(as_user(0, 0, [&] { return write_text(mp("vb") + "/secret", "bob only", 0600); }),
              0);
    struct stat st = lstat_of(backing("vb") + "/secret");
    ASSERT_EQ(st.st_uid, kBobUid);
    ASSERT_EQ(st.st_mode & 0777, 0600u);
  }
  void TearDown() override {
    if (!root_.empty() && serve_pid_ > 0) {
      Call("Unmount", json{{"Name", "va"}, {"ID", "ctr"}});
      Call("Unmount", json{{"Name", "vb"}, {"ID", "ctr"}});
    }
    ServeHarness::TearDown();
  }
};

TEST_F(AttackTest, CrossVolumeHardLinkAndRenameFailWithExdev) {
  int rc = in_container({{mp("va"), "/a"}, {mp("vb"), "/b"}}, 0, 0, [] {
    if (::link("/b/secret", "/a/stolen") == 0) return 100;
    if (errno != EXDEV) return 101;
    if (::rename("/b/secret", "/a/stolen") == 0) return 102;
    if (errno != EXDEV) return 103;
    if (write_text("/a/mine", "a") != 0) return 104;
    if (::rename("/a/mine", "/b/given") == 0) return 105;
    return errno == EXDEV ? 0 : 106;
  });
  EXPECT_EQ(rc, 0);
  EXPECT_EQ(lstat_of(backing("va") + "/stolen").st_mode, 0u);
  EXPECT_EQ(lstat_of(backing("vb") + "/secret").st_uid, kBobUid);
}

TEST_F(AttackTest, CrossVolumeSymlinkToTheOtherBackingPathResolvesToNothingInTheContainer) {
  // Planted by the container itself, and planted on the storage behind its
  // back: both name bob's data by its host path.
  const std::string target = backing("vb") + "/secret";
  ASSERT_EQ(in_container({{mp("va"), "/a"}}, 0, 0,
                         [&] { return ::symlink(target.c_str(), "/a/planted") == 0 ? 0 : errno; }),
            0);
  ASSERT_EQ(::symlink(target.c_str(), (backing("va") + "/on-storage").c_str()), 0);
  ASSERT_EQ(::symlink("../vb/secret", (backing("va") + "/relative").c_str()), 0);
  for (const char* link : {"/a/planted", "/a/on-storage", "/a/relative"}) {
    for (uid_t uid : {uid_t{0}, kContainerUid}) {
      EXPECT_EQ(in_container({{mp("va"), "/a"}}, uid, uid,
                             [&] { return read_expect(link, "bob only"); }),
                ENOENT)
          << link << " as uid " << uid;
    }
  }
}

TEST_F(AttackTest, CrossVolumeSymlinkReadsTheOtherVolumeOnlyThroughItsOwnMount) {
  // By design: a container that mounted bob's volume may read it, through
  // bob's mapper; the symlink in alice's volume adds nothing.
  ASSERT_EQ(::symlink("/b/secret", (backing("va") + "/to-b").c_str()), 0);
  EXPECT_EQ(in_container({{mp("va"), "/a"}, {mp("vb"), "/b"}}, kContainerUid, kContainerUid,
                         [] { return read_expect("/a/to-b", "bob only"); }),
            0);
  EXPECT_EQ(in_container({{mp("va"), "/a"}}, 0, 0, [] { return read_expect("/a/to-b", ""); }),
            ENOENT);
}

TEST_F(AttackTest, HardLinkToAnotherTenantsFileOnTheStorageIsOpenedAsTheVolumesTenant) {
  // Someone with access to the storage links bob's file into alice's volume:
  // alice's mapper still acts as alice, and alice may not read it.
  ASSERT_EQ(::link((backing("vb") + "/secret").c_str(), (backing("va") + "/linked").c_str()), 0);
  for (uid_t uid : {uid_t{0}, kContainerUid}) {
    EXPECT_EQ(in_container({{mp("va"), "/a"}}, uid, uid,
                           [] { return read_expect("/a/linked", "bob only"); }),
              EACCES)
        << "as uid " << uid;
    EXPECT_EQ(in_container({{mp("va"), "/a"}}, uid, uid,
                           [] { return ::chmod("/a/linked", 0644) == 0 ? 0 : errno; }),
              EPERM);
    EXPECT_EQ(in_container({{mp("va"), "/a"}}, uid, uid,
                           [] { return ::chown("/a/linked", 0, 0) == 0 ? 0 : errno; }),
              EPERM);
    EXPECT_EQ(in_container({{mp("va"), "/a"}}, uid, uid,
                           [] { return ::unlink("/a/linked") == 0 ? 0 : errno; }),
              0)
        << "alice may unlink names in her own directory";
    ASSERT_EQ(::link((backing("vb") + "/secret").c_str(), (backing("va") + "/linked").c_str()),
              0);
  }
  struct stat st = lstat_of(backing("vb") + "/secret");
  EXPECT_EQ(st.st_uid, kBobUid);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
}

TEST_F(AttackTest, ChownAndChmodOfFilesTheTenantDoesNotOwnFail) {
  // A root-owned file and one of a stranger, placed on alice's storage.
  ASSERT_EQ(write_text(backing("va") + "/root-file", "r", 0644), 0);
  ASSERT_EQ(write_text(backing("va") + "/stranger", "s", 0666), 0);
  ASSERT_EQ(::chown((backing("va") + "/stranger").c_str(), 4242, 4242), 0);
  ASSERT_EQ(::chmod((backing("va") + "/stranger").c_str(), 0666), 0);
  int rc = in_container({{mp("va"), "/a"}}, 0, 0, [] {
    if (::chmod("/a/root-file", 0777) == 0 || errno != EPERM) return 100;
    if (::chown("/a/root-file", kAliceUid, kAliceUid) == 0 || errno != EPERM) return 101;
    if (::chown("/a/stranger", 0, 0) == 0 || errno != EPERM) return 102;
    if (::chown("/a/stranger", kAliceUid, kAliceUid) == 0 || errno != EPERM) return 103;
    if (::chmod("/a/stranger", 04777) == 0 || errno != EPERM) return 104;
    if (write_text("/a/root-file", "x") != EACCES) return 105;
    // Its own files: chown to anyone but the presented ids is refused.
    if (write_text("/a/own", "o") != 0) return 106;
    if (::chown("/a/own", 0, 0) == 0 || errno != EPERM) return 107;
    if (::chown("/a/own", 4242, -1) == 0 || errno != EPERM) return 108;
    if (::chown("/a/own", kAliceUid, kAliceUid) != 0) return 109;  // the presented ids: a no-op
    return 0;
  });
  EXPECT_EQ(rc, 0);
  EXPECT_EQ(lstat_of(backing("va") + "/root-file").st_uid, 0u);
  EXPECT_EQ(lstat_of(backing("va") + "/root-file").st_mode & 07777, 0644u);
  EXPECT_EQ(lstat_of(backing("va") + "/stranger").st_uid, 4242u);
  EXPECT_EQ(lstat_of(backing("va") + "/stranger").st_mode & 07777, 0666u);
  EXPECT_EQ(lstat_of(backing("va") + "/own").st_uid, kAliceUid);
}

TEST_F(AttackTest, SetuidBitSetByTheTenantGrantsNothing) {
  // A copy of id(1), made setuid and setgid by container root.
  std::string id_bin = read_file("/usr/bin/id");
  ASSERT_FALSE(id_bin.empty());
  ASSERT_EQ(as_user(0, 0, [&] { return write_text(mp("va") + "/id", id_bin, 0755); }), 0);
  ASSERT_EQ(as_user(0, 0, [&] { return ::chmod((mp("va") + "/id").c_str(), 06755) ? errno : 0; }),
            0);
  struct statvfs vfs {};
  ASSERT_EQ(::statvfs(mp("va").c_str(), &vfs), 0);
  EXPECT_TRUE(vfs.f_flag & ST_NOSUID);
  EXPECT_TRUE(vfs.f_flag & ST_NODEV);
  // Run it as an unprivileged container user: it keeps that user's ids.
  int pipefd[2];
  ASSERT_EQ(::pipe(pipefd), 0);
  // The container gets the host's libraries: id is dynamically linked.
  int rc = in_container({{mp("va"), "/a"}, {"/usr", "/usr"}, {"/lib", "/lib"}, {"/lib64", "/lib64"}},
                        kContainerUid, kContainerUid, [&] {
    ::dup2(pipefd[1], 1);
    ::close(pipefd[0]);
    pid_t child = ::fork();
    if (child == 0) {
      ::execl("/a/id", "id", "-u", static_cast<char*>(nullptr));
      _exit(errno);
    }
    int status = 0;
    ::waitpid(child, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 99;
  });
  ::close(pipefd[1]);
  char out[64] = {};
  ssize_t n = ::read(pipefd[0], out, sizeof out - 1);
  ::close(pipefd[0]);
  EXPECT_EQ(rc, 0);
  ASSERT_GT(n, 0);
  EXPECT_EQ(std::string(out, static_cast<size_t>(n)), std::to_string(kContainerUid) + "\n");
  // The bit itself is stored, on a file owned by the tenant (SECURITY.md).
  EXPECT_EQ(lstat_of(backing("va") + "/id").st_uid, kAliceUid);
}

TEST_F(AttackTest, DeviceNodesCannotBeCreated) {
  int rc = in_container({{mp("va"), "/a"}}, 0, 0, [] {
    if (::mknod("/a/mem", S_IFCHR | 0666, makedev(1, 1)) == 0 || errno != EPERM) return 100;
    if (::mknod("/a/sda", S_IFBLK | 0666, makedev(8, 0)) == 0 || errno != EPERM) return 101;
    if (::mknod("/a/fifo", S_IFIFO | 0600, 0) != 0) return 102;  // harmless types still work
    return 0;
  });
  EXPECT_EQ(rc, 0);
  EXPECT_EQ(lstat_of(backing("va") + "/mem").st_mode, 0u);
  EXPECT_EQ(lstat_of(backing("va") + "/sda").st_mode, 0u);
  EXPECT_TRUE(S_ISFIFO(lstat_of(backing("va") + "/fifo").st_mode));
}

TEST_F(AttackTest, ParentOfTheVolumeRootIsTheContainersNotTheStorage) {
  // ".." at the volume's root never reaches DATA_DIR or the other volume.
  int rc = in_container({{mp("va"), "/a"}}, 0, 0, [] {
    if (read_expect("/a/../vb/secret", "bob only") != ENOENT) return 100;
    if (read_expect("/a/../../../vb/secret", "bob only") != ENOENT) return 101;
    return 0;
  });
  EXPECT_EQ(rc, 0);
}

class PathTraversalTest : public ServeHarness {};

TEST_F(PathTraversalTest, VolumeNamesNeverLeaveDataDir) {
  for (const std::string& name : std::vector<std::string>{"../escape", "..", ".", "a/b", "/abs", ".hidden", "-dash", std::string(129, 'n'),
        std::string("nul\0x", 5), "x\n", "%2e%2e"}) {
    Reply r = Call("Create", json{{"Name", name}, {"Opts", {{"tenant", "alice"}}}});
    EXPECT_EQ(r.status, 200);
    EXPECT_NE(r.err(), "") << "accepted name " << json(name).dump();
  }
  EXPECT_EQ(lstat_of(root_ + "/escape").st_mode, 0u);
  EXPECT_EQ(Call("List", json::object()).body, json::parse(R"({"Volumes":[]})"));
}

TEST_F(PathTraversalTest, PathOptionStaysInsideTheAllowedRoots) {
  const std::string allowed = root_ + "/allowed";
  ASSERT_EQ(::mkdir((root_ + "/outside").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((allowed + "/ok").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((allowed + "/ok/deeper").c_str(), 0755), 0);
  ASSERT_EQ(::symlink((root_ + "/outside").c_str(), (allowed + "/link-out").c_str()), 0);
  ASSERT_EQ(::symlink("ok", (allowed + "/link-in").c_str()), 0);
  ASSERT_EQ(::symlink("/proc/self/root", (allowed + "/proc-root").c_str()), 0);
  const std::vector<std::string> refused = {
      allowed + "/../outside",      allowed + "/ok/../../outside", allowed + "/./ok",
      allowed + "//ok",             allowed + "/ok/",              "ok",
      allowed + "/link-out",        allowed + "/link-in",          allowed + "/link-in/deeper",
      allowed + "/proc-root/etc",   "/proc/self/root" + allowed,   "/proc/1/root/etc",
      "/proc",                      root_ + "/outside",            "/",
      allowed + "/missing",         root_ + "/data",               root_ + "/state",
      root_ + "/mnt",               root_ + "/run",                root_};
  for (const std::string& p : refused) {
    Reply r = Call("Create", json{{"Name", "ext"}, {"Opts", {{"tenant", "alice"}, {"path", p}}}});
    EXPECT_NE(r.err(), "") << "path=" << p << " was accepted";
  }
  EXPECT_EQ(Call("List", json::object()).body, json::parse(R"({"Volumes":[]})"));
  // The real thing works, and a symlink swapped in after Create is caught at
  // Mount.
  CreateVolume("ext", {{"tenant", "alice"}, {"path", allowed + "/ok/deeper"}});
  ASSERT_EQ(::rename((allowed + "/ok").c_str(), (allowed + "/ok-moved").c_str()), 0);
  ASSERT_EQ(::symlink((root_ + "/outside").c_str(), (allowed + "/ok").c_str()), 0);
  ASSERT_EQ(::mkdir((root_ + "/outside/deeper").c_str(), 0755), 0);
  Reply r = Call("Mount", json{{"Name", "ext"}, {"ID", "c"}});
  EXPECT_NE(r.err(), "") << r.body;
  EXPECT_FALSE(is_mounted(mp("ext")));
  EXPECT_EQ(Mounts("ext"), 0);
}

}  // namespace
}  // namespace tenantfs::hardening

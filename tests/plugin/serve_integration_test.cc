// `tenantfs serve` as Docker sees it: the real binary on a temp unix socket,
// the real mapper mounting FUSE, HTTP requests over the socket. Needs root
// and /dev/fuse; skips itself otherwise.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "plugin/authz.h"
#include "plugin/mount_table.h"
#include "store/sqlite_store.h"
#include "tests/support/base64.h"
#include "tests/support/serve_harness.h"

namespace tenantfs {
namespace {

using testing::as_user;
using testing::eventually;
using testing::has_exited;
using testing::is_mounted;
using testing::json;
using testing::kAliceUid;
using testing::kContainerUid;
using testing::mapper_pids;
using testing::read_file;
using testing::Reply;

constexpr gid_t kAliceGid = kAliceUid;  // AddTenant makes gid = uid

// Writes `name` inside the directory `dir` as uid (gid = uid). The directory
// is opened as root first, as Docker's bind mount would hand it to a
// container: MOUNT_ROOT itself is root-only.
int write_file_as(uid_t uid, const std::string& dir, const std::string& name,
                  const std::string& text) {
  int dir_fd = ::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) return errno;
  int rc = as_user(uid, uid, [&]() -> int {
    int fd = ::openat(dir_fd, name.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return errno;
    ssize_t n = ::write(fd, text.data(), text.size());
    int err = n == static_cast<ssize_t>(text.size()) ? 0 : (n < 0 ? errno : EIO);
    ::close(fd);
    return err;
  });
  ::close(dir_fd);
  return rc;
}

// Tenant "alice" (uid = gid = kAliceUid) with one supplementary group.
class ServeTest : public testing::ServeHarness {
 protected:
  void SetUp() override {
    testing::ServeHarness::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    AddTenant("alice", kAliceUid, {2100});
  }
};

TEST_F(ServeTest, EveryEndpointWithTheRealMapper) {
  Reply act = Post("/Plugin.Activate", "");
  EXPECT_EQ(act.status, 200);
  EXPECT_EQ(act.content_type, "application/vnd.docker.plugins.v1+json");
  EXPECT_EQ(act.body, json::parse(R"({"Implements":["VolumeDriver","authz"]})"));
  EXPECT_EQ(Call("Capabilities", json::object()).body,
            json::parse(R"({"Capabilities":{"Scope":"local"}})"));

  EXPECT_NE(Call("Get", json{{"Name", "data"}}).err(), "");  // before Create, as Docker asks
  CreateVolume("data", {{"tenant", "alice"}, {"mode", "0750"}});
  struct stat st {};
  ASSERT_EQ(::stat(backing("data").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, kAliceUid);
  EXPECT_EQ(st.st_mode & 07777, 0750u);
  EXPECT_EQ(Call("List", json::object()).body, json::parse(R"({"Volumes":[{"Name":"data"}]})"));
  EXPECT_EQ(Call("Path", json{{"Name", "data"}}).body, json::parse(R"({"Mountpoint":""})"));

  const std::string mountpoint = MountVolume("data", "container-1");
  EXPECT_EQ(mountpoint, mp("data"));
  ASSERT_TRUE(is_mounted(mountpoint));
  // A container process of any uid writes; the storage sees the tenant.
  EXPECT_EQ(write_file_as(kContainerUid, mountpoint, "hello.txt", "hi"), 0);
  ASSERT_EQ(::stat((backing("data") + "/hello.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, kAliceUid);
  EXPECT_EQ(st.st_gid, kAliceGid);

  Reply get = Call("Get", json{{"Name", "data"}});
  EXPECT_EQ(get.body["Volume"]["Mountpoint"], mountpoint);
  EXPECT_EQ(get.body["Volume"]["Status"]["tenant"], "alice");
  EXPECT_EQ(get.body["Volume"]["Status"]["groups"], json::array({2100}));
  EXPECT_EQ(get.body["Volume"]["Status"]["mode"], "0750");
  EXPECT_EQ(get.body["Volume"]["Status"]["mounts"], 1);
  EXPECT_EQ(Call("Path", json{{"Name", "data"}}).body["Mountpoint"], mountpoint);
  EXPECT_EQ(Call("List", json::object()).body["Volumes"][0]["Mountpoint"], mountpoint);

  EXPECT_EQ(Call("Unmount", json{{"Name", "data"}, {"ID", "container-1"}}).body, json::object());
  EXPECT_FALSE(is_mounted(mountpoint));
  EXPECT_TRUE(eventually([&] { return mapper_pids(mountpoint).empty(); }));
  EXPECT_EQ(Call("Remove", json{{"Name", "data"}}).body, json::object());
  EXPECT_NE(::access(backing("data").c_str(), F_OK), 0);
  EXPECT_EQ(Call("List", json::object()).body, json::parse(R"({"Volumes":[]})"));
}

TEST_F(ServeTest, SocketIsPrivate) {
  struct stat st {};
  ASSERT_EQ(::stat(socket_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat((root_ + "/run").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  for (const char* d : {"/data", "/mnt", "/state"}) {
    ASSERT_EQ(::stat((root_ + d).c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u) << d;
  }
}

TEST_F(ServeTest, AuthorizationAnswersEveryBodySizeDockerSends) {
  // The response phase carries Docker's whole API response, of any size:
  // it is answered without being read.
  const std::string response(8 << 20, 'r');
  Reply res = Post("/AuthZPlugin.AuthZRes", response);
  EXPECT_EQ(res.status, 200);
  EXPECT_EQ(res.body, json::parse(R"({"Allow":true})"));
  // A request phase with a forwarded body near Docker's 1 MiB limit is
  // decided on (base64 makes it a third larger).
  const std::string forwarded = "{\"Image\":\"" + std::string(1000 * 1000, 'i') + "\"}";
  const std::string b64 = testing::Base64(forwarded);
  Reply req = Post("/AuthZPlugin.AuthZReq", json{{"User", "bob"},
                                                 {"RequestMethod", "POST"},
                                                 {"RequestURI", "/v1.41/containers/create"},
                                                 {"RequestBody", b64}}
                                                .dump());
  EXPECT_EQ(req.status, 200);
  EXPECT_EQ(req.body, json::parse(R"({"Allow":true})"));
  // Beyond what Docker ever sends: refused with an Err, and serve answers on.
  Reply big = Post("/AuthZPlugin.AuthZReq", std::string(kMaxAuthzBodyBytes + 1, ' '));
  EXPECT_EQ(big.status, 413);
  EXPECT_NE(big.err().find("too large"), std::string::npos) << big.body;
  EXPECT_EQ(Post("/AuthZPlugin.AuthZRes", "{}").status, 200);
}

TEST_F(ServeTest, ErrorPathsAnswerWithAnErr) {
  Reply big = Post("/VolumeDriver.Create", std::string(70 * 1024, ' '));
  EXPECT_EQ(big.status, 413);
  EXPECT_NE(big.err().find("too large"), std::string::npos) << big.body;
  // The path is echoed into that Err; bytes that are not UTF-8 are replaced.
  Reply hostile = Post("/VolumeDriver.Create\xff\xfe", std::string(70 * 1024, ' '));
  EXPECT_EQ(hostile.status, 413);
  EXPECT_NE(hostile.err().find("too large for /VolumeDriver.Create"), std::string::npos)
      << hostile.body;
  Reply unknown = Post("/VolumeDriver.Nope", "{}");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_NE(unknown.err().find("unknown endpoint"), std::string::npos);
  Reply other = Post("/elsewhere", "{}");
  EXPECT_EQ(other.status, 404);
  EXPECT_NE(other.err(), "");
  EXPECT_EQ(Post("/VolumeDriver.Create", "{\"Name\":").err(),
            "tenantfs: the request body is not valid JSON");
  EXPECT_EQ(Call("Create", json{{"Name", "x"}, {"Opts", {{"tenant", "bob"}}}}).err(),
            "tenantfs: volume \"x\": unknown tenant \"bob\"; add it with \"tenantfs tenant add "
            "bob --uid UID --gid GID\" or use an existing tenant");
  EXPECT_NE(Call("Create", json{{"Name", "x"}, {"Opts", {{"tenant", "alice"}, {"mode", "0777"}}}})
                .err()
                .find("world-writable"),
            std::string::npos);
  EXPECT_NE(Call("Create", json{{"Name", "x"}, {"Opts", {{"tenant", "alice"}, {"path", "/etc"}}}})
                .err()
                .find("outside the allowed roots"),
            std::string::npos);
  EXPECT_NE(Call("Create", json{{"Name", "../x"}, {"Opts", {{"tenant", "alice"}}}}).err(), "");
  EXPECT_NE(Call("Remove", json{{"Name", "x"}}).err().find("no such volume"), std::string::npos);
  // Invalid UTF-8 is not JSON: refused with an Err like any other bad body.
  Reply utf8 = Post("/VolumeDriver.Create", "{\"Name\":\"x\",\"Opts\":{\"tenant\":\"\xff\xfe\"}}");
  EXPECT_EQ(utf8.status, 200);
  EXPECT_EQ(utf8.err(), "tenantfs: the request body is not valid JSON");

  CreateVolume("v");
  MountVolume("v", "c1");
  EXPECT_NE(Call("Remove", json{{"Name", "v"}}).err().find("is in use"), std::string::npos);
  EXPECT_TRUE(is_mounted(mp("v")));
  EXPECT_EQ(Call("Create", json{{"Name", "v"}, {"Opts", {{"tenant", "alice"}}}}).err(), "");
  EXPECT_NE(
      Call("Create", json{{"Name", "v"}, {"Opts", {{"tenant", "alice"}, {"cache", "exclusive"}}}})
          .err()
          .find("already exists without cache; it cannot be re-created with cache=exclusive"),
      std::string::npos);
  EXPECT_EQ(Call("Unmount", json{{"Name", "v"}, {"ID", "c1"}}).err(), "");
}

TEST_F(ServeTest, FailedMapperStartKeepsNoReferenceAndCarriesTheMapperError) {
  CreateVolume("broken");
  // A file where the mountpoint directory should be: the mapper's mount fails.
  ASSERT_EQ(::mkdir((root_ + "/mnt").c_str(), 0700) == 0 || errno == EEXIST, true);
  { std::ofstream(mp("broken")) << "not a directory"; }
  Reply r = Call("Mount", json{{"Name", "broken"}, {"ID", "c1"}});
  EXPECT_NE(r.err().find("tenantfs: volume \"broken\": mount failed: mapper error: "),
            std::string::npos)
      << r.body;
  EXPECT_EQ(Mounts("broken"), 0);
  EXPECT_FALSE(is_mounted(mp("broken")));
  ASSERT_EQ(::unlink(mp("broken").c_str()), 0);
  EXPECT_EQ(MountVolume("broken", "c1"), mp("broken"));
  EXPECT_EQ(Mounts("broken"), 1);
  EXPECT_EQ(Call("Unmount", json{{"Name", "broken"}, {"ID", "c1"}}).err(), "");
}

TEST_F(ServeTest, StalledClientsDoNotBlockOthers) {
  // More idle connections than worker threads: each is dropped after the
  // read timeout, so a well-behaved request still gets its answer.
  std::vector<int> stalled;
  for (int i = 0; i < 40; ++i) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, socket_.c_str(), sizeof addr.sun_path - 1);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    const char partial[] = "POST /VolumeDriver.List HTTP/1.1\r\nContent-Length: 100\r\n\r\n{";
    ASSERT_GT(::write(fd, partial, sizeof partial - 1), 0);
    stalled.push_back(fd);
  }
  Reply r = Call("List", json::object());
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, json::parse(R"({"Volumes":[]})"));
  for (int fd : stalled) ::close(fd);
}

TEST_F(ServeTest, ConcurrentMountsAndUnmountsLeaveExactCounts) {
  CreateVolume("busy");
  auto run_concurrently = [&](const std::vector<std::pair<std::string, std::string>>& calls) {
    std::vector<std::thread> threads;
    std::atomic<int> errors{0};
    for (const auto& [op, id] : calls) {
      threads.emplace_back([&, op, id] {
        Reply r = Call(op, json{{"Name", "busy"}, {"ID", id}});
        if (r.status != 200 || !r.err().empty()) ++errors;
      });
    }
    for (auto& t : threads) t.join();
    return errors.load();
  };
  // 150 Mounts over 5 repeated IDs, with 50 Unmounts of IDs never mounted.
  std::vector<std::pair<std::string, std::string>> phase1;
  for (int i = 0; i < 200; ++i) {
    if (i % 4 == 3) {
      phase1.emplace_back("Unmount", "ghost-" + std::to_string(i));
    } else {
      phase1.emplace_back("Mount", "ctr-" + std::to_string(i % 5));
    }
  }
  EXPECT_EQ(run_concurrently(phase1), 0);
  EXPECT_EQ(Mounts("busy"), 150);
  EXPECT_EQ(mapper_pids(mp("busy")).size(), 1u);
  // 100 Unmounts of mounted IDs (20 each) with 100 of unknown IDs.
  std::vector<std::pair<std::string, std::string>> phase2;
  for (int i = 0; i < 200; ++i) {
    phase2.emplace_back("Unmount", i % 2 ? "ctr-" + std::to_string(i % 5) : "ghost");
  }
  EXPECT_EQ(run_concurrently(phase2), 0);
  EXPECT_EQ(Mounts("busy"), 50);
  EXPECT_TRUE(is_mounted(mp("busy")));
  EXPECT_EQ(write_file_as(kContainerUid, mp("busy"), "f", "x"), 0);
  // The rest, plus extra Unmounts: the count stops at zero and the mount goes.
  std::vector<std::pair<std::string, std::string>> phase3;
  for (int i = 0; i < 60; ++i) phase3.emplace_back("Unmount", "ctr-" + std::to_string(i % 5));
  EXPECT_EQ(run_concurrently(phase3), 0);
  EXPECT_EQ(Mounts("busy"), 0);
  EXPECT_FALSE(is_mounted(mp("busy")));
}

TEST_F(ServeTest, KillNineOfServeThenRestartAdoptsLiveMountsAndKeepsCounts) {
  CreateVolume("a");
  CreateVolume("b");
  MountVolume("a", "c1");
  MountVolume("a", "c1");
  MountVolume("a", "c2");
  MountVolume("b", "c3");
  StopServe(SIGKILL);
  // The mappers outlive serve: containers keep their I/O.
  EXPECT_EQ(write_file_as(kContainerUid, mp("a"), "during-outage", "x"), 0);

  StartServe();
  EXPECT_EQ(Mounts("a"), 3);
  EXPECT_EQ(Mounts("b"), 1);
  EXPECT_EQ(Call("Get", json{{"Name", "a"}}).body["Volume"]["Mountpoint"], mp("a"));
  EXPECT_EQ(write_file_as(kContainerUid, mp("b"), "after-restart", "x"), 0);
  struct stat st {};
  ASSERT_EQ(::stat((backing("b") + "/after-restart").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, kAliceUid);
  EXPECT_EQ(mapper_pids(mp("a")).size(), 1u);  // adopted, not doubled

  // Releasing the adopted mounts takes them down.
  for (const char* id : {"c1", "c1", "c2"}) {
    EXPECT_EQ(Call("Unmount", json{{"Name", "a"}, {"ID", id}}).err(), "");
  }
  EXPECT_FALSE(is_mounted(mp("a")));
  EXPECT_TRUE(eventually([&] { return mapper_pids(mp("a")).empty(); }));
  EXPECT_TRUE(is_mounted(mp("b")));
}

TEST_F(ServeTest, KillNineOfServeAndMapperThenRestartRemounts) {
  CreateVolume("a");
  MountVolume("a", "c1");
  MountVolume("a", "c2");
  struct stat root_st {};
  ASSERT_EQ(::stat(mp("a").c_str(), &root_st), 0);  // the root's attributes are now cached
  StopServe(SIGKILL);
  const std::vector<pid_t> mappers = mapper_pids(mp("a"));
  ASSERT_EQ(mappers.size(), 1u);
  ::kill(mappers[0], SIGKILL);
  // Once the mapper has closed /dev/fuse (a zombie or gone) the mount is dead,
  // although a stat of its root may still be answered from the cache.
  ASSERT_TRUE(eventually([&] { return has_exited(mappers[0]); }));
  ASSERT_TRUE(is_dead_fuse_mount(mp("a")));

  StartServe();
  EXPECT_EQ(Mounts("a"), 2);
  EXPECT_FALSE(is_dead_fuse_mount(mp("a")));
  EXPECT_EQ(write_file_as(kContainerUid, mp("a"), "f", "remounted"), 0);
  struct stat st {};
  ASSERT_EQ(::stat((backing("a") + "/f").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, kAliceUid);
  auto table = read_mount_table();
  ASSERT_TRUE(table.ok());
  int stacked = 0;
  for (const auto& e : *table) stacked += e.mount_point == mp("a");
  EXPECT_EQ(stacked, 1);  // the dead mount was removed, not buried
}

TEST_F(ServeTest, LiveMountWithoutReferencesIsUnmountedAtStart) {
  CreateVolume("a");
  MountVolume("a", "c1");
  StopServe(SIGKILL);
  {
    auto store = SqliteStore::Open(root_ + "/state/tenantfs.db");
    ASSERT_TRUE(store.ok()) << store.status().message();
    ASSERT_EQ(*(*store)->release_ref("a", "c1"), 0);
  }
  StartServe();
  EXPECT_FALSE(is_mounted(mp("a")));
  EXPECT_EQ(Mounts("a"), 0);
  EXPECT_EQ(Call("Remove", json{{"Name", "a"}}).err(), "");
}

TEST_F(ServeTest, KillNineOfMapperThenNextMountWorks) {
  CreateVolume("a");
  MountVolume("a", "c1");
  auto pids = mapper_pids(mp("a"));
  ASSERT_EQ(pids.size(), 1u);
  ::kill(pids[0], SIGKILL);
  // The supervisor notices, logs it with volume and tenant, and cleans the
  // dead mount.
  EXPECT_TRUE(eventually([&] {
    std::string log = read_file(root_ + "/serve.log");
    return log.find("volume \"a\" (tenant \"alice\"): mapper pid " + std::to_string(pids[0]) +
                    " was killed by signal") != std::string::npos;
  }));
  EXPECT_TRUE(eventually([&] { return !is_mounted(mp("a")); }));

  EXPECT_EQ(MountVolume("a", "c2"), mp("a"));
  EXPECT_EQ(Mounts("a"), 2);
  EXPECT_EQ(write_file_as(kContainerUid, mp("a"), "f", "x"), 0);
  auto fresh = mapper_pids(mp("a"));
  ASSERT_EQ(fresh.size(), 1u);
  EXPECT_NE(fresh[0], pids[0]);
}

TEST_F(ServeTest, SigtermStopsServeCleanlyAndLeavesMountsServing) {
  CreateVolume("a");
  MountVolume("a", "c1");
  int status = StopServe(SIGTERM);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_NE(::access(socket_.c_str(), F_OK), 0);  // no stale socket for Docker
  EXPECT_EQ(write_file_as(kContainerUid, mp("a"), "f", "x"), 0);
  StartServe();
  EXPECT_EQ(Mounts("a"), 1);
  EXPECT_EQ(Call("Unmount", json{{"Name", "a"}, {"ID", "c1"}}).err(), "");
  EXPECT_FALSE(is_mounted(mp("a")));
}

TEST_F(ServeTest, SecondServeOnALiveSocketRefusesToStart) {
  pid_t second = ::fork();
  if (second == 0) {
    int fd = ::open((root_ + "/second.log").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    ::dup2(fd, 2);
    std::vector<std::string> args = ServeArgs();
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    _exit(127);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(second, &status, 0), second);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) != 0) << status;
  EXPECT_NE(read_file(root_ + "/second.log").find("another process is serving on " + socket_),
            std::string::npos);
  EXPECT_EQ(Call("List", json::object()).status, 200);  // the first one still serves
}

TEST_F(ServeTest, SettingsComeFromFlagsOrEnvironmentWithFlagsWinning) {
  StopServe(SIGTERM);
  const std::string env_sock = root_ + "/run/env.sock";
  const std::string flag_sock = root_ + "/run/flag.sock";
  std::vector<std::string> base = {TENANTFS_BINARY, "serve"};
  std::vector<std::string> env = {"SOCKET=" + env_sock,
                                  "STATE_DIR=" + root_ + "/state",
                                  "DATA_DIR=" + root_ + "/data",
                                  "MOUNT_ROOT=" + root_ + "/mnt",
                                  "LOG_LEVEL=",
                                  "DEFAULT_TENANT=alice"};
  StartServe(base, env, env_sock);
  EXPECT_EQ(::access(env_sock.c_str(), F_OK), 0);
  socket_ = env_sock;
  // DEFAULT_TENANT from the environment; an empty LOG_LEVEL counted as unset.
  EXPECT_EQ(Call("Create", json{{"Name", "d"}, {"Opts", nullptr}}).err(), "");
  EXPECT_EQ(Call("Get", json{{"Name", "d"}}).body["Volume"]["Status"]["tenant"], "alice");
  StopServe(SIGTERM);

  std::vector<std::string> with_flag = base;
  with_flag.insert(with_flag.end(), {"--socket", flag_sock});
  StartServe(with_flag, env, flag_sock);
  EXPECT_EQ(::access(flag_sock.c_str(), F_OK), 0);
  EXPECT_NE(::access(env_sock.c_str(), F_OK), 0);
  socket_ = flag_sock;
  EXPECT_EQ(Call("List", json::object()).body, json::parse(R"({"Volumes":[{"Name":"d"}]})"));
}

}  // namespace
}  // namespace tenantfs

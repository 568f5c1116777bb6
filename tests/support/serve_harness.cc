#include "tests/support/serve_harness.h"

#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "http/unix_http_client.h"
#include "plugin/mapper_launcher.h"
#include "plugin/mount_table.h"

#ifndef TENANTFS_BINARY
#error "TENANTFS_BINARY must name the tenantfs binary under test"
#endif

namespace tenantfs::testing {

using namespace std::chrono_literals;

namespace {

constexpr char kDockerContentType[] = "application/vnd.docker.plugins.v1+json";
// How much of the serve log a failed test prints: the end is where the
// failure is, and the flood tests log thousands of requests before it.
constexpr size_t kLogTailBytes = 16 * 1024;

// The last `max` bytes of `text`, starting at a line.
std::string tail(const std::string& text, size_t max) {
  if (text.size() <= max) return text;
  size_t start = text.find('\n', text.size() - max);
  start = start == std::string::npos ? text.size() - max : start + 1;
  return "[" + std::to_string(start) + " bytes left out]\n" + text.substr(start);
}

// Drops to uid:gid without supplementary groups, for good (in a child).
bool become(uid_t uid, gid_t gid) {
  return ::setgroups(0, nullptr) == 0 && ::setresgid(gid, gid, gid) == 0 &&
         ::setresuid(uid, uid, uid) == 0;
}

// Reaps child `pid`: its exit code, 255 when it did not exit normally.
int exit_code_of(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 255;
}

}  // namespace

std::string Reply::err() const {
  return body.is_object() && body.contains("Err") && body["Err"].is_string()
             ? body["Err"].get<std::string>()
             : "";
}

int as_user(uid_t uid, gid_t gid, const std::function<int()>& fn) {
  pid_t pid = ::fork();
  if (pid == 0) _exit(become(uid, gid) ? fn() : 250);
  return exit_code_of(pid);
}

int in_container(const std::vector<std::pair<std::string, std::string>>& binds, uid_t uid,
                 gid_t gid, const std::function<int()>& fn) {
  // Made here and removed here: in the child it is a mountpoint until the
  // child's namespace ends with it.
  char tmpl[] = "/tmp/tenantfs-ctr.XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) return 253;
  const std::string newroot = tmpl;
  pid_t pid = ::fork();
  if (pid == 0) {
    if (::unshare(CLONE_NEWNS) != 0) _exit(251);
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) _exit(252);
    if (::mount("tmpfs", newroot.c_str(), "tmpfs", 0, "mode=0755,size=1m") != 0) _exit(253);
    for (const auto& [host, inside] : binds) {
      const std::string target = newroot + inside;
      ::mkdir(target.c_str(), 0755);
      if (::mount(host.c_str(), target.c_str(), nullptr, MS_BIND, nullptr) != 0) _exit(254);
    }
    if (::chdir(newroot.c_str()) != 0 || ::chroot(".") != 0 || ::chdir("/") != 0) _exit(254);
    _exit(become(uid, gid) ? fn() : 250);
  }
  const int rc = exit_code_of(pid);
  ::rmdir(newroot.c_str());
  return rc;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool is_mounted(const std::string& path) {
  auto table = read_mount_table();
  return table.ok() && is_mount_point(*table, path);
}

std::vector<pid_t> mapper_pids(const std::string& mountpoint) {
  return find_mapper_processes(mountpoint);
}

bool has_exited(pid_t pid) { return process_has_exited(pid); }

bool eventually(const std::function<bool()>& cond, std::chrono::seconds bound) {
  auto deadline = std::chrono::steady_clock::now() + bound;
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return cond();
}

void ServeHarness::SetUp() {
  if (::geteuid() != 0 || ::access("/dev/fuse", R_OK | W_OK) != 0) {
    GTEST_SKIP() << "needs root and /dev/fuse";
  }
  char tmpl[] = "/tmp/tenantfs-serve.XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  root_ = tmpl;
  socket_ = root_ + "/run/tenantfs.sock";
  if (data_dir_.empty()) data_dir_ = root_ + "/data";
  ASSERT_EQ(::mkdir((root_ + "/allowed").c_str(), 0755), 0);
  StartServe();
}

void ServeHarness::TearDown() {
  if (root_.empty()) return;
  StopServe(SIGTERM);
  // Mappers outlive serve by design: take their mounts down; each mapper
  // then exits on its own.
  const std::string mnt = root_ + "/mnt";
  if (auto table = read_mount_table(); table.ok()) {
    for (const auto& name : tenantfs_mounts_under(*table, mnt)) {
      ::umount2((mnt + "/" + name).c_str(), MNT_DETACH);
    }
  }
  if (HasFailure()) {
    std::cerr << "---- serve log (end) ----\n"
              << tail(read_file(root_ + "/serve.log"), kLogTailBytes) << "----\n";
  }
  // Whatever is still mounted under root_ (a mount that would not go, or a
  // test's own) keeps the tree: removing through it could delete what it
  // serves.
  auto table = read_mount_table();
  if (!table.ok()) return;
  for (const auto& e : *table) {
    if (e.mount_point.rfind(root_ + "/", 0) == 0) return;
  }
  std::error_code ec;
  std::filesystem::remove_all(root_, ec);
}

std::vector<std::string> ServeHarness::ServeArgs() const {
  // debug: the log is only read when a test fails, and then all of it helps.
  std::vector<std::string> args = {
      TENANTFS_BINARY, "serve",          "--socket",        socket_,
      "--state-dir",   root_ + "/state", "--data-dir",      data_dir_,
      "--mount-root",  root_ + "/mnt",   "--allowed-roots", root_ + "/allowed",
      "--log-level",   "debug"};
  args.insert(args.end(), extra_args_.begin(), extra_args_.end());
  return args;
}

void ServeHarness::StartServe(std::vector<std::string> args, std::vector<std::string> env,
                              const std::string& socket) {
  if (args.empty()) args = ServeArgs();
  const std::string log = root_ + "/serve.log";
  serve_pid_ = ::fork();
  if (serve_pid_ == 0) {
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    ::dup2(fd, 2);
    for (auto& e : env) ::putenv(e.data());  // kept alive until exec
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    _exit(127);
  }
  ASSERT_GT(serve_pid_, 0);
  UnixHttpClient client(socket.empty() ? socket_ : socket, UnixHttpOptions{1000ms, 5000ms});
  bool up = false;
  bool exited = false;
  eventually([&] {
    auto r = client.post("/Plugin.Activate", "");
    up = r.ok() && r->status == 200;
    exited = !up && has_exited(serve_pid_);
    return up || exited;
  });
  ASSERT_TRUE(up) << (exited ? "serve exited" : "serve did not answer Activate") << "; its log:\n"
                  << read_file(log);
}

int ServeHarness::StopServe(int sig) {
  if (serve_pid_ <= 0) return 0;
  ::kill(serve_pid_, sig);
  int status = 0;
  ::waitpid(serve_pid_, &status, 0);
  serve_pid_ = -1;
  return status;
}

std::string ServeHarness::UnexpectedServeState() {
  if (serve_pid_ <= 0) return "no serve is running";
  siginfo_t info{};
  // WNOWAIT looks without reaping: whoever killed serve reaps it.
  bool exited = eventually(
      [&] {
        info = siginfo_t{};
        const int rc =
            ::waitid(P_PID, static_cast<id_t>(serve_pid_), &info, WEXITED | WNOHANG | WNOWAIT);
        return rc != 0 || info.si_pid == serve_pid_;
      },
      5s);
  if (!exited) return "serve is running but did not answer in time or closed the connection";
  if (info.si_pid != serve_pid_) return "serve has exited and was reaped";
  if (info.si_code == CLD_KILLED && info.si_status == SIGKILL) return "";
  if (info.si_code == CLD_EXITED) {
    return "serve exited with status " + std::to_string(info.si_status);
  }
  return "serve was killed by signal " + std::to_string(info.si_status);
}

Reply ServeHarness::Post(const std::string& endpoint, const std::string& body,
                         std::chrono::milliseconds timeout) {
  UnixHttpClient client(socket_, UnixHttpOptions{5000ms, timeout});
  auto r = client.post(endpoint, body, kDockerContentType);
  Reply reply;
  if (!r.ok()) {
    if (std::string why = UnexpectedServeState(); !why.empty()) {
      ADD_FAILURE() << endpoint << ": no answer (" << r.status().message() << "): " << why;
    }
    return reply;
  }
  reply.status = r->status;
  reply.content_type = r->headers["content-type"];
  reply.body = json::parse(r->body, nullptr, false);
  return reply;
}

void ServeHarness::AddTenant(const std::string& name, uid_t uid, const std::vector<gid_t>& groups) {
  Reply r = Post("/tenantfs/v1/tenants/add",
                 json{{"name", name}, {"uid", uid}, {"gid", uid}, {"groups", groups}}.dump());
  ASSERT_EQ(r.status, 200) << r.body;
}

void ServeHarness::CreateVolume(const std::string& name, const json& opts) {
  Reply r = Call("Create", json{{"Name", name}, {"Opts", opts}});
  ASSERT_EQ(r.status, 200);
  ASSERT_EQ(r.err(), "") << r.body;
}

std::string ServeHarness::MountVolume(const std::string& name, const std::string& id) {
  Reply r = Call("Mount", json{{"Name", name}, {"ID", id}});
  EXPECT_EQ(r.err(), "") << r.body;
  return r.body.is_object() ? r.body.value("Mountpoint", std::string()) : "";
}

int64_t ServeHarness::Mounts(const std::string& name) {
  Reply r = Call("Get", json{{"Name", name}});
  EXPECT_EQ(r.err(), "") << r.body;
  if (!r.body.is_object() || !r.body.contains("Volume")) return -1;
  return r.body["Volume"]["Status"].value("mounts", int64_t{-1});
}

bool ServeHarness::ServiceAnswers() {
  Reply r = Post("/VolumeDriver.Capabilities", "{}", 20000ms);
  return r.status == 200 && r.body == json::parse(R"({"Capabilities":{"Scope":"local"}})");
}

}  // namespace tenantfs::testing

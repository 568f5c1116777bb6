#include "serve_harness.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "plugin/mount_table.h"
#include "plugin/unix_http_client.h"

#ifndef TENANTFS_BINARY
#error "TENANTFS_BINARY must name the tenantfs binary under test"
#endif

namespace tenantfs::hardening {

using namespace std::chrono_literals;

std::string Reply::err() const {
  return body.is_object() && body.contains("Err") && body["Err"].is_string()
             ? body["Err"].get<std::string>()
             : "";
}

int as_user(uid_t uid, gid_t gid, const std::function<int()>& fn) {
  pid_t pid = ::fork();
  if (pid == 0) {
    if (::setgroups(0, nullptr) != 0 || ::setresgid(gid, gid, gid) != 0 ||
        ::setresuid(uid, uid, uid) != 0) {
      _exit(250);
    }
    _exit(fn());
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 255;
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
    if (::setgroups(0, nullptr) != 0 || ::setresgid(gid, gid, gid) != 0 ||
        ::setresuid(uid, uid, uid) != 0) {
      _exit(250);
    }
    _exit(fn());
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ::rmdir(newroot.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : 255;
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
  std::vector<pid_t> pids;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return pids;
  while (struct dirent* d = ::readdir(proc)) {
    pid_t pid = static_cast<pid_t>(std::atoi(d->d_name));
    if (pid <= 0) continue;
    std::string cmdline = read_file("/proc/" + std::string(d->d_name) + "/cmdline");
    std::vector<std::string> args;
    std::string cur;
    for (char c : cmdline) {
      if (c == '\0') {
        args.push_back(cur);
        cur.clear();
      } else {
        cur += c;
      }
    }
    bool is_mapper = args.size() > 1 && args[1] == "mapper";
    for (size_t i = 0; is_mapper && i + 1 < args.size(); ++i) {
      if (args[i] == "--mountpoint" && args[i + 1] == mountpoint) pids.push_back(pid);
    }
  }
  ::closedir(proc);
  return pids;
}

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
  char tmpl[] = "/tmp/tenantfs-hardening.XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  root_ = tmpl;
  socket_ = root_ + "/run/tenantfs.sock";
  if (data_dir_.empty()) data_dir_ = root_ + "/data";
  ASSERT_EQ(::mkdir((root_ + "/allowed").c_str(), 0755), 0);
  StartServe();
  if (HasFatalFailure()) return;
  AddTenant("alice", kAliceUid);
  AddTenant("bob", kBobUid);
}

void ServeHarness::TearDown() {
  if (root_.empty()) return;
  KillServe(SIGTERM);
  // Mappers outlive serve by design: take their mounts down.
  const std::string mnt = root_ + "/mnt";
  if (auto table = read_mount_table(); table.ok()) {
    for (const auto& name : tenantfs_mounts_under(*table, mnt)) {
      ::umount2((mnt + "/" + name).c_str(), MNT_DETACH);
    }
  }
  if (HasFailure()) {
    std::string log = read_file(root_ + "/serve.log");
    if (log.size() > 6000) log = "..." + log.substr(log.size() - 6000);
    std::cerr << "---- serve log (tail) ----\n" << log << "----\n";
  }
  auto table = read_mount_table();
  if (table.ok() && tenantfs_mounts_under(*table, mnt).empty()) {
    bool other_mounts = false;
    for (const auto& e : *table) {
      other_mounts = other_mounts || e.mount_point.rfind(root_ + "/", 0) == 0;
    }
    if (!other_mounts) {
      std::error_code ec;
      std::filesystem::remove_all(root_, ec);
    }
  }
}

void ServeHarness::StartServe() {
  std::vector<std::string> args = {TENANTFS_BINARY,  "serve",          "--socket",
                                   socket_,          "--state-dir",    root_ + "/state",
                                   "--data-dir",     data_dir_,        "--mount-root",
                                   root_ + "/mnt",   "--allowed-roots", root_ + "/allowed",
                                   "--log-level",    "info"};
  args.insert(args.end(), extra_args_.begin(), extra_args_.end());
  const std::string log = root_ + "/serve.log";
  serve_pid_ = ::fork();
  if (serve_pid_ == 0) {
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    ::dup2(fd, 2);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    _exit(127);
  }
  ASSERT_GT(serve_pid_, 0);
  UnixHttpClient client(socket_, UnixHttpOptions{1000ms, 5000ms});
  bool up = eventually([&] {
    auto r = client.post("/Plugin.Activate", "");
    return r.ok() && r->status == 200;
  });
  ASSERT_TRUE(up) << read_file(log);
}

void ServeHarness::KillServe(int sig) {
  if (serve_pid_ <= 0) return;
  ::kill(serve_pid_, sig);
  int status = 0;
  ::waitpid(serve_pid_, &status, 0);
  serve_pid_ = -1;
}

Reply ServeHarness::Post(const std::string& endpoint, const std::string& body,
                         std::chrono::milliseconds timeout) {
  UnixHttpClient client(socket_, UnixHttpOptions{5000ms, timeout});
  auto r = client.post(endpoint, body, "application/vnd.docker.plugins.v1+json");
  Reply reply;
  if (!r.ok()) return reply;
  reply.status = r->status;
  reply.body = json::parse(r->body, nullptr, false);
  return reply;
}

void ServeHarness::AddTenant(const std::string& name, uid_t uid) {
  Reply r = Post("/tenantfs/v1/tenants/add",
                 json{{"name", name}, {"uid", uid}, {"gid", uid}, {"groups", json::array()}}.dump());
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

}  // namespace tenantfs::hardening

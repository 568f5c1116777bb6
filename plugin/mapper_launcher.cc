#include "plugin/mapper_launcher.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <optional>
#include <thread>
#include <vector>

#include "common/mapper_invocation.h"
#include "common/unique_fd.h"
#include "plugin/child_reaper.h"

namespace tenantfs {
namespace {

// The fd number the mapper gets for --ready-fd.
constexpr int kReadyFd = 3;
// The fd number of the backing directory in the mapper, and the path that
// opens it there: the magic link is an inner component, so the mapper's
// O_NOFOLLOW (which only concerns the last one, ".") does not refuse it.
constexpr int kBackingFd = 4;
constexpr const char kBackingPath[] = "/proc/self/fd/4/.";
// A readiness report is one short line; more is a broken mapper.
constexpr size_t kMaxReadyLine = 4096;
constexpr auto kStopTimeout = std::chrono::seconds(10);

// Kills the mapper processes left for `mountpoint` by an earlier serve and
// waits (bounded) until they are gone; returns how many there were.
size_t stop_stray_mappers(const std::string& name, const std::string& mountpoint) {
  const std::vector<pid_t> strays = find_mapper_processes(mountpoint);
  if (strays.empty()) return 0;
  for (pid_t pid : strays) ::kill(pid, SIGKILL);
  const auto deadline = std::chrono::steady_clock::now() + kStopTimeout;
  for (pid_t pid : strays) {
    while (!process_has_exited(pid) && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  std::string pids;
  for (pid_t pid : strays) pids += (pids.empty() ? "" : ", ") + std::to_string(pid);
  spdlog::warn(
      "volume \"{}\": killed {} mapper process(es) (pid {}) left starting at {} by an earlier "
      "serve",
      name, strays.size(), pids, mountpoint);
  return strays.size();
}

}  // namespace

std::vector<pid_t> find_mapper_processes(const std::string& mountpoint,
                                         const std::string& proc_dir) {
  std::vector<pid_t> pids;
  DIR* proc = ::opendir(proc_dir.c_str());
  if (proc == nullptr) return pids;
  while (const dirent* d = ::readdir(proc)) {
    char* end = nullptr;
    const long pid = std::strtol(d->d_name, &end, 10);
    if (pid <= 0 || *end != '\0' || pid == ::getpid()) continue;
    std::ifstream in(proc_dir + "/" + d->d_name + "/cmdline");
    // argv[0] is whatever the process was started as; the rest must read
    // as a mapper's command line.
    std::vector<std::string> args;
    bool first = true;
    for (std::string arg; std::getline(in, arg, '\0'); first = false) {
      if (!first) args.push_back(arg);
    }
    Result<MapperInvocation> inv = MapperInvocation::from_argv(args);
    if (inv.ok() && inv->mountpoint == mountpoint) pids.push_back(static_cast<pid_t>(pid));
  }
  ::closedir(proc);
  return pids;
}

bool process_has_exited(pid_t pid, const std::string& proc_dir) {
  std::ifstream in(proc_dir + "/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat.size()) return true;
  return stat[paren + 2] == 'Z' || stat[paren + 2] == 'X';
}

ProcessMapperLauncher::ProcessMapperLauncher(std::string exe,
                                             std::chrono::milliseconds ready_timeout)
    : exe_(std::move(exe)), ready_timeout_(ready_timeout) {}

Result<StartedMapper> ProcessMapperLauncher::start(const VolumeBinding& b, int backing_fd,
                                                   const std::string& mountpoint) {
  MapperInvocation inv;
  inv.backing = kBackingPath;
  inv.mountpoint = mountpoint;
  inv.name = b.name;
  inv.identity = b.identity;
  inv.present_uid = b.present_uid;
  inv.present_gid = b.present_gid;
  std::optional<CacheMode> cache = parse_cache_mode(b.cache);
  if (!cache) {
    return Status::Corruption("volume \"" + b.name + "\" has an unknown cache mode in the store");
  }
  inv.cache = *cache;
  inv.readonly = b.readonly;
  inv.ready_fd = kReadyFd;
  // argv[0] says what the process is in ps; exe_ (often /proc/self/exe) is
  // what runs.
  std::vector<std::string> args = inv.to_argv();
  args.insert(args.begin(), "tenantfs");
  // Built before fork: the child may not allocate.
  std::vector<char*> argv;
  argv.reserve(args.size() + 1);
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return PosixError("pipe", errno);
  UniqueFd read_end(pipe_fds[0]);
  UniqueFd write_end(pipe_fds[1]);

  const int write_fd = write_end.get();
  auto pid = ChildReaper::instance().spawn([&]() -> int {
    // Own session: a crash of serve (or a signal to its process group) must
    // not take the mount down under running containers.
    ::setsid();
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);  // serve blocks signals for its signal thread
    for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGCHLD}) ::signal(sig, SIG_DFL);
    // Move both fds above their targets first, so that neither dup2 can
    // overwrite the other; dup2 also clears close-on-exec.
    int ready = ::fcntl(write_fd, F_DUPFD, 10);
    int backing = ::fcntl(backing_fd, F_DUPFD, 10);
    if (ready < 0 || backing < 0) return 120;
    if (::dup2(ready, kReadyFd) != kReadyFd || ::dup2(backing, kBackingFd) != kBackingFd) {
      return 120;
    }
    int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devnull >= 0) ::dup2(devnull, 0);
    ::dup2(2, 1);  // the mapper's output belongs in serve's log
    // Client sockets accepted by the HTTP server are not close-on-exec.
    ::close_range(kBackingFd + 1, ~0U, 0);
    ::execv(exe_.c_str(), argv.data());
    return 127;
  });
  if (!pid.ok()) return pid.status();
  write_end.reset();  // EOF on read_end once the mapper exits

  std::string line;
  auto deadline = std::chrono::steady_clock::now() + ready_timeout_;
  bool timed_out = false;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    struct pollfd p {
      read_end.get(), POLLIN, 0
    };
    int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r == 0) {
      timed_out = true;
      break;
    }
    char buf[256];
    ssize_t n = ::read(read_end.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    line.append(buf, static_cast<size_t>(n));
    if (line.find('\n') != std::string::npos || line.size() > kMaxReadyLine) break;
  }
  if (auto nl = line.find('\n'); nl != std::string::npos) line.resize(nl);

  const Readiness report = parse_readiness(line);
  if (!timed_out && report.ready()) return StartedMapper{*pid, report.fields};

  // Failed: make sure nothing is left running or mounted.
  if (timed_out) ::kill(*pid, SIGKILL);
  auto status = ChildReaper::instance().wait(*pid, kStopTimeout);
  if (!status) {
    ::kill(*pid, SIGKILL);
    status = ChildReaper::instance().wait(*pid);
  }
  if (timed_out) {
    return Status::IOError("the mapper did not report readiness within " +
                           std::to_string(ready_timeout_.count() / 1000) + " s and was killed");
  }
  if (report.kind == Readiness::Kind::kError) {
    return Status::IOError("mapper error: " + report.message);
  }
  std::string why = "the mapper " + (status ? describe_exit(*status) : std::string("ended")) +
                    " before reporting readiness";
  if (status && WIFEXITED(*status) && WEXITSTATUS(*status) == 127) {
    why += " (could not run " + exe_ + ")";
  }
  return Status::IOError(why);
}

void ProcessMapperLauncher::stop(pid_t pid, const std::string& mountpoint) {
  // Unmounting ended the mapper's FUSE session; it exits on its own.
  auto status = ChildReaper::instance().wait(pid, kStopTimeout);
  if (!status) {
    spdlog::warn("mapper pid {} for {} did not exit after the unmount; killing it", pid,
                 mountpoint);
    ::kill(pid, SIGKILL);
    ChildReaper::instance().wait(pid, kStopTimeout);
  }
}

void ProcessMapperLauncher::stop_strays(const std::string& volume,
                                        const std::string& mountpoint) {
  stop_stray_mappers(volume, mountpoint);
}

}  // namespace tenantfs

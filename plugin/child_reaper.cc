#include "plugin/child_reaper.h"

#include <spdlog/spdlog.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace tenantfs {

std::string describe_exit(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status))
    return std::string("was killed by signal ") + strsignal(WTERMSIG(status));
  return "ended";
}

ChildReaper& ChildReaper::instance() {
  static ChildReaper* reaper = new ChildReaper();  // never destroyed: children outlive main
  return *reaper;
}

Result<pid_t> ChildReaper::spawn(const std::function<int()>& child_main) {
  // Forking under children_mu_ means reap_all() cannot look the pid up
  // before it is registered.
  MutexLock lock(children_mu_);
  pid_t pid = ::fork();
  if (pid < 0) return PosixError("fork", errno);
  if (pid == 0) _exit(child_main());
  children_[pid] = std::make_shared<Child>();
  return pid;
}

std::optional<int> ChildReaper::wait(pid_t pid, std::optional<std::chrono::milliseconds> timeout) {
  MutexLock lock(children_mu_);
  if (!reaping_all_) {
    lock.unlock();
    int status = 0;
    auto deadline = timeout ? std::chrono::steady_clock::now() + *timeout
                            : std::chrono::steady_clock::time_point::max();
    for (;;) {
      pid_t r = ::waitpid(pid, &status, timeout ? WNOHANG : 0);
      if (r == pid) break;
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) {
        status = 0;  // not our child any more: nothing to report
        break;
      }
      if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
      ::usleep(10000);
    }
    lock.lock();
    children_.erase(pid);
    return status;
  }
  auto it = children_.find(pid);
  if (it == children_.end()) return 0;
  std::shared_ptr<Child> child = it->second;
  if (timeout) {
    const auto deadline = std::chrono::steady_clock::now() + *timeout;
    while (!child->exited) {
      if (children_mu_.wait_until(exited_cv_, deadline) == std::cv_status::timeout) break;
    }
    if (!child->exited) return std::nullopt;
  } else {
    while (!child->exited) children_mu_.wait(exited_cv_);
  }
  children_.erase(pid);
  return child->status;
}

void ChildReaper::on_exit(pid_t pid, std::function<void(int)> on_exit) {
  MutexLock lock(children_mu_);
  auto it = children_.find(pid);
  if (it == children_.end()) return;
  if (it->second->exited) {
    int status = it->second->status;
    children_.erase(it);
    lock.unlock();
    on_exit(status);
    return;
  }
  it->second->on_exit = std::move(on_exit);
}

void ChildReaper::start_reaping_all() {
  MutexLock lock(children_mu_);
  reaping_all_ = true;
}

void ChildReaper::reap_all() {
  for (;;) {
    int status = 0;
    pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid < 0 && errno == EINTR) continue;
    if (pid <= 0) return;
    std::function<void(int)> callback;
    {
      MutexLock lock(children_mu_);
      auto it = children_.find(pid);
      if (it == children_.end()) {
        // A re-parented orphan (serve as PID 1) or a child from before a
        // re-exec: nobody waits for it, reaping it is all that is needed.
        spdlog::debug("reaped unknown child pid {} (status {})", pid, status);
        continue;
      }
      it->second->exited = true;
      it->second->status = status;
      if (it->second->on_exit) {
        callback = std::move(it->second->on_exit);
        children_.erase(it);
      }
    }
    exited_cv_.notify_all();
    if (callback) callback(status);
  }
}

}  // namespace tenantfs

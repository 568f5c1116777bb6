// ChildReaper: the one place that waits for child processes.
//
// `serve` may run as PID 1 inside the managed plugin, so it must reap every
// child, including orphans re-parented to it, with waitpid(-1). A second
// waitpid(pid) elsewhere would race with that and lose exit statuses, so all
// children are started through spawn() and waited for through wait() or an
// exit callback.
//
// Two modes:
//   - Self-reaping (the default, used by unit tests and short tools): wait()
//     calls waitpid(pid) itself; exit callbacks never run.
//   - Reap-all (after start_reaping_all(), used by `serve`): a signal thread
//     calls reap_all() on SIGCHLD; wait() blocks until reap_all() saw the
//     child, and the child's exit callback runs on the reaping thread.
//
// Thread-safety: every method may be called from any thread. Exit callbacks
// run with no ChildReaper lock held, but on the reaping thread: they must not
// block (in particular not on a per-volume lock).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "common/status.h"
#include "common/thread_annotations.h"

namespace tenantfs {

// How a child ended, for logs and errors: "exited with status N", "was
// killed by signal NAME", or "ended". `status` as waitpid reports it.
std::string describe_exit(int status);

// Where a supervisor learns that a child it started has exited. ChildReaper
// is the real one; unit tests, whose mappers are not processes, end them
// through a stand-in.
class ChildExits {
 public:
  virtual ~ChildExits() = default;

  // Runs `on_exit(status)` once `pid` has exited, on whichever thread sees
  // the exit; when it already exited, at once. The callback must not block.
  virtual void on_exit(pid_t pid, std::function<void(int)> on_exit) = 0;
};

class ChildReaper final : public ChildExits {
 public:
  // The process-wide instance.
  static ChildReaper& instance();

  // Forks; the child runs `child_main` and _exit()s with its return value.
  // The child is registered before any reaper can see its exit. child_main
  // runs in a copy of a multi-threaded process: it may only use
  // async-signal-safe calls and must end in exec or return.
  Result<pid_t> spawn(const std::function<int()>& child_main);

  // Waits for `pid` (from spawn) to exit and returns its raw wait status.
  // With a timeout, returns nullopt when the child is still running then.
  std::optional<int> wait(pid_t pid,
                          std::optional<std::chrono::milliseconds> timeout = std::nullopt);

  // Runs `on_exit(status)` once `pid` has exited (reap-all mode only). When
  // it already exited, runs it at once, on the calling thread.
  void on_exit(pid_t pid, std::function<void(int)> on_exit) override;

  // Switches to reap-all mode. Call once, before children are spawned, from
  // the thread that will call reap_all().
  void start_reaping_all();

  // Collects every exited child (waitpid(-1, WNOHANG) until none is left).
  void reap_all();

 private:
  // Guarded by children_mu_. A comment, not GUARDED_BY: a Child does not
  // know its ChildReaper, so the analysis cannot name that mutex from here.
  struct Child {
    bool exited = false;
    int status = 0;
    std::function<void(int)> on_exit;
  };

  ChildReaper() = default;

  Mutex children_mu_;
  std::condition_variable exited_cv_;
  std::map<pid_t, std::shared_ptr<Child>> children_ GUARDED_BY(children_mu_);
  bool reaping_all_ GUARDED_BY(children_mu_) = false;
};

}  // namespace tenantfs

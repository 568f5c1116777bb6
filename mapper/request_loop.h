// The mapper's request loop: which threads read FUSE requests, and where
// they run.
//
// A FUSE request is a round trip between two processes: the caller sleeps
// until the mapper answers. When the mapper thread that takes the request
// runs on another CPU than the caller, each round trip costs two cross-CPU
// wakeups, and on a virtual machine whose idle CPUs halt, waking a halted
// CPU is slow: measured on a 2-vCPU VM, a round trip took 11-17 µs with
// caller and mapper on one CPU and 75-300 µs with them on different CPUs.
// The scheduler, left alone, prefers the idle CPU for the woken thread.
//
// kPerCpu: one receiving thread pinned to each CPU the mapper may use. Each
// waits with poll() on the (non-blocking) /dev/fuse fd, so a request wakes
// all of them, and the one on the caller's CPU, which runs as soon as the
// caller goes to sleep, usually takes it; the others find nothing and wait
// again. When every receiver is busy with a request (a slow disk, many
// callers), overflow threads, not pinned, join until `max_threads`; each
// ends after a second without a request. Because every receiver
// is woken by every request, this is only chosen for up to kMaxPerCpu CPUs.
//
// kShared: libfuse's multi-threaded loop. Its threads block in read() and
// the kernel wakes exactly one of them per request, wherever it last ran.
//
// kAuto: kPerCpu when the mapper may run on at most kMaxPerCpu CPUs, else
// kShared.
//
// kUring: requests come through io_uring, one queue per CPU (uring_loop.h);
// /dev/fuse is still served as kAuto would, for what only it carries
// (forgets, interrupts). run_mapper decides it at INIT, and kAuto means
// kUring there when the kernel offers it; resolve_request_loop() and
// run_request_loop() only ever see the /dev/fuse side.
#pragma once

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <signal.h>

#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace tenantfs {

enum class RequestLoop { kAuto, kPerCpu, kShared, kUring };

constexpr int kMaxPerCpu = 8;

// "auto", "per-cpu", "shared", "uring"; false for anything else.
bool parse_request_loop(const std::string& text, RequestLoop* out);
const char* request_loop_name(RequestLoop loop);

// The /dev/fuse loop for a mapper allowed on `cpus` CPUs: kAuto (and
// kUring, whose /dev/fuse side it is) resolved.
RequestLoop resolve_request_loop(RequestLoop wanted, size_t cpus);

// Serves `se` until it ends (unmount, fuse_session_exit). Returns 0, or the
// errno that ended it. Threads it starts have every signal blocked, as
// libfuse's do: signals reach the calling thread.
int run_request_loop(fuse_session* se, RequestLoop loop, const std::vector<int>& cpus,
                     int max_threads);

// Starts `fn` on a thread with every signal blocked, as libfuse starts its
// workers: signals reach the main thread, and the flock wake signal only
// the threads that unblock it.
template <typename Fn>
std::thread start_thread_signals_blocked(Fn&& fn) {
  sigset_t all;
  sigset_t old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  std::thread t(std::forward<Fn>(fn));
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  return t;
}

// Async-signal-safe: after fuse_session_exit(), wakes the per-CPU loop's
// waiting threads so that they notice. Does nothing when no loop runs.
void wake_request_loop();

}  // namespace tenantfs

// run_mapper: the life of one mapper process.
//
//   root:   validate, open the backing directory, set RLIMIT_NOFILE,
//           rehearse the privilege drop in a child, mount /dev/fuse
//   drop:   become the tenant (privileges.h), the last step that can fail
//   tenant: report "ready", serve until unmounted or signalled
//
// Everything that can fail for a reason other than a kernel refusal happens
// before the mount, and the drop itself fails only while still root, so a
// failed start can always unmount what it mounted.
//
// Shutdown: once the process is the tenant it can no longer unmount (that
// needs CAP_SYS_ADMIN, and no_new_privs disables the setuid fusermount3
// fallback; a privileged helper process is exactly what the drop is meant to
// rule out). So an external umount/fusermount3 -u ends the loop and the mapper
// exits 0; on SIGTERM/SIGINT it stops serving, closes the FUSE connection and
// exits 0, and the supervisor (root) removes the then-dead mount. Before the
// drop a signal makes the mapper unmount itself. Requests still waiting for
// a flock (flock_waiters.h) hold no libfuse worker and delay neither end:
// their threads are left blocked and end with the process.
#include "mapper/mapper.h"

#define FUSE_USE_VERSION 312
#include <dirent.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "common/cpus.h"
#include "common/identity.h"
#include "common/mapper_readiness.h"
#include "common/privileges.h"
#include "common/reserved_ids.h"
#include "common/thread_annotations.h"
#include "common/unique_fd.h"
#include "common/volume_name.h"
#include "mapper/flock_waiters.h"
#include "mapper/fuse_passthrough.h"
#include "mapper/identity_fs.h"
#include "mapper/passthrough_start.h"
#include "mapper/request_loop.h"
#include "mapper/uring_loop.h"

namespace tenantfs {
namespace {

std::shared_ptr<spdlog::logger> mapper_log() {
  static std::shared_ptr<spdlog::logger> log = [] {
    if (auto existing = spdlog::get("mapper")) return existing;
    return spdlog::stderr_color_mt("mapper");
  }();
  return log;
}

// libfuse reports its own failures (mount errors above all) through its log
// hook; keep the last error so the readiness report can say why.
Mutex fuse_error_mutex;
std::string last_fuse_error GUARDED_BY(fuse_error_mutex);

void fuse_log_to_spdlog(enum fuse_log_level level, const char* fmt, va_list ap) {
  char buf[512];
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  std::string msg(buf);
  while (!msg.empty() && msg.back() == '\n') msg.pop_back();
  if (level <= FUSE_LOG_ERR) {
    {
      MutexLock lock(fuse_error_mutex);
      last_fuse_error = msg;
    }
    mapper_log()->error("libfuse: {}", msg);
  } else if (level <= FUSE_LOG_NOTICE) {
    mapper_log()->info("libfuse: {}", msg);
  } else {
    mapper_log()->debug("libfuse: {}", msg);
  }
}

std::string take_fuse_error() {
  MutexLock lock(fuse_error_mutex);
  return std::exchange(last_fuse_error, std::string());
}

// Signal state. The handler may only touch lock-free atomics.
std::atomic<fuse_session*> g_session{nullptr};
volatile sig_atomic_t g_signalled = 0;

void on_stop_signal(int sig) {
  g_signalled = sig;
  if (fuse_session* se = g_session.load()) fuse_session_exit(se);
  wake_request_loop();
}

Status install_signal_handlers() {
  struct sigaction sa{};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  // No SA_RESTART: libfuse's loop must wake from sem_wait to notice.
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) {
    if (::sigaction(sig, &sa, nullptr) != 0) return PosixError("sigaction", errno);
  }
  struct sigaction ignore{};
  ignore.sa_handler = SIG_IGN;
  if (::sigaction(SIGPIPE, &ignore, nullptr) != 0) return PosixError("sigaction", errno);
  // Wakes threads waiting for a flock when the caller gives up; blocked here
  // and so in every libfuse worker.
  return FlockWaiters::install_wake_signal();
}

// Writes the one readiness line, then closes the fd so the reader sees EOF.
void report_ready(int fd, const std::string& line) {
  if (fd < 0) return;
  size_t off = 0;
  while (off < line.size()) {
    const ssize_t n = ::write(fd, line.data() + off, line.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
  ::close(fd);
}

int fail(const MapperConfig& cfg, const Status& st) {
  mapper_log()->error("volume {}: {}", cfg.name, st.message());
  report_ready(cfg.ready_fd, format_error_line(st.message()));
  return 1;
}

Status validate(const MapperConfig& cfg) {
  if (cfg.backing.empty()) return Status::InvalidArgument("--backing is required");
  if (cfg.mountpoint.empty()) return Status::InvalidArgument("--mountpoint is required");
  // The name goes into the mount options (fsname=): Docker's rule keeps
  // commas and '=' out.
  TENANTFS_RETURN_IF_ERROR(validate_volume_name(cfg.name));
  if (Status st = validate_identity(cfg.identity); !st.ok()) {
    return Status::InvalidArgument("tenant identity: " + st.message());
  }
  if (!is_presentable_id(cfg.presented_uid()) || !is_presentable_id(cfg.presented_gid())) {
    return Status::InvalidArgument("presented ids " + std::to_string(cfg.presented_uid()) + ":" +
                                   std::to_string(cfg.presented_gid()) +
                                   " include -1 or the id reserved for the mapper's own process");
  }
  if (cfg.max_fds < kMinMaxFds || cfg.max_fds > kMaxMaxFds) {
    return Status::InvalidArgument("--max-fds " + std::to_string(cfg.max_fds) +
                                   " is out of range; use " + std::to_string(kMinMaxFds) + ".." +
                                   std::to_string(kMaxMaxFds) +
                                   " (the FUSE session needs at least the lower bound)");
  }
  RequestLoop loop;
  if (!parse_request_loop(cfg.request_loop, &loop)) {
    return Status::InvalidArgument("unknown --request-loop \"" + cfg.request_loop + "\"");
  }
  PassthroughMode passthrough;
  if (!parse_passthrough_mode(cfg.passthrough, &passthrough)) {
    return Status::InvalidArgument("unknown --passthrough \"" + cfg.passthrough +
                                   "\"; use auto, on or off");
  }
  if (::geteuid() != 0) {
    return Status::FailedPrecondition("the mapper must start as root to mount /dev/fuse");
  }
  return Status::Ok();
}

Status count_threads(int* threads) {
  DIR* d = ::opendir("/proc/self/task");
  if (d == nullptr) return PosixError("opendir /proc/self/task", errno);
  int n = 0;
  while (const dirent* e = ::readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  ::closedir(d);
  *threads = n;
  return Status::Ok();
}

// The mapper's fds: O_PATH fds of looked-up objects (an LRU of at most
// half the limit, inode_table.h), open files and directories, and the FUSE
// session. The limit is set, not just raised, so that a few volumes cannot
// exhaust the host's file table (fs.file-max) however many files they
// hold; the soft and hard limits are equal, so the tenant cannot raise it.
// Without CAP_SYS_RESOURCE (some containers) a lower hard limit is the
// ceiling. Stores the limit in effect in `*limit`.
Status set_nofile_limit(rlim_t want, rlim_t* limit) {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return PosixError("getrlimit(RLIMIT_NOFILE)", errno);
  rlimit fixed{want, want};
  if (::setrlimit(RLIMIT_NOFILE, &fixed) != 0) {
    const rlim_t ceiling = std::min(want, lim.rlim_max);
    fixed = rlimit{ceiling, ceiling};
    if (::setrlimit(RLIMIT_NOFILE, &fixed) != 0) {
      return PosixError("setrlimit(RLIMIT_NOFILE, " + std::to_string(ceiling) + ")", errno);
    }
  }
  *limit = fixed.rlim_cur;
  return Status::Ok();
}

// Rehearses the drop in a short-lived child, before anything is mounted:
// proves the tenant's ids are acceptable and that the tenant can enter the
// backing directory. The child exits at once; it is no helper.
Status rehearse_drop(const Identity& id, int backing_fd, const std::string& backing) {
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) return PosixError("pipe2", errno);
  UniqueFd rd(pipefd[0]);
  UniqueFd wr(pipefd[1]);
  const pid_t pid = ::fork();
  if (pid < 0) return PosixError("fork", errno);
  if (pid == 0) {
    rd.reset();
    std::string msg;
    Status st = drop_privileges_to(id, ProcessIds::kMapperReserved);
    if (!st.ok()) {
      msg = "cannot drop privileges to uid " + std::to_string(id.uid) + ": " + st.message();
    } else if (::faccessat(backing_fd, "", X_OK, AT_EACCESS | AT_EMPTY_PATH) != 0) {
      msg = PosixError("tenant uid " + std::to_string(id.uid) + " gid " + std::to_string(id.gid) +
                           " cannot enter backing directory " + backing,
                       errno)
                .message();
    }
    if (!msg.empty()) {
      const ssize_t unused = ::write(wr.get(), msg.data(), msg.size());
      (void)unused;
    }
    ::_exit(msg.empty() ? 0 : 1);
  }
  wr.reset();
  std::string msg;
  char buf[256];
  for (;;) {
    const ssize_t n = ::read(rd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    msg.append(buf, static_cast<size_t>(n));
  }
  int wstatus = 0;
  while (::waitpid(pid, &wstatus, 0) < 0) {
    if (errno != EINTR) return PosixError("waitpid", errno);
  }
  if (!msg.empty()) return Status::FailedPrecondition(msg);
  if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) {
    return Status::Internal("privilege drop rehearsal died");
  }
  return Status::Ok();
}

// Local filesystems whose close() never reports a deferred write error.
bool is_local_filesystem(int fd) {
  struct statfs sfs;
  if (::fstatfs(fd, &sfs) != 0) return false;
  switch (static_cast<unsigned long>(sfs.f_type)) {
    case 0xEF53:      // ext2/3/4
    case 0x58465342:  // xfs
    case 0x9123683E:  // btrfs
    case 0x01021994:  // tmpfs
    case 0xF2F52010:  // f2fs
      return true;
    default:
      return false;
  }
}

// Write requests are spliced from /dev/fuse into a pipe and on into the
// backing file, without a copy through the mapper, only if the pipe can hold
// a whole request: libfuse needs max_write plus one page of header. The
// tenant may grow a pipe up to fs.pipe-max-size (1 MiB by default), so
// max_write stays one page below that. Measured here (1 GiB dd bs=1M to a
// tmpfs backing, busy 2-core host): 2.0-2.8 s with splice, 2.3-5.2 s with
// libfuse's 1 MiB max_write and its read() fallback; native 1.6-2.3 s.
unsigned max_write_for_splice() {
  constexpr unsigned kHeader = 4096;
  unsigned long pipe_max = 1 << 20;
  if (FILE* f = std::fopen("/proc/sys/fs/pipe-max-size", "re")) {
    if (std::fscanf(f, "%lu", &pipe_max) != 1) pipe_max = 1 << 20;
    std::fclose(f);
  }
  if (pipe_max > (1ul << 20) + kHeader) return 0;  // libfuse's default fits
  if (pipe_max < (128ul << 10) + kHeader) return 0;  // too small to be worth it
  return static_cast<unsigned>(pipe_max) - kHeader;
}

// Kernel cache policy per mode.
//
// strict: the backing store may change behind our back (other hosts, the
// admin), so the kernel may trust a name or an attribute for 1 s only (the
// classic FUSE default, well under NFS's 3 s acregmin), caches no negative
// lookups and drops a file's page cache on every open. Measured with these
// values (10,000 files on a tmpfs backing, 2-core host under load ~12):
// create 1.4 s vs 0.44 s native, `ls -l` + `rm -r` 1.2 s vs 0.56 s native;
// bindfs 1.7 s and 3.2 s. Most of the remaining cost is the FUSE round
// trips themselves (lookup, create, release per new file).
//
// exclusive: only this mount writes the backing store, so the mapper's own
// replies are the only changes and the kernel can keep names, attributes,
// negative lookups and file pages for an hour, buffer writes (writeback
// cache) and cache directory listings. Where passthrough is on it replaces
// the writeback cache: sequential writes and reads went 1.3-2.7x faster, and
// since CREATE answers without passthrough, creating many small files is
// faster too (create of 10,000 files 1.8x native against 2.9x with the
// writeback cache, on disk; bench/README.md, seventh round).
IdentityFsOptions fs_options_for(const MapperConfig& cfg, int backing_fd) {
  IdentityFsOptions o;
  o.flush_on_close = !is_local_filesystem(backing_fd);
  o.max_write = max_write_for_splice();
  o.name = cfg.name;
  o.tenant_uid = cfg.identity.uid;
  o.tenant_gid = cfg.identity.gid;
  o.tenant_groups = cfg.identity.groups;
  o.present_uid = cfg.presented_uid();
  o.present_gid = cfg.presented_gid();
  o.readonly = cfg.readonly;
  if (cfg.cache == CacheMode::kExclusive) {
    o.entry_timeout = 3600;
    o.attr_timeout = 3600;
    o.negative_timeout = 3600;
    // Replaced by passthrough where that is on (IdentityFs::set_passthrough;
    // bench/README.md has the numbers).
    o.writeback_cache = !cfg.readonly;
    o.keep_cache = true;
  } else {
    o.entry_timeout = 1.0;
    o.attr_timeout = 1.0;
    o.negative_timeout = 0;
  }
  return o;
}

// FUSE_HANDLE_KILLPRIV_V2 (protocol 7.33, kernel 5.11): the server kills
// suid/sgid and security.capability itself on write, truncate and chown, and
// the kernel marks the superblock SB_NOSEC. Without it the kernel asks for
// security.capability (a GETXATTR round trip) before every write() call;
// with it, once per inode until its attributes are next refreshed. libfuse
// 3.14 cannot ask for it (no FUSE_CAP_HANDLE_KILLPRIV_V2), so the flag is
// added to the INIT reply on its way to the kernel. A kernel that does not
// know the flag ignores it.
//
// The mapper owes nothing extra for it: it runs as the tenant without
// CAP_FSETID, so the backing kernel already kills suid/sgid and file
// capabilities on every write, truncate and chown it makes, and chown to the
// ids an object already shows (a no-op here) clears them in do_chown.
// Threads serving requests at most (blocking flocks wait on threads of
// their own, see flock_waiters.h).
constexpr int kMaxThreads = 16;

constexpr uint32_t kFuseHandleKillprivV2 = 1u << 28;
constexpr uint32_t kFuseKernelVersion = 7;
std::atomic<bool> g_init_reply_pending{true};

ssize_t io_writev(int fd, struct iovec* iov, int count, void* /*userdata*/) {
  // The first message of a session is the INIT reply: the kernel sends no
  // other request before it has one, and notifications only follow requests.
  // fuse_out_header (16 bytes), then fuse_init_out: major, minor,
  // max_readahead, flags (32-bit each).
  if (g_init_reply_pending.exchange(false) && count >= 2 && iov[0].iov_len == 16 &&
      iov[1].iov_len >= 16) {
    auto* init_out = static_cast<uint32_t*>(iov[1].iov_base);
    int32_t error;
    std::memcpy(&error, static_cast<const char*>(iov[0].iov_base) + 4, sizeof error);
    if (error == 0 && init_out[0] == kFuseKernelVersion) init_out[3] |= kFuseHandleKillprivV2;
    // FUSE over io_uring (uring_loop.h), only when its rings are in place.
    if (error == 0) uring_amend_init_reply(static_cast<char*>(iov[1].iov_base), iov[1].iov_len);
    // Passthrough, when start_passthrough armed it (fuse_passthrough.h).
    add_passthrough_to_init_reply(iov, count);
  }
  // Replies to requests that came through io_uring go back through it.
  if (ssize_t n = 0; uring_reply_writev(iov, count, &n)) return n;
  return ::writev(fd, iov, count);
}

ssize_t io_read(int fd, void* buf, size_t len, void* /*userdata*/) {
  // The INIT request, if start_passthrough read it before the drop.
  if (ssize_t n; replay_init_request(buf, len, &n)) return n;
  return ::read(fd, buf, len);
}

ssize_t io_splice(int fdin, off_t* offin, int fdout, off_t* offout, size_t len,
                  unsigned int flags, void* /*userdata*/) {
  return ::splice(fdin, offin, fdout, offout, len, flags);
}

// A reply that libfuse spliced into a pipe (fd-backed reads) is read into
// its ring entry when the request came through io_uring.
ssize_t io_splice_send(int fdin, off_t* offin, int fdout, off_t* offout, size_t len,
                       unsigned int flags, void* userdata) {
  if (ssize_t n = 0; uring_reply_splice(fdin, len, &n)) return n;
  return io_splice(fdin, offin, fdout, offout, len, flags, userdata);
}

// fuse_session with the unmount-on-error guard the start sequence needs.
class FuseSession {
 public:
  explicit FuseSession(fuse_session* se) : se_(se) {}
  FuseSession(const FuseSession&) = delete;
  FuseSession& operator=(const FuseSession&) = delete;
  ~FuseSession() {
    g_session.store(nullptr);
    if (mounted_ && unmount_on_destroy_) fuse_session_unmount(se_);
    fuse_session_destroy(se_);
  }

  fuse_session* get() const { return se_; }
  void set_mounted() { mounted_ = true; }
  // Called once the drop succeeded: from then on only root (the supervisor)
  // can unmount, and trying would just spawn a doomed fusermount3.
  void keep_mount_on_destroy() { unmount_on_destroy_ = false; }

 private:
  fuse_session* se_;
  bool mounted_ = false;
  bool unmount_on_destroy_ = true;
};

// Answers the INIT request the kernel queued at mount, so that the readiness
// report can say which request path serves the volume: FUSE over io_uring is
// negotiated in the INIT reply (when the kernel offers it and every ring was
// made) and its queues register right after it. Logs the path and why.
// `dev_loop` serves /dev/fuse in any case.
Status answer_init(fuse_session* se, const MapperConfig& cfg, RequestLoop wanted,
                   RequestLoop dev_loop, size_t cpus, std::unique_ptr<UringLoop>* uring) {
  fuse_buf buf{};
  int res;
  while ((res = fuse_session_receive_buf(se, &buf)) == -EINTR) {
    if (g_signalled != 0) return Status::Internal("stopped by a signal before serving");
  }
  if (res <= 0) {
    std::free(buf.mem);
    if (res == 0) return Status::IOError("unmounted before the kernel's INIT was answered");
    return PosixError("cannot read the kernel's INIT from /dev/fuse", -res);
  }
  const bool want_uring =
      wanted == RequestLoop::kUring || wanted == RequestLoop::kAuto;
  std::string why_not;
  if (want_uring && !init_offers_uring(buf)) {
    why_not = "io_uring not offered by the kernel (" + uring_parameter_state() + ")";
  } else if (want_uring) {
    auto made = UringLoop::create(se, cfg.name);
    if (made.ok()) {
      *uring = std::move(made.value());
    } else {
      why_not = "cannot make the io_uring queues: " + made.status().message();
    }
  }
  if (*uring == nullptr && wanted == RequestLoop::kUring) {
    std::free(buf.mem);
    return Status::FailedPrecondition("--request-loop uring: " + why_not + "; " + uring_fix_hint());
  }
  fuse_session_process_buf(se, &buf);
  std::free(buf.mem);
  if (*uring != nullptr) {
    // A failed registration makes the kernel drop io_uring for this
    // connection and serve /dev/fuse alone.
    Status st = (*uring)->negotiated()
                    ? (*uring)->register_queues()
                    : Status::Internal("the ring entries could not be allocated");
    if (!st.ok()) {
      uring->reset();
      why_not = "io_uring setup failed: " + st.message();
      if (wanted == RequestLoop::kUring) {
        return Status::FailedPrecondition("--request-loop uring: " + why_not);
      }
    }
  }
  if (*uring != nullptr) {
    mapper_log()->info(
        "volume {}: request loop uring ({} queues, {} entries each); /dev/fuse by {} for forgets "
        "and interrupts",
        cfg.name, (*uring)->queue_count(), (*uring)->entries_per_queue(),
        request_loop_name(dev_loop));
  } else if (want_uring) {
    mapper_log()->info("volume {}: request loop {} ({} CPUs): {}", cfg.name,
                       request_loop_name(dev_loop), cpus, why_not);
  } else {
    mapper_log()->info("volume {}: request loop {} ({} CPUs)", cfg.name,
                       request_loop_name(dev_loop), cpus);
  }
  return Status::Ok();
}

}  // namespace

int run_mapper(const MapperConfig& cfg_in) {
  MapperConfig cfg = cfg_in;
  cfg.name = cfg.volume_name();
  fuse_set_log_func(fuse_log_to_spdlog);
  // The kernel already applied the caller's umask to every mode it sends.
  ::umask(0);

  if (Status st = validate(cfg); !st.ok()) return fail(cfg, st);
  if (Status st = install_signal_handlers(); !st.ok()) return fail(cfg, st);

  const Identity& tenant = cfg.identity;
  std::string groups_text;
  for (gid_t g : tenant.groups) {
    if (!groups_text.empty()) groups_text.push_back(',');
    groups_text.append(std::to_string(g));
  }
  mapper_log()->info(
      "volume {}: starting: backing {} mountpoint {} tenant uid {} gid {} groups [{}] presented "
      "as {}:{} cache {}{}",
      cfg.name, cfg.backing, cfg.mountpoint, tenant.uid, tenant.gid, groups_text,
      cfg.presented_uid(), cfg.presented_gid(), cache_mode_name(cfg.cache),
      cfg.readonly ? " read-only" : "");

  UniqueFd backing(::open(cfg.backing.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!backing) return fail(cfg, PosixError("cannot open backing directory " + cfg.backing, errno));
  struct stat backing_st;
  if (::fstat(backing.get(), &backing_st) != 0) {
    return fail(cfg, PosixError("cannot stat backing directory " + cfg.backing, errno));
  }
  struct stat mp_st;
  if (::stat(cfg.mountpoint.c_str(), &mp_st) != 0) {
    return fail(cfg, PosixError("cannot use mountpoint " + cfg.mountpoint, errno));
  }
  if (!S_ISDIR(mp_st.st_mode)) {
    return fail(cfg, Status::InvalidArgument("mountpoint " + cfg.mountpoint +
                                             " is not a directory"));
  }
  // An explicit io_uring request fails here, before anything is mounted,
  // when the host clearly cannot serve it; INIT has the last word.
  if (cfg.request_loop == request_loop_name(RequestLoop::kUring)) {
    if (Status st = uring_precheck(); !st.ok()) return fail(cfg, st);
  }
  rlim_t nofile = 0;
  if (Status st = set_nofile_limit(cfg.max_fds, &nofile); !st.ok()) return fail(cfg, st);
  if (Status st = rehearse_drop(tenant, backing.get(), cfg.backing); !st.ok()) {
    return fail(cfg, st);
  }

  // Options first: the constructor takes `backing` over, and the order in
  // which its arguments are evaluated is unspecified (GCC moved the fd out
  // before fs_options_for looked at it, so every mount believed its backing
  // store remote and paid a FLUSH round trip per close()).
  IdentityFsOptions fs_opts = fs_options_for(cfg, backing.get());
  UniqueFd backing_fd_for_passthrough(::dup(backing.get()));
  fs_opts.max_open_fds = static_cast<size_t>(nofile / 2);
  BackingStat root;
  if (int err = backing_stat(backing.get(), "", AT_EMPTY_PATH, &root); err != 0) {
    return fail(cfg, PosixError("cannot stat backing directory " + cfg.backing, err));
  }
  IdentityFs fs(std::move(fs_opts), std::move(backing), root);

  std::string opts = "allow_other,fsname=tenantfs:" + cfg.name + ",subtype=tenantfs";
  if (cfg.readonly) opts += ",ro";
  std::vector<std::string> argv_s = {"tenantfs-mapper", "-o", opts};
  std::vector<char*> argv;
  for (auto& s : argv_s) argv.push_back(s.data());
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
  fuse_session* raw = fuse_session_new(&args, &IdentityFs::operations(),
                                       sizeof(fuse_lowlevel_ops), &fs);
  if (raw == nullptr) {
    return fail(cfg, Status::Internal("cannot create FUSE session: " + take_fuse_error()));
  }
  FuseSession session(raw);
  g_session.store(raw);
  fs.set_session(raw);

  if (fuse_session_mount(raw, cfg.mountpoint.c_str()) != 0) {
    std::string why = take_fuse_error();
    return fail(cfg, Status::IOError("cannot mount " + cfg.mountpoint +
                                     (why.empty() ? std::string() : ": " + why)));
  }
  session.set_mounted();
  fs.notifier().set_fuse_fd(fuse_session_fd(raw));
  {
    static const fuse_custom_io io = {io_writev, io_read, io_splice, io_splice_send};
    if (int err = fuse_session_custom_io(raw, &io, fuse_session_fd(raw)); err != 0) {
      return fail(cfg, Status::Internal(std::string("cannot set the FUSE session's I/O: ") +
                                        std::strerror(-err)));
    }
  }

  if (g_signalled != 0) {
    mapper_log()->info("volume {}: signal {} before serving; unmounted", cfg.name,
                       static_cast<int>(g_signalled));
    report_ready(cfg.ready_fd, format_error_line("stopped by a signal before serving"));
    return 0;
  }
  // The CPUs this mapper serves: a broker each, and the request loop's queues.
  const std::vector<int> cpus = allowed_cpus();
  // Passthrough: decided, and its broker forked, while still root and
  // single-threaded (passthrough_start.h). Declared after the FuseSession, so the
  // broker ends before the FUSE connection is destroyed.
  Passthrough passthrough;
  {
    PassthroughRequest pt;
    parse_passthrough_mode(cfg.passthrough, &pt.mode);  // checked by validate()
    pt.volume = cfg.name;
    pt.tenant = tenant;
    pt.readonly = cfg.readonly;
    pt.fuse_fd = fuse_session_fd(raw);
    pt.backing_fd = backing_fd_for_passthrough.get();
    pt.max_fds = static_cast<unsigned>(nofile);
    pt.cpus = cpus;
    if (Status st = start_passthrough(pt, &passthrough); !st.ok()) return fail(cfg, st);
    backing_fd_for_passthrough.reset();
    fs.set_passthrough(passthrough.opens.get());
  }

  int threads = 0;
  if (Status st = count_threads(&threads); !st.ok()) return fail(cfg, st);
  if (threads != 1) {
    // setgroups/setresuid reach every thread through glibc, capabilities do
    // not: a second thread could keep root's.
    return fail(cfg, Status::Internal("refusing to drop privileges with " +
                                      std::to_string(threads) + " threads running"));
  }
  // Objects held as O_PATH fds are reached as "N" relative to this working
  // directory (see ProcPath in identity_fs.cc). After the drop the tenant may
  // be unable to traverse "/" (a managed plugin's root is 0700), but the
  // kernel lets a process into its own fd directory whoever it runs as.
  if (::chdir("/proc/self/fd") != 0) {
    return fail(cfg, PosixError("chdir /proc/self/fd", errno));
  }
  if (Status st = drop_privileges_to(tenant, ProcessIds::kMapperReserved); !st.ok()) {
    // Still root here (see privileges.h), so the guard can unmount.
    return fail(cfg, Status::Internal("cannot drop privileges to uid " +
                                      std::to_string(tenant.uid) + ": " + st.message()));
  }
  session.keep_mount_on_destroy();

  RequestLoop wanted = RequestLoop::kAuto;
  parse_request_loop(cfg.request_loop, &wanted);  // checked by validate()
  const RequestLoop loop = resolve_request_loop(wanted, cpus.size());
  std::unique_ptr<UringLoop> uring;
  if (Status st = answer_init(raw, cfg, wanted, loop, cpus.size(), &uring); !st.ok()) {
    if (g_signalled != 0) {
      mapper_log()->info("volume {}: signal {} before serving; root must unmount {}", cfg.name,
                         static_cast<int>(g_signalled), cfg.mountpoint);
      report_ready(cfg.ready_fd, format_error_line("stopped by a signal before serving"));
      return 0;
    }
    return fail(cfg, st);
  }

  mapper_log()->info("volume {}: serving {} as uid {} gid {} (process uid {})", cfg.name,
                     cfg.mountpoint, tenant.uid, tenant.gid, kMapperProcessUid);
  if (passthrough.on()) {
    std::string pids;
    for (pid_t p : passthrough.broker->pids()) pids += (pids.empty() ? "" : ",") + std::to_string(p);
    mapper_log()->info("volume {}: passthrough on (broker pids {}, max_stack_depth {})", cfg.name,
                       pids, passthrough.max_stack_depth);
  } else {
    mapper_log()->info("volume {}: passthrough off: {}", cfg.name, passthrough.why_off);
  }
  if (!fs.xattr_by_name()) {
    mapper_log()->info("volume {}: xattrs of objects without an fd are read through a new fd "
                       "(getxattrat/listxattrat refused: a kernel before 6.13 or a seccomp filter)",
                       cfg.name);
  }
  report_ready(cfg.ready_fd,
               format_ready_line(
                   {{"request-loop", uring != nullptr ? "uring" : request_loop_name(loop)},
                    {"passthrough", passthrough.on() ? "on" : "off"}}));

  const int rc = run_request_loop(raw, loop, cpus, kMaxThreads);
  // The /dev/fuse loop ends on unmount and on a signal; the rings follow.
  if (uring != nullptr) uring->stop();
  // Threads still waiting for a flock must not answer into the session
  // destroyed below; they stay blocked until the process exits.
  fs.flock_waiters().close();
  fs.notifier().close();

  if (g_signalled != 0) {
    mapper_log()->info(
        "volume {}: stopped by signal {}; the FUSE connection is closed, root must unmount {}",
        cfg.name, static_cast<int>(g_signalled), cfg.mountpoint);
    return 0;
  }
  if (rc != 0) {
    mapper_log()->error("volume {}: FUSE loop failed: {}", cfg.name, std::strerror(rc));
    return 1;
  }
  mapper_log()->info("volume {}: unmounted, exiting", cfg.name);
  return 0;
}

}  // namespace tenantfs

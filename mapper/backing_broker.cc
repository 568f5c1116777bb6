#include "mapper/backing_broker.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "mapper/fuse_passthrough.h"

namespace tenantfs {
namespace {

#if defined(__x86_64__)
constexpr uint32_t kAuditArch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
constexpr uint32_t kAuditArch = AUDIT_ARCH_AARCH64;
#else
#error "the broker's seccomp filter knows x86_64 and aarch64 only"
#endif

// kOpRelease is kOpClose without a reply: the mapper releases an id at the
// last release of its inode and need not wait for that (a round trip to the
// broker per closed file is most of what passthrough costs small files).
// A broker handles its requests in order; a later REGISTER of the same inode
// may reach another broker first, which is harmless: the kernel dropped the
// inode's backing file before it sent RELEASE, and the new id is another.
enum : uint32_t { kOpRegister = 1, kOpClose = 2, kOpRelease = 3 };

struct Request {
  uint32_t op;
  int32_t arg;  // the backing id for kOpClose
};

struct Reply {
  int32_t result;  // backing id or 0, or -errno
};

// The broker's first message: 0 once it serves, else -errno and why.
struct StartReport {
  int32_t result;
  char text[200];
};

// The fds the broker may receive at once; more are closed unread.
constexpr int kMaxFdsPerMessage = 4;

// The flags of the broker's permission check: the one openat the filter
// lets through. O_NONBLOCK: a lease held on the file must not stall the
// broker (the open fails with EWOULDBLOCK, and the file is refused).
int reopen_flags(bool readonly) {
  return (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NONBLOCK | O_NOCTTY;
}

// ----------------------------------------------------------------- seccomp

// A BPF program with forward jumps to named targets, resolved by finish().
class FilterBuilder {
 public:
  enum Target { kNext, kAllow, kKill, kIoctl, kOpenat, kFcntl, kTargetCount };

  void load_nr() { load(offsetof(seccomp_data, nr)); }
  void load_arch() { load(offsetof(seccomp_data, arch)); }
  // The low (hi=false) or high half of argument `i` (little endian).
  void load_arg(int i, bool hi) {
    const auto base = static_cast<uint32_t>(offsetof(seccomp_data, args) + 8 * i);
    load(base + (hi ? 4 : 0));
  }
  void jump_eq(uint32_t k, Target match, Target other) { jump(BPF_JEQ, k, match, other); }
  void jump_ge(uint32_t k, Target match, Target other) { jump(BPF_JGE, k, match, other); }
  void ret(uint32_t action) { code_.push_back(BPF_STMT(BPF_RET | BPF_K, action)); }
  void label(Target t) { at_[t] = code_.size(); }

  std::vector<sock_filter> finish() {
    for (const Fixup& f : fixups_) {
      sock_filter& ins = code_[f.index];
      auto offset = [&](Target t) -> uint8_t {
        if (t == kNext) return 0;
        return static_cast<uint8_t>(at_[t] - f.index - 1);
      };
      ins.jt = offset(f.match);
      ins.jf = offset(f.other);
    }
    return code_;
  }

 private:
  struct Fixup {
    size_t index;
    Target match, other;
  };
  void load(uint32_t off) { code_.push_back(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, off)); }
  void jump(uint16_t op, uint32_t k, Target match, Target other) {
    fixups_.push_back({code_.size(), match, other});
    code_.push_back(BPF_JUMP(BPF_JMP | op | BPF_K, k, 0, 0));
  }

  std::vector<sock_filter> code_;
  std::vector<Fixup> fixups_;
  size_t at_[kTargetCount] = {};
};

// Everything the broker's loop calls, and nothing else: its socket, the
// permission check (openat with exactly reopen_flags), the file checks
// (statx, fcntl F_GETFL), the two backing ioctls on the /dev/fuse fd, close
// and exit. Any other call, an ioctl on another fd or with another command,
// an openat with other flags (O_CREAT, O_TRUNC, O_PATH...), any other fcntl
// or a call of another architecture's ABI kills the process.
std::vector<sock_filter> broker_filter(int fuse_fd, bool readonly) {
  using B = FilterBuilder;
  B b;
  b.load_arch();
  b.jump_eq(kAuditArch, B::kNext, B::kKill);
  b.load_nr();
#if defined(__x86_64__)
  b.jump_ge(0x40000000u, B::kKill, B::kNext);  // the x32 ABI
#endif
  const long allowed[] = {
      SYS_recvmsg, SYS_sendmsg,    SYS_close,        SYS_statx, SYS_newfstatat,
#ifdef SYS_fstat
      SYS_fstat,
#endif
      SYS_exit,    SYS_exit_group, SYS_rt_sigreturn,
  };
  for (long nr : allowed) b.jump_eq(static_cast<uint32_t>(nr), B::kAllow, B::kNext);
  b.jump_eq(SYS_ioctl, B::kIoctl, B::kNext);
  b.jump_eq(SYS_fcntl, B::kFcntl, B::kNext);
  b.jump_eq(SYS_openat, B::kOpenat, B::kKill);

  b.label(B::kIoctl);
  b.load_arg(0, false);
  b.jump_eq(static_cast<uint32_t>(fuse_fd), B::kNext, B::kKill);
  b.load_arg(0, true);
  b.jump_eq(0, B::kNext, B::kKill);
  b.load_arg(1, false);  // the kernel reads the command as 32 bits
  b.jump_eq(static_cast<uint32_t>(kFuseDevIocBackingOpen), B::kAllow, B::kNext);
  b.jump_eq(static_cast<uint32_t>(kFuseDevIocBackingClose), B::kAllow, B::kKill);

  b.label(B::kFcntl);
  b.load_arg(1, false);  // only F_GETFL: no locks, leases or owners
  b.jump_eq(F_GETFL, B::kAllow, B::kKill);

  b.label(B::kOpenat);
  b.load_arg(2, false);  // flags, an int
  b.jump_eq(static_cast<uint32_t>(reopen_flags(readonly)), B::kAllow, B::kKill);

  b.label(B::kAllow);
  b.ret(SECCOMP_RET_ALLOW);
  b.label(B::kKill);
  b.ret(SECCOMP_RET_KILL_PROCESS);
  return b.finish();
}

Status install_filter(int fuse_fd, bool readonly) {
  std::vector<sock_filter> code = broker_filter(fuse_fd, readonly);
  sock_fprog prog{static_cast<unsigned short>(code.size()), code.data()};
  if (::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) {
    return PosixError("seccomp(SECCOMP_SET_MODE_FILTER)", errno);
  }
  return Status::Ok();
}

// ----------------------------------------------------------- the broker loop

// The kernel's struct statx (include/uapi/linux/stat.h) as far as it is
// read here: glibc's names no mount id, and which of the two definitions a
// file sees depends on what it included first.
struct KernelStatx {
  uint32_t stx_mask;
  uint32_t stx_blksize;
  uint64_t stx_attributes;
  uint32_t stx_nlink, stx_uid, stx_gid;
  uint16_t stx_mode;
  uint16_t pad1;
  uint64_t stx_ino, stx_size, stx_blocks, stx_attributes_mask;
  uint64_t timestamps[8];  // atime, btime, ctime, mtime: {s64 sec; u32 nsec; s32 pad}
  uint32_t stx_rdev_major, stx_rdev_minor, stx_dev_major, stx_dev_minor;
  uint64_t stx_mnt_id;
  uint64_t spare[13];
};
static_assert(offsetof(KernelStatx, stx_dev_major) == 136);
static_assert(offsetof(KernelStatx, stx_mnt_id) == 144);
static_assert(sizeof(KernelStatx) == 256);

constexpr unsigned kStatxType = 0x1;      // STATX_TYPE
constexpr unsigned kStatxMntId = 0x1000;  // STATX_MNT_ID

// statx of the object `fd` refers to, by the raw call the filter allows.
int statx_fd(int fd, unsigned mask, KernelStatx* stx) {
  return static_cast<int>(
      ::syscall(SYS_statx, fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, mask, stx));
}

// "N" for fd N, relative to the broker's working directory /proc/self/fd.
void fd_name(int fd, char (&buf)[16]) {
  char digits[16];
  int n = 0;
  auto v = static_cast<unsigned>(fd);
  do {
    digits[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  for (int i = 0; i < n; ++i) buf[i] = digits[n - 1 - i];
  buf[n] = '\0';
}

// The broker's own state, fixed before the filter is installed.
struct BrokerState {
  int sock;
  int fuse_fd;
  dev_t volume_dev;
  uint64_t volume_mnt_id;
  bool readonly;
};

// Registers `fd` if the tenant may open it read-write (read-only volumes:
// read) and it is a regular file of the volume. Allocates nothing.
int32_t register_checked(const BrokerState& s, int fd) {
  const int fl = ::fcntl(fd, F_GETFL);
  if (fl < 0) return -errno;
  // The kernel would take an O_PATH fd and open its path with whatever a
  // FUSE open asks for: only files opened for I/O are considered.
  if ((fl & O_PATH) != 0) return -EINVAL;
  KernelStatx stx{};
  if (statx_fd(fd, kStatxType | kStatxMntId, &stx) != 0) return -errno;
  if (!S_ISREG(stx.stx_mode)) return -EINVAL;
  if (makedev(stx.stx_dev_major, stx.stx_dev_minor) != s.volume_dev ||
      (stx.stx_mask & kStatxMntId) == 0 || stx.stx_mnt_id != s.volume_mnt_id) {
    return -EXDEV;
  }
  // The permission check: the kernel checks nothing when it later opens the
  // registered file for a FUSE open, so the broker, as the tenant, opens it
  // now the widest way a FUSE open could.
  char name[16];
  fd_name(fd, name);
  const long checked = ::syscall(SYS_openat, AT_FDCWD, name, reopen_flags(s.readonly));
  if (checked < 0) return -errno;
  FuseBackingMap map{static_cast<int32_t>(checked), 0, 0};
  const int id = ::ioctl(s.fuse_fd, kFuseDevIocBackingOpen, &map);
  const int err = errno;
  ::close(static_cast<int>(checked));
  return id >= 0 ? id : -err;
}

[[noreturn]] void serve(const BrokerState& s) {
  for (;;) {
    Request req{};
    iovec iov{&req, sizeof req};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerMessage)];
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = control;
    m.msg_controllen = sizeof control;
    const ssize_t n = ::recvmsg(s.sock, &m, MSG_CMSG_CLOEXEC);
    if (n == 0) ::_exit(0);  // the mapper is gone
    if (n < 0) {
      if (errno == EINTR) continue;
      ::_exit(1);
    }
    int fds[kMaxFdsPerMessage];
    int nfds = 0;
    for (cmsghdr* c = CMSG_FIRSTHDR(&m); c != nullptr; c = CMSG_NXTHDR(&m, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count && nfds < kMaxFdsPerMessage; ++i) {
        std::memcpy(&fds[nfds++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      }
    }
    Reply reply{-EPROTO};
    if (n != static_cast<ssize_t>(sizeof req) || (m.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0) {
      reply.result = -EPROTO;
    } else if (req.op == kOpRegister && nfds == 1) {
      reply.result = register_checked(s, fds[0]);
    } else if ((req.op == kOpClose || req.op == kOpRelease) && nfds == 0) {
      uint32_t id = static_cast<uint32_t>(req.arg);
      reply.result = ::ioctl(s.fuse_fd, kFuseDevIocBackingClose, &id) == 0 ? 0 : -errno;
    }
    for (int i = 0; i < nfds; ++i) ::close(fds[i]);
    if (req.op == kOpRelease && n == static_cast<ssize_t>(sizeof req)) continue;
    iovec out{&reply, sizeof reply};
    msghdr r{};
    r.msg_iov = &out;
    r.msg_iovlen = 1;
    while (::sendmsg(s.sock, &r, MSG_NOSIGNAL) < 0) {
      if (errno != EINTR) ::_exit(1);
    }
  }
}

void send_report(int sock, int32_t result, const std::string& text) {
  StartReport r{};
  r.result = result;
  std::snprintf(r.text, sizeof r.text, "%s", text.c_str());
  // sendmsg, not send: the filter allows only the former.
  iovec iov{&r, sizeof r};
  msghdr m{};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  while (::sendmsg(sock, &m, MSG_NOSIGNAL) < 0 && errno == EINTR) {
  }
}

// The mapper's command line is "tenantfs mapper --mountpoint M ..."; the
// plugin finds mappers by it (plugin/mapper_launcher.cc). The broker's reads
// "tenantfs broker ...": same length, so it is rewritten in place.
void rename_command_line() {
  char* arg0 = program_invocation_name;
  if (arg0 == nullptr) return;
  char* arg1 = arg0 + std::strlen(arg0) + 1;
  if (std::strcmp(arg1, "mapper") == 0) std::memcpy(arg1, "broker", 6);
  ::prctl(PR_SET_NAME, "tenantfs-broker", 0, 0, 0);
}

// Keeps exactly `sock` and `fuse` (moved to 3 and 4) and /dev/null on 0-2:
// the broker must hold nothing of the mapper's (its ready pipe above all,
// whose reader waits for EOF).
Status keep_only_fds(int* sock, int* fuse) {
  const int s = ::fcntl(*sock, F_DUPFD_CLOEXEC, 10);
  const int f = ::fcntl(*fuse, F_DUPFD_CLOEXEC, 10);
  if (s < 0 || f < 0) return PosixError("dup", errno);
  const int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null < 0) return PosixError("open /dev/null", errno);
  for (int std_fd = 0; std_fd < 3; ++std_fd) {
    if (::dup2(null, std_fd) != std_fd) return PosixError("dup2", errno);
  }
  if (::dup3(s, 3, O_CLOEXEC) != 3 || ::dup3(f, 4, O_CLOEXEC) != 4)
    return PosixError("dup3", errno);
  if (::close_range(5, ~0U, 0) != 0) return PosixError("close_range", errno);
  *sock = 3;
  *fuse = 4;
  return Status::Ok();
}

Status confine(const BrokerConfig& cfg, pid_t parent) {
  TENANTFS_RETURN_IF_ERROR(drop_privileges_to(cfg.tenant, ProcessIds::kMapperReserved, KeptCapability::kSysAdmin));
  // After the id changes, which reset both settings.
  if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) return PosixError("prctl(PR_SET_DUMPABLE)", errno);
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) {
    return PosixError("prctl(PR_SET_PDEATHSIG)", errno);
  }
  if (parent != 0 && ::getppid() != parent) {
    return Status::FailedPrecondition("the mapper exited while the broker started");
  }
  return install_filter(cfg.fuse_fd, cfg.readonly);
}

// Pins the broker to the CPUs it serves, before the filter, which has no
// sched_setaffinity. A set the kernel refuses (CPUs gone offline) leaves the
// broker unpinned: slower, not wrong.
void pin_to(const std::vector<int>& cpus) {
  if (cpus.empty()) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int c : cpus) {
    if (c >= 0 && c < CPU_SETSIZE) CPU_SET(c, &set);
  }
  (void)::sched_setaffinity(0, sizeof set, &set);
}

[[noreturn]] void broker_main(BrokerConfig cfg, int sock, pid_t parent,
                              const std::vector<int>& pinned) {
  // The mapper's handlers would run here with the mapper's state.
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) ::sigaction(sig, &dfl, nullptr);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  rename_command_line();
  pin_to(pinned);
  int fuse = cfg.fuse_fd;
  Status st = keep_only_fds(&sock, &fuse);
  cfg.fuse_fd = fuse;
  // The permission check reopens "N" here: the mapper's own working
  // directory is the mapper's fd directory, and "/" may be closed to the
  // tenant.
  if (st.ok() && ::chdir("/proc/self/fd") != 0) st = PosixError("chdir /proc/self/fd", errno);
  if (st.ok()) st = confine(cfg, parent);
  if (!st.ok()) {
    send_report(sock, -EPERM, st.message());
    ::_exit(1);
  }
  send_report(sock, 0, "");
  serve(BrokerState{sock, fuse, cfg.volume_dev, cfg.volume_mnt_id, cfg.readonly});
}

}  // namespace

Status mount_id_of(int fd, uint64_t* mnt_id) {
  KernelStatx stx{};
  if (statx_fd(fd, kStatxMntId, &stx) != 0) return PosixError("statx", errno);
  if ((stx.stx_mask & kStatxMntId) == 0) {
    return Status::FailedPrecondition("the kernel reports no mount ids (statx STATX_MNT_ID)");
  }
  *mnt_id = stx.stx_mnt_id;
  return Status::Ok();
}

Status confine_as_broker(const BrokerConfig& cfg) { return confine(cfg, 0); }

namespace {

// Forks one broker serving `pinned` (empty: unpinned); returns its pid and
// the mapper's end of its socket once it serves.
Status fork_broker(const BrokerConfig& cfg, const std::vector<int>& pinned, pid_t* pid_out,
                   UniqueFd* sock_out) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
    return PosixError("socketpair", errno);
  }
  UniqueFd mine(sv[0]);
  UniqueFd theirs(sv[1]);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) return PosixError("fork", errno);
  if (pid == 0) {
    mine.reset();
    broker_main(cfg, theirs.release(), parent, pinned);
  }
  theirs.reset();
  auto reap = [pid] {
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
  };
  pollfd p{mine.get(), POLLIN, 0};
  int ready;
  do {
    ready = ::poll(&p, 1, 10'000);
  } while (ready < 0 && errno == EINTR);
  StartReport report{};
  const ssize_t n = ready > 0 ? ::recv(mine.get(), &report, sizeof report, 0) : -1;
  if (n != static_cast<ssize_t>(sizeof report) || report.result != 0) {
    if (ready <= 0) ::kill(pid, SIGKILL);
    reap();
    report.text[sizeof report.text - 1] = '\0';
    return Status::Internal(std::string("the backing broker did not start") +
                            (n == static_cast<ssize_t>(sizeof report)
                                 ? ": " + std::string(report.text)
                                 : std::string()));
  }
  *pid_out = pid;
  *sock_out = std::move(mine);
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<BackingBroker>> BackingBroker::start(const BrokerConfig& cfg) {
  const size_t n = cfg.cpus.empty() ? 1 : std::min(cfg.cpus.size(), kMaxBrokers);
  std::vector<std::vector<int>> served(n);
  std::unique_ptr<BackingBroker> b(new BackingBroker());
  for (size_t i = 0; i < cfg.cpus.size(); ++i) {
    const int cpu = cfg.cpus[i];
    served[i % n].push_back(cpu);
    if (cpu < 0 || cpu >= CPU_SETSIZE) continue;
    if (b->channel_of_cpu_.size() <= static_cast<size_t>(cpu)) b->channel_of_cpu_.resize(cpu + 1, 0);
    b->channel_of_cpu_[cpu] = static_cast<uint8_t>(i % n);
  }
  for (size_t i = 0; i < n; ++i) {
    auto ch = std::make_unique<Channel>();
    UniqueFd sock;
    // On failure `b` goes out of scope and reaps the brokers already started.
    TENANTFS_RETURN_IF_ERROR(fork_broker(cfg, served[i], &ch->pid, &sock));
    {
      MutexLock lock(ch->mu);
      ch->sock = std::move(sock);
    }
    b->channels_.push_back(std::move(ch));
  }
  return b;
}

BackingBroker::~BackingBroker() {
  for (auto& ch : channels_) {
    MutexLock lock(ch->mu);
    ch->sock.reset();
  }
  for (auto& ch : channels_) {
    while (::waitpid(ch->pid, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
}

std::vector<pid_t> BackingBroker::pids() const {
  std::vector<pid_t> out;
  for (const auto& ch : channels_) out.push_back(ch->pid);
  return out;
}

BackingBroker::Channel& BackingBroker::channel_for_this_cpu() {
  const int cpu = ::sched_getcpu();
  if (cpu >= 0 && static_cast<size_t>(cpu) < channel_of_cpu_.size()) {
    return *channels_[channel_of_cpu_[cpu]];
  }
  return *channels_[cpu >= 0 ? static_cast<size_t>(cpu) % channels_.size() : 0];
}

int BackingBroker::register_file(int fd) {
  return call(channel_for_this_cpu(), kOpRegister, 0, fd);
}

int BackingBroker::close_id(int32_t backing_id) {
  return call(channel_for_this_cpu(), kOpClose, backing_id, -1);
}

void BackingBroker::release_id(int32_t backing_id) {
  call(channel_for_this_cpu(), kOpRelease, backing_id, -1);
}

int BackingBroker::call(Channel& ch, uint32_t op, int32_t arg, int fd) {
  MutexLock lock(ch.mu);
  if (!ch.sock) return -EPIPE;
  Request req{op, arg};
  iovec iov{&req, sizeof req};
  msghdr m{};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  if (fd >= 0) {
    m.msg_control = control;
    m.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
  }
  ssize_t n;
  do {
    n = ::sendmsg(ch.sock.get(), &m, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  Reply reply{};
  bool ok = n == static_cast<ssize_t>(sizeof req);
  if (ok && op == kOpRelease) return 0;
  if (ok) {
    do {
      n = ::recv(ch.sock.get(), &reply, sizeof reply, 0);
    } while (n < 0 && errno == EINTR);
    ok = n == static_cast<ssize_t>(sizeof reply);
  }
  if (!ok) {
    // The broker died (or broke the protocol): no passthrough from now on.
    ch.sock.reset();
    return -EPIPE;
  }
  return reply.result;
}

}  // namespace tenantfs

#include "tests/mapper/mapper_fixture.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <poll.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <thread>

#include "common/mapper_invocation.h"
#include "common/mapper_readiness.h"

namespace tenantfs::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

constexpr milliseconds kReadyTimeout{10'000};
constexpr milliseconds kExitTimeout{10'000};
constexpr milliseconds kChildTimeout{30'000};

// Reads everything from fd until EOF or until `deadline`; false on timeout.
bool read_all_until(int fd, std::string* out, steady_clock::time_point deadline) {
  char buf[4096];
  for (;;) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return true;
    out->append(buf, static_cast<size_t>(n));
  }
}

void write_all(int fd, const void* data, size_t len) {
  const char* p = static_cast<const char*>(data);
  while (len > 0) {
    ssize_t n = ::write(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    p += n;
    len -= static_cast<size_t>(n);
  }
}

// Waits for pid with a deadline, polling because waitpid has no timeout.
std::optional<int> wait_pid_for(pid_t pid, milliseconds timeout) {
  auto deadline = steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0 && errno != EINTR) return std::nullopt;
    if (steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(milliseconds(20));
  }
}

std::string make_temp_dir(const char* prefix) {
  std::string templ = std::string("/tmp/") + prefix + "-XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) {
    ADD_FAILURE() << "mkdtemp " << templ << ": " << std::strerror(errno);
    return {};
  }
  return templ;
}

void make_dir(const std::string& path, mode_t mode, uid_t uid, gid_t gid) {
  if (::mkdir(path.c_str(), mode) != 0) {
    ADD_FAILURE() << "mkdir " << path << ": " << std::strerror(errno);
    return;
  }
  // chmod after mkdir: the umask must not decide the mode under test.
  if (::chown(path.c_str(), uid, gid) != 0 || ::chmod(path.c_str(), mode) != 0)
    ADD_FAILURE() << "chown/chmod " << path << ": " << std::strerror(errno);
}

int remove_entry(const char* path, const struct stat*, int type, FTW*) {
  int r = (type == FTW_DP) ? ::rmdir(path) : ::unlink(path);
  if (r != 0)
    std::cerr << "cleanup: cannot remove " << path << ": " << std::strerror(errno) << "\n";
  return 0;
}

// Removes a tree without following symlinks or entering other mounts, so a
// mount left behind by a failed test is never emptied through.
void remove_tree(const std::string& root) {
  if (root.empty()) return;
  ::nftw(root.c_str(), remove_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape_mountinfo(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      out.push_back(static_cast<char>(std::stoi(s.substr(i + 1, 3), nullptr, 8)));
      i += 3;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

}  // namespace

std::string why_mapper_tests_cannot_run() {
  if (::geteuid() != 0) return "mapper integration tests need root";
  if (::access("/dev/fuse", F_OK) != 0) return "/dev/fuse is absent";
  return {};
}

Outcome sys(long ret) {
  Outcome o;
  o.ret = ret;
  o.err = ret < 0 ? errno : 0;
  return o;
}

std::string errno_name(int err) {
  const char* name = ::strerrorname_np(err);
  return name ? name : std::to_string(err);
}

std::string describe(const Outcome& o) {
  std::ostringstream s;
  s << "ret=" << o.ret;
  if (o.ret < 0) s << " errno=" << errno_name(o.err) << " (" << std::strerror(o.err) << ")";
  return s.str();
}

std::string Caller::name() const { return uid == 0 ? "root" : "uid" + std::to_string(uid); }

Outcome run_as(const Caller& who, const std::function<Outcome()>& fn) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return sys(-1);
  UniqueFd rd(fds[0]), wr(fds[1]);
  pid_t pid = ::fork();
  if (pid < 0) return sys(-1);
  if (pid == 0) {
    rd.reset();
    Outcome o;
    if (who.uid != 0 || who.gid != 0) {
      if (::setgroups(who.groups.size(), who.groups.data()) != 0 ||
          ::setresgid(who.gid, who.gid, who.gid) != 0 ||
          ::setresuid(who.uid, who.uid, who.uid) != 0) {
        o = sys(-1);
        o.data = "run_as: cannot switch credentials";
      } else {
        o = fn();
      }
    } else {
      o = fn();
    }
    uint64_t len = o.data.size();
    write_all(wr.get(), &o.ret, sizeof o.ret);
    write_all(wr.get(), &o.err, sizeof o.err);
    write_all(wr.get(), &len, sizeof len);
    write_all(wr.get(), o.data.data(), o.data.size());
    ::_exit(0);
  }
  wr.reset();
  std::string raw;
  bool complete = read_all_until(rd.get(), &raw, steady_clock::now() + kChildTimeout);
  if (!complete) ::kill(pid, SIGKILL);
  std::optional<int> status = wait_pid_for(pid, kExitTimeout);
  if (!status) {
    ::kill(pid, SIGKILL);
    wait_pid_for(pid, kExitTimeout);
  }
  Outcome o;
  constexpr size_t kHeader = sizeof o.ret + sizeof o.err + sizeof(uint64_t);
  if (!complete || raw.size() < kHeader) {
    o.ret = -1;
    o.err = complete ? ECHILD : ETIMEDOUT;
    o.data = "run_as: child " + std::string(complete ? "died" : "hung");
    return o;
  }
  std::memcpy(&o.ret, raw.data(), sizeof o.ret);
  std::memcpy(&o.err, raw.data() + sizeof o.ret, sizeof o.err);
  o.data = raw.substr(kHeader);
  return o;
}

Outcome run_as(uid_t uid, gid_t gid, const std::vector<gid_t>& groups,
               const std::function<Outcome()>& fn) {
  return run_as(Caller{uid, gid, groups}, fn);
}

MapperProcess::MapperProcess(const std::vector<std::string>& args, const std::string& log_path,
                             const std::function<void()>& pre_exec) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe2: " << std::strerror(errno);
    return;
  }
  UniqueFd rd(fds[0]), wr(fds[1]);
  UniqueFd log(::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
  std::vector<char*> argv;
  std::string binary = tenantfs_binary();
  argv.push_back(binary.data());
  std::vector<std::string> copy = args;
  for (auto& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);

  pid_t pid = ::fork();
  if (pid < 0) {
    ADD_FAILURE() << "fork: " << std::strerror(errno);
    return;
  }
  if (pid == 0) {
    // Move both fds above 3 first so that dup2 below cannot clobber them.
    int ready_fd = ::fcntl(wr.get(), F_DUPFD, 10);
    int log_fd = log ? ::fcntl(log.get(), F_DUPFD, 10) : -1;
    ::dup2(ready_fd, 3);
    if (log_fd >= 0) {
      ::dup2(log_fd, 1);
      ::dup2(log_fd, 2);
    }
    ::close_range(4, ~0U, 0);
    if (pre_exec) pre_exec();
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  pid_ = pid;
  ready_ = std::move(rd);
}

MapperProcess::~MapperProcess() {
  if (pid_ <= 0) return;
  if (!wait_exit(milliseconds(0))) {
    ::kill(pid_, SIGKILL);
    wait_exit(kExitTimeout);
  }
}

namespace {

// "ready passthrough=off request-loop=uring" is "ready" for a suite run with
// TENANTFS_TEST_MAPPER="passthrough=off request-loop=uring" (or unset); a
// line without a field the run asked for is a failure that the caller sees
// as the whole line.
std::string check_ready_fields(const std::string& line) {
  const Readiness report = parse_readiness(line);
  if (!report.ready()) return line;
  for (const auto& [key, want] : test_mapper_settings()) {
    if (want == "auto") continue;
    const auto got = report.fields.find(key);
    if (got == report.fields.end() || got->second != want) return line;
  }
  return "ready";
}

}  // namespace

std::string MapperProcess::wait_ready_line(milliseconds timeout) {
  std::string line = read_ready_line(timeout);
  full_ready_line_ = line;
  return check_ready_fields(line);
}

std::string MapperProcess::read_ready_line(milliseconds timeout) {
  if (!ready_) return "";
  auto deadline = steady_clock::now() + timeout;
  std::string line;
  char c;
  for (;;) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - steady_clock::now());
    if (left.count() <= 0) return "<timeout>";
    pollfd p{ready_.get(), POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return "<timeout>";
    ssize_t n = ::read(ready_.get(), &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || c == '\n') return line;
    line.push_back(c);
  }
}

std::string MapperProcess::ready_field(const std::string& key) const {
  if (full_ready_line_.rfind("ready ", 0) != 0) return "";
  const std::string fields = " " + full_ready_line_.substr(6) + " ";
  const std::string want = " " + key + "=";
  const size_t at = fields.find(want);
  if (at == std::string::npos) return "";
  const size_t begin = at + want.size();
  return fields.substr(begin, fields.find(' ', begin) - begin);
}

std::string MapperProcess::read_rest_of_ready_pipe() {
  std::string rest;
  if (ready_) read_all_until(ready_.get(), &rest, steady_clock::now() + milliseconds(1000));
  return rest;
}

std::optional<int> MapperProcess::wait_exit(milliseconds timeout) {
  if (pid_ <= 0) return std::nullopt;
  std::optional<int> status = wait_pid_for(pid_, timeout);
  if (status) pid_ = -1;
  return status;
}

void MapperProcess::signal(int sig) const {
  if (pid_ > 0) ::kill(pid_, sig);
}

VolumeDirs::VolumeDirs(uid_t tenant_uid, gid_t tenant_gid) {
  root_ = make_temp_dir("tenantfs-mapper-test");
  if (root_.empty()) return;
  ::chmod(root_.c_str(), 0755);
  make_dir(root_ + "/store", 0700, 0, 0);
  backing_ = root_ + "/store/vol";
  make_dir(backing_, 0700, tenant_uid, tenant_gid);
  mountpoint_ = root_ + "/mnt";
  make_dir(mountpoint_, 0755, 0, 0);
}

VolumeDirs::~VolumeDirs() {
  // A mount still here would keep files alive: detach before removing.
  for (int i = 0; i < 8 && find_mount(mountpoint_); ++i) ::umount2(mountpoint_.c_str(), MNT_DETACH);
  remove_tree(root_);
}

MountedVolume::MountedVolume(VolumeOptions opts)
    : opts_(std::move(opts)), dirs_(opts_.uid, opts_.gid) {
  log_path_ = dirs_.root() + "/mapper.log";
}

MountedVolume::~MountedVolume() {
  stop();
  if (::testing::Test::HasFailure()) {
    std::string text = log();
    if (!text.empty())
      std::cerr << "---- mapper log (" << mountpoint() << ") ----\n" << text << "----\n";
  }
}

std::vector<std::string> MountedVolume::mapper_args() const {
  MapperInvocation inv;
  inv.backing = backing();
  inv.mountpoint = mountpoint();
  inv.name = opts_.name;
  inv.identity = Identity{opts_.uid, opts_.gid, opts_.groups};
  inv.present_uid = opts_.present_uid;
  inv.present_gid = opts_.present_gid;
  inv.readonly = opts_.readonly;
  inv.ready_fd = 3;
  if (!opts_.cache.empty()) {
    std::optional<CacheMode> cache = parse_cache_mode(opts_.cache);
    EXPECT_TRUE(cache) << "unknown cache mode " << opts_.cache;
    inv.cache = cache.value_or(inv.cache);
  }
  if (opts_.max_fds) inv.max_fds = *opts_.max_fds;
  // The suite runs once per request loop, with passthrough as the mapper
  // decides and off (see CMakeLists.txt).
  const ReadyFields settings = test_mapper_settings();
  if (const auto mode = settings.find("passthrough"); mode != settings.end())
    inv.passthrough = mode->second;
  if (const auto loop = settings.find("request-loop"); loop != settings.end())
    inv.request_loop = loop->second;
  return inv.to_argv();
}

ReadyFields test_mapper_settings() {
  const char* settings = std::getenv("TENANTFS_TEST_MAPPER");
  if (settings == nullptr || *settings == 0) return {};
  const Readiness parsed = parse_readiness(std::string("ready ") + settings);
  EXPECT_TRUE(parsed.ready()) << "TENANTFS_TEST_MAPPER=" << settings << ": " << parsed.message;
  return parsed.fields;
}

std::string test_passthrough_mode() {
  const ReadyFields settings = test_mapper_settings();
  const auto mode = settings.find("passthrough");
  return mode != settings.end() ? mode->second : "auto";
}

std::string MountedVolume::start(const std::function<void()>& pre_exec) {
  mapper_.emplace(mapper_args(), log_path_, pre_exec);
  return mapper_->wait_ready_line(kReadyTimeout);
}

std::string MountedVolume::log() const {
  std::ifstream in(log_path_);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::optional<int> MountedVolume::stop() {
  if (find_mount(mountpoint()) && ::umount2(mountpoint().c_str(), 0) != 0)
    ::umount2(mountpoint().c_str(), MNT_DETACH);
  if (!mapper_) return std::nullopt;
  std::optional<int> status = mapper_->wait_exit(kExitTimeout);
  mapper_.reset();
  return status;
}

std::optional<MountEntry> find_mount(const std::string& path) {
  if (path.empty()) return std::nullopt;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  std::optional<MountEntry> found;
  while (std::getline(in, line)) {
    // id parent major:minor root mountpoint options [optional...] - fstype source super
    std::istringstream f(line);
    std::string id, parent, dev, root, mnt, opts, field;
    f >> id >> parent >> dev >> root >> mnt >> opts;
    while (f >> field && field != "-") {
    }
    MountEntry e;
    std::string super;
    f >> e.fstype >> e.source >> super;
    e.mountpoint = unescape_mountinfo(mnt);
    e.source = unescape_mountinfo(e.source);
    e.options = opts + "," + super;
    if (e.mountpoint == path) found = e;  // later lines are mounted on top
  }
  return found;
}

const char* tenantfs_binary() {
  // Lets the suite run against another build (or another implementation of
  // the `mapper` contract) without rebuilding the tests.
  const char* override_path = std::getenv("TENANTFS_TEST_BINARY");
  return override_path && *override_path ? override_path : TENANTFS_BINARY;
}

std::optional<int> wait_for_exit(pid_t pid, milliseconds timeout) {
  return wait_pid_for(pid, timeout);
}

bool exited_with(const std::optional<int>& status, int code) {
  return status && WIFEXITED(*status) && WEXITSTATUS(*status) == code;
}

std::string describe_status(const std::optional<int>& status) {
  if (!status) return "still running";
  if (WIFEXITED(*status)) return "exit " + std::to_string(WEXITSTATUS(*status));
  if (WIFSIGNALED(*status)) return "killed by signal " + std::to_string(WTERMSIG(*status));
  return "status " + std::to_string(*status);
}

int count_fds(pid_t pid) {
  DIR* d = ::opendir(("/proc/" + std::to_string(pid) + "/fd").c_str());
  if (d == nullptr) return -1;
  int n = 0;
  while (const dirent* e = ::readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  ::closedir(d);
  return n;
}

int run_command(const std::vector<std::string>& args) {
  std::vector<std::string> copy = args;
  std::vector<char*> argv;
  for (auto& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    ::execvp(argv[0], argv.data());
    ::_exit(127);
  }
  std::optional<int> status = wait_pid_for(pid, kChildTimeout);
  if (!status) {
    ::kill(pid, SIGKILL);
    wait_pid_for(pid, kExitTimeout);
    return -1;
  }
  return *status;
}

std::string read_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    ADD_FAILURE() << "open " << path << ": " << std::strerror(errno);
    return {};
  }
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      ADD_FAILURE() << "read " << path << ": " << std::strerror(errno);
      return {};
    }
    if (n == 0) return out;
    out.append(buf, static_cast<size_t>(n));
  }
}

bool write_file(const std::string& path, const std::string& data, mode_t mode) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
  if (!fd) {
    ADD_FAILURE() << "open " << path << ": " << std::strerror(errno);
    return false;
  }
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd.get(), data.data() + done, data.size() - done);
    if (n <= 0) {
      ADD_FAILURE() << "write " << path << ": " << std::strerror(errno);
      return false;
    }
    done += static_cast<size_t>(n);
  }
  return true;
}

struct stat lstat_path(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0)
    ADD_FAILURE() << "lstat " << path << ": " << std::strerror(errno);
  return st;
}

std::string random_bytes(size_t n, unsigned seed) {
  std::mt19937_64 gen(seed);
  std::string out(n, '\0');
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t v = gen();
    std::memcpy(out.data() + i, &v, 8);
  }
  for (; i < n; ++i) out[i] = static_cast<char>(gen() & 0xff);
  return out;
}

bool eventually(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

ScopedTmpfs::ScopedTmpfs(const std::string& where) : where_(where) {
  if (::mount("tenantfs-test", where.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "size=4m,mode=0755") !=
      0) {
    ADD_FAILURE() << "mount tmpfs on " << where << ": " << std::strerror(errno);
    return;
  }
  mounted_ = true;
}

ScopedTmpfs::~ScopedTmpfs() {
  if (mounted_ && ::umount2(where_.c_str(), 0) != 0) ::umount2(where_.c_str(), MNT_DETACH);
}

std::string encode_acl(const std::vector<AclEntry>& entries) {
  // Little-endian: version 2, then (tag, perm, id) per entry; on the
  // little-endian machines we run on that is the in-memory layout.
  std::string out;
  uint32_t version = 2;
  out.append(reinterpret_cast<const char*>(&version), sizeof version);
  for (const AclEntry& e : entries) {
    out.append(reinterpret_cast<const char*>(&e.tag), sizeof e.tag);
    out.append(reinterpret_cast<const char*>(&e.perm), sizeof e.perm);
    out.append(reinterpret_cast<const char*>(&e.id), sizeof e.id);
  }
  return out;
}

std::vector<AclEntry> decode_acl(const std::string& xattr) {
  std::vector<AclEntry> out;
  for (size_t at = 4; at + 8 <= xattr.size(); at += 8) {
    AclEntry e{};
    std::memcpy(&e.tag, xattr.data() + at, 2);
    std::memcpy(&e.perm, xattr.data() + at + 2, 2);
    std::memcpy(&e.id, xattr.data() + at + 4, 4);
    out.push_back(e);
  }
  return out;
}

bool supports_posix_acl(const std::string& dir) {
  std::string probe = dir + "/.acl-probe";
  UniqueFd fd(::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!fd) return false;
  std::string acl = encode_acl({{kAclUserObj, 6, kAclNoId},
                                {kAclUser, 4, kOtherUid},
                                {kAclGroupObj, 0, kAclNoId},
                                {kAclMask, 4, kAclNoId},
                                {kAclOther, 0, kAclNoId}});
  bool ok = ::fsetxattr(fd.get(), kAclAccessXattr, acl.data(), acl.size(), 0) == 0;
  ::unlink(probe.c_str());
  return ok;
}

std::optional<std::string> get_xattr(const std::string& path, const std::string& name) {
  char buf[4096];
  ssize_t n = ::lgetxattr(path.c_str(), name.c_str(), buf, sizeof buf);
  if (n < 0) return std::nullopt;
  return std::string(buf, static_cast<size_t>(n));
}

}  // namespace tenantfs::testing

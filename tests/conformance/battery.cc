#include "tests/conformance/battery.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "tests/mapper/mapper_fixture.h"

namespace tenantfs::conformance {
namespace {

using testing::AclEntry;

constexpr const char* kAclDefaultXattr = "system.posix_acl_default";

std::string octal(mode_t mode) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0%o", static_cast<unsigned>(mode));
  return buf;
}

// The errno name, or "ok"/the value: the result vocabulary of Steps.
std::string result_of(long ret, int err, bool show_value) {
  if (ret < 0) return testing::errno_name(err);
  return show_value ? std::to_string(ret) : "ok";
}

std::string describe_stat(const struct stat& st) {
  std::string out =
      octal(st.st_mode) + "," + std::to_string(st.st_uid) + ":" + std::to_string(st.st_gid);
  if (S_ISREG(st.st_mode) || S_ISLNK(st.st_mode)) out += "," + std::to_string(st.st_size) + "B";
  return out;
}

[[noreturn]] void fail(const std::string& what, const std::string& path) {
  throw std::runtime_error(what + " " + path + ": " + std::strerror(errno));
}

// Sorted entry names of an open directory (consumed), without . and ..
std::vector<std::string> names_in(DIR* d) {
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace

// ------------------------------------------------------------------ Fixture

void Fixture::file(const std::string& name, uid_t uid, gid_t gid, mode_t mode,
                   const std::string& content) const {
  UniqueFd fd(::openat(dir_, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!fd) fail("create", name);
  if (::write(fd.get(), content.data(), content.size()) != static_cast<ssize_t>(content.size()))
    fail("write", name);
  if (::fchown(fd.get(), uid, gid) != 0 || ::fchmod(fd.get(), mode) != 0) fail("chown/chmod", name);
}

void Fixture::dir(const std::string& name, uid_t uid, gid_t gid, mode_t mode) const {
  if (::mkdirat(dir_, name.c_str(), 0700) != 0) fail("mkdir", name);
  if (::fchownat(dir_, name.c_str(), uid, gid, 0) != 0 ||
      ::fchmodat(dir_, name.c_str(), mode, 0) != 0)
    fail("chown/chmod", name);
}

void Fixture::fifo(const std::string& name, uid_t uid, gid_t gid, mode_t mode) const {
  if (::mkfifoat(dir_, name.c_str(), 0600) != 0) fail("mkfifo", name);
  if (::fchownat(dir_, name.c_str(), uid, gid, 0) != 0 ||
      ::fchmodat(dir_, name.c_str(), mode, 0) != 0)
    fail("chown/chmod", name);
}

void Fixture::symlink(const std::string& target, const std::string& name) const {
  if (::symlinkat(target.c_str(), dir_, name.c_str()) != 0) fail("symlink", name);
}

void Fixture::xattr(const std::string& name, const std::string& key,
                    const std::string& value) const {
  UniqueFd fd(::openat(dir_, name.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd || ::fsetxattr(fd.get(), key.c_str(), value.data(), value.size(), 0) != 0)
    fail("setxattr " + key, name);
}

void Fixture::acl(const std::string& name, const std::string& acl, bool default_acl) const {
  xattr(name, default_acl ? kAclDefaultXattr : testing::kAclAccessXattr, acl_from_text(acl));
}

// -------------------------------------------------------------------- Steps

void Steps::token(std::string_view label, const std::string& result) {
  if (!line_.empty()) line_ += ' ';
  line_.append(label);
  line_ += '=';
  line_ += result;
}

void Steps::call(std::string_view label, long ret) { token(label, result_of(ret, errno, false)); }

void Steps::value(std::string_view label, long ret) { token(label, result_of(ret, errno, true)); }

void Steps::note(std::string_view label, const std::string& text) { token(label, text); }

UniqueFd Steps::open(std::string_view label, const std::string& path, int flags, mode_t mode) {
  UniqueFd fd(::open(path.c_str(), flags | O_CLOEXEC, mode));
  call(label, fd ? 0 : -1);
  return fd;
}

void Steps::stat(std::string_view label, const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return call(label, -1);
  token(label, describe_stat(st));
}

void Steps::fstat(std::string_view label, int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return call(label, -1);
  token(label, describe_stat(st));
}

void Steps::nlink(std::string_view label, const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return call(label, -1);
  token(label, std::to_string(st.st_nlink));
}

void Steps::mtime(std::string_view label, const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return call(label, -1);
  token(label, std::to_string(st.st_mtim.tv_sec));
}

void Steps::readlink(std::string_view label, const std::string& path) {
  char buf[256];
  ssize_t n = ::readlink(path.c_str(), buf, sizeof buf);
  if (n < 0) return call(label, -1);
  token(label, std::string(buf, static_cast<size_t>(n)));
}

void Steps::getxattr(std::string_view label, const std::string& path, const std::string& key) {
  char buf[256];
  ssize_t n = ::lgetxattr(path.c_str(), key.c_str(), buf, sizeof buf);
  if (n < 0) return call(label, -1);
  token(label, std::string(buf, static_cast<size_t>(n)));
}

void Steps::getacl(std::string_view label, const std::string& path, bool default_acl) {
  char buf[1024];
  const char* key = default_acl ? kAclDefaultXattr : testing::kAclAccessXattr;
  ssize_t n = ::lgetxattr(path.c_str(), key, buf, sizeof buf);
  if (n < 0) return call(label, -1);
  token(label, acl_to_text(std::string(buf, static_cast<size_t>(n))));
}

void Steps::setacl(std::string_view label, const std::string& path, const std::string& acl) {
  std::string value = acl_from_text(acl);
  call(label, ::lsetxattr(path.c_str(), testing::kAclAccessXattr, value.data(), value.size(), 0));
}

void Steps::list(std::string_view label, const std::string& path) {
  DIR* d = ::opendir(path.c_str());
  if (d == nullptr) return call(label, -1);
  std::string out;
  for (const std::string& n : names_in(d)) out += (out.empty() ? "" : ",") + n;
  token(label, "[" + out + "]");
}

void Steps::read(std::string_view label, const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (!fd) return call(label, -1);
  char buf[256];
  ssize_t n = ::read(fd.get(), buf, sizeof buf);
  if (n < 0) return call(label, -1);
  std::string text(buf, static_cast<size_t>(n));
  std::replace(text.begin(), text.end(), '\n', '/');
  token(label, "'" + text + "'");
}

// ---------------------------------------------------------------- ACL text

std::string acl_to_text(const std::string& xattr) {
  std::string out;
  for (const AclEntry& e : testing::decode_acl(xattr)) {
    char tag = '?';
    switch (e.tag) {
      case testing::kAclUserObj:
      case testing::kAclUser:
        tag = 'u';
        break;
      case testing::kAclGroupObj:
      case testing::kAclGroup:
        tag = 'g';
        break;
      case testing::kAclMask:
        tag = 'm';
        break;
      case testing::kAclOther:
        tag = 'o';
        break;
    }
    std::string id = (e.tag == testing::kAclUser || e.tag == testing::kAclGroup)
                         ? std::to_string(e.id)
                         : std::string();
    std::string perm = {(e.perm & 4) ? 'r' : '-', (e.perm & 2) ? 'w' : '-',
                        (e.perm & 1) ? 'x' : '-'};
    out += (out.empty() ? "" : ",") + std::string(1, tag) + ":" + id + ":" + perm;
  }
  return out;
}

std::string acl_from_text(const std::string& text) {
  std::vector<AclEntry> entries;
  size_t at = 0;
  while (at < text.size()) {
    size_t end = text.find(',', at);
    if (end == std::string::npos) end = text.size();
    const std::string item = text.substr(at, end - at);  // "u:7002:r--"
    at = end + 1;
    const size_t c1 = item.find(':'), c2 = item.rfind(':');
    if (c1 == std::string::npos || c2 == c1 || item.size() != c2 + 4)
      throw std::invalid_argument("bad ACL entry: " + item);
    const std::string id = item.substr(c1 + 1, c2 - c1 - 1);
    const std::string p = item.substr(c2 + 1);
    AclEntry e{};
    e.perm = static_cast<uint16_t>((p[0] == 'r' ? 4 : 0) | (p[1] == 'w' ? 2 : 0) |
                                   (p[2] == 'x' ? 1 : 0));
    e.id = id.empty() ? testing::kAclNoId : static_cast<uint32_t>(std::stoul(id));
    switch (item[0]) {
      case 'u':
        e.tag = id.empty() ? testing::kAclUserObj : testing::kAclUser;
        break;
      case 'g':
        e.tag = id.empty() ? testing::kAclGroupObj : testing::kAclGroup;
        break;
      case 'm':
        e.tag = testing::kAclMask;
        break;
      case 'o':
        e.tag = testing::kAclOther;
        break;
      default:
        throw std::invalid_argument("bad ACL tag: " + item);
    }
    entries.push_back(e);
  }
  return testing::encode_acl(entries);
}

// ------------------------------------------------------------ run, snapshot

void prepare(int base_fd, const Ids& ids) {
  for (const Case& c : battery()) {
    Fixture(base_fd).dir(c.name, ids.tenant_uid, ids.tenant_gid, 0755);
    UniqueFd dir(::openat(base_fd, c.name, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dir) fail("open", c.name);
    if (c.setup) c.setup(Fixture(dir.get()), ids);
  }
}

std::string run_case(const Case& c, const Ids& ids) {
  ::umask(022);
  Steps s;
  c.run(s, ids);
  return s.line();
}

namespace {

void snapshot_dir(int dir_fd, const std::string& prefix, std::string* out) {
  UniqueFd copy(::openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  DIR* d = copy ? ::fdopendir(copy.release()) : nullptr;
  if (d == nullptr) {
    *out += " " + prefix + "<unreadable:" + testing::errno_name(errno) + ">";
    return;
  }
  for (const std::string& name : names_in(d)) {
    struct stat st {};
    if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    const std::string path = prefix + name;
    std::string entry = describe_stat(st);
    if (S_ISLNK(st.st_mode)) {
      char buf[256];
      ssize_t n = ::readlinkat(dir_fd, name.c_str(), buf, sizeof buf);
      if (n >= 0) entry += ",->" + std::string(buf, static_cast<size_t>(n));
    } else if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)) {
      // O_PATH: a FIFO must not be opened for real; the xattr is read through
      // /proc/self/fd like the mapper does.
      UniqueFd fd(::openat(dir_fd, name.c_str(), O_PATH | O_CLOEXEC));
      const std::string proc = "/proc/self/fd/" + std::to_string(fd.get());
      char buf[1024];
      ssize_t n = ::getxattr(proc.c_str(), testing::kAclAccessXattr, buf, sizeof buf);
      if (n > 0) entry += ",acl=" + acl_to_text(std::string(buf, static_cast<size_t>(n)));
    }
    *out += (out->empty() ? "" : " ") + path + "=" + entry;
    if (S_ISDIR(st.st_mode)) {
      UniqueFd sub(::openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      if (sub) snapshot_dir(sub.get(), path + "/", out);
    }
  }
}

}  // namespace

std::string snapshot(int base_fd, const std::string& case_name) {
  UniqueFd dir(::openat(base_fd, case_name.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir) return "<missing:" + testing::errno_name(errno) + ">";
  std::string out;
  snapshot_dir(dir.get(), "", &out);
  return out.empty() ? "<empty>" : out;
}

}  // namespace tenantfs::conformance

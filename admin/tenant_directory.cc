#include "admin/tenant_directory.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <limits>
#include <map>
#include <set>
#include <utility>

#include "common/identity.h"
#include "common/thread_annotations.h"
#include "common/unique_fd.h"

namespace tenantfs {
namespace {

constexpr size_t kMaxLineBytes = 4096;
// (uid_t)-1 means "no change" to setresuid and friends: never an identity.
constexpr uint64_t kMaxId = std::numeric_limits<uint32_t>::max() - 1;

std::string quoted(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      out += '?';
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (;;) {
    size_t at = s.find(sep, start);
    if (at == std::string_view::npos) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, at - start));
    start = at + 1;
  }
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

// Decimal id in [0, kMaxId], digits only.
bool parse_id(std::string_view s, uint32_t* out) {
  if (s.empty() || s.size() > 10) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  if (v > kMaxId) return false;
  *out = static_cast<uint32_t>(v);
  return true;
}

// A name field as the files may hold it: non-empty, no blanks or controls.
// Stricter tenant rules apply later, so odd host names only cost a warning.
bool plausible_name(std::string_view s) {
  if (s.empty() || s.size() > 256) return false;
  return std::none_of(s.begin(), s.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u <= 0x20 || u == 0x7f;
  });
}

// Calls fn(line_number, line) for every line that is not blank or a comment;
// lines over kMaxLineBytes are reported and skipped.
template <typename Fn>
void for_each_line(std::string_view text, std::string_view origin,
                   std::vector<std::string>* warnings, Fn fn) {
  size_t number = 0;
  while (!text.empty()) {
    ++number;
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    if (line.size() > kMaxLineBytes) {
      if (warnings) {
        warnings->push_back(std::string(origin) + ":" + std::to_string(number) +
                            ": line longer than " + std::to_string(kMaxLineBytes) +
                            " bytes, skipped");
      }
      continue;
    }
    std::string_view t = trim(line);
    if (t.empty() || t.front() == '#') continue;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    fn(number, line);
  }
}

void warn(std::vector<std::string>* warnings, std::string_view origin, size_t line,
          const std::string& why) {
  if (warnings) warnings->push_back(std::string(origin) + ":" + std::to_string(line) + ": " + why);
}

}  // namespace

Status validate_tenant_name(std::string_view name) {
  auto bad = [&] {
    return Status::InvalidArgument(
        "invalid tenant name " + quoted(name) +
        ": a tenant name starts with a lowercase letter or '_', continues with lowercase "
        "letters, digits, '_', '.' or '-', and has at most " +
        std::to_string(kMaxTenantNameLength) + " characters");
  };
  if (name.empty() || name.size() > kMaxTenantNameLength) return bad();
  char first = name.front();
  if (!((first >= 'a' && first <= 'z') || first == '_')) return bad();
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
    if (!ok) return bad();
  }
  return Status::Ok();
}

Status validate_tenant(const Tenant& tenant) {
  TENANTFS_RETURN_IF_ERROR(validate_tenant_name(tenant.name));
  if (Status st = validate_identity(tenant.identity); !st.ok()) {
    return Status::InvalidArgument("tenant " + quoted(tenant.name) + ": " + st.message());
  }
  return Status::Ok();
}

std::vector<PasswdRecord> parse_passwd(std::string_view text, std::string_view origin,
                                       std::vector<std::string>* warnings) {
  std::vector<PasswdRecord> out;
  for_each_line(text, origin, warnings, [&](size_t number, std::string_view line) {
    auto f = split(line, ':');
    if (f.size() != 7) {
      warn(warnings, origin, number,
           "expected 7 ':'-separated fields, found " + std::to_string(f.size()) + ", skipped");
      return;
    }
    if (!plausible_name(f[0])) {
      warn(warnings, origin, number, "invalid user name " + quoted(f[0]) + ", skipped");
      return;
    }
    PasswdRecord r;
    r.name = std::string(f[0]);
    uint32_t uid = 0, gid = 0;
    if (!parse_id(f[2], &uid)) {
      warn(warnings, origin, number, "invalid uid " + quoted(f[2]) + ", skipped");
      return;
    }
    if (!parse_id(f[3], &gid)) {
      warn(warnings, origin, number, "invalid gid " + quoted(f[3]) + ", skipped");
      return;
    }
    r.uid = static_cast<uid_t>(uid);
    r.gid = static_cast<gid_t>(gid);
    out.push_back(std::move(r));
  });
  return out;
}

std::vector<GroupRecord> parse_group(std::string_view text, std::string_view origin,
                                     std::vector<std::string>* warnings) {
  std::vector<GroupRecord> out;
  for_each_line(text, origin, warnings, [&](size_t number, std::string_view line) {
    auto f = split(line, ':');
    if (f.size() != 4) {
      warn(warnings, origin, number,
           "expected 4 ':'-separated fields, found " + std::to_string(f.size()) + ", skipped");
      return;
    }
    if (!plausible_name(f[0])) {
      warn(warnings, origin, number, "invalid group name " + quoted(f[0]) + ", skipped");
      return;
    }
    uint32_t gid = 0;
    if (!parse_id(f[2], &gid)) {
      warn(warnings, origin, number, "invalid gid " + quoted(f[2]) + ", skipped");
      return;
    }
    GroupRecord r;
    r.name = std::string(f[0]);
    r.gid = static_cast<gid_t>(gid);
    for (std::string_view m : split(f[3], ',')) {
      m = trim(m);
      if (!m.empty()) r.members.emplace_back(m);
    }
    out.push_back(std::move(r));
  });
  return out;
}

std::vector<Tenant> tenants_from_files(const std::vector<PasswdRecord>& passwd,
                                       const std::vector<GroupRecord>& groups,
                                       std::vector<std::string>* warnings) {
  std::map<std::string, std::set<gid_t>> member_of;
  for (const auto& g : groups) {
    for (const auto& m : g.members) member_of[m].insert(g.gid);
  }
  std::vector<Tenant> out;
  std::set<std::string> seen;
  for (const auto& p : passwd) {
    if (!seen.insert(p.name).second) continue;  // like getpwnam: first entry wins
    if (!validate_tenant_name(p.name).ok()) {
      if (warnings) {
        warnings->push_back("user " + quoted(p.name) +
                            " is not usable as a tenant: names must match "
                            "[a-z_][a-z0-9_.-]{0,31}");
      }
      continue;
    }
    if (Status st = validate_identity(Identity{p.uid, p.gid, {}}); !st.ok()) {
      // Root is in every passwd file: not worth a warning on every load.
      const bool root = p.uid == 0 || p.gid == 0;
      if (warnings && !root) {
        warnings->push_back("user " + quoted(p.name) +
                            " is not usable as a tenant: " + st.message());
      }
      continue;
    }
    Tenant t;
    t.name = p.name;
    t.identity.uid = p.uid;
    t.identity.gid = p.gid;
    auto it = member_of.find(p.name);
    if (it != member_of.end()) {
      for (gid_t g : it->second) {
        if (g != p.gid && is_tenant_id(g)) t.identity.groups.push_back(g);
      }
    }
    if (t.identity.groups.size() > kMaxTenantGroups) {
      if (warnings) {
        warnings->push_back("user " + quoted(p.name) + " belongs to more than " +
                            std::to_string(kMaxTenantGroups) + " groups; extra groups dropped");
      }
      t.identity.groups.resize(kMaxTenantGroups);
    }
    out.push_back(std::move(t));
  }
  return out;
}

namespace {

// What identifies one version of a file; any change triggers a re-read.
struct FileStamp {
  bool exists = false;
  int err = 0;  // errno of the failed stat/open, 0 when fine
  dev_t dev = 0;
  ino_t ino = 0;
  off_t size = 0;
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;

  bool operator==(const FileStamp&) const = default;
};

FileStamp stamp_of(const struct stat& st) {
  FileStamp s;
  s.exists = true;
  s.dev = st.st_dev;
  s.ino = st.st_ino;
  s.size = st.st_size;
  s.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  s.ctime_ns = static_cast<int64_t>(st.st_ctim.tv_sec) * 1000000000 + st.st_ctim.tv_nsec;
  return s;
}

FileStamp stat_path(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    FileStamp s;
    s.err = errno;
    return s;
  }
  return stamp_of(st);
}

// A file changed this recently may change again within the same timestamp
// tick (truncate and rewrite leave size and coarse mtime as they were), so
// its stamp cannot prove that what was read is current. Like git's "racily
// clean" entries, such files are read again on every call until they settle.
constexpr int64_t kSettleNs = 2'000'000'000;

int64_t now_realtime_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// Reads up to kMaxIdentityFileBytes of a regular file. On failure returns an
// empty text and logs why; *stamp describes what was read. *settled is false
// when the file may have changed during or right after the read: the caller
// must then read it again next time even if the stamp still matches.
std::string read_identity_file(const std::string& path, FileStamp* stamp, bool* settled) {
  *settled = true;
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
  if (!fd) {
    *stamp = FileStamp{};
    stamp->err = errno;
    spdlog::warn("tenants: cannot open {}: {}; its users are not tenants until it can be read",
                 path, PosixError("open", stamp->err).message());
    return {};
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    *stamp = FileStamp{};
    stamp->err = errno;
    spdlog::warn("tenants: cannot stat {}: {}", path, PosixError("fstat", stamp->err).message());
    return {};
  }
  *stamp = stamp_of(st);
  if (!S_ISREG(st.st_mode)) {
    spdlog::warn("tenants: {} is not a regular file; ignored", path);
    return {};
  }
  std::string text;
  char buf[64 * 1024];
  while (text.size() < kMaxIdentityFileBytes) {
    size_t want = std::min(sizeof buf, kMaxIdentityFileBytes - text.size());
    ssize_t n = ::read(fd.get(), buf, want);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      spdlog::warn("tenants: reading {} failed: {}; ignored", path,
                   PosixError("read", errno).message());
      return {};
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  const bool truncated = text.size() >= kMaxIdentityFileBytes;
  struct stat after {};
  if (::fstat(fd.get(), &after) != 0 || !(stamp_of(after) == *stamp) ||
      (!truncated && text.size() != static_cast<size_t>(st.st_size)) ||
      now_realtime_ns() - stamp->ctime_ns < kSettleNs) {
    *settled = false;
  }
  if (!truncated) return text;
  spdlog::warn("tenants: {} is larger than {} bytes; the rest is ignored", path,
               kMaxIdentityFileBytes);
  // Drop the partial last line: a cut line would parse as a wrong record.
  size_t nl = text.rfind('\n');
  text.resize(nl == std::string::npos ? 0 : nl + 1);
  return text;
}

// Tenants read from the files at one moment; never modified once published.
struct FileTenants {
  std::map<std::string, Tenant> tenants;
  // Users present in passwd but never tenants (uid or gid 0), with the id.
  std::map<std::string, PasswdRecord> root_users;
};

}  // namespace

struct TenantDirectory::Impl {
  Impl(BindingStore& s, std::string p, std::string g)
      : store(s), passwd_file(std::move(p)), group_file(std::move(g)) {}

  // The current file tenants, re-reading the files first if they changed.
  std::shared_ptr<const FileTenants> file_tenants() EXCLUDES(files_mu);

  BindingStore& store;
  const std::string passwd_file;
  const std::string group_file;

  // Held while re-reading, so concurrent callers wait for one reload instead
  // of each doing it.
  Mutex files_mu;
  bool loaded GUARDED_BY(files_mu) = false;
  FileStamp passwd_stamp GUARDED_BY(files_mu);
  FileStamp group_stamp GUARDED_BY(files_mu);
  bool passwd_settled GUARDED_BY(files_mu) = false;
  bool group_settled GUARDED_BY(files_mu) = false;
  // What the snapshot was built from: an unsettled file re-read unchanged
  // keeps the snapshot (and the log) as it is.
  std::string passwd_text GUARDED_BY(files_mu);
  std::string group_text GUARDED_BY(files_mu);
  std::shared_ptr<const FileTenants> snapshot GUARDED_BY(files_mu) =
      std::make_shared<FileTenants>();
};

std::shared_ptr<const FileTenants> TenantDirectory::Impl::file_tenants() {
  MutexLock lock(files_mu);
  if (passwd_file.empty()) return snapshot;  // never changes: nothing to reload
  FileStamp p = stat_path(passwd_file);
  FileStamp g = group_file.empty() ? FileStamp{} : stat_path(group_file);
  if (loaded && passwd_settled && group_settled && p == passwd_stamp && g == group_stamp) {
    return snapshot;
  }

  std::string new_passwd = read_identity_file(passwd_file, &passwd_stamp, &passwd_settled);
  std::string new_group;
  if (group_file.empty()) {
    group_stamp = FileStamp{};
    group_settled = true;
  } else {
    new_group = read_identity_file(group_file, &group_stamp, &group_settled);
  }
  // A file replaced between stat and read is caught by the next call, since
  // the stored stamps come from the descriptors actually read.
  if (loaded && new_passwd == passwd_text && new_group == group_text) return snapshot;
  passwd_text = std::move(new_passwd);
  group_text = std::move(new_group);

  std::vector<std::string> warnings;
  auto users = parse_passwd(passwd_text, passwd_file, &warnings);
  auto groups = parse_group(group_text, group_file, &warnings);
  auto fresh = std::make_shared<FileTenants>();
  for (auto& t : tenants_from_files(users, groups, &warnings)) {
    std::string name = t.name;
    fresh->tenants.emplace(std::move(name), std::move(t));
  }
  for (const auto& u : users) {
    if ((u.uid == 0 || u.gid == 0) && !fresh->tenants.count(u.name)) {
      fresh->root_users.emplace(u.name, u);
    }
  }
  for (const auto& w : warnings) spdlog::warn("tenants: {}", w);
  spdlog::info("tenants: loaded {} users from {}{}", fresh->tenants.size(), passwd_file,
               group_file.empty() ? std::string() : " and groups from " + group_file);
  loaded = true;
  snapshot = std::move(fresh);
  return snapshot;
}

TenantDirectory::TenantDirectory(BindingStore& store, std::string passwd_file,
                                 std::string group_file)
    : impl_(std::make_shared<Impl>(store, std::move(passwd_file), std::move(group_file))) {}

Result<Tenant> TenantDirectory::resolve(const std::string& name) {
  TENANTFS_RETURN_IF_ERROR(validate_tenant_name(name));
  auto registered = impl_->store.get_tenant(name);
  if (registered.ok()) {
    // The admin API never stores root, but the store file may have been
    // written by other means: a root identity must not reach a mapper.
    const Tenant& t = *registered;
    if (Status st = validate_identity(t.identity); !st.ok()) {
      return Status::FailedPrecondition(
          "registry tenant " + quoted(name) + " has an identity tenantfs refuses (" + st.message() +
          "); remove it with `tenantfs tenant rm " + name + "` and add it again with other ids");
    }
    return registered;
  }
  if (registered.status().code() != Code::kNotFound) return registered.status();

  auto files = impl_->file_tenants();
  if (auto it = files->tenants.find(name); it != files->tenants.end()) return it->second;
  if (auto it = files->root_users.find(name); it != files->root_users.end()) {
    return Status::FailedPrecondition(
        "tenant " + quoted(name) + " is a user of " + impl_->passwd_file + " with uid " +
        std::to_string(it->second.uid) + " and gid " + std::to_string(it->second.gid) +
        ": a tenant must never be root (uid 0 or gid 0); add a registry tenant with "
        "`tenantfs tenant add NAME --uid UID --gid GID` and use that name");
  }
  std::string how = "add it with `tenantfs tenant add " + name + " --uid UID --gid GID`";
  if (!impl_->passwd_file.empty()) how += ", or add a user " + name + " to " + impl_->passwd_file;
  return Status::NotFound("unknown tenant " + quoted(name) + ": " + how);
}

Result<std::vector<TenantEntry>> TenantDirectory::list() {
  auto registered = impl_->store.list_tenants();
  if (!registered.ok()) return registered.status();
  std::map<std::string, TenantEntry> by_name;
  for (auto& t : *registered) {
    std::string name = t.name;
    by_name.emplace(std::move(name), TenantEntry{std::move(t), "registry"});
  }
  auto files = impl_->file_tenants();
  for (const auto& [name, t] : files->tenants) {
    by_name.emplace(name, TenantEntry{t, "passwd"});  // no-op when registered
  }
  std::vector<TenantEntry> out;
  out.reserve(by_name.size());
  for (auto& [name, e] : by_name) out.push_back(std::move(e));
  return out;
}

}  // namespace tenantfs

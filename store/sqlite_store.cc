#include "store/sqlite_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <ctime>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string_view>
#include <utility>

#include "common/identity.h"
#include "common/unique_fd.h"
#include "common/volume_name.h"
#include "store/binding_rules.h"
#include "store/sqlite_util.h"

namespace tenantfs {
namespace {

using sqlite::Statement;
using sqlite::StatementLease;
using sqlite::Transaction;

// Tenant and user names and option strings longer than this are certainly
// mistakes. Volume names follow the driver's own, stricter rule
// (common/volume_name.h).
constexpr size_t kMaxNameBytes = 255;
constexpr size_t kMaxPathBytes = 4095;

// Schema migrations: kMigrations[v] takes a store from user_version v to
// v + 1. Append only; never edit a step that has shipped.
constexpr const char* kMigrations[] = {
    // 0 -> 1: the initial schema. Identity columns of a volume are copies
    // taken at bind time, so volumes.tenant is deliberately not a foreign key:
    // tenants may also come from the host's passwd file, and remove_tenant
    // checks bindings by name itself. Tables are keyed by name (WITHOUT
    // ROWID) so that listing in name order is one scan of one b-tree.
    // Groups are plain text rather than JSON: parsing them is most of the
    // cost of listing 10,000 volumes.
    R"sql(
CREATE TABLE tenants (
  name        TEXT PRIMARY KEY NOT NULL,
  uid         INTEGER NOT NULL,
  gid         INTEGER NOT NULL,
  groups      TEXT NOT NULL,              -- gids in decimal, sorted, comma-separated
  created_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE volumes (
  name         TEXT PRIMARY KEY NOT NULL,
  tenant       TEXT NOT NULL,
  uid          INTEGER NOT NULL,
  gid          INTEGER NOT NULL,
  groups       TEXT NOT NULL,             -- gids in decimal, sorted, comma-separated
  present_uid  INTEGER NOT NULL,
  present_gid  INTEGER NOT NULL,
  mode         INTEGER NOT NULL,
  backing_path TEXT NOT NULL,
  external     INTEGER NOT NULL CHECK (external IN (0, 1)),
  cache        TEXT NOT NULL,
  readonly     INTEGER NOT NULL CHECK (readonly IN (0, 1)),
  options      TEXT NOT NULL,             -- JSON object, every create option
  created_at   INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX volumes_by_tenant ON volumes (tenant);

CREATE TABLE mount_refs (
  volume     TEXT NOT NULL REFERENCES volumes (name) ON DELETE RESTRICT,
  mount_id   TEXT NOT NULL,
  count      INTEGER NOT NULL CHECK (count > 0),
  PRIMARY KEY (volume, mount_id)
) STRICT, WITHOUT ROWID;
)sql",
    // 1 -> 2: authorization policy. Grants name tenants, not tenant rows:
    // tenants may come from the host's passwd file.
    R"sql(
CREATE TABLE access_grants (
  tenant      TEXT NOT NULL,
  user        TEXT NOT NULL,              -- Docker user: a TLS client certificate's CN
  created_at  INTEGER NOT NULL,
  PRIMARY KEY (tenant, user)
) STRICT, WITHOUT ROWID;

CREATE TABLE admins (
  user        TEXT PRIMARY KEY NOT NULL,
  created_at  INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
)sql",
};
static_assert(std::size(kMigrations) == SqliteStore::kSchemaVersion,
              "one migration step per schema version");

constexpr const char* kVolumeColumns =
    "name, tenant, uid, gid, groups, present_uid, present_gid, mode, backing_path, "
    "external, cache, readonly, options, created_at";

std::string Quote(std::string_view s) { return "\"" + std::string(s) + "\""; }

// Restores the process umask when Open returns, whichever way it returns.
class UmaskGuard {
 public:
  explicit UmaskGuard(mode_t mask) : saved_(::umask(mask)) {}
  UmaskGuard(const UmaskGuard&) = delete;
  UmaskGuard& operator=(const UmaskGuard&) = delete;
  ~UmaskGuard() { ::umask(saved_); }

 private:
  mode_t saved_;
};

std::string OctalMode(mode_t mode) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

// ---- input validation -------------------------------------------------------

Status CheckText(std::string_view what, std::string_view value, size_t max_bytes) {
  if (value.empty()) return Status::InvalidArgument(std::string(what) + " is empty; give a value");
  if (value.size() > max_bytes) {
    return Status::InvalidArgument(std::string(what) + " is " + std::to_string(value.size()) +
                                   " bytes long; the limit is " + std::to_string(max_bytes));
  }
  for (unsigned char c : value) {
    if (c < 0x20 || c == 0x7f) {
      return Status::InvalidArgument(std::string(what) + " " + Quote(value) +
                                     " contains a control character; use printable characters");
    }
  }
  return Status::Ok();
}

// The driver's own rule: the store never holds a name Docker could not
// have given it.
Status CheckVolumeName(const std::string& name) { return validate_volume_name(name); }
Status CheckTenantName(const std::string& name) {
  return CheckText("tenant name", name, kMaxNameBytes);
}

Status CheckUserName(const std::string& user) {
  return CheckText("user name", user, kMaxNameBytes);
}

Status CheckId(std::string_view what, std::string_view owner, uint32_t id) {
  if (id == kNoId) {
    return Status::InvalidArgument(std::string(what) + " of " + std::string(owner) +
                                   " is -1 (4294967295), which is not a valid id; give a real id");
  }
  return Status::Ok();
}

Status CheckGroups(std::string_view owner, const std::vector<gid_t>& groups) {
  for (gid_t g : groups) TENANTFS_RETURN_IF_ERROR(CheckId("a supplementary gid", owner, g));
  return Status::Ok();
}

// Only what the store can hold: whether an identity is one tenantfs accepts
// is the admin API's and the tenant directory's to say (identity.h).
Status CheckIdentity(std::string_view owner, const Identity& id) {
  TENANTFS_RETURN_IF_ERROR(CheckId("the uid", owner, id.uid));
  TENANTFS_RETURN_IF_ERROR(CheckId("the gid", owner, id.gid));
  return CheckGroups(owner, id.groups);
}

std::vector<gid_t> Normalized(std::vector<gid_t> groups) {
  std::sort(groups.begin(), groups.end());
  groups.erase(std::unique(groups.begin(), groups.end()), groups.end());
  return groups;
}

Status CheckTenant(const Tenant& t) {
  TENANTFS_RETURN_IF_ERROR(CheckTenantName(t.name));
  const std::string owner = "tenant " + Quote(t.name);
  return CheckIdentity(owner, t.identity);
}

Status CheckBinding(const VolumeBinding& b) {
  TENANTFS_RETURN_IF_ERROR(CheckVolumeName(b.name));
  const std::string owner = "volume " + Quote(b.name);
  TENANTFS_RETURN_IF_ERROR(CheckText("the tenant name of " + owner, b.tenant, kMaxNameBytes));
  TENANTFS_RETURN_IF_ERROR(CheckIdentity(owner, b.identity));
  TENANTFS_RETURN_IF_ERROR(CheckId("the presented uid", owner, b.present_uid));
  TENANTFS_RETURN_IF_ERROR(CheckId("the presented gid", owner, b.present_gid));
  if (b.mode > 07777) {
    return Status::InvalidArgument("mode " + std::to_string(b.mode) + " of " + owner +
                                   " is not a file mode; give an octal mode such as 0700");
  }
  if ((b.mode & S_IWOTH) != 0) {
    return Status::InvalidArgument("mode " + OctalMode(b.mode) + " of " + owner +
                                   " would make the volume world-writable, which tenantfs never "
                                   "does; give a mode such as 0700 or 0750");
  }
  TENANTFS_RETURN_IF_ERROR(
      CheckText("the backing path of " + owner, b.backing_path, kMaxPathBytes));
  if (b.backing_path.front() != '/') {
    return Status::InvalidArgument("the backing path " + Quote(b.backing_path) + " of " + owner +
                                   " is not absolute; give an absolute path");
  }
  TENANTFS_RETURN_IF_ERROR(CheckText("the cache mode of " + owner, b.cache, kMaxNameBytes));
  for (const auto& [key, value] : b.options) {
    TENANTFS_RETURN_IF_ERROR(CheckText("an option name of " + owner, key, kMaxNameBytes));
  }
  return Status::Ok();
}

Status CheckMountId(const std::string& volume, const std::string& id) {
  return CheckText("the mount ID for volume " + Quote(volume), id, kMaxPathBytes);
}

// ---- serialisation ----------------------------------------------------------

std::string GroupsToText(const std::vector<gid_t>& groups) {
  std::string out;
  for (gid_t g : Normalized(groups)) {
    if (!out.empty()) out += ',';
    out += std::to_string(g);
  }
  return out;
}

Result<std::string> OptionsToJson(const std::string& volume,
                                  const std::map<std::string, std::string>& options) {
  try {
    return nlohmann::json(options).dump();
  } catch (const nlohmann::json::exception&) {
    // dump() refuses strings that are not UTF-8; storing them altered would
    // break the comparison that makes re-binding idempotent.
    return Status::InvalidArgument("an option of volume " + Quote(volume) +
                                   " is not valid UTF-8; give options as UTF-8 text");
  }
}

// A stored row's name for an error message: "volume \"data\"".
std::string RowName(const char* kind, const std::string& name) {
  return std::string(kind) + " " + Quote(name);
}

Result<std::vector<gid_t>> GroupsFromText(const std::string& path, const char* kind,
                                          const std::string& name, const std::string& text) {
  std::vector<gid_t> groups;
  const char* p = text.data();
  const char* const end = p + text.size();
  while (p != end) {
    uint32_t g = 0;
    const auto [next, ec] = std::from_chars(p, end, g);
    if (ec != std::errc() || g == kNoId || (next != end && *next != ',')) {
      return sqlite::CorruptionError(path, "unreadable groups of " + RowName(kind, name));
    }
    groups.push_back(g);
    p = next == end ? end : next + 1;
  }
  return groups;
}

// Reads a stored options object straight into a map. The column only ever
// holds what OptionsToJson wrote, a flat object of strings, so there is no
// need for a JSON document in between: building and freeing one per row was
// the largest cost of listing 10,000 bindings. Anything else (nested values,
// numbers, trailing text) stops the parse, and the row is reported corrupt.
class OptionsReader final : public nlohmann::json_sax<nlohmann::json> {
 public:
  explicit OptionsReader(std::map<std::string, std::string>& out) : out_(out) {}

  bool start_object(std::size_t) override { return depth_++ == 0; }
  bool key(string_t& k) override {
    key_ = std::move(k);
    return true;
  }
  bool string(string_t& v) override {
    if (depth_ != 1) return false;
    // The stored object is sorted, so each entry goes at the end; a repeated
    // key (never written by tenantfs) keeps its last value, as a JSON parser
    // would.
    out_.insert_or_assign(out_.end(), std::move(key_), std::move(v));
    return true;
  }
  bool end_object() override {
    --depth_;
    return true;
  }

  bool null() override { return false; }
  bool boolean(bool) override { return false; }
  bool number_integer(number_integer_t) override { return false; }
  bool number_unsigned(number_unsigned_t) override { return false; }
  bool number_float(number_float_t, const string_t&) override { return false; }
  bool binary(binary_t&) override { return false; }
  bool start_array(std::size_t) override { return false; }
  bool end_array() override { return false; }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override {
    return false;
  }

 private:
  std::map<std::string, std::string>& out_;
  std::string key_;
  int depth_ = 0;
};

Status OptionsFromJson(const std::string& path, const std::string& name, std::string_view text,
                       std::map<std::string, std::string>& options) {
  OptionsReader reader(options);
  if (!nlohmann::json::sax_parse(text, &reader)) {
    return sqlite::CorruptionError(path, "unreadable options of " + RowName("volume", name));
  }
  return Status::Ok();
}

Result<std::map<std::string, std::string>> OptionsFromJson(const std::string& path,
                                                           const std::string& name,
                                                           std::string_view text) {
  std::map<std::string, std::string> options;
  TENANTFS_RETURN_IF_ERROR(OptionsFromJson(path, name, text, options));
  return options;
}

// An id column read back; values outside uid_t's range mean the file was
// edited by something other than tenantfs.
Result<uint32_t> IdColumn(const Statement& st, int col, const std::string& path, const char* kind,
                          const std::string& name) {
  const int64_t v = st.column_int64(col);
  if (v < 0 || v >= static_cast<int64_t>(kNoId)) {
    return sqlite::CorruptionError(path, "an id of " + RowName(kind, name) + " is out of range");
  }
  return static_cast<uint32_t>(v);
}

// Reads a row selected with kVolumeColumns into `b`, a default-constructed
// binding: list_volumes decodes each row in place in its vector.
Status ReadVolumeRow(const Statement& st, const std::string& path, VolumeBinding& b) {
  b.name = st.column_text(0);
  b.tenant = st.column_text(1);
  Result<uint32_t> uid = IdColumn(st, 2, path, "volume", b.name);
  Result<uint32_t> gid = IdColumn(st, 3, path, "volume", b.name);
  Result<uint32_t> puid = IdColumn(st, 5, path, "volume", b.name);
  Result<uint32_t> pgid = IdColumn(st, 6, path, "volume", b.name);
  for (const auto* r : {&uid, &gid, &puid, &pgid}) {
    if (!r->ok()) return r->status();
  }
  b.identity.uid = *uid;
  b.identity.gid = *gid;
  b.present_uid = *puid;
  b.present_gid = *pgid;
  Result<std::vector<gid_t>> groups = GroupsFromText(path, "volume", b.name, st.column_text(4));
  if (!groups.ok()) return groups.status();
  b.identity.groups = std::move(groups).value();
  const int64_t mode = st.column_int64(7);
  if (mode < 0 || mode > 07777) {
    return sqlite::CorruptionError(path, "unreadable mode of " + RowName("volume", b.name));
  }
  b.mode = static_cast<uint32_t>(mode);
  b.backing_path = st.column_text(8);
  b.external = st.column_int64(9) != 0;
  b.cache = st.column_text(10);
  b.readonly = st.column_int64(11) != 0;
  TENANTFS_RETURN_IF_ERROR(OptionsFromJson(path, b.name, st.column_view(12), b.options));
  b.created_at = st.column_int64(13);
  return Status::Ok();
}

// Reads a row selected as (name, uid, gid, groups, created_at).
Result<Tenant> TenantFromRow(const Statement& st, const std::string& path) {
  Tenant t;
  t.name = st.column_text(0);
  Result<uint32_t> uid = IdColumn(st, 1, path, "tenant", t.name);
  if (!uid.ok()) return uid.status();
  Result<uint32_t> gid = IdColumn(st, 2, path, "tenant", t.name);
  if (!gid.ok()) return gid.status();
  t.identity.uid = *uid;
  t.identity.gid = *gid;
  Result<std::vector<gid_t>> groups = GroupsFromText(path, "tenant", t.name, st.column_text(3));
  if (!groups.ok()) return groups.status();
  t.identity.groups = std::move(groups).value();
  t.created_at = st.column_int64(4);
  return t;
}

Status VolumeNotFound(const std::string& name) {
  return Status::NotFound("volume " + Quote(name) +
                          " does not exist; check the name with \"docker volume ls\"");
}

Status TenantNotFound(const std::string& name) {
  return Status::NotFound("tenant " + Quote(name) +
                          " does not exist; check the name with \"tenantfs tenant ls\"");
}

// ---- files and permissions --------------------------------------------------

// Creates `dir` and any missing parents with mode 0700.
Status MakeDirectories(const std::filesystem::path& dir) {
  std::filesystem::path prefix;
  for (const auto& part : dir) {
    prefix /= part;
    if (::mkdir(prefix.c_str(), 0700) != 0 && errno != EEXIST) {
      return PosixError("creating the store directory " + Quote(prefix.string()), errno);
    }
  }
  return Status::Ok();
}

// The store's directory must exist, belong to us and be closed to everyone
// else; see the contract in sqlite_store.h for why it is never chmod-ed.
Status PreparePrivateDirectory(const std::filesystem::path& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    if (errno != ENOENT)
      return PosixError("checking the store directory " + Quote(dir.string()), errno);
    TENANTFS_RETURN_IF_ERROR(MakeDirectories(dir));
    if (::stat(dir.c_str(), &st) != 0) {
      return PosixError("checking the store directory " + Quote(dir.string()), errno);
    }
  }
  const std::string q = Quote(dir.string());
  if (!S_ISDIR(st.st_mode)) {
    return Status::FailedPrecondition("the store directory " + q +
                                      " is not a directory; give a store path inside a directory");
  }
  if (st.st_uid != ::geteuid()) {
    return Status::FailedPrecondition("the store directory " + q + " is owned by uid " +
                                      std::to_string(st.st_uid) + ", not by this process (uid " +
                                      std::to_string(::geteuid()) + "); run \"chown " +
                                      std::to_string(::geteuid()) + " " + dir.string() +
                                      "\" or keep the store in a directory of its own");
  }
  if ((st.st_mode & 077) != 0) {
    return Status::FailedPrecondition(
        "the store directory " + q + " can be accessed by group or others (mode " +
        OctalMode(st.st_mode) + "); the store holds every tenant binding, so run \"chmod 700 " +
        dir.string() + "\" or keep the store in a directory of its own");
  }
  return Status::Ok();
}

// Opens `path` without following a symlink and without blocking on a FIFO;
// checks it is our own regular file and tightens its mode to 0600.
Status SecureFile(const std::string& path, bool create) {
  int flags = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY;
  if (create) flags = (flags & ~O_RDONLY) | O_RDWR | O_CREAT;
  UniqueFd fd(::open(path.c_str(), flags, 0600));
  if (!fd.valid()) {
    const int err = errno;
    if (!create && err == ENOENT) return Status::Ok();
    if (err == ELOOP) {
      return Status::FailedPrecondition("the store file " + Quote(path) +
                                        " is a symbolic link; give the real path of the store");
    }
    return PosixError("opening the store file " + Quote(path), err);
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0)
    return PosixError("checking the store file " + Quote(path), errno);
  if (!S_ISREG(st.st_mode)) {
    return Status::FailedPrecondition("the store file " + Quote(path) +
                                      " is not a regular file; move it away or give another path");
  }
  if (st.st_uid != ::geteuid()) {
    return Status::FailedPrecondition("the store file " + Quote(path) + " is owned by uid " +
                                      std::to_string(st.st_uid) + ", not by this process (uid " +
                                      std::to_string(::geteuid()) + "); run \"chown " +
                                      std::to_string(::geteuid()) + " " + path + "\"");
  }
  if ((st.st_mode & 077) != 0 && ::fchmod(fd.get(), 0600) != 0) {
    return PosixError("restricting the store file " + Quote(path) + " to mode 0600", errno);
  }
  return Status::Ok();
}

// ---- schema -----------------------------------------------------------------

Result<int64_t> PragmaInt(sqlite3* db, const char* sql, std::string_view what) {
  Result<Statement> st = Statement::Prepare(db, sql);
  if (!st.ok()) return st.status();
  Result<bool> row = st->step(what);
  if (!row.ok()) return row.status();
  return *row ? st->column_int64(0) : 0;
}

// Migrates from whatever version the file has to kSchemaVersion. Each step
// re-reads the version inside its own BEGIN IMMEDIATE transaction, so two
// processes opening a fresh file at once apply every step exactly once.
Status Migrate(sqlite3* db, const std::string& path) {
  for (;;) {
    Result<Transaction> txn = Transaction::BeginImmediate(db, "checking the schema version");
    if (!txn.ok()) return txn.status();
    Result<int64_t> version = PragmaInt(db, "PRAGMA user_version", "reading the schema version");
    if (!version.ok()) return version.status();
    Result<int64_t> app = PragmaInt(db, "PRAGMA application_id", "reading the application id");
    if (!app.ok()) return app.status();
    if (*version == 0) {
      Result<int64_t> objects =
          PragmaInt(db, "SELECT count(*) FROM sqlite_schema", "reading the schema");
      if (!objects.ok()) return objects.status();
      if (*objects != 0 || (*app != 0 && *app != SqliteStore::kApplicationId)) {
        return sqlite::CorruptionError(
            path, "it is an SQLite database of another application, with " +
                      std::to_string(*objects) + " tables or indexes and no tenantfs schema");
      }
    } else if (*app != SqliteStore::kApplicationId) {
      return sqlite::CorruptionError(path,
                                     "it is an SQLite database of another application "
                                     "(application_id " +
                                         std::to_string(*app) + ")");
    }
    if (*version > SqliteStore::kSchemaVersion) {
      return Status::FailedPrecondition(
          "the store file " + Quote(path) + " has schema version " + std::to_string(*version) +
          ", newer than this tenantfs understands (" + std::to_string(SqliteStore::kSchemaVersion) +
          "); upgrade tenantfs, or restore a store written by this version");
    }
    if (*version < 0) {
      return sqlite::CorruptionError(path, "negative schema version " + std::to_string(*version));
    }
    if (*version == SqliteStore::kSchemaVersion) return txn->Commit("checking the schema version");

    const std::string step = "migrating the schema from version " + std::to_string(*version) +
                             " to " + std::to_string(*version + 1);
    TENANTFS_RETURN_IF_ERROR(sqlite::Exec(db, kMigrations[*version], step));
    const std::string pragmas =
        "PRAGMA user_version = " + std::to_string(*version + 1) +
        "; PRAGMA application_id = " + std::to_string(SqliteStore::kApplicationId) + ";";
    TENANTFS_RETURN_IF_ERROR(sqlite::Exec(db, pragmas.c_str(), step));
    TENANTFS_RETURN_IF_ERROR(txn->Commit(step));
  }
}

}  // namespace

// ---- opening ------------------------------------------------------------------

Result<std::unique_ptr<SqliteStore>> SqliteStore::Open(const std::string& path) {
  if (path.empty()) return Status::InvalidArgument("the store path is empty; give a file path");
  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  if (dir.empty()) dir = ".";
  TENANTFS_RETURN_IF_ERROR(PreparePrivateDirectory(dir));

  // SQLite creates the -wal and -shm files lazily, with the store file's
  // mode; the umask keeps them private even if that ever changes.
  UmaskGuard umask_guard(077);
  TENANTFS_RETURN_IF_ERROR(SecureFile(path, /*create=*/true));
  TENANTFS_RETURN_IF_ERROR(SecureFile(path + "-wal", /*create=*/false));
  TENANTFS_RETURN_IF_ERROR(SecureFile(path + "-shm", /*create=*/false));

  sqlite3* raw = nullptr;
  // NOMUTEX: db_mu_ already serialises every use of the connection.
  const int rc = sqlite3_open_v2(
      path.c_str(), &raw,
      SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW | SQLITE_OPEN_EXRESCODE,
      nullptr);
  // Even a failed open allocates a handle that must be closed.
  auto db = std::make_unique<sqlite::Connection>(raw);
  if (rc != SQLITE_OK) return sqlite::Error(raw, rc, "opening the store");
  sqlite3_busy_timeout(raw, sqlite::kBusyTimeoutMs);
  TENANTFS_RETURN_IF_ERROR(sqlite::Exec(raw, "PRAGMA foreign_keys = ON", "enabling foreign keys"));

  // The first statement that reads the file: a non-SQLite file fails here.
  {
    Result<Statement> wal = Statement::Prepare(raw, "PRAGMA journal_mode = WAL");
    if (!wal.ok()) return wal.status();
    Result<bool> row = wal->step("switching to WAL mode");
    if (!row.ok()) return row.status();
    const std::string mode = *row ? wal->column_text(0) : "";
    if (mode != "wal") {
      return Status::IOError("the store file " + Quote(path) +
                             " could not be put in WAL mode (got " + Quote(mode) +
                             "); check that its filesystem supports shared memory");
    }
  }
  // A damaged page may go unnoticed until some later request reads it; find
  // out now, while the message can still be read at start-up. On a store of
  // 10,000 volumes this takes milliseconds.
  {
    Result<Statement> check = Statement::Prepare(raw, "PRAGMA quick_check");
    if (!check.ok()) return check.status();
    Result<bool> row = check->step("checking the store's integrity");
    if (!row.ok()) return row.status();
    const std::string verdict = *row ? check->column_text(0) : "";
    if (verdict != "ok") return sqlite::CorruptionError(path, "integrity check: " + verdict);
  }
  TENANTFS_RETURN_IF_ERROR(Migrate(raw, path));
  return std::unique_ptr<SqliteStore>(new SqliteStore(path, std::move(db)));
}

SqliteStore::SqliteStore(std::string path, std::unique_ptr<sqlite::Connection> db)
    : path_(std::move(path)),
      db_(std::move(db)),
      statements_(std::make_unique<sqlite::StatementCache>(db_->get())) {}

// Statements go before the connection they were prepared on.
SqliteStore::~SqliteStore() { statements_.reset(); }

// ---- tenants ------------------------------------------------------------------

Status SqliteStore::add_tenant(const Tenant& tenant) {
  TENANTFS_RETURN_IF_ERROR(CheckTenant(tenant));
  MutexLock lock(db_mu_);
  Result<StatementLease> st = statements_->lease(
      "INSERT INTO tenants (name, uid, gid, groups, created_at) VALUES (?, ?, ?, ?, ?) "
      "ON CONFLICT (name) DO NOTHING");
  if (!st.ok()) return st.status();
  (*st)->bind(1, tenant.name);
  (*st)->bind(2, static_cast<int64_t>(tenant.identity.uid));
  (*st)->bind(3, static_cast<int64_t>(tenant.identity.gid));
  (*st)->bind(4, GroupsToText(tenant.identity.groups));
  (*st)->bind(5, static_cast<int64_t>(std::time(nullptr)));
  TENANTFS_RETURN_IF_ERROR((*st)->run("adding tenant " + Quote(tenant.name)));
  if (sqlite3_changes64(db_->get()) == 0) {
    return Status::AlreadyExists("tenant " + Quote(tenant.name) +
                                 " already exists; choose another name, or remove it first with "
                                 "\"tenantfs tenant rm " +
                                 tenant.name + "\"");
  }
  return Status::Ok();
}

Result<Tenant> SqliteStore::get_tenant(const std::string& name) {
  TENANTFS_RETURN_IF_ERROR(CheckTenantName(name));
  MutexLock lock(db_mu_);
  Result<StatementLease> st =
      statements_->lease("SELECT name, uid, gid, groups, created_at FROM tenants WHERE name = ?");
  if (!st.ok()) return st.status();
  (*st)->bind(1, name);
  Result<bool> row = (*st)->step("reading tenant " + Quote(name));
  if (!row.ok()) return row.status();
  if (!*row) return TenantNotFound(name);
  return TenantFromRow(**st, path_);
}

Result<std::vector<Tenant>> SqliteStore::list_tenants() {
  MutexLock lock(db_mu_);
  Result<StatementLease> st =
      statements_->lease("SELECT name, uid, gid, groups, created_at FROM tenants ORDER BY name");
  if (!st.ok()) return st.status();
  std::vector<Tenant> tenants;
  for (;;) {
    Result<bool> row = (*st)->step("listing tenants");
    if (!row.ok()) return row.status();
    if (!*row) break;
    Result<Tenant> t = TenantFromRow(**st, path_);
    if (!t.ok()) return t.status();
    tenants.push_back(std::move(t).value());
  }
  return tenants;
}

Status SqliteStore::remove_tenant(const std::string& name) {
  TENANTFS_RETURN_IF_ERROR(CheckTenantName(name));
  const std::string what = "removing tenant " + Quote(name);
  MutexLock lock(db_mu_);
  Result<Transaction> txn = Transaction::BeginImmediate(db_->get(), what);
  if (!txn.ok()) return txn.status();
  {
    Result<StatementLease> bound = statements_->lease(
        "SELECT name, count(*) OVER () FROM volumes WHERE tenant = ? ORDER BY name LIMIT "
        "?");
    if (!bound.ok()) return bound.status();
    (*bound)->bind(1, name);
    (*bound)->bind(2, static_cast<int64_t>(kBoundVolumesNamed));
    std::vector<std::string> names;
    int64_t total = 0;
    for (;;) {
      Result<bool> row = (*bound)->step(what);
      if (!row.ok()) return row.status();
      if (!*row) break;
      names.push_back((*bound)->column_text(0));
      total = (*bound)->column_int64(1);
    }
    TENANTFS_RETURN_IF_ERROR(check_tenant_unbound(name, names, total));
  }
  Result<int64_t> removed = change_locked("DELETE FROM tenants WHERE name = ?", {name}, what);
  if (!removed.ok()) return removed.status();
  if (*removed == 0) return TenantNotFound(name);
  Result<int64_t> grants =
      change_locked("DELETE FROM access_grants WHERE tenant = ?", {name}, what);
  if (!grants.ok()) return grants.status();
  return txn->Commit(what);
}

// ---- volumes ------------------------------------------------------------------

Result<BindOutcome> SqliteStore::bind_volume(const VolumeBinding& binding) {
  TENANTFS_RETURN_IF_ERROR(CheckBinding(binding));
  Result<std::string> options = OptionsToJson(binding.name, binding.options);
  if (!options.ok()) return options.status();
  const std::string what = "binding volume " + Quote(binding.name);

  MutexLock lock(db_mu_);
  Result<Transaction> txn = Transaction::BeginImmediate(db_->get(), what);
  if (!txn.ok()) return txn.status();
  {
    Result<StatementLease> existing =
        statements_->lease("SELECT options FROM volumes WHERE name = ?");
    if (!existing.ok()) return existing.status();
    (*existing)->bind(1, binding.name);
    Result<bool> row = (*existing)->step(what);
    if (!row.ok()) return row.status();
    if (*row) {
      Result<std::map<std::string, std::string>> stored =
          OptionsFromJson(path_, binding.name, (*existing)->column_text(0));
      if (!stored.ok()) return stored.status();
      TENANTFS_RETURN_IF_ERROR(check_rebind(binding.name, *stored, binding.options));
      return BindOutcome::kAlreadyBound;
    }
  }
  Result<StatementLease> insert = statements_->lease(
      "INSERT INTO volumes (name, tenant, uid, gid, groups, present_uid, present_gid, mode, "
      "backing_path, external, cache, readonly, options, created_at) "
      "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  if (!insert.ok()) return insert.status();
  Statement& st = **insert;
  st.bind(1, binding.name);
  st.bind(2, binding.tenant);
  st.bind(3, static_cast<int64_t>(binding.identity.uid));
  st.bind(4, static_cast<int64_t>(binding.identity.gid));
  st.bind(5, GroupsToText(binding.identity.groups));
  st.bind(6, static_cast<int64_t>(binding.present_uid));
  st.bind(7, static_cast<int64_t>(binding.present_gid));
  st.bind(8, static_cast<int64_t>(binding.mode));
  st.bind(9, binding.backing_path);
  st.bind(10, static_cast<int64_t>(binding.external ? 1 : 0));
  st.bind(11, binding.cache);
  st.bind(12, static_cast<int64_t>(binding.readonly ? 1 : 0));
  st.bind(13, *options);
  st.bind(14, static_cast<int64_t>(std::time(nullptr)));
  TENANTFS_RETURN_IF_ERROR(st.run(what));
  TENANTFS_RETURN_IF_ERROR(txn->Commit(what));
  return BindOutcome::kCreated;
}

Result<VolumeBinding> SqliteStore::get_volume(const std::string& name) {
  TENANTFS_RETURN_IF_ERROR(CheckVolumeName(name));
  static const std::string kSql =
      std::string("SELECT ") + kVolumeColumns + " FROM volumes WHERE name = ?";
  MutexLock lock(db_mu_);
  Result<StatementLease> st = statements_->lease(kSql.c_str());
  if (!st.ok()) return st.status();
  (*st)->bind(1, name);
  Result<bool> row = (*st)->step("reading volume " + Quote(name));
  if (!row.ok()) return row.status();
  if (!*row) return VolumeNotFound(name);
  VolumeBinding b;
  TENANTFS_RETURN_IF_ERROR(ReadVolumeRow(**st, path_, b));
  return b;
}

Result<std::vector<VolumeBinding>> SqliteStore::list_volumes() {
  // One query for every row, never a query per volume.
  static const std::string kSql =
      std::string("SELECT ") + kVolumeColumns + " FROM volumes ORDER BY name";
  MutexLock lock(db_mu_);
  Result<StatementLease> st = statements_->lease(kSql.c_str());
  if (!st.ok()) return st.status();
  std::vector<VolumeBinding> volumes;
  for (;;) {
    Result<bool> row = (*st)->step("listing volumes");
    if (!row.ok()) return row.status();
    if (!*row) break;
    TENANTFS_RETURN_IF_ERROR(ReadVolumeRow(**st, path_, volumes.emplace_back()));
  }
  return volumes;
}

Result<std::vector<std::string>> SqliteStore::list_volume_names() {
  // The name is the table's key: this reads no other column and decodes
  // nothing, which keeps Docker's List of 10,000 volumes to a few ms here.
  MutexLock lock(db_mu_);
  return texts_locked("SELECT name FROM volumes ORDER BY name", "listing volume names");
}

Status SqliteStore::remove_volume(const std::string& name) {
  TENANTFS_RETURN_IF_ERROR(CheckVolumeName(name));
  const std::string what = "removing volume " + Quote(name);
  MutexLock lock(db_mu_);
  Result<Transaction> txn = Transaction::BeginImmediate(db_->get(), what);
  if (!txn.ok()) return txn.status();
  TENANTFS_RETURN_IF_ERROR(volume_exists_locked(name));
  Result<int64_t> total = total_refs_locked(name);
  if (!total.ok()) return total.status();
  TENANTFS_RETURN_IF_ERROR(check_unreferenced(name, *total));
  Result<StatementLease> del = statements_->lease("DELETE FROM volumes WHERE name = ?");
  if (!del.ok()) return del.status();
  (*del)->bind(1, name);
  TENANTFS_RETURN_IF_ERROR((*del)->run(what));
  return txn->Commit(what);
}

// ---- mount references -----------------------------------------------------------

Status SqliteStore::volume_exists_locked(const std::string& volume) {
  Result<StatementLease> st = statements_->lease("SELECT 1 FROM volumes WHERE name = ?");
  if (!st.ok()) return st.status();
  (*st)->bind(1, volume);
  Result<bool> row = (*st)->step("looking up volume " + Quote(volume));
  if (!row.ok()) return row.status();
  if (!*row) return VolumeNotFound(volume);
  return Status::Ok();
}

Result<int64_t> SqliteStore::total_refs_locked(const std::string& volume) {
  Result<StatementLease> st =
      statements_->lease("SELECT coalesce(sum(count), 0) FROM mount_refs WHERE volume = ?");
  if (!st.ok()) return st.status();
  (*st)->bind(1, volume);
  Result<bool> row = (*st)->step("counting references of volume " + Quote(volume));
  if (!row.ok()) return row.status();
  return *row ? (*st)->column_int64(0) : 0;
}

Result<int64_t> SqliteStore::add_ref(const std::string& volume, const std::string& id) {
  TENANTFS_RETURN_IF_ERROR(CheckVolumeName(volume));
  TENANTFS_RETURN_IF_ERROR(CheckMountId(volume, id));
  const std::string what = "adding a mount reference to volume " + Quote(volume);
  MutexLock lock(db_mu_);
  Result<Transaction> txn = Transaction::BeginImmediate(db_->get(), what);
  if (!txn.ok()) return txn.status();
  TENANTFS_RETURN_IF_ERROR(volume_exists_locked(volume));
  {
    Result<StatementLease> st = statements_->lease(
        "INSERT INTO mount_refs (volume, mount_id, count) VALUES (?, ?, 1) "
        "ON CONFLICT (volume, mount_id) DO UPDATE SET count = count + 1");
    if (!st.ok()) return st.status();
    (*st)->bind(1, volume);
    (*st)->bind(2, id);
    TENANTFS_RETURN_IF_ERROR((*st)->run(what));
  }
  Result<int64_t> total = total_refs_locked(volume);
  if (!total.ok()) return total.status();
  TENANTFS_RETURN_IF_ERROR(txn->Commit(what));
  return *total;
}

Result<int64_t> SqliteStore::release_ref(const std::string& volume, const std::string& id) {
  TENANTFS_RETURN_IF_ERROR(CheckVolumeName(volume));
  TENANTFS_RETURN_IF_ERROR(CheckMountId(volume, id));
  const std::string what = "releasing a mount reference of volume " + Quote(volume);
  MutexLock lock(db_mu_);
  Result<Transaction> txn = Transaction::BeginImmediate(db_->get(), what);
  if (!txn.ok()) return txn.status();
  TENANTFS_RETURN_IF_ERROR(volume_exists_locked(volume));
  // The last reference of an ID removes its row (count > 0 is a table
  // constraint); an unknown ID matches neither statement.
  for (const char* sql : {"DELETE FROM mount_refs WHERE volume = ? AND mount_id = ? AND count <= 1",
                          "UPDATE mount_refs SET count = count - 1 "
                          "WHERE volume = ? AND mount_id = ? AND count > 1"}) {
    Result<StatementLease> st = statements_->lease(sql);
    if (!st.ok()) return st.status();
    (*st)->bind(1, volume);
    (*st)->bind(2, id);
    TENANTFS_RETURN_IF_ERROR((*st)->run(what));
    if (sqlite3_changes64(db_->get()) > 0) break;
  }
  Result<int64_t> total = total_refs_locked(volume);
  if (!total.ok()) return total.status();
  TENANTFS_RETURN_IF_ERROR(txn->Commit(what));
  return *total;
}

Result<VolumeRefs> SqliteStore::refs(const std::string& volume) {
  TENANTFS_RETURN_IF_ERROR(CheckVolumeName(volume));
  MutexLock lock(db_mu_);
  // One statement, so the volume and its references come from one snapshot.
  Result<StatementLease> st = statements_->lease(
      "SELECT r.mount_id, r.count FROM volumes v LEFT JOIN mount_refs r ON r.volume = v.name "
      "WHERE v.name = ? ORDER BY r.mount_id");
  if (!st.ok()) return st.status();
  (*st)->bind(1, volume);
  VolumeRefs refs;
  refs.volume = volume;
  bool found = false;
  for (;;) {
    Result<bool> row = (*st)->step("reading references of volume " + Quote(volume));
    if (!row.ok()) return row.status();
    if (!*row) break;
    found = true;
    const int64_t count = (*st)->column_int64(1);
    if (count > 0) refs.ids.emplace((*st)->column_text(0), count);
  }
  if (!found) return VolumeNotFound(volume);
  return refs;
}

Result<std::vector<VolumeRefs>> SqliteStore::referenced_volumes() {
  MutexLock lock(db_mu_);
  Result<StatementLease> st = statements_->lease(
      "SELECT volume, mount_id, count FROM mount_refs ORDER BY volume, mount_id");
  if (!st.ok()) return st.status();
  std::vector<VolumeRefs> out;
  for (;;) {
    Result<bool> row = (*st)->step("listing referenced volumes");
    if (!row.ok()) return row.status();
    if (!*row) break;
    std::string name = (*st)->column_text(0);
    if (out.empty() || out.back().volume != name) {
      out.emplace_back();
      out.back().volume = std::move(name);
    }
    out.back().ids.emplace((*st)->column_text(1), (*st)->column_int64(2));
  }
  return out;
}

// ---- authorization policy
// ------------------------------------------------------

Result<StatementLease> SqliteStore::bound_locked(const char* sql,
                                                 std::initializer_list<std::string_view> args) {
  Result<StatementLease> st = statements_->lease(sql);
  if (!st.ok()) return st.status();
  int index = 1;
  for (std::string_view arg : args) (*st)->bind(index++, arg);
  return st;
}

Result<bool> SqliteStore::has_row_locked(const char* sql,
                                         std::initializer_list<std::string_view> args,
                                         std::string_view what) {
  Result<StatementLease> st = bound_locked(sql, args);
  if (!st.ok()) return st.status();
  return (*st)->step(what);
}

Result<std::vector<std::string>> SqliteStore::texts_locked(const char* sql, std::string_view what) {
  Result<StatementLease> st = statements_->lease(sql);
  if (!st.ok()) return st.status();
  std::vector<std::string> texts;
  for (;;) {
    Result<bool> row = (*st)->step(what);
    if (!row.ok()) return row.status();
    if (!*row) break;
    texts.push_back((*st)->column_text(0));
  }
  return texts;
}

Result<int64_t> SqliteStore::change_locked(const char* sql,
                                           std::initializer_list<std::string_view> args,
                                           std::string_view what) {
  Result<StatementLease> st = bound_locked(sql, args);
  if (!st.ok()) return st.status();
  TENANTFS_RETURN_IF_ERROR((*st)->run(what));
  return static_cast<int64_t>(sqlite3_changes64(db_->get()));
}

Status SqliteStore::allow_user(const std::string& tenant, const std::string& user) {
  TENANTFS_RETURN_IF_ERROR(CheckTenantName(tenant));
  TENANTFS_RETURN_IF_ERROR(CheckUserName(user));
  MutexLock lock(db_mu_);
  const std::string now = std::to_string(std::time(nullptr));
  Result<int64_t> n = change_locked(
      "INSERT INTO access_grants (tenant, user, created_at) VALUES (?, ?, "
      "CAST(? AS INTEGER)) "
      "ON CONFLICT DO NOTHING",
      {tenant, user, now}, "allowing user " + Quote(user) + " for tenant " + Quote(tenant));
  return n.ok() ? Status::Ok() : n.status();
}

Status SqliteStore::deny_user(const std::string& tenant, const std::string& user) {
  TENANTFS_RETURN_IF_ERROR(CheckTenantName(tenant));
  TENANTFS_RETURN_IF_ERROR(CheckUserName(user));
  MutexLock lock(db_mu_);
  Result<int64_t> n =
      change_locked("DELETE FROM access_grants WHERE tenant = ? AND user = ?", {tenant, user},
                    "denying user " + Quote(user) + " for tenant " + Quote(tenant));
  if (!n.ok()) return n.status();
  if (*n == 0) {
    return Status::NotFound("user " + Quote(user) + " is not allowed for tenant " + Quote(tenant) +
                            "; nothing to deny (see \"tenantfs tenant ls\")");
  }
  return Status::Ok();
}

Result<bool> SqliteStore::user_allowed(const std::string& tenant, const std::string& user) {
  TENANTFS_RETURN_IF_ERROR(CheckTenantName(tenant));
  TENANTFS_RETURN_IF_ERROR(CheckUserName(user));
  MutexLock lock(db_mu_);
  return has_row_locked("SELECT 1 FROM access_grants WHERE tenant = ? AND user = ?", {tenant, user},
                        "reading the grants of tenant " + Quote(tenant));
}

Result<std::vector<AccessGrant>> SqliteStore::list_grants() {
  MutexLock lock(db_mu_);
  Result<StatementLease> st = statements_->lease(
      "SELECT tenant, user, created_at FROM access_grants "
      "ORDER BY tenant, user");
  if (!st.ok()) return st.status();
  std::vector<AccessGrant> grants;
  for (;;) {
    Result<bool> row = (*st)->step("listing grants");
    if (!row.ok()) return row.status();
    if (!*row) break;
    grants.push_back({(*st)->column_text(0), (*st)->column_text(1), (*st)->column_int64(2)});
  }
  return grants;
}

Status SqliteStore::add_admin(const std::string& user) {
  TENANTFS_RETURN_IF_ERROR(CheckUserName(user));
  MutexLock lock(db_mu_);
  const std::string now = std::to_string(std::time(nullptr));
  Result<int64_t> n = change_locked(
      "INSERT INTO admins (user, created_at) VALUES (?, CAST(? AS INTEGER)) "
      "ON CONFLICT DO NOTHING",
      {user, now}, "adding admin " + Quote(user));
  return n.ok() ? Status::Ok() : n.status();
}

Status SqliteStore::remove_admin(const std::string& user) {
  TENANTFS_RETURN_IF_ERROR(CheckUserName(user));
  MutexLock lock(db_mu_);
  Result<int64_t> n =
      change_locked("DELETE FROM admins WHERE user = ?", {user}, "removing admin " + Quote(user));
  if (!n.ok()) return n.status();
  if (*n == 0) {
    return Status::NotFound("user " + Quote(user) +
                            " is not an admin; nothing to deny (see \"tenantfs admin ls\")");
  }
  return Status::Ok();
}

Result<bool> SqliteStore::is_admin(const std::string& user) {
  TENANTFS_RETURN_IF_ERROR(CheckUserName(user));
  MutexLock lock(db_mu_);
  return has_row_locked("SELECT 1 FROM admins WHERE user = ?", {user}, "reading the admins");
}

Result<std::vector<std::string>> SqliteStore::list_admins() {
  MutexLock lock(db_mu_);
  return texts_locked("SELECT user FROM admins ORDER BY user", "listing admins");
}

}  // namespace tenantfs

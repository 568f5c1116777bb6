#include "store/sqlite_util.h"

#include <cstring>
#include <utility>

namespace tenantfs::sqlite {
namespace {

std::string DatabasePath(sqlite3* db) {
  const char* name = db != nullptr ? sqlite3_db_filename(db, "main") : nullptr;
  return name != nullptr && name[0] != '\0' ? name : "(unknown)";
}

}  // namespace

Status CorruptionError(const std::string& path, std::string_view detail) {
  return Status::Corruption(
      "store file \"" + path + "\" is damaged or is not a tenantfs store (" + std::string(detail) +
      "); stop tenantfs, move the file aside and restore it from a backup, "
      "or start with an empty store (existing volume bindings are then lost)");
}

Status Error(sqlite3* db, int rc, std::string_view what) {
  const std::string path = DatabasePath(db);
  const std::string detail = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  const std::string context = "store file \"" + path + "\": " + std::string(what) + ": ";
  switch (rc & 0xff) {
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return CorruptionError(path, std::string(what) + ": " + detail);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Status::IOError(context + "still locked by another connection after " +
                             std::to_string(kBusyTimeoutMs / 1000) +
                             " s; check for a stuck tenantfs process and retry");
    case SQLITE_FULL:
      return Status::IOError(context + "the filesystem is full; free space and retry");
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
    case SQLITE_READONLY:
    case SQLITE_AUTH: {
      const int err = db != nullptr ? sqlite3_system_errno(db) : 0;
      std::string msg = context + detail;
      if (err != 0) msg += " (" + std::string(std::strerror(err)) + ")";
      return Status::IOError(msg + "; check the file, its directory and the disk");
    }
    default:
      return Status::Internal(context + detail);
  }
}

Connection& Connection::operator=(Connection&& o) noexcept {
  if (this != &o) {
    if (db_ != nullptr) sqlite3_close_v2(db_);
    db_ = std::exchange(o.db_, nullptr);
  }
  return *this;
}

Connection::~Connection() {
  // close_v2 defers the close until every statement is finalized, so the
  // order in which an owner destroys its members cannot leak the handle.
  if (db_ != nullptr) sqlite3_close_v2(db_);
}

Status Exec(sqlite3* db, const char* sql, std::string_view what) {
  const int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return Error(db, rc, what);
  return Status::Ok();
}

Result<Statement> Statement::Prepare(sqlite3* db, std::string_view sql) {
  sqlite3_stmt* stmt = nullptr;
  const int rc = sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()),
                                    SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK) {
    if (stmt != nullptr) sqlite3_finalize(stmt);
    return Error(db, rc, "preparing \"" + std::string(sql.substr(0, 60)) + "\"");
  }
  return Statement(db, stmt);
}

Statement::~Statement() {
  if (stmt_ != nullptr) sqlite3_finalize(stmt_);
}

void Statement::bind(int index, int64_t value) {
  sqlite3_bind_int64(stmt_, index, static_cast<sqlite3_int64>(value));
}

void Statement::bind(int index, std::string_view value) {
  sqlite3_bind_text64(stmt_, index, value.data(), value.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
}

Result<bool> Statement::step(std::string_view what) {
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return Error(db_, rc, what);
}

Status Statement::run(std::string_view what) {
  Result<bool> r = step(what);
  if (!r.ok()) return r.status();
  return Status::Ok();
}

int64_t Statement::column_int64(int index) const {
  return static_cast<int64_t>(sqlite3_column_int64(stmt_, index));
}

std::string Statement::column_text(int index) const { return std::string(column_view(index)); }

std::string_view Statement::column_view(int index) const {
  // sqlite3_column_text first, then _bytes: the order SQLite documents for
  // a size that matches the returned text.
  const unsigned char* text = sqlite3_column_text(stmt_, index);
  const int size = sqlite3_column_bytes(stmt_, index);
  if (text == nullptr) return {};
  return std::string_view(reinterpret_cast<const char*>(text), static_cast<size_t>(size));
}

void Statement::reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

Result<StatementLease> StatementCache::lease(const char* sql) {
  auto it = statements_.find(sql);
  if (it == statements_.end()) {
    Result<Statement> prepared = Statement::Prepare(db_, sql);
    if (!prepared.ok()) return prepared.status();
    it = statements_.emplace(sql, std::make_unique<Statement>(std::move(prepared).value())).first;
  }
  return StatementLease(it->second.get());
}

Result<Transaction> Transaction::BeginImmediate(sqlite3* db, std::string_view what) {
  const int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return Error(db, rc, what);
  return Transaction(db);
}

Transaction::~Transaction() {
  // Nothing useful can be done with a failed rollback here: SQLite rolls
  // back by itself when the connection closes or the next BEGIN fails.
  if (open_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
}

Status Transaction::Commit(std::string_view what) {
  const int rc = sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return Error(db_, rc, what);
  open_ = false;
  return Status::Ok();
}

}  // namespace tenantfs::sqlite

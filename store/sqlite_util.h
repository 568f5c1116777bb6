// Small RAII layer over the SQLite C API, internal to store/.
//
// Connection, Statement and Transaction each own one SQLite resource and
// release it exactly once, so an early return leaks nothing and never leaves
// a transaction or a read cursor open. None of these types is thread-safe:
// the owner (SqliteStore) serialises every use of a connection with its own
// mutex.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/status.h"

namespace tenantfs::sqlite {

// How long a writer waits for another connection (thread or process) to let
// go of the write lock before it reports the store as locked.
inline constexpr int kBusyTimeoutMs = 5000;

// Translates a failed SQLite result code into a Status that names the store
// file and says what to do. `what` says what was being done ("adding a
// reference to volume \"data\""). Corruption and "not a database" become
// kCorruption; lock timeouts, I/O and permission failures become kIOError;
// everything else is kInternal.
Status Error(sqlite3* db, int rc, std::string_view what);

// The message of a kCorruption error for `path`, with the fix.
Status CorruptionError(const std::string& path, std::string_view detail);

// Owns a database connection (sqlite3_close_v2 on destruction).
class Connection {
 public:
  Connection() = default;
  explicit Connection(sqlite3* db) : db_(db) {}
  Connection(Connection&& o) noexcept : db_(o.db_) { o.db_ = nullptr; }
  Connection& operator=(Connection&& o) noexcept;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection();

  sqlite3* get() const { return db_; }

 private:
  sqlite3* db_ = nullptr;
};

// Runs SQL that returns no rows (may hold several statements).
Status Exec(sqlite3* db, const char* sql, std::string_view what);

// Owns one prepared statement (sqlite3_finalize on destruction).
class Statement {
 public:
  static Result<Statement> Prepare(sqlite3* db, std::string_view sql);

  Statement(Statement&& o) noexcept : db_(o.db_), stmt_(o.stmt_) { o.stmt_ = nullptr; }
  Statement& operator=(Statement&&) = delete;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement();

  // Parameters are 1-based, as in SQLite. Text is copied (SQLITE_TRANSIENT)
  // so the caller's buffers need not outlive the statement.
  void bind(int index, int64_t value);
  void bind(int index, std::string_view value);

  // Advances one row: true when a row is available, false when done.
  Result<bool> step(std::string_view what);
  // Steps a statement that returns no rows.
  Status run(std::string_view what);

  int64_t column_int64(int index) const;
  std::string column_text(int index) const;
  // The text of a column without copying it; valid until the next step or
  // reset of this statement, or the next column call on the same column.
  std::string_view column_view(int index) const;

  // Ends the current execution and forgets the bindings, so the statement
  // holds no read snapshot between uses.
  void reset();

 private:
  Statement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}

  sqlite3* db_;
  sqlite3_stmt* stmt_;
};

// A prepared statement borrowed from a StatementCache for one use. The
// statement is reset when the lease ends, so no read snapshot (which would
// block WAL checkpoints) outlives the call that used it.
class StatementLease {
 public:
  explicit StatementLease(Statement* stmt) : stmt_(stmt) {}
  StatementLease(StatementLease&& o) noexcept : stmt_(o.stmt_) { o.stmt_ = nullptr; }
  StatementLease& operator=(StatementLease&&) = delete;
  StatementLease(const StatementLease&) = delete;
  StatementLease& operator=(const StatementLease&) = delete;
  ~StatementLease() {
    if (stmt_ != nullptr) stmt_->reset();
  }

  Statement* operator->() const { return stmt_; }
  Statement& operator*() const { return *stmt_; }

 private:
  Statement* stmt_;
};

// Prepares each distinct SQL text once per connection and lends it out.
// Statements must not be leased twice at the same time (the store never
// nests two uses of the same SQL).
class StatementCache {
 public:
  explicit StatementCache(sqlite3* db) : db_(db) {}
  Result<StatementLease> lease(const char* sql);

 private:
  sqlite3* db_;
  std::unordered_map<std::string, std::unique_ptr<Statement>> statements_;
};

// A write transaction begun with BEGIN IMMEDIATE: it takes the database's
// write lock up front (waiting up to the busy timeout), so a read followed by
// a write inside it can never fail half-way with SQLITE_BUSY and no other
// process can change what it read. Rolled back on destruction unless
// committed.
class Transaction {
 public:
  static Result<Transaction> BeginImmediate(sqlite3* db, std::string_view what);

  Transaction(Transaction&& o) noexcept : db_(o.db_), open_(o.open_) { o.open_ = false; }
  Transaction& operator=(Transaction&&) = delete;
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction();

  Status Commit(std::string_view what);

 private:
  explicit Transaction(sqlite3* db) : db_(db), open_(true) {}

  sqlite3* db_;
  bool open_;
};

}  // namespace tenantfs::sqlite

// SqliteStore: the BindingStore kept in one SQLite file on the local host.
//
// Files and permissions. The store file holds every tenant identity and
// binding, so it is readable by its owner only:
//   - The store's directory is created (with any missing parents) mode 0700
//     when it does not exist. An existing directory that is not owned by the
//     calling user, or that the group or others can access, is refused with
//     an error that names it and the chmod/chown that fixes it: tenantfs
//     never loosens or tightens a directory it did not create, because that
//     directory may be shared (/tmp, /var/lib).
//   - The store file is created 0600. An existing store file that the group
//     or others can access is tightened to 0600 (the file is tenantfs's own).
//     A store file that is a symlink, not a regular file, or owned by another
//     user is refused.
//   - The -wal and -shm files are created 0600: SQLite gives them the store
//     file's mode, and Open also runs with umask 077 while SQLite may create
//     them. Existing ones with wider modes are tightened.
//
// Schema. PRAGMA user_version holds the schema version and PRAGMA
// application_id marks the file as a tenantfs store. Open migrates an empty
// file (or an older schema) step by step, each step in its own transaction;
// a file from a newer tenantfs, another application's SQLite database, a
// non-SQLite file or a damaged file is refused with a kCorruption or
// kFailedPrecondition error naming the file and the fix.
//
// Concurrency. One SQLite connection serves the whole object; db_mu_
// serialises every call, so all methods are safe to call from any thread.
// Several processes may open the same file: the database runs in WAL mode,
// every write that reads before it writes runs in a BEGIN IMMEDIATE
// transaction, and a writer waits up to 5 s (busy_timeout) for another
// process's write lock before it fails with kIOError.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/thread_annotations.h"
#include "store/store.h"

namespace tenantfs {

namespace sqlite {
class Connection;
class StatementCache;
class StatementLease;
}  // namespace sqlite

class SqliteStore final : public BindingStore {
 public:
  // The schema version this build creates and understands.
  static constexpr int kSchemaVersion = 2;
  // PRAGMA application_id of a tenantfs store ("TFS1").
  static constexpr int32_t kApplicationId = 0x54465331;

  // Opens the store at `path`, creating the file (and its directory) when
  // missing, and migrating the schema to kSchemaVersion. See the file
  // comment for the permission rules. Temporarily sets the process umask to
  // 077: call it before starting threads that create files whose mode
  // matters.
  static Result<std::unique_ptr<SqliteStore>> Open(const std::string& path);

  ~SqliteStore() override;
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  // The path given to Open.
  const std::string& path() const { return path_; }

  Status add_tenant(const Tenant& tenant) override;
  Result<Tenant> get_tenant(const std::string& name) override;
  Result<std::vector<Tenant>> list_tenants() override;  // ordered by name
  Status remove_tenant(const std::string& name) override;

  Result<BindOutcome> bind_volume(const VolumeBinding& binding) override;
  Result<VolumeBinding> get_volume(const std::string& name) override;
  Result<std::vector<VolumeBinding>> list_volumes() override;  // ordered by name
  Result<std::vector<std::string>> list_volume_names() override;  // ordered by name
  Status remove_volume(const std::string& name) override;

  Result<int64_t> add_ref(const std::string& volume, const std::string& id) override;
  Result<int64_t> release_ref(const std::string& volume, const std::string& id) override;
  Result<VolumeRefs> refs(const std::string& volume) override;
  // Returns the sum of the dropped counts, not the number of IDs.
  Result<std::vector<VolumeRefs>> referenced_volumes() override;  // ordered by name

  Status allow_user(const std::string& tenant, const std::string& user) override;
  Status deny_user(const std::string& tenant, const std::string& user) override;
  Result<bool> user_allowed(const std::string& tenant, const std::string& user) override;
  Result<std::vector<AccessGrant>> list_grants() override;
  Status add_admin(const std::string& user) override;
  Status remove_admin(const std::string& user) override;
  Result<bool> is_admin(const std::string& user) override;
  Result<std::vector<std::string>> list_admins() override;

 private:
  SqliteStore(std::string path, std::unique_ptr<sqlite::Connection> db);

  // kNotFound (naming the volume) when it does not exist.
  Status volume_exists_locked(const std::string& volume) REQUIRES(db_mu_);
  // The statement of `sql` with `args` bound in order.
  Result<sqlite::StatementLease> bound_locked(const char* sql,
                                              std::initializer_list<std::string_view> args)
      REQUIRES(db_mu_);
  // Runs `sql` with `args` bound in order: whether it returned a row, or how
  // many rows it changed.
  Result<bool> has_row_locked(const char* sql, std::initializer_list<std::string_view> args,
                              std::string_view what) REQUIRES(db_mu_);
  // The first column of every row of `sql`.
  Result<std::vector<std::string>> texts_locked(const char* sql, std::string_view what)
      REQUIRES(db_mu_);
  Result<int64_t> change_locked(const char* sql, std::initializer_list<std::string_view> args,
                                std::string_view what) REQUIRES(db_mu_);
  // The sum of the volume's reference counts.
  Result<int64_t> total_refs_locked(const std::string& volume) REQUIRES(db_mu_);

  const std::string path_;
  // One connection, one user at a time.
  Mutex db_mu_;
  std::unique_ptr<sqlite::Connection> db_ GUARDED_BY(db_mu_);
  std::unique_ptr<sqlite::StatementCache> statements_ GUARDED_BY(db_mu_);
};

}  // namespace tenantfs

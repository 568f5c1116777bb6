// Unit tests of SqliteStore: the BindingStore contract, its error messages,
// persistence across reopen and processes, concurrency, schema migration,
// damaged files and the permissions of the files it creates.
#include "store/sqlite_store.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "common/volume_name.h"

namespace tenantfs {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// A private temporary directory, removed with everything in it.
class TempDir {
 public:
  explicit TempDir(const fs::path& base = fs::temp_directory_path()) {
    std::string tmpl = (base / "tenantfs-store-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::permissions(path_, fs::perms::owner_all, ec);
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// prefix + n. (Spelled out because GCC 12 -O2 warns falsely on
// `"literal" + std::to_string(n)` inside lambdas.)
std::string Numbered(const char* prefix, int n) {
  std::string s(prefix);
  s += std::to_string(n);
  return s;
}

mode_t ModeOf(const fs::path& p) {
  struct stat st {};
  if (::lstat(p.c_str(), &st) != 0) return static_cast<mode_t>(-1);
  return st.st_mode & 07777;
}

// Runs one SQL text on a file with plain SQLite, outside the store, and
// returns the first column of the first row (or the error text).
std::string RawSql(const fs::path& db_path, const std::string& sql) {
  sqlite3* db = nullptr;
  std::string out;
  if (sqlite3_open(db_path.c_str(), &db) != SQLITE_OK) {
    out = std::string("open failed: ") + sqlite3_errmsg(db);
    sqlite3_close(db);
    return out;
  }
  sqlite3_stmt* st = nullptr;
  int rc = sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr);
  if (rc == SQLITE_OK) {
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && sqlite3_column_text(st, 0) != nullptr) {
      out = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    } else if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
      out = std::string("error: ") + sqlite3_errmsg(db);
    }
  } else {
    out = std::string("error: ") + sqlite3_errmsg(db);
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return out;
}

Tenant MakeTenant(const std::string& name, uid_t uid, gid_t gid, std::vector<gid_t> groups = {}) {
  Tenant t;
  t.name = name;
  t.identity.uid = uid;
  t.identity.gid = gid;
  t.identity.groups = std::move(groups);
  return t;
}

VolumeBinding MakeVolume(const std::string& name, const std::string& tenant = "alice") {
  VolumeBinding b;
  b.name = name;
  b.tenant = tenant;
  b.identity.uid = 1000;
  b.identity.gid = 1000;
  b.identity.groups = {20, 100};
  b.present_uid = 1000;
  b.present_gid = 1000;
  b.mode = 0700;
  b.backing_path = "/var/lib/tenantfs/volumes/" + name;
  b.options = {{"tenant", tenant}};
  return b;
}

class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_path_ = dir_.path() / "state" / "store.db";
    Result<std::unique_ptr<SqliteStore>> s = SqliteStore::Open(db_path_.string());
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
  }

  void Reopen() {
    store_.reset();
    Result<std::unique_ptr<SqliteStore>> s = SqliteStore::Open(db_path_.string());
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
  }

  TempDir dir_;
  fs::path db_path_;
  std::unique_ptr<SqliteStore> store_;
};

// ---- tenants ------------------------------------------------------------------

TEST_F(SqliteStoreTest, TenantRoundTripsWithSortedUniqueGroups) {
  ASSERT_TRUE(store_->add_tenant(MakeTenant("alice", 1000, 1001, {300, 20, 300, 100})).ok());
  Result<Tenant> t = store_->get_tenant("alice");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->name, "alice");
  EXPECT_EQ(t->identity.uid, 1000u);
  EXPECT_EQ(t->identity.gid, 1001u);
  EXPECT_EQ(t->identity.groups, (std::vector<gid_t>{20, 100, 300}));
  EXPECT_GT(t->created_at, 1600000000);
}

TEST_F(SqliteStoreTest, TenantsListInNameOrder) {
  for (const char* n : {"carol", "alice", "bob"}) {
    ASSERT_TRUE(store_->add_tenant(MakeTenant(n, 1000, 1000)).ok());
  }
  Result<std::vector<Tenant>> list = store_->list_tenants();
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  ASSERT_EQ(list->size(), 3u);
  EXPECT_EQ((*list)[0].name, "alice");
  EXPECT_EQ((*list)[1].name, "bob");
  EXPECT_EQ((*list)[2].name, "carol");
}

TEST_F(SqliteStoreTest, DuplicateTenantIsRefusedAndKeepsTheFirst) {
  ASSERT_TRUE(store_->add_tenant(MakeTenant("alice", 1000, 1000)).ok());
  Status st = store_->add_tenant(MakeTenant("alice", 2000, 2000));
  EXPECT_EQ(st.code(), Code::kAlreadyExists);
  EXPECT_THAT(st.message(), HasSubstr("tenant \"alice\" already exists"));
  EXPECT_EQ(store_->get_tenant("alice")->identity.uid, 1000u);
}

TEST_F(SqliteStoreTest, UnknownTenantIsNotFound) {
  Result<Tenant> t = store_->get_tenant("nobody");
  EXPECT_EQ(t.status().code(), Code::kNotFound);
  EXPECT_THAT(t.status().message(), HasSubstr("tenant \"nobody\" does not exist"));
  EXPECT_EQ(store_->remove_tenant("nobody").code(), Code::kNotFound);
}

TEST_F(SqliteStoreTest, TenantRemovalIsRefusedWhileAVolumeIsBound) {
  ASSERT_TRUE(store_->add_tenant(MakeTenant("alice", 1000, 1000)).ok());
  ASSERT_TRUE(store_->bind_volume(MakeVolume("data", "alice")).ok());
  ASSERT_TRUE(store_->bind_volume(MakeVolume("logs", "alice")).ok());
  Status st = store_->remove_tenant("alice");
  EXPECT_EQ(st.code(), Code::kFailedPrecondition);
  EXPECT_EQ(st.message(),
            "tenant \"alice\" still has 2 volumes bound: data, logs; remove them first with "
            "\"docker volume rm data logs\" (\"tenantfs volume ls\" shows every volume and its "
            "tenant)");
  EXPECT_TRUE(store_->get_tenant("alice").ok());

  ASSERT_TRUE(store_->remove_volume("data").ok());
  ASSERT_TRUE(store_->remove_volume("logs").ok());
  EXPECT_TRUE(store_->remove_tenant("alice").ok());
  EXPECT_EQ(store_->get_tenant("alice").status().code(), Code::kNotFound);
}

TEST_F(SqliteStoreTest, TenantRemovalNamesAtMostTenVolumes) {
  ASSERT_TRUE(store_->add_tenant(MakeTenant("alice", 1000, 1000)).ok());
  for (int i = 1; i <= 12; ++i) {
    const std::string name = (i < 10 ? "v0" : "v") + std::to_string(i);
    ASSERT_TRUE(store_->bind_volume(MakeVolume(name, "alice")).ok());
  }
  Status st = store_->remove_tenant("alice");
  EXPECT_EQ(st.code(), Code::kFailedPrecondition);
  EXPECT_THAT(st.message(), HasSubstr("still has 12 volumes bound: v01, v02, v03, v04, v05, v06, "
                                      "v07, v08, v09, v10 and 2 more; remove them first with "
                                      "\"docker volume rm v01 v02 v03 v04 v05 v06 v07 v08 v09 "
                                      "v10 ...\""));
}

TEST_F(SqliteStoreTest, VolumeOfAnUnregisteredTenantBlocksNothingElse) {
  // Tenants may come from the host's passwd file: binding does not require a
  // registry entry, and another tenant's removal is not blocked by it.
  ASSERT_TRUE(store_->add_tenant(MakeTenant("bob", 2000, 2000)).ok());
  ASSERT_TRUE(store_->bind_volume(MakeVolume("data", "hostuser")).ok());
  EXPECT_TRUE(store_->remove_tenant("bob").ok());
}

// ---- input validation -----------------------------------------------------------

TEST_F(SqliteStoreTest, EmptyAndControlCharacterNamesAreRefused) {
  EXPECT_EQ(store_->add_tenant(MakeTenant("", 1, 1)).code(), Code::kInvalidArgument);
  Status st = store_->add_tenant(MakeTenant("al\nice", 1, 1));
  EXPECT_EQ(st.code(), Code::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("control character"));
  EXPECT_EQ(store_->get_tenant("").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(store_->remove_tenant("").code(), Code::kInvalidArgument);
  EXPECT_EQ(store_->bind_volume(MakeVolume("")).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(store_->bind_volume(MakeVolume("data", "")).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(store_->get_volume("").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(store_->remove_volume("").code(), Code::kInvalidArgument);
  EXPECT_EQ(store_->add_ref("", "id").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(store_->refs("").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(store_->add_tenant(MakeTenant(std::string(256, 'a'), 1, 1)).code(),
            Code::kInvalidArgument);
  Result<std::vector<Tenant>> tenants = store_->list_tenants();
  ASSERT_TRUE(tenants.ok());
  EXPECT_TRUE(tenants->empty());
}

TEST_F(SqliteStoreTest, VolumeNamesFollowTheDriversRule) {
  // One rule (common/volume_name.h): the store refuses exactly what the
  // driver refuses, with the same message.
  const std::string longest(kMaxVolumeNameLength, 'a');
  EXPECT_TRUE(store_->bind_volume(MakeVolume(longest)).ok());
  for (const std::string& bad : {std::string(kMaxVolumeNameLength + 1, 'a'), std::string("a/b"),
                                std::string(".hidden"), std::string("sp ace")}) {
    Result<BindOutcome> r = store_->bind_volume(MakeVolume(bad));
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << bad;
    EXPECT_EQ(r.status().message(), validate_volume_name(bad).message()) << bad;
    EXPECT_EQ(store_->get_volume(bad).status().code(), Code::kInvalidArgument) << bad;
  }
}

TEST_F(SqliteStoreTest, InvalidIdsAreRefused) {
  Status st = store_->add_tenant(MakeTenant("alice", static_cast<uid_t>(-1), 1));
  EXPECT_EQ(st.code(), Code::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("tenant \"alice\""));
  EXPECT_EQ(store_->add_tenant(MakeTenant("alice", 1, 1, {static_cast<gid_t>(-1)})).code(),
            Code::kInvalidArgument);
  VolumeBinding v = MakeVolume("data");
  v.present_gid = static_cast<gid_t>(-1);
  EXPECT_EQ(store_->bind_volume(v).status().code(), Code::kInvalidArgument);
}

TEST_F(SqliteStoreTest, WorldWritableOrBogusModeIsRefused) {
  VolumeBinding v = MakeVolume("data");
  v.mode = 0777;
  Result<BindOutcome> r = store_->bind_volume(v);
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("mode 0777 of volume \"data\" would make the volume "
                                              "world-writable"));
  v.mode = 010000;
  EXPECT_EQ(store_->bind_volume(v).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(store_->get_volume("data").status().code(), Code::kNotFound);
}

TEST_F(SqliteStoreTest, RelativeBackingPathIsRefused) {
  VolumeBinding v = MakeVolume("data");
  v.backing_path = "volumes/data";
  Result<BindOutcome> r = store_->bind_volume(v);
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("not absolute"));
}

TEST_F(SqliteStoreTest, EmptyMountIdIsRefused) {
  ASSERT_TRUE(store_->bind_volume(MakeVolume("data")).ok());
  EXPECT_EQ(store_->add_ref("data", "").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(store_->release_ref("data", "").status().code(), Code::kInvalidArgument);
}

// ---- volumes ------------------------------------------------------------------

TEST_F(SqliteStoreTest, VolumeRoundTripsEveryField) {
  VolumeBinding v = MakeVolume("data");
  v.identity.uid = 1234;
  v.identity.gid = 2345;
  v.identity.groups = {500, 7, 500};
  v.present_uid = 0;
  v.present_gid = 33;
  v.mode = 02750;
  v.backing_path = "/srv/shared/projects/x";
  v.external = true;
  v.cache = "auto";
  v.readonly = true;
  v.options = {{"tenant", "alice"}, {"path", "/srv/shared/projects/x"}, {"uid", "0"}};
  Result<BindOutcome> r = store_->bind_volume(v);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, BindOutcome::kCreated);

  Result<VolumeBinding> got = store_->get_volume("data");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->name, "data");
  EXPECT_EQ(got->tenant, "alice");
  EXPECT_EQ(got->identity.uid, 1234u);
  EXPECT_EQ(got->identity.gid, 2345u);
  EXPECT_EQ(got->identity.groups, (std::vector<gid_t>{7, 500}));
  EXPECT_EQ(got->present_uid, 0u);
  EXPECT_EQ(got->present_gid, 33u);
  EXPECT_EQ(got->mode, 02750u);
  EXPECT_EQ(got->backing_path, "/srv/shared/projects/x");
  EXPECT_TRUE(got->external);
  EXPECT_EQ(got->cache, "auto");
  EXPECT_TRUE(got->readonly);
  EXPECT_EQ(got->options, v.options);
  EXPECT_GT(got->created_at, 1600000000);
}

TEST_F(SqliteStoreTest, RebindWithSameOptionsIsANoOp) {
  ASSERT_TRUE(store_->bind_volume(MakeVolume("data")).ok());
  VolumeBinding again = MakeVolume("data");
  again.backing_path = "/elsewhere";  // not an option: the stored binding wins
  Result<BindOutcome> r = store_->bind_volume(again);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, BindOutcome::kAlreadyBound);
  EXPECT_EQ(store_->get_volume("data")->backing_path, "/var/lib/tenantfs/volumes/data");
  EXPECT_EQ(store_->list_volumes()->size(), 1u);
}

TEST_F(SqliteStoreTest, RebindWithDifferentOptionNamesIt) {
  ASSERT_TRUE(store_->bind_volume(MakeVolume("data", "alice")).ok());
  Result<BindOutcome> r = store_->bind_volume(MakeVolume("data", "bob"));
  EXPECT_EQ(r.status().code(), Code::kAlreadyExists);
  EXPECT_EQ(r.status().message(),
            "volume \"data\" already exists with tenant=alice; it cannot be re-created with "
            "tenant=bob: a binding never changes, so use the same options, or remove the volume "
            "first with \"docker volume rm data\"");
  EXPECT_EQ(store_->get_volume("data")->tenant, "alice");
}

TEST_F(SqliteStoreTest, RebindWithAnAddedOrDroppedOptionNamesIt) {
  ASSERT_TRUE(store_->bind_volume(MakeVolume("data")).ok());
  VolumeBinding more = MakeVolume("data");
  more.options["uid"] = "0";
  Result<BindOutcome> r = store_->bind_volume(more);
  EXPECT_EQ(r.status().code(), Code::kAlreadyExists);
  EXPECT_EQ(r.status().message(),
            "volume \"data\" already exists without uid; it cannot be re-created with uid=0: "
            "a binding never changes, so use the same options, or remove the volume first with "
            "\"docker volume rm data\"");

  VolumeBinding fewer = MakeVolume("data");
  fewer.options.clear();
  r = store_->bind_volume(fewer);
  EXPECT_EQ(r.status().code(), Code::kAlreadyExists);
  EXPECT_EQ(r.status().message(),
            "volume \"data\" already exists with tenant=alice; it cannot be re-created without "
            "tenant: a binding never changes, so use the same options, or remove the volume "
            "first with \"docker volume rm data\"");
}

TEST_F(SqliteStoreTest, RebindNamesTheFirstDifferingOptionInNameOrder) {
  VolumeBinding v = MakeVolume("data");
  v.options = {{"cache", "strict"}, {"mode", "0700"}, {"tenant", "alice"}};
  ASSERT_TRUE(store_->bind_volume(v).ok());
  v.options = {{"cache", "strict"}, {"mode", "0750"}, {"tenant", "bob"}};
  Result<BindOutcome> r = store_->bind_volume(v);
  EXPECT_EQ(r.status().code(), Code::kAlreadyExists);
  EXPECT_THAT(r.status().message(),
              HasSubstr("with mode=0700; it cannot be re-created with mode=0750"));
}

TEST_F(SqliteStoreTest, InvalidUtf8OptionIsRefused) {
  VolumeBinding v = MakeVolume("data");
  v.options["label"] = "\xff\xfe";
  Result<BindOutcome> r = store_->bind_volume(v);
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("UTF-8"));
}

TEST_F(SqliteStoreTest, VolumesListInNameOrder) {
  for (const char* n : {"zeta", "alpha", "mid"})
    ASSERT_TRUE(store_->bind_volume(MakeVolume(n)).ok());
  Result<std::vector<VolumeBinding>> list = store_->list_volumes();
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  ASSERT_EQ(list->size(), 3u);
  EXPECT_EQ((*list)[0].name, "alpha");
  EXPECT_EQ((*list)[1].name, "mid");
  EXPECT_EQ((*list)[2].name, "zeta");
  EXPECT_EQ((*list)[2].options.at("tenant"), "alice");
}

TEST_F(SqliteStoreTest, VolumeNamesAreEveryVolumeInNameOrder) {
  Result<std::vector<std::string>> empty = store_->list_volume_names();
  ASSERT_TRUE(empty.ok()) << empty.status().ToString();
  EXPECT_TRUE(empty->empty());

  ASSERT_TRUE(store_->add_tenant(MakeTenant("alice", 1000, 1000)).ok());
  ASSERT_TRUE(store_->bind_volume(MakeVolume("web", "alice")).ok());
  // A tenant from the host's passwd file: not in the registry.
  ASSERT_TRUE(store_->bind_volume(MakeVolume("backup", "hostuser")).ok());
  VolumeBinding shared = MakeVolume("shared");
  shared.external = true;
  shared.backing_path = "/srv/shared";
  shared.options["path"] = "/srv/shared";
  ASSERT_TRUE(store_->bind_volume(shared).ok());
  ASSERT_TRUE(store_->bind_volume(MakeVolume("Web-2")).ok());  // uppercase sorts first
  ASSERT_TRUE(store_->add_ref("web", "c1").ok());
  ASSERT_TRUE(store_->add_ref("web", "c2").ok());

  const std::vector<std::string> want = {"Web-2", "backup", "shared", "web"};
  EXPECT_EQ(*store_->list_volume_names(), want);
  Result<std::vector<VolumeBinding>> bindings = store_->list_volumes();
  ASSERT_TRUE(bindings.ok()) << bindings.status().ToString();
  std::vector<std::string> from_bindings;
  for (const VolumeBinding& v : *bindings) from_bindings.push_back(v.name);
  EXPECT_EQ(from_bindings, want) << "both listings agree";

  ASSERT_TRUE(store_->remove_volume("backup").ok());
  EXPECT_EQ(*store_->list_volume_names(), (std::vector<std::string>{"Web-2", "shared", "web"}));
  Reopen();
  EXPECT_EQ(*store_->list_volume_names(), (std::vector<std::string>{"Web-2", "shared", "web"}));
}

TEST_F(SqliteStoreTest, OptionsComeBackExactlyAsGiven) {
  VolumeBinding v = MakeVolume("data");
  v.options = {{"tenant", "alice"},
               {"label", "quote \" backslash \\ slash / tab-free"},
               {"path", "/srv/caf\u00e9/\u65e5\u672c"},
               {"empty", ""},
               {"emoji", "\U0001F600"}};
  ASSERT_TRUE(store_->bind_volume(v).ok());
  ASSERT_TRUE(store_->bind_volume(MakeVolume("other")).ok());
  EXPECT_EQ(store_->get_volume("data")->options, v.options);
  Result<std::vector<VolumeBinding>> list = store_->list_volumes();
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].options, v.options);
  EXPECT_EQ((*list)[1].options, (std::map<std::string, std::string>{{"tenant", "alice"}}));
  // The stored options are what re-binding compares: still a no-op.
  EXPECT_EQ(*store_->bind_volume(v), BindOutcome::kAlreadyBound);
}

TEST_F(SqliteStoreTest, UnknownVolumeIsNotFoundEverywhere) {
  Result<VolumeBinding> v = store_->get_volume("ghost");
  EXPECT_EQ(v.status().code(), Code::kNotFound);
  EXPECT_THAT(v.status().message(), HasSubstr("volume \"ghost\" does not exist"));
  EXPECT_EQ(store_->remove_volume("ghost").code(), Code::kNotFound);
  EXPECT_EQ(store_->add_ref("ghost", "id1").status().code(), Code::kNotFound);
  EXPECT_EQ(store_->release_ref("ghost", "id1").status().code(), Code::kNotFound);
  EXPECT_EQ(store_->refs("ghost").status().code(), Code::kNotFound);
}

TEST_F(SqliteStoreTest, RemoveVolumeIsRefusedWhileReferenced) {
  ASSERT_TRUE(store_->bind_volume(MakeVolume("data")).ok());
  ASSERT_TRUE(store_->add_ref("data", "c1").ok());
  ASSERT_TRUE(store_->add_ref("data", "c2").ok());
  Status st = store_->remove_volume("data");
  EXPECT_EQ(st.code(), Code::kFailedPrecondition);
  EXPECT_THAT(st.message(), HasSubstr("volume \"data\" is in use (2 mount references)"));
  EXPECT_THAT(st.message(), HasSubstr("docker ps -a --filter volume=data"));
  EXPECT_TRUE(store_->get_volume("data").ok());

  ASSERT_EQ(*store_->release_ref("data", "c1"), 1);
  ASSERT_EQ(*store_->release_ref("data", "c2"), 0);
  EXPECT_TRUE(store_->remove_volume("data").ok());
  EXPECT_EQ(store_->get_volume("data").status().code(), Code::kNotFound);
  // The name is free again, with new options.
  Result<BindOutcome> r = store_->bind_volume(MakeVolume("data", "bob"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, BindOutcome::kCreated);
}

// ---- mount references -----------------------------------------------------------

TEST_F(SqliteStoreTest, RefsCountPerIdAndReturnTheTotal) {
  ASSERT_TRUE(store_->bind_volume(MakeVolume("data")).ok());
  EXPECT_EQ(*store_->add_ref("data", "a"), 1);
  EXPECT_EQ(*store_->add_ref("data", "a"), 2);  // Docker reuses IDs
  EXPECT_EQ(*store_->add_ref("data", "b"), 3);
  Result<VolumeRefs> refs = store_->refs("data");
  ASSERT_TRUE(refs.ok()) << refs.status().ToString();
  EXPECT_EQ(refs->volume, "data");
  EXPECT_EQ(refs->ids, (std::map<std::string, int64_t>{{"a", 2}, {"b", 1}}));
  EXPECT_EQ(refs->total(), 3);
}

TEST_F(SqliteStoreTest, ReleaseNeverGoesBelowZeroAndAcceptsUnknownIds) {
  ASSERT_TRUE(store_->bind_volume(MakeVolume("data")).ok());
  ASSERT_EQ(*store_->add_ref("data", "a"), 1);
  ASSERT_EQ(*store_->add_ref("data", "b"), 2);
  EXPECT_EQ(*store_->release_ref("data", "never-mounted"), 2);
  EXPECT_EQ(*store_->release_ref("data", "a"), 1);
  EXPECT_EQ(*store_->release_ref("data", "a"), 1);  // a is already at zero
  EXPECT_EQ(*store_->release_ref("data", "b"), 0);
  EXPECT_EQ(*store_->release_ref("data", "b"), 0);
  EXPECT_TRUE(store_->refs("data")->ids.empty());
  EXPECT_EQ(*store_->add_ref("data", "a"), 1);  // counting restarts from zero
}

TEST_F(SqliteStoreTest, ReferencedVolumesListsOnlyVolumesInUse) {
  for (const char* n : {"a", "b", "c"}) ASSERT_TRUE(store_->bind_volume(MakeVolume(n)).ok());
  ASSERT_TRUE(store_->add_ref("c", "x").ok());
  ASSERT_TRUE(store_->add_ref("c", "y").ok());
  ASSERT_TRUE(store_->add_ref("c", "y").ok());
  ASSERT_TRUE(store_->add_ref("a", "z").ok());
  ASSERT_TRUE(store_->add_ref("b", "w").ok());
  ASSERT_TRUE(store_->release_ref("b", "w").ok());
  Result<std::vector<VolumeRefs>> in_use = store_->referenced_volumes();
  ASSERT_TRUE(in_use.ok()) << in_use.status().ToString();
  ASSERT_EQ(in_use->size(), 2u);
  EXPECT_EQ((*in_use)[0].volume, "a");
  EXPECT_EQ((*in_use)[0].ids, (std::map<std::string, int64_t>{{"z", 1}}));
  EXPECT_EQ((*in_use)[1].volume, "c");
  EXPECT_EQ((*in_use)[1].ids, (std::map<std::string, int64_t>{{"x", 1}, {"y", 2}}));
}

TEST_F(SqliteStoreTest, ConcurrentThreadsLeaveExactCounts) {
  ASSERT_TRUE(store_->bind_volume(MakeVolume("data")).ok());
  constexpr int kThreads = 8;
  constexpr int kRounds = 100;
  std::vector<std::thread> threads;
  std::vector<std::string> errors(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string own = Numbered("own-", t);
      for (int i = 0; i < kRounds; ++i) {
        for (const std::string& id : {std::string("shared"), own}) {
          Result<int64_t> r = store_->add_ref("data", id);
          if (!r.ok()) errors[t] = r.status().ToString();
        }
        if (i % 2 == 0) {
          Result<int64_t> r = store_->release_ref("data", "shared");
          if (!r.ok()) errors[t] = r.status().ToString();
        }
        // Readers run alongside the writers.
        if (!store_->refs("data").ok()) errors[t] = "refs failed";
      }
    });
  }
  for (auto& th : threads) th.join();
  for (const auto& e : errors) EXPECT_EQ(e, "");
  Result<VolumeRefs> refs = store_->refs("data");
  ASSERT_TRUE(refs.ok());
  EXPECT_EQ(refs->ids.at("shared"), kThreads * kRounds / 2);
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(refs->ids.at(Numbered("own-", t)), kRounds);
  EXPECT_EQ(refs->total(), kThreads * kRounds / 2 + kThreads * kRounds);
}

// ---- persistence and other processes ------------------------------------------

TEST_F(SqliteStoreTest, ReopenKeepsEverything) {
  ASSERT_TRUE(store_->add_tenant(MakeTenant("alice", 1000, 1000, {10, 20})).ok());
  VolumeBinding v = MakeVolume("data");
  v.options["uid"] = "0";
  ASSERT_TRUE(store_->bind_volume(v).ok());
  ASSERT_TRUE(store_->add_ref("data", "m1").ok());
  ASSERT_TRUE(store_->add_ref("data", "m1").ok());
  Reopen();
  Result<Tenant> t = store_->get_tenant("alice");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->identity.groups, (std::vector<gid_t>{10, 20}));
  Result<VolumeBinding> got = store_->get_volume("data");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->options, v.options);
  EXPECT_EQ(store_->refs("data")->ids, (std::map<std::string, int64_t>{{"m1", 2}}));
  EXPECT_EQ(store_->referenced_volumes()->size(), 1u);
}

// SQLite forbids carrying an open connection across fork(): the child would
// inherit the parent's lock bookkeeping without its locks. So the parent
// closes its store, forks, and reopens; the child opens its own connection,
// exactly as another tenantfs process would.
class SqliteStoreProcessTest : public SqliteStoreTest {
 protected:
  // Runs `body` in a child process whose exit status is body's return value.
  template <typename F>
  pid_t ForkChild(F body) {
    store_.reset();
    const pid_t pid = ::fork();
    if (pid == 0) ::_exit(body());
    Reopen();
    return pid;
  }

  static int Wait(pid_t pid) {
    int status = 0;
    if (pid < 0 || ::waitpid(pid, &status, 0) != pid) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
};

TEST_F(SqliteStoreProcessTest, SecondProcessSeesCommittedDataAndItsWritesAreSeen) {
  ASSERT_TRUE(store_->add_tenant(MakeTenant("alice", 1000, 1000)).ok());
  ASSERT_TRUE(store_->bind_volume(MakeVolume("data")).ok());
  ASSERT_EQ(*store_->add_ref("data", "parent"), 1);

  // The child starts once the parent holds its connection open again, so
  // both processes have the file open while the child reads and writes.
  int go[2];
  ASSERT_EQ(::pipe(go), 0);
  const pid_t pid = ForkChild([&] {
    ::close(go[1]);
    char byte = 0;
    if (::read(go[0], &byte, 1) != 1) return 9;
    Result<std::unique_ptr<SqliteStore>> other = SqliteStore::Open(db_path_.string());
    if (!other.ok()) return 10;
    SqliteStore& s = **other;
    if (!s.get_tenant("alice").ok()) return 11;
    Result<VolumeRefs> refs = s.refs("data");
    if (!refs.ok() || refs->ids != std::map<std::string, int64_t>{{"parent", 1}}) return 12;
    Result<int64_t> total = s.add_ref("data", "child");
    if (!total.ok() || *total != 2) return 13;
    if (!s.bind_volume(MakeVolume("from-child", "alice")).ok()) return 14;
    return 0;
  });
  ::close(go[0]);
  ASSERT_TRUE(store_ != nullptr);
  ASSERT_TRUE(store_->get_volume("data").ok());  // the parent's connection is live
  ASSERT_EQ(::write(go[1], "x", 1), 1);
  ::close(go[1]);
  const int rc = Wait(pid);
  ASSERT_EQ(rc, 0) << "the child process failed at step " << rc;

  EXPECT_EQ(store_->refs("data")->ids,
            (std::map<std::string, int64_t>{{"child", 1}, {"parent", 1}}));
  EXPECT_TRUE(store_->get_volume("from-child").ok());
  EXPECT_EQ(store_->remove_tenant("alice").code(), Code::kFailedPrecondition);
}

TEST_F(SqliteStoreProcessTest, ConcurrentProcessesLeaveExactCounts) {
  ASSERT_TRUE(store_->bind_volume(MakeVolume("data")).ok());
  constexpr int kProcesses = 3;
  constexpr int kRounds = 100;
  std::vector<pid_t> children;
  for (int p = 0; p < kProcesses; ++p) {
    children.push_back(ForkChild([&, p] {
      Result<std::unique_ptr<SqliteStore>> other = SqliteStore::Open(db_path_.string());
      if (!other.ok()) return 10;
      for (int i = 0; i < kRounds; ++i) {
        if (!(*other)->add_ref("data", "shared").ok()) return 11;
        if (!(*other)->add_ref("data", Numbered("p", p)).ok()) return 12;
        if (i % 2 == 0 && !(*other)->release_ref("data", "shared").ok()) return 13;
      }
      return 0;
    }));
  }
  // The parent writes through its own connection at the same time.
  for (int i = 0; i < kRounds; ++i) ASSERT_TRUE(store_->add_ref("data", "parent").ok());
  for (pid_t pid : children) EXPECT_EQ(Wait(pid), 0);
  Result<VolumeRefs> refs = store_->refs("data");
  ASSERT_TRUE(refs.ok());
  EXPECT_EQ(refs->ids.at("shared"), kProcesses * kRounds / 2);
  EXPECT_EQ(refs->ids.at("parent"), kRounds);
  for (int p = 0; p < kProcesses; ++p) EXPECT_EQ(refs->ids.at(Numbered("p", p)), kRounds);
}

// ---- authorization policy
// ---------------------------------------------------------

TEST_F(SqliteStoreTest, GrantsAreKeptPerTenantAndUserAndSurviveReopen) {
  ASSERT_TRUE(store_->allow_user("alice", "alice").ok());
  ASSERT_TRUE(store_->allow_user("alice", "carol").ok());
  ASSERT_TRUE(store_->allow_user("alice", "carol").ok());  // again: a no-op
  ASSERT_TRUE(store_->allow_user("bob", "bob").ok());
  Reopen();
  EXPECT_TRUE(*store_->user_allowed("alice", "carol"));
  EXPECT_FALSE(*store_->user_allowed("alice", "bob"));
  EXPECT_FALSE(*store_->user_allowed("bob", "alice"));
  Result<std::vector<AccessGrant>> grants = store_->list_grants();
  ASSERT_TRUE(grants.ok());
  std::vector<std::string> pairs;
  for (const AccessGrant& g : *grants) {
    pairs.push_back(g.tenant + "/" + g.user);
    EXPECT_GT(g.created_at, 0);
  }
  EXPECT_EQ(pairs, (std::vector<std::string>{"alice/alice", "alice/carol", "bob/bob"}));
}

TEST_F(SqliteStoreTest, DenyRemovesOneGrantAndSaysWhenThereWasNone) {
  ASSERT_TRUE(store_->allow_user("alice", "carol").ok());
  ASSERT_TRUE(store_->deny_user("alice", "carol").ok());
  EXPECT_FALSE(*store_->user_allowed("alice", "carol"));
  Status again = store_->deny_user("alice", "carol");
  EXPECT_EQ(again.code(), Code::kNotFound);
  EXPECT_THAT(again.message(), HasSubstr("user \"carol\" is not allowed for tenant \"alice\""));
}

TEST_F(SqliteStoreTest, RemovingATenantDropsItsGrants) {
  ASSERT_TRUE(store_->add_tenant(MakeTenant("alice", 1000, 1000)).ok());
  ASSERT_TRUE(store_->allow_user("alice", "carol").ok());
  ASSERT_TRUE(store_->remove_tenant("alice").ok());
  ASSERT_TRUE(store_->add_tenant(MakeTenant("alice", 2000, 2000)).ok());
  EXPECT_FALSE(*store_->user_allowed("alice", "carol"));
}

TEST_F(SqliteStoreTest, AdminsAreAddedOnceAndRemovedByName) {
  ASSERT_TRUE(store_->add_admin("root-ops").ok());
  ASSERT_TRUE(store_->add_admin("root-ops").ok());
  ASSERT_TRUE(store_->add_admin("audit").ok());
  EXPECT_TRUE(*store_->is_admin("root-ops"));
  EXPECT_FALSE(*store_->is_admin("alice"));
  EXPECT_EQ(*store_->list_admins(), (std::vector<std::string>{"audit", "root-ops"}));
  ASSERT_TRUE(store_->remove_admin("root-ops").ok());
  EXPECT_FALSE(*store_->is_admin("root-ops"));
  EXPECT_EQ(store_->remove_admin("root-ops").code(), Code::kNotFound);
}

TEST_F(SqliteStoreTest, PolicyNamesAreCheckedLikeOtherNames) {
  EXPECT_EQ(store_->allow_user("alice", "").code(), Code::kInvalidArgument);
  EXPECT_EQ(store_->allow_user("alice", "evil\nline").code(), Code::kInvalidArgument);
  EXPECT_EQ(store_->add_admin(std::string(300, 'a')).code(), Code::kInvalidArgument);
  EXPECT_EQ(store_->is_admin("").status().code(), Code::kInvalidArgument);
}

// ---- schema
// -------------------------------------------------------------------

TEST(SqliteStoreSchemaTest, VersionOneStoreGainsThePolicyTablesAndKeepsItsData) {
  TempDir dir;
  const fs::path db = dir.path() / "store.db";
  {
    Result<std::unique_ptr<SqliteStore>> s = SqliteStore::Open(db.string());
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    ASSERT_TRUE((*s)->bind_volume(MakeVolume("data")).ok());
  }
  // What a store written by schema version 1 looks like.
  RawSql(db, "DROP TABLE access_grants");
  RawSql(db, "DROP TABLE admins");
  RawSql(db, "PRAGMA user_version = 1");
  Result<std::unique_ptr<SqliteStore>> s = SqliteStore::Open(db.string());
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_TRUE((*s)->get_volume("data").ok());
  EXPECT_TRUE((*s)->allow_user("alice", "alice").ok());
  EXPECT_TRUE((*s)->add_admin("ops").ok());
  EXPECT_EQ(RawSql(db, "PRAGMA user_version"), "2");
}

TEST(SqliteStoreSchemaTest, MigratesAnEmptyFileAndSetsTheVersion) {
  TempDir dir;
  const fs::path db = dir.path() / "store.db";
  { std::ofstream(db.string()).flush(); }
  ASSERT_EQ(fs::file_size(db), 0u);
  {
    Result<std::unique_ptr<SqliteStore>> s = SqliteStore::Open(db.string());
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    ASSERT_TRUE((*s)->add_tenant(MakeTenant("alice", 1, 1)).ok());
  }
  EXPECT_EQ(RawSql(db, "PRAGMA user_version"), std::to_string(SqliteStore::kSchemaVersion));
  EXPECT_EQ(RawSql(db, "PRAGMA application_id"), std::to_string(SqliteStore::kApplicationId));
  EXPECT_EQ(RawSql(db, "PRAGMA journal_mode"), "wal");
  EXPECT_EQ(RawSql(db,
                   "SELECT group_concat(name) FROM (SELECT name FROM sqlite_schema "
                   "WHERE type = 'table' ORDER BY name)"),
            "access_grants,admins,mount_refs,tenants,volumes");
  EXPECT_EQ(RawSql(db, "SELECT name FROM tenants"), "alice");
}

TEST(SqliteStoreSchemaTest, ReferencesCannotOutliveTheirVolume) {
  // Even a tool editing the file by hand cannot orphan a mount reference.
  TempDir dir;
  const fs::path db = dir.path() / "store.db";
  {
    Result<std::unique_ptr<SqliteStore>> s = SqliteStore::Open(db.string());
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    ASSERT_TRUE((*s)->bind_volume(MakeVolume("data")).ok());
    ASSERT_TRUE((*s)->add_ref("data", "m").ok());
  }
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(db.c_str(), &raw), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(raw, "PRAGMA foreign_keys = ON", nullptr, nullptr, nullptr), SQLITE_OK);
  EXPECT_EQ(sqlite3_exec(raw, "DELETE FROM volumes", nullptr, nullptr, nullptr) & 0xff,
            SQLITE_CONSTRAINT);
  sqlite3_close(raw);
}

TEST(SqliteStoreSchemaTest, NewerSchemaIsRefused) {
  TempDir dir;
  const fs::path db = dir.path() / "store.db";
  ASSERT_TRUE(SqliteStore::Open(db.string()).ok());
  RawSql(db, "PRAGMA user_version = 99");
  Result<std::unique_ptr<SqliteStore>> s = SqliteStore::Open(db.string());
  EXPECT_EQ(s.status().code(), Code::kFailedPrecondition);
  EXPECT_THAT(s.status().message(), HasSubstr(db.string()));
  EXPECT_THAT(s.status().message(), HasSubstr("schema version 99, newer than this tenantfs"));
}

TEST(SqliteStoreSchemaTest, AnotherApplicationsDatabaseIsRefused) {
  TempDir dir;
  const fs::path db = dir.path() / "store.db";
  RawSql(db, "CREATE TABLE photos (id INTEGER PRIMARY KEY, path TEXT)");
  ::chmod(db.c_str(), 0600);
  Result<std::unique_ptr<SqliteStore>> s = SqliteStore::Open(db.string());
  EXPECT_EQ(s.status().code(), Code::kCorruption);
  EXPECT_THAT(s.status().message(), HasSubstr("store file \"" + db.string() + "\""));
  EXPECT_THAT(s.status().message(), HasSubstr("another application"));
  // The other application's data is left alone.
  EXPECT_EQ(RawSql(db, "SELECT count(*) FROM photos"), "0");
  EXPECT_EQ(RawSql(db, "PRAGMA user_version"), "0");
}

// ---- damaged files --------------------------------------------------------------

TEST(SqliteStoreDamageTest, NonSqliteFileGivesAClearError) {
  TempDir dir;
  const fs::path db = dir.path() / "store.db";
  {
    std::ofstream out(db.string());
    for (int i = 0; i < 200; ++i) out << "this is a text file, not a database\n";
  }
  Result<std::unique_ptr<SqliteStore>> s = SqliteStore::Open(db.string());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), Code::kCorruption);
  EXPECT_THAT(s.status().message(), HasSubstr("store file \"" + db.string() + "\""));
  EXPECT_THAT(s.status().message(), HasSubstr("not a tenantfs store"));
  EXPECT_THAT(s.status().message(), HasSubstr("move the file aside"));
  // The file is not altered by the failed open.
  EXPECT_EQ(fs::file_size(db), 200u * 36u);
}

// Fills `bytes` bytes at `offset` of `path` with garbage.
void Scribble(const fs::path& path, off_t offset, size_t bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  std::string junk(bytes, '\0');
  for (size_t i = 0; i < bytes; ++i) junk[i] = static_cast<char>((i * 7919 + 13) & 0xff);
  ASSERT_EQ(::pwrite(fd, junk.data(), junk.size(), offset), static_cast<ssize_t>(bytes));
  ::close(fd);
}

class SqliteStoreCorruptionTest : public ::testing::TestWithParam<off_t> {};

TEST_P(SqliteStoreCorruptionTest, DamagedStoreGivesAClearError) {
  TempDir dir;
  const fs::path db = dir.path() / "store.db";
  {
    Result<std::unique_ptr<SqliteStore>> s = SqliteStore::Open(db.string());
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    ASSERT_TRUE((*s)->add_tenant(MakeTenant("alice", 1, 1)).ok());
    for (int i = 0; i < 50; ++i) {
      ASSERT_TRUE((*s)->bind_volume(MakeVolume("v" + std::to_string(i))).ok());
    }
  }
  // Closing the last connection checkpoints the WAL into the main file.
  ASSERT_FALSE(fs::exists(db.string() + "-wal"));
  const off_t page = std::stoll(RawSql(db, "PRAGMA page_size"));
  ASSERT_GT(static_cast<off_t>(fs::file_size(db)), GetParam() * page + page);
  // Page 1 past the 100-byte file header holds the schema; later pages hold
  // rows and indexes.
  const off_t start = GetParam() == 0 ? 100 : GetParam() * page;
  Scribble(db, start, static_cast<size_t>(page - (start % page)));

  Result<std::unique_ptr<SqliteStore>> s = SqliteStore::Open(db.string());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), Code::kCorruption) << s.status().ToString();
  EXPECT_THAT(s.status().message(), HasSubstr("store file \"" + db.string() + "\" is damaged"));
  EXPECT_THAT(s.status().message(), HasSubstr("restore it from a backup"));
}

INSTANTIATE_TEST_SUITE_P(Pages, SqliteStoreCorruptionTest, ::testing::Values(0, 1, 2, 3));

TEST_F(SqliteStoreTest, HandEditedRowGivesAClearErrorNotACrash) {
  ASSERT_TRUE(store_->bind_volume(MakeVolume("data")).ok());
  ASSERT_TRUE(store_->bind_volume(MakeVolume("good")).ok());
  ASSERT_TRUE(store_->add_tenant(MakeTenant("alice", 1, 1, {5})).ok());
  EXPECT_EQ(RawSql(db_path_, "UPDATE volumes SET options = 'not json' WHERE name = 'data'"), "");
  EXPECT_EQ(RawSql(db_path_, "UPDATE tenants SET groups = '5,x'"), "");

  Result<VolumeBinding> v = store_->get_volume("data");
  EXPECT_EQ(v.status().code(), Code::kCorruption);
  EXPECT_THAT(v.status().message(), HasSubstr("store file \"" + db_path_.string() + "\""));
  EXPECT_THAT(v.status().message(), HasSubstr("unreadable options of volume \"data\""));
  EXPECT_EQ(store_->list_volumes().status().code(), Code::kCorruption);
  EXPECT_EQ(store_->bind_volume(MakeVolume("data")).status().code(), Code::kCorruption);
  EXPECT_TRUE(store_->get_volume("good").ok()) << "other rows stay readable";

  Result<Tenant> t = store_->get_tenant("alice");
  EXPECT_EQ(t.status().code(), Code::kCorruption);
  EXPECT_THAT(t.status().message(), HasSubstr("unreadable groups of tenant \"alice\""));
}

TEST_F(SqliteStoreTest, OptionsThatAreNotAnObjectOfStringsAreReportedDamaged) {
  ASSERT_TRUE(store_->bind_volume(MakeVolume("data")).ok());
  for (const char* stored : {"", "null", "[]", "\"a\"", "{\"a\":1}", "{\"a\":null}",
                             "{\"a\":[\"b\"]}", "{\"a\":{\"b\":\"c\"}}", "{\"a\":\"b\"} x",
                             "{\"a\":\"b\"", "{\"a\":\"b\"}{}"}) {
    SCOPED_TRACE(stored);
    std::string quoted;
    for (char c : std::string(stored)) quoted += c == '\'' ? "''" : std::string(1, c);
    ASSERT_EQ(RawSql(db_path_, "UPDATE volumes SET options = '" + quoted + "'"), "");
    Result<VolumeBinding> v = store_->get_volume("data");
    EXPECT_EQ(v.status().code(), Code::kCorruption);
    EXPECT_THAT(v.status().message(), HasSubstr("unreadable options of volume \"data\""));
    EXPECT_EQ(store_->list_volumes().status().code(), Code::kCorruption);
    // Docker's List reads names only, so it keeps working; Get names the damage.
    EXPECT_EQ(*store_->list_volume_names(), std::vector<std::string>{"data"});
  }
  ASSERT_EQ(RawSql(db_path_, "UPDATE volumes SET options = ' { } '"), "");
  EXPECT_TRUE(store_->get_volume("data")->options.empty()) << "whitespace and {} are JSON";
}

// ---- files and permissions ------------------------------------------------------

TEST(SqliteStoreFilesTest, CreatesA0700DirectoryAnd0600FilesWhateverTheUmask) {
  TempDir dir;
  const fs::path state = dir.path() / "a" / "b";
  const fs::path db = state / "store.db";
  const mode_t old_umask = ::umask(0);
  Result<std::unique_ptr<SqliteStore>> s = SqliteStore::Open(db.string());
  ::umask(old_umask);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  // Writing and reading after Open: the WAL and shared-memory files exist.
  ASSERT_TRUE((*s)->bind_volume(MakeVolume("data")).ok());
  ASSERT_TRUE((*s)->list_volumes().ok());
  EXPECT_EQ(ModeOf(dir.path() / "a"), 0700u);
  EXPECT_EQ(ModeOf(state), 0700u);
  EXPECT_EQ(ModeOf(db), 0600u);
  ASSERT_TRUE(fs::exists(db.string() + "-wal"));
  ASSERT_TRUE(fs::exists(db.string() + "-shm"));
  EXPECT_EQ(ModeOf(db.string() + "-wal"), 0600u);
  EXPECT_EQ(ModeOf(db.string() + "-shm"), 0600u);
  EXPECT_EQ(::umask(old_umask), old_umask) << "Open must restore the umask";
}

TEST(SqliteStoreFilesTest, OpenTightensAnExistingStoreFile) {
  TempDir dir;
  const fs::path db = dir.path() / "store.db";
  ASSERT_TRUE(SqliteStore::Open(db.string()).ok());
  ASSERT_EQ(::chmod(db.c_str(), 0644), 0);
  Result<std::unique_ptr<SqliteStore>> s = SqliteStore::Open(db.string());
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(ModeOf(db), 0600u);
}

TEST(SqliteStoreFilesTest, GroupOrWorldAccessibleDirectoryIsRefused) {
  TempDir dir;
  ASSERT_EQ(::chmod(dir.path().c_str(), 0755), 0);
  const fs::path db = dir.path() / "store.db";
  Result<std::unique_ptr<SqliteStore>> s = SqliteStore::Open(db.string());
  EXPECT_EQ(s.status().code(), Code::kFailedPrecondition);
  EXPECT_THAT(s.status().message(), HasSubstr("the store directory \"" + dir.path().string() +
                                              "\" can be accessed by group or others (mode 0755)"));
  EXPECT_THAT(s.status().message(), HasSubstr("chmod 700 " + dir.path().string()));
  EXPECT_FALSE(fs::exists(db)) << "nothing is created in a refused directory";
  EXPECT_EQ(ModeOf(dir.path()), 0755u) << "the directory is left as it was";
}

TEST(SqliteStoreFilesTest, DirectoryOfAnotherUserIsRefused) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to chown";
  TempDir dir;
  const fs::path state = dir.path() / "state";
  ASSERT_EQ(::mkdir(state.c_str(), 0700), 0);
  ASSERT_EQ(::chown(state.c_str(), 65534, 65534), 0);
  Result<std::unique_ptr<SqliteStore>> s = SqliteStore::Open((state / "store.db").string());
  EXPECT_EQ(s.status().code(), Code::kFailedPrecondition);
  EXPECT_THAT(s.status().message(), HasSubstr("is owned by uid 65534"));
}

TEST(SqliteStoreFilesTest, SymlinkedStoreFileIsRefused) {
  TempDir dir;
  const fs::path real = dir.path() / "real.db";
  const fs::path link = dir.path() / "store.db";
  ASSERT_TRUE(SqliteStore::Open(real.string()).ok());
  fs::create_symlink(real, link);
  Result<std::unique_ptr<SqliteStore>> s = SqliteStore::Open(link.string());
  EXPECT_EQ(s.status().code(), Code::kFailedPrecondition);
  EXPECT_THAT(s.status().message(), HasSubstr("is a symbolic link"));
}

TEST(SqliteStoreFilesTest, DirectoryInPlaceOfTheStoreFileIsRefused) {
  TempDir dir;
  const fs::path db = dir.path() / "store.db";
  ASSERT_EQ(::mkdir(db.c_str(), 0700), 0);
  Result<std::unique_ptr<SqliteStore>> s = SqliteStore::Open(db.string());
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.status().message(), HasSubstr(db.string()));
}

TEST(SqliteStoreFilesTest, EmptyPathIsRefused) {
  EXPECT_EQ(SqliteStore::Open("").status().code(), Code::kInvalidArgument);
}

// ---- scale --------------------------------------------------------------------

TEST(SqliteStoreScaleTest, ListsTenThousandVolumes) {
  // Written through the API on tmpfs when there is one: 10,000 synced
  // transactions on a disk would measure the disk, not the store.
  TempDir dir(fs::is_directory("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path());
  const fs::path db = dir.path() / "store.db";
  Result<std::unique_ptr<SqliteStore>> s = SqliteStore::Open(db.string());
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  constexpr int kVolumes = 10000;
  for (int i = 0; i < kVolumes; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "vol-%05d", i);
    VolumeBinding v = MakeVolume(name);
    v.options["mode"] = "0700";
    Result<BindOutcome> r = (*s)->bind_volume(v);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  }
  // Appended last but listed in name order.
  ASSERT_TRUE((*s)->bind_volume(MakeVolume("aaa-first")).ok());

  const auto start = std::chrono::steady_clock::now();
  Result<std::vector<VolumeBinding>> list = (*s)->list_volumes();
  const auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  ASSERT_EQ(list->size(), static_cast<size_t>(kVolumes + 1));
  EXPECT_EQ(list->front().name, "aaa-first");
  EXPECT_EQ((*list)[1].name, "vol-00000");
  EXPECT_EQ(list->back().name, "vol-09999");
  EXPECT_EQ(list->back().identity.groups, (std::vector<gid_t>{20, 100}));
  EXPECT_EQ(list->back().options.at("mode"), "0700");
  EXPECT_EQ(list->back().backing_path, "/var/lib/tenantfs/volumes/vol-09999");

  // What Docker's List reads.
  const auto names_start = std::chrono::steady_clock::now();
  Result<std::vector<std::string>> names = (*s)->list_volume_names();
  const auto names_elapsed = std::chrono::steady_clock::now() - names_start;
  ASSERT_TRUE(names.ok()) << names.status().ToString();
  ASSERT_EQ(names->size(), static_cast<size_t>(kVolumes + 1));
  EXPECT_EQ(names->front(), "aaa-first");
  EXPECT_EQ((*names)[1], "vol-00000");
  EXPECT_EQ((*names)[5000], "vol-04999");
  EXPECT_EQ(names->back(), "vol-09999");
  EXPECT_TRUE(std::is_sorted(names->begin(), names->end()));
  // Informational only: the product target is List of 10,000 volumes in
  // 100 ms end to end; these are the store's shares of List (names) and of
  // the admin listing (whole bindings).
  std::printf("list_volume_names over %d rows: %.2f ms\n", kVolumes + 1,
              std::chrono::duration<double, std::milli>(names_elapsed).count());
  std::printf("list_volumes over %d rows: %.2f ms\n", kVolumes + 1,
              std::chrono::duration<double, std::milli>(elapsed).count());
}

}  // namespace
}  // namespace tenantfs

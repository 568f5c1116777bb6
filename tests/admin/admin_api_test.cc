#include "admin/admin_api.h"

#include <gtest/gtest.h>

#include <string>

#include "http/unix_http_client.h"
#include "tests/admin/test_support.h"

namespace tenantfs {
namespace {

using nlohmann::json;
using testing::TempDir;
using testing::contains;

VolumeBinding binding_for(const std::string& volume, const Tenant& t) {
  VolumeBinding b;
  b.name = volume;
  b.tenant = t.name;
  b.identity = t.identity;
  b.present_uid = t.identity.uid;
  b.present_gid = t.identity.gid;
  b.mode = 0750;
  b.backing_path = "/var/lib/tenantfs/data/" + volume;
  b.options = {{"tenant", t.name}};
  return b;
}

class AdminApiTest : public ::testing::Test {
 protected:
  AdminReply call(const std::string& endpoint, const std::string& body) {
    return handle_admin_request(deps_, endpoint, body);
  }
  std::string err(const AdminReply& r) { return r.body.value("Err", std::string("<no Err>")); }

  TempDir dir_;
  std::unique_ptr<SqliteStore> store_ = testing::open_store(dir_);
  std::string passwd_ = dir_.write("passwd",
                                   "root:x:0:0::/root:/bin/sh\n"
                                   "hostuser:x:1200:1200::/:/bin/sh\n");
  TenantDirectory tenants_{*store_, passwd_, ""};
  AdminDeps deps_{store_.get(), &tenants_};
};

TEST_F(AdminApiTest, AddStoresTheTenantWithSortedGroups) {
  auto r = call("tenants/add",
                R"({"name":"alice","uid":1000,"gid":1000,"groups":[3001,3000,1000,3001]})");
  ASSERT_EQ(r.status, 200) << r.body.dump();
  EXPECT_EQ(r.body["tenant"]["name"], "alice");
  EXPECT_EQ(r.body["tenant"]["source"], "registry");

  auto stored = store_->get_tenant("alice");
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->identity.uid, 1000u);
  EXPECT_EQ(stored->identity.gid, 1000u);
  // Duplicates and the primary gid are dropped; the rest sorted.
  EXPECT_EQ(stored->identity.groups, (std::vector<gid_t>{3000, 3001}));
}

TEST_F(AdminApiTest, AddWithoutGroupsIsFine) {
  auto r = call("tenants/add", R"({"name":"bob","uid":1001,"gid":1001})");
  ASSERT_EQ(r.status, 200) << r.body.dump();
  EXPECT_TRUE(store_->get_tenant("bob")->identity.groups.empty());
}

TEST_F(AdminApiTest, AddRefusesRoot) {
  auto r = call("tenants/add", R"({"name":"alice","uid":0,"gid":1000})");
  EXPECT_EQ(r.status, 400);
  EXPECT_TRUE(contains(err(r), "uid 0 is root")) << err(r);
  r = call("tenants/add", R"({"name":"alice","uid":1000,"gid":0})");
  EXPECT_EQ(r.status, 400);
  EXPECT_TRUE(contains(err(r), "gid 0")) << err(r);
  r = call("tenants/add", R"({"name":"alice","uid":1000,"gid":1000,"groups":[0]})");
  EXPECT_EQ(r.status, 400);
  EXPECT_TRUE(contains(err(r), "supplementary group 0")) << err(r);
  EXPECT_EQ(store_->get_tenant("alice").status().code(), Code::kNotFound);
}

TEST_F(AdminApiTest, AddTwiceIsAConflictThatSaysWhatToDo) {
  ASSERT_EQ(call("tenants/add", R"({"name":"alice","uid":1000,"gid":1000})").status, 200);
  auto r = call("tenants/add", R"({"name":"alice","uid":2000,"gid":2000})");
  EXPECT_EQ(r.status, 409);
  EXPECT_TRUE(contains(err(r), "already exists")) << err(r);
  EXPECT_TRUE(contains(err(r), "tenantfs tenant rm alice")) << err(r);
  EXPECT_EQ(store_->get_tenant("alice")->identity.uid, 1000u);
}

TEST_F(AdminApiTest, BadBodiesAreErrorsNotCrashes) {
  struct Case {
    const char* body;
    const char* message;
  };
  const Case cases[] = {
      {"{", "not valid JSON"},
      {"[1,2]", "must be a JSON object"},
      {"\"alice\"", "must be a JSON object"},
      {R"({"uid":1000,"gid":1000})", "missing field \"name\""},
      {R"({"name":"alice","gid":1000})", "missing field \"uid\""},
      {R"({"name":"alice","uid":1000})", "missing field \"gid\""},
      {R"({"name":7,"uid":1000,"gid":1000})", "\"name\" must be a string"},
      {R"({"name":"alice","uid":"1000","gid":1000})", "\"uid\" must be a non-negative integer"},
      {R"({"name":"alice","uid":1000.5,"gid":1000})", "\"uid\" must be a non-negative integer"},
      {R"({"name":"alice","uid":-5,"gid":1000})", "out of range"},
      {R"({"name":"alice","uid":99999999999,"gid":1000})", "out of range"},
      {R"({"name":"alice","uid":4294967295,"gid":1000})", "out of range"},
      {R"({"name":"alice","uid":1000,"gid":1000,"groups":"5"})", "must be an array"},
      {R"({"name":"alice","uid":1000,"gid":1000,"groups":["5"]})", "each entry of \"groups\""},
      {R"({"name":"alice","uid":1000,"gid":1000,"shell":"/bin/sh"})", "unknown field \"shell\""},
      {R"({"name":"Alice","uid":1000,"gid":1000})", "invalid tenant name \"Alice\""},
  };
  for (const auto& c : cases) {
    auto r = call("tenants/add", c.body);
    EXPECT_EQ(r.status, 400) << c.body;
    EXPECT_TRUE(contains(err(r), c.message)) << c.body << " -> " << err(r);
  }
  auto list = store_->list_tenants();
  ASSERT_TRUE(list.ok());
  EXPECT_TRUE(list->empty());
}

TEST_F(AdminApiTest, DeeplyNestedJsonIsAnErrorNotACrash) {
  std::string body = std::string(20000, '[') + std::string(20000, ']');
  auto r = call("tenants/list", body);
  EXPECT_EQ(r.status, 400);
}

TEST_F(AdminApiTest, UnknownEndpointListsTheKnownOnes) {
  auto r = call("tenants/rename", "{}");
  EXPECT_EQ(r.status, 404);
  EXPECT_TRUE(contains(err(r), "unknown admin endpoint \"tenants/rename\"")) << err(r);
  EXPECT_TRUE(contains(err(r), "tenants/add, tenants/list")) << err(r);
}

TEST_F(AdminApiTest, ListShowsBothSourcesAndNeverRoot) {
  ASSERT_EQ(call("tenants/add", R"({"name":"alice","uid":1000,"gid":1000,"groups":[5]})").status,
            200);
  for (const char* body : {"", "{}", " \n"}) {
    auto r = call("tenants/list", body);
    ASSERT_EQ(r.status, 200) << r.body.dump();
    const json& t = r.body["tenants"];
    ASSERT_EQ(t.size(), 2u) << r.body.dump();
    EXPECT_EQ(t[0]["name"], "alice");
    EXPECT_EQ(t[0]["source"], "registry");
    EXPECT_EQ(t[0]["groups"], json::array({5}));
    EXPECT_EQ(t[1]["name"], "hostuser");
    EXPECT_EQ(t[1]["uid"], 1200);
    EXPECT_EQ(t[1]["source"], "passwd");
  }
}

TEST_F(AdminApiTest, RemoveDeletesAnUnusedTenant) {
  ASSERT_EQ(call("tenants/add", R"({"name":"alice","uid":1000,"gid":1000})").status, 200);
  auto r = call("tenants/remove", R"({"name":"alice"})");
  ASSERT_EQ(r.status, 200) << r.body.dump();
  EXPECT_EQ(r.body["removed"], "alice");
  EXPECT_EQ(store_->get_tenant("alice").status().code(), Code::kNotFound);
}

TEST_F(AdminApiTest, RemoveIsRefusedWhileVolumesAreBound) {
  Tenant alice{"alice", {1000, 1000, {}}, 0};
  ASSERT_TRUE(store_->add_tenant(alice).ok());
  ASSERT_TRUE(store_->bind_volume(binding_for("data1", alice)).ok());
  ASSERT_TRUE(store_->bind_volume(binding_for("data2", alice)).ok());

  auto r = call("tenants/remove", R"({"name":"alice"})");
  EXPECT_EQ(r.status, 409);
  EXPECT_TRUE(contains(err(r), "still has 2 volumes bound: data1, data2")) << err(r);
  EXPECT_TRUE(contains(err(r), "docker volume rm data1 data2")) << err(r);
  EXPECT_TRUE(store_->get_tenant("alice").ok());

  ASSERT_TRUE(store_->remove_volume("data1").ok());
  ASSERT_TRUE(store_->remove_volume("data2").ok());
  EXPECT_EQ(call("tenants/remove", R"({"name":"alice"})").status, 200);
}

TEST_F(AdminApiTest, RemoveOfAPasswdUserPointsToTheFile) {
  auto r = call("tenants/remove", R"({"name":"hostuser"})");
  EXPECT_EQ(r.status, 409);
  EXPECT_TRUE(contains(err(r), "comes from the host's passwd file")) << err(r);
}

TEST_F(AdminApiTest, RemoveOfAnUnknownTenantIsNotFound) {
  auto r = call("tenants/remove", R"({"name":"nobody2"})");
  EXPECT_EQ(r.status, 404);
  EXPECT_TRUE(contains(err(r), "unknown tenant \"nobody2\"")) << err(r);
  r = call("tenants/remove", R"({})");
  EXPECT_EQ(r.status, 400);
  EXPECT_TRUE(contains(err(r), "missing field \"name\"")) << err(r);
}

TEST_F(AdminApiTest, VolumeListShowsBindingsAndMountCounts) {
  Tenant alice{"alice", {1000, 1000, {3000}}, 0};
  ASSERT_TRUE(store_->add_tenant(alice).ok());
  ASSERT_TRUE(store_->bind_volume(binding_for("data", alice)).ok());
  ASSERT_TRUE(store_->bind_volume(binding_for("idle", alice)).ok());
  ASSERT_TRUE(store_->add_ref("data", "ctr-a").ok());
  ASSERT_TRUE(store_->add_ref("data", "ctr-a").ok());
  ASSERT_TRUE(store_->add_ref("data", "ctr-b").ok());

  auto r = call("volumes/list", "{}");
  ASSERT_EQ(r.status, 200) << r.body.dump();
  const json& v = r.body["volumes"];
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[0]["name"], "data");
  EXPECT_EQ(v[0]["tenant"], "alice");
  EXPECT_EQ(v[0]["uid"], 1000);
  EXPECT_EQ(v[0]["groups"], json::array({3000}));
  EXPECT_EQ(v[0]["mode"], "0750");
  EXPECT_EQ(v[0]["cache"], "strict");
  EXPECT_EQ(v[0]["path"], "/var/lib/tenantfs/data/data");
  EXPECT_EQ(v[0]["mounts"], 3);
  EXPECT_EQ(v[0]["mount_ids"], (json{{"ctr-a", 2}, {"ctr-b", 1}}));
  EXPECT_EQ(v[1]["name"], "idle");
  EXPECT_EQ(v[1]["mounts"], 0);
}

// The same handlers reached through httplib on a unix socket, as the CLI
// reaches them.
TEST_F(AdminApiTest, RoutesServeTheEndpointsOverAUnixSocket) {
  testing::TestUnixServer server(dir_.sub("admin.sock"));
  register_admin_routes(server, deps_);
  server.start();
  UnixHttpClient client(server.path());

  auto add = client.post("/tenantfs/v1/tenants/add", R"({"name":"alice","uid":1000,"gid":1000})");
  ASSERT_TRUE(add.ok()) << add.status().ToString();
  EXPECT_EQ(add->status, 200);
  EXPECT_EQ(add->headers["content-type"], "application/json");

  auto dup = client.post("/tenantfs/v1/tenants/add", R"({"name":"alice","uid":1000,"gid":1000})");
  ASSERT_TRUE(dup.ok());
  EXPECT_EQ(dup->status, 409);
  EXPECT_TRUE(contains(json::parse(dup->body)["Err"], "already exists")) << dup->body;

  auto list = client.post("/tenantfs/v1/tenants/list", "");
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(json::parse(list->body)["tenants"][0]["name"], "alice");

  auto unknown = client.post("/tenantfs/v1/nope", "{}");
  ASSERT_TRUE(unknown.ok());
  EXPECT_EQ(unknown->status, 404);
  EXPECT_TRUE(contains(json::parse(unknown->body)["Err"], "unknown admin endpoint \"nope\""));
}

}  // namespace
}  // namespace tenantfs

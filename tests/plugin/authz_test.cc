// Unit tests of the authorization side of the plugin: the decisions Docker
// reads for requests of users alice, bob and an admin, against the real
// SqliteStore, and hostile authorization requests.
#include "plugin/authz.h"

#include <gtest/gtest.h>

#include <memory>
#include <random>
#include <string>

#include "store/sqlite_store.h"
#include "tests/support/base64.h"
#include "tests/support/temp_dir.h"

namespace tenantfs {
namespace {

using nlohmann::json;
using tenantfs::testing::Base64;
using tenantfs::testing::TempDir;

class AuthzTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = SqliteStore::Open(tmp_.sub("state/tenantfs.db"));
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
    ASSERT_TRUE(store_->allow_user("alice", "alice").ok());
    ASSERT_TRUE(store_->allow_user("bob", "bob").ok());
    ASSERT_TRUE(store_->add_admin("admin").ok());
    Bind("data", "alice");
    Bind("bobs", "bob");
    authz_ = std::make_unique<Authorizer>(*store_, config_);
  }

  void Bind(const std::string& name, const std::string& tenant) {
    VolumeBinding b;
    b.name = name;
    b.tenant = tenant;
    b.identity.uid = b.present_uid = 7001;
    b.identity.gid = b.present_gid = 7001;
    b.backing_path = "/data/" + name;
    b.options = {{"tenant", tenant}};
    ASSERT_TRUE(store_->bind_volume(b).ok());
  }

  void Reconfigure(AuthzConfig config) {
    config_ = std::move(config);
    authz_ = std::make_unique<Authorizer>(*store_, config_);
  }

  // What dockerd sends for an API request with a JSON body.
  static std::string Request(const std::string& user, const std::string& method,
                             const std::string& uri, const std::string& body) {
    json req{
        {"User", user},
        {"UserAuthNMethod", user.empty() ? "" : "TLS"},
        {"RequestMethod", method},
        {"RequestURI", uri},
        {"RequestHeaders",
         {{"Content-Type", "application/json"}, {"Content-Length", std::to_string(body.size())}}}};
    if (!body.empty()) req["RequestBody"] = Base64(body);
    return req.dump();
  }

  AuthzReply Ask(const std::string& user, const std::string& method, const std::string& uri,
                 const json& body = nullptr) {
    return authz_->handle(kAuthzRequestEndpoint,
                          Request(user, method, uri, body.is_null() ? "" : body.dump()));
  }

  AuthzReply AskRaw(const std::string& user, const std::string& method, const std::string& uri,
                    const std::string& body) {
    return authz_->handle(kAuthzRequestEndpoint, Request(user, method, uri, body));
  }

  static json CreateVolume(const std::string& name, const std::string& driver,
                           const std::string& tenant) {
    json body{{"Name", name}, {"Driver", driver}, {"DriverOpts", json::object()}};
    if (!tenant.empty()) body["DriverOpts"]["tenant"] = tenant;
    return body;
  }

  static json RunWithBinds(const std::string& bind) {
    return json{{"Image", "busybox"}, {"HostConfig", {{"Binds", {bind}}}}};
  }

  static json RunWithMount(const std::string& source, const std::string& driver,
                           const std::string& tenant) {
    json mount{{"Type", "volume"}, {"Source", source}, {"Target", "/d"}};
    if (!driver.empty()) {
      mount["VolumeOptions"]["DriverConfig"] = {{"Name", driver},
                                                {"Options", {{"tenant", tenant}}}};
    }
    return json{{"Image", "busybox"}, {"HostConfig", {{"Mounts", {mount}}}}};
  }

  TempDir tmp_;
  std::unique_ptr<SqliteStore> store_;
  AuthzConfig config_;
  std::unique_ptr<Authorizer> authz_;
};

const std::string kBobDeniedAlice =
    "user \"bob\" may not use tenant \"alice\" (volume \"data\"); an admin "
    "allows it with "
    "\"tenantfs tenant allow alice --user bob\"";

TEST_F(AuthzTest, AliceMayCreateAVolumeForHerTenantAndBobMayNot) {
  AuthzReply r = Ask("alice", "POST", "/v1.41/volumes/create",
                     CreateVolume("fresh", "tenantfs:latest", "alice"));
  EXPECT_TRUE(r.allow) << r.msg;
  EXPECT_EQ(r.body, json::parse(R"({"Allow":true})"));

  r = Ask("bob", "POST", "/v1.41/volumes/create", CreateVolume("fresh", "tenantfs", "alice"));
  EXPECT_FALSE(r.allow);
  EXPECT_EQ(r.body["Allow"], false);
  EXPECT_EQ(r.body["Msg"],
            "user \"bob\" may not use tenant \"alice\" (volume "
            "\"fresh\"); an admin allows it "
            "with \"tenantfs tenant allow alice --user bob\"");
}

TEST_F(AuthzTest, EveryNameDockerResolvesToThePluginIsChecked) {
  for (const char* driver : {"tenantfs", "tenantfs:latest", "docker.io/library/tenantfs:latest",
                             "registry.example:5000/team/tenantfs:1.0", "3f2a", "0123abcd"}) {
    AuthzReply r = Ask("bob", "POST", "/v1.41/volumes/create", CreateVolume("x", driver, "alice"));
    EXPECT_FALSE(r.allow) << driver;
  }
  for (const char* driver : {"local", "", "nfs-plugin:latest", "mytenantfs"}) {
    AuthzReply r = Ask("bob", "POST", "/v1.41/volumes/create", CreateVolume("x", driver, "alice"));
    EXPECT_TRUE(r.allow) << driver << ": " << r.msg;
  }
}

TEST_F(AuthzTest, RecreatingAnExistingNameNeedsItsTenant) {
  // Docker answers an existing name itself; the binding's tenant still counts.
  AuthzReply r = Ask("bob", "POST", "/volumes/create", CreateVolume("data", "tenantfs", "bob"));
  EXPECT_FALSE(r.allow);
  EXPECT_EQ(r.msg, kBobDeniedAlice);
}

TEST_F(AuthzTest, DefaultTenantCountsWhenNoTenantIsGiven) {
  Reconfigure(AuthzConfig{false, "alice"});
  EXPECT_FALSE(
      Ask("bob", "POST", "/v1.41/volumes/create", CreateVolume("x", "tenantfs", "")).allow);
  EXPECT_TRUE(
      Ask("alice", "POST", "/v1.41/volumes/create", CreateVolume("x", "tenantfs", "")).allow);
}

TEST_F(AuthzTest, AnonymousRequestsAreDeniedUnlessConfigured) {
  AuthzReply r = Ask("", "POST", "/v1.41/volumes/create", CreateVolume("x", "tenantfs", "alice"));
  EXPECT_FALSE(r.allow);
  EXPECT_EQ(r.msg,
            "a request without a TLS client certificate may not use "
            "tenant \"alice\" (volume "
            "\"x\"); connect with --tlsverify and the certificate of an "
            "allowed user, or set "
            "AUTHZ_ANONYMOUS=allow on the plugin");
  // Other drivers and reads are not tenantfs's business.
  EXPECT_TRUE(Ask("", "POST", "/v1.41/volumes/create", CreateVolume("x", "local", "")).allow);
  EXPECT_TRUE(Ask("", "GET", "/v1.41/volumes").allow);

  Reconfigure(AuthzConfig{true, ""});
  EXPECT_TRUE(
      Ask("", "POST", "/v1.41/volumes/create", CreateVolume("x", "tenantfs", "alice")).allow);
  EXPECT_TRUE(Ask("", "DELETE", "/v1.41/volumes/data").allow);
}

TEST_F(AuthzTest, AdminMayUseEveryTenantAndManageThePlugin) {
  EXPECT_TRUE(
      Ask("admin", "POST", "/v1.41/volumes/create", CreateVolume("x", "tenantfs", "bob")).allow);
  EXPECT_TRUE(Ask("admin", "POST", "/v1.41/containers/create", RunWithBinds("data:/d")).allow);
  EXPECT_TRUE(Ask("admin", "DELETE", "/v1.41/volumes/data").allow);
  EXPECT_TRUE(Ask("admin", "POST", "/v1.41/plugins/tenantfs:latest/disable").allow);
  AuthzReply r = Ask("bob", "POST", "/v1.41/plugins/tenantfs:latest/disable");
  EXPECT_FALSE(r.allow);
  EXPECT_EQ(r.msg,
            "user \"bob\" may not manage the tenantfs plugin: only "
            "tenantfs admins may; an admin "
            "adds one with \"tenantfs admin allow bob\"");
  EXPECT_FALSE(Ask("bob", "DELETE", "/v1.41/plugins/tenantfs").allow);
  EXPECT_FALSE(Ask("bob", "POST", "/v1.41/plugins/tenantfs/set").allow);
  EXPECT_TRUE(Ask("bob", "POST", "/v1.41/plugins/other:latest/disable").allow);
  EXPECT_TRUE(Ask("bob", "GET", "/v1.41/plugins").allow);
}

TEST_F(AuthzTest, MountingAVolumeByNameNeedsItsTenant) {
  AuthzReply r = Ask("bob", "POST", "/v1.41/containers/create?name=c", RunWithBinds("data:/d:ro"));
  EXPECT_FALSE(r.allow);
  EXPECT_EQ(r.msg, kBobDeniedAlice);
  EXPECT_TRUE(Ask("alice", "POST", "/v1.41/containers/create", RunWithBinds("data:/d")).allow);
  // Bob's own volume, host directories, volumes of other drivers.
  EXPECT_TRUE(Ask("bob", "POST", "/v1.41/containers/create", RunWithBinds("bobs:/d")).allow);
  EXPECT_TRUE(Ask("bob", "POST", "/v1.41/containers/create", RunWithBinds("/srv:/d")).allow);
  EXPECT_TRUE(Ask("bob", "POST", "/v1.41/containers/create", RunWithBinds("localvol:/d")).allow);
  EXPECT_TRUE(Ask("bob", "POST", "/v1.41/containers/create", json{{"Image", "busybox"}}).allow);
}

TEST_F(AuthzTest, MountOptionsAreChecked) {
  // --mount source=data (existing), and an inline volume-opt=tenant=alice.
  EXPECT_FALSE(Ask("bob", "POST", "/v1.41/containers/create", RunWithMount("data", "", "")).allow);
  AuthzReply r =
      Ask("bob", "POST", "/v1.41/containers/create", RunWithMount("scratch", "tenantfs", "alice"));
  EXPECT_FALSE(r.allow);
  EXPECT_EQ(r.msg,
            "user \"bob\" may not use tenant \"alice\" (volume "
            "\"scratch\"); an admin allows it "
            "with \"tenantfs tenant allow alice --user bob\"");
  EXPECT_TRUE(
      Ask("alice", "POST", "/v1.41/containers/create", RunWithMount("scratch", "tenantfs", "alice"))
          .allow);
  EXPECT_TRUE(
      Ask("bob", "POST", "/v1.41/containers/create", RunWithMount("scratch", "local", "")).allow);
}

TEST_F(AuthzTest, VolumeDriverAndVolumesFrom) {
  Reconfigure(AuthzConfig{false, "alice"});
  json run{{"Image", "busybox"},
           {"Volumes", {{"/d", json::object()}}},
           {"HostConfig", {{"VolumeDriver", "tenantfs"}}}};
  EXPECT_FALSE(Ask("bob", "POST", "/v1.41/containers/create", run).allow);
  EXPECT_TRUE(Ask("alice", "POST", "/v1.41/containers/create", run).allow);
  // A name not bound yet is created by tenantfs with DEFAULT_TENANT.
  json bind{{"HostConfig", {{"VolumeDriver", "tenantfs"}, {"Binds", {"newname:/d"}}}}};
  EXPECT_FALSE(Ask("bob", "POST", "/v1.41/containers/create", bind).allow);

  json from{{"HostConfig", {{"VolumesFrom", {"alices-container"}}}}};
  AuthzReply r = Ask("bob", "POST", "/v1.41/containers/create", from);
  EXPECT_FALSE(r.allow);
  EXPECT_NE(r.msg.find("user \"bob\" may not use --volumes-from"), std::string::npos) << r.msg;
  EXPECT_TRUE(Ask("admin", "POST", "/v1.41/containers/create", from).allow);
}

TEST_F(AuthzTest, FieldsAreFoundAsDockerDecodesThem) {
  // Deprecated top-level HostConfig fields, any case, Go's Unicode folds
  // (long s, Kelvin sign), duplicate keys: Docker reads each of them.
  for (const char* body : {
           R"({"Image":"busybox","Binds":["data:/d"]})",
           R"({"hostconfig":{"binds":["data:/d"]}})",
           R"({"HOSTCONFIG":{"BINDS":["data:/d"]}})",
           "{\"HostConfig\":{\"Bind\xC5\xBF\":[\"data:/d\"]}}",
           R"({"HostConfig":{"Binds":["data:/d"]},"HostConfig":{}})",
           R"({"HostConfig":{},"HostConfig":{"Binds":["data:/d"]}})",
           R"({"HostConfig":{"mounts":[{"type":"volume","source":"data","target":"/d"}]}})",
       }) {
    AuthzReply r = AskRaw("bob", "POST", "/v1.41/containers/create", body);
    EXPECT_FALSE(r.allow) << body;
  }
  AuthzReply r = AskRaw("bob", "POST", "/v1.41/containers/create",
                        "{\"HostConfig\":{\"Mounts\":[{\"Source\":\"x\",\"VolumeOptions\":{"
                        "\"DriverConfig\":{\"Name\":\"tenantfs\",\"Options\":{\"tenant\":"
                        "\"alice\"}}}}]},\"\xE2\x84\xAA\":1}");
  EXPECT_FALSE(r.allow);
}

TEST_F(AuthzTest, RemovingAVolumeNeedsItsTenantHoweverThePathIsSpelled) {
  for (const char* uri : {"/v1.41/volumes/data", "/volumes/data?force=1", "/v1.41/volumes/d%61ta",
                          "//v1.41//volumes/./data", "/v1.41/x/../volumes/data"}) {
    AuthzReply r = Ask("bob", "DELETE", uri);
    EXPECT_FALSE(r.allow) << uri;
    EXPECT_EQ(r.msg, kBobDeniedAlice) << uri;
  }
  EXPECT_TRUE(Ask("alice", "DELETE", "/v1.41/volumes/data").allow);
  EXPECT_TRUE(Ask("bob", "DELETE", "/v1.41/volumes/some-local-volume").allow);
}

TEST_F(AuthzTest, PruneNeedsEveryTenantThatHasVolumes) {
  AuthzReply r = Ask("bob", "POST", "/v1.41/volumes/prune");
  EXPECT_FALSE(r.allow);
  EXPECT_NE(r.msg.find("tenant \"alice\" (volume \"data\", which the prune may remove)"),
            std::string::npos)
      << r.msg;
  EXPECT_TRUE(Ask("admin", "POST", "/v1.41/volumes/prune").allow);
}

TEST_F(AuthzTest, OldApiStartWithAHostConfigIsChecked) {
  json hc{{"Binds", {"data:/d"}}};
  EXPECT_FALSE(Ask("bob", "POST", "/v1.23/containers/abc/start", hc).allow);
  EXPECT_FALSE(Ask("bob", "POST", "/v1.023/containers/abc/start", hc).allow);
  EXPECT_FALSE(Ask("bob", "POST", "/v1/containers/abc/start", hc).allow);
  EXPECT_TRUE(Ask("alice", "POST", "/v1.23/containers/abc/start", hc).allow);
  // From 1.24 Docker refuses a body there; a start without one is plain.
  EXPECT_TRUE(Ask("bob", "POST", "/v1.41/containers/abc/start").allow);
  EXPECT_TRUE(Ask("bob", "POST", "/v1.23/containers/abc/start").allow);
}

TEST_F(AuthzTest, ServicesMountsAreChecked) {
  json svc{{"TaskTemplate",
            {{"ContainerSpec",
              {{"Mounts", {{{"Type", "volume"}, {"Source", "data"}, {"Target", "/d"}}}}}}}}};
  EXPECT_FALSE(Ask("bob", "POST", "/v1.41/services/create", svc).allow);
  EXPECT_FALSE(Ask("bob", "POST", "/v1.41/services/xyz/update?version=3", svc).allow);
}

TEST_F(AuthzTest, ABodyDockerDidNotForwardIsDenied) {
  // Chunked, over 1 MiB or not JSON: Docker sends no RequestBody and no
  // Content-Length of 0.
  json req{{"User", "bob"},
           {"RequestMethod", "POST"},
           {"RequestURI", "/v1.41/containers/create"},
           {"RequestHeaders", {{"Content-Type", "text/plain"}}}};
  AuthzReply r = authz_->handle(kAuthzRequestEndpoint, req.dump());
  EXPECT_FALSE(r.allow);
  EXPECT_NE(r.msg.find("did not reach the tenantfs authorization plugin"), std::string::npos)
      << r.msg;
  req["RequestHeaders"]["Content-Length"] = "0";
  EXPECT_TRUE(authz_->handle(kAuthzRequestEndpoint, req.dump()).allow);
}

TEST_F(AuthzTest, ResponsePhaseAlwaysAllows) {
  EXPECT_EQ(authz_->handle(kAuthzResponseEndpoint, "garbage").body,
            json::parse(R"({"Allow":true})"));
}

TEST_F(AuthzTest, HostileRequestsAreAnsweredWithADenial) {
  const std::string huge_body = "{\"Binds\":\"" + std::string(3 << 20, 'a') + "\"}";
  const std::vector<std::string> requests = {
      "",
      "not json",
      "[1,2,3]",
      "\"string\"",
      std::string(100000, '['),
      R"({"User":5,"RequestMethod":"POST","RequestURI":"/containers/create"})",
      R"({"User":"bob","RequestMethod":7,"RequestURI":"/containers/create"})",
      R"({"User":"bob","RequestMethod":"POST","RequestURI":"/containers/create","RequestBody":"!!notbase64!!"})",
      R"({"User":"bob","RequestMethod":"POST","RequestURI":"/containers/create","RequestBody":"QUJD="})",
      R"({"User":"bob","RequestMethod":"POST","RequestURI":"/containers/create","RequestBody":12})",
      R"({"User":"bob","RequestMethod":"POST","RequestURI":"/containers/create","RequestBody":")" +
          Base64("\xff\xfe not json") + "\"}",
      R"({"User":"bob","RequestMethod":"POST","RequestURI":"/containers/create","RequestBody":")" +
          Base64(std::string(5000, '{')) + "\"}",
      "{\"User\":\"b\xffob\",\"RequestMethod\":\"POST\",\"RequestURI\":\"/"
      "containers/create\"}",
  };
  for (const std::string& req : requests) {
    AuthzReply r = authz_->handle(kAuthzRequestEndpoint, req);
    EXPECT_FALSE(r.allow) << req.substr(0, 200);
    EXPECT_FALSE(r.msg.empty()) << req.substr(0, 200);
    EXPECT_EQ(r.body["Allow"], false);
  }
  // A well-formed body of 3 MiB is read and decided on.
  AuthzReply r = AskRaw("bob", "POST", "/v1.41/containers/create", huge_body);
  EXPECT_TRUE(r.allow) << r.msg;
  // Random bytes and random base64 never crash and never allow a create.
  std::mt19937 rng(14);
  for (int i = 0; i < 2000; ++i) {
    std::string junk(rng() % 300, '\0');
    for (char& c : junk) c = static_cast<char>(rng());
    EXPECT_FALSE(authz_->handle(kAuthzRequestEndpoint, junk).allow);
    json req{{"User", "bob"},
             {"RequestMethod", "POST"},
             {"RequestURI", "/v1.41/containers/create"},
             {"RequestBody", Base64(junk)}};
    (void)authz_->handle(kAuthzRequestEndpoint, req.dump());
  }
}

TEST(DecodeBase64, StrictStandardAlphabetWithPadding) {
  EXPECT_EQ(decode_base64(""), "");
  EXPECT_EQ(decode_base64("QQ=="), "A");
  EXPECT_EQ(decode_base64("QUI="), "AB");
  EXPECT_EQ(decode_base64("QUJD"), "ABC");
  EXPECT_EQ(decode_base64("+/+/"), "\xfb\xff\xbf");
  EXPECT_EQ(decode_base64("QQ"), std::nullopt);    // padding missing
  EXPECT_EQ(decode_base64("Q==="), std::nullopt);  // too much padding
  EXPECT_EQ(decode_base64("QQ==QUJD"), std::nullopt);
  EXPECT_EQ(decode_base64("QU=D"), std::nullopt);
  EXPECT_EQ(decode_base64("-_-_"), std::nullopt);  // URL alphabet
}

}  // namespace
}  // namespace tenantfs

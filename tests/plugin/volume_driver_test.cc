// The VolumeDriver handlers without sockets: JSON in, JSON out, with the real
// SqliteStore on a temp file, the real TenantDirectory, real backing
// directories, the real VolumeMounts and mount table, and a recording
// MapperLauncher (with its exits) instead of mapper processes and FUSE.
#include "plugin/volume_driver.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <set>
#include <thread>

#include "plugin/backing_dir.h"
#include "plugin_test_support.h"
#include "store/sqlite_store.h"
#include "tests/support/driver_stack.h"
#include "tests/support/recording_launcher.h"

namespace tenantfs {
namespace {

using json = nlohmann::json;
using testing::DriverStack;
using testing::exists;
using testing::RecordedExits;
using testing::RecordingLauncher;
using testing::stat_of;
using testing::TempDir;

class VolumeDriverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = SqliteStore::Open(tmp_.sub("state/tenantfs.db"));
    ASSERT_TRUE(store.ok()) << store.status().message();
    store_ = std::move(*store);
    tenants_ = std::make_unique<TenantDirectory>(*store_, "", "");
    Tenant alice;
    alice.name = "alice";
    alice.identity.uid = testing::test_tenant_uid();
    alice.identity.gid = testing::test_tenant_gid();
    ASSERT_TRUE(store_->add_tenant(alice).ok());
    ASSERT_EQ(::mkdir(tmp_.sub("allowed").c_str(), 0755), 0);
    OpenDriver("");
  }

  // A driver (as after a restart of serve: no mapper known) with the data
  // directory DATA_DIR, the mount root MOUNT_ROOT and `cfg`'s other settings.
  Result<std::unique_ptr<DriverStack>> Open(BindingStore& store, DriverConfig cfg) {
    cfg.data_dir = tmp_.sub("data");
    return DriverStack::Open(store, *tenants_, launcher_, exits_, tmp_.sub("mnt"), cfg);
  }

  void OpenDriver(const std::string& default_tenant) {
    stack_.reset();
    auto d = Open(*store_, DriverConfig{"", {tmp_.sub("allowed")}, default_tenant, {}});
    ASSERT_TRUE(d.ok()) << d.status().message();
    stack_ = std::move(*d);
    driver_ = stack_->driver.get();
  }

  json CallRaw(const std::string& endpoint, const std::string& body) {
    DriverReply r = driver_->handle("/VolumeDriver." + endpoint, body);
    return r.body;
  }
  json Call(const std::string& endpoint, const json& body) {
    return CallRaw(endpoint, body.dump());
  }
  std::string Err(const json& reply) { return reply.value("Err", std::string()); }

  json Create(const std::string& name, const json& opts) {
    return Call("Create", json{{"Name", name}, {"Opts", opts}});
  }
  int64_t Mounts(const std::string& name) {
    json g = Call("Get", json{{"Name", name}});
    EXPECT_EQ(Err(g), "");
    return g["Volume"]["Status"]["mounts"].get<int64_t>();
  }
  std::string data(const std::string& name) { return tmp_.sub("data/" + name); }

  TempDir tmp_;
  std::unique_ptr<SqliteStore> store_;
  std::unique_ptr<TenantDirectory> tenants_;
  RecordingLauncher launcher_;
  RecordedExits exits_;
  std::unique_ptr<DriverStack> stack_;
  VolumeDriver* driver_ = nullptr;  // stack_'s
};

TEST_F(VolumeDriverTest, ActivateAndCapabilities) {
  EXPECT_EQ(driver_->handle("/Plugin.Activate", "").body,
            json::parse(R"({"Implements":["VolumeDriver","authz"]})"));
  EXPECT_EQ(CallRaw("Capabilities", ""), json::parse(R"({"Capabilities":{"Scope":"local"}})"));
}

TEST_F(VolumeDriverTest, GetOfUnknownVolumeFailsSoDockerCallsCreate) {
  json r = Call("Get", json{{"Name", "nope"}});
  EXPECT_NE(Err(r).find("volume \"nope\": no such volume"), std::string::npos) << r;
  EXPECT_EQ(r.count("Volume"), 0u);
}

// docker volume inspect shows how a mounted volume is served, as its
// mapper's readiness line said, and nothing of the kind once unmounted.
TEST_F(VolumeDriverTest, GetOfAMountedVolumeShowsItsRequestPathAndPassthrough) {
  ASSERT_EQ(Create("served", {{"tenant", "alice"}}), json::object());
  launcher_.set_ready_fields({{"request-loop", "uring"}, {"passthrough", "on"}});
  ASSERT_EQ(Err(Call("Mount", json{{"Name", "served"}, {"ID", "c1"}})), "");
  json g = Call("Get", json{{"Name", "served"}});
  ASSERT_EQ(Err(g), "") << g;
  EXPECT_EQ(g["Volume"]["Status"]["request_loop"], "uring") << g;
  EXPECT_EQ(g["Volume"]["Status"]["passthrough"], "on") << g;

  ASSERT_EQ(Err(Call("Unmount", json{{"Name", "served"}, {"ID", "c1"}})), "");
  g = Call("Get", json{{"Name", "served"}});
  EXPECT_EQ(g["Volume"]["Status"].count("request_loop"), 0u) << g;
  EXPECT_EQ(g["Volume"]["Status"].count("passthrough"), 0u) << g;
}

TEST_F(VolumeDriverTest, CreateMakesTenantOwnedDirectoryAndGetShowsTheBinding) {
  ASSERT_EQ(Create("data", {{"tenant", "alice"}}), json::object());
  struct stat st = stat_of(data("data"));
  ASSERT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_uid, testing::test_tenant_uid());
  EXPECT_EQ(st.st_gid, testing::test_tenant_gid());
  EXPECT_EQ(st.st_mode & 07777, 0700u);

  json g = Call("Get", json{{"Name", "data"}});
  ASSERT_EQ(Err(g), "") << g;
  const json& v = g["Volume"];
  EXPECT_EQ(v["Name"], "data");
  EXPECT_EQ(v.count("Mountpoint"), 0u);                      // not mounted
  EXPECT_EQ(v["CreatedAt"].get<std::string>().size(), 20u);  // 2026-01-02T03:04:05Z
  const json& s = v["Status"];
  EXPECT_EQ(s["tenant"], "alice");
  EXPECT_EQ(s["uid"], testing::test_tenant_uid());
  EXPECT_EQ(s["present_uid"], testing::test_tenant_uid());
  EXPECT_EQ(s["mode"], "0700");
  EXPECT_EQ(s["cache"], "strict");
  EXPECT_EQ(s["readonly"], false);
  EXPECT_EQ(s["path"], data("data"));
  EXPECT_EQ(s["mounts"], 0);

  json l = CallRaw("List", "");
  EXPECT_EQ(l, json::parse(R"({"Volumes":[{"Name":"data"}]})"));
  EXPECT_EQ(Call("Path", json{{"Name", "data"}}), json::parse(R"({"Mountpoint":""})"));
}

TEST_F(VolumeDriverTest, CreateAppliesModePresentedIdsCacheAndReadonly) {
  ASSERT_EQ(Create("v", {{"tenant", "alice"},
                         {"mode", "0750"},
                         {"uid", "1234"},
                         {"gid", "4321"},
                         {"cache", "exclusive"},
                         {"readonly", "true"}}),
            json::object());
  EXPECT_EQ(stat_of(data("v")).st_mode & 07777, 0750u);
  json s = Call("Get", json{{"Name", "v"}})["Volume"]["Status"];
  EXPECT_EQ(s["present_uid"], 1234);
  EXPECT_EQ(s["present_gid"], 4321);
  EXPECT_EQ(s["uid"], testing::test_tenant_uid());
  EXPECT_EQ(s["mode"], "0750");
  EXPECT_EQ(s["cache"], "exclusive");
  EXPECT_EQ(s["readonly"], true);
}

TEST_F(VolumeDriverTest, RecreateWithSameOptionsIsNoOpAndWithOthersAnError) {
  ASSERT_EQ(Create("data", {{"tenant", "alice"}, {"mode", "0750"}}), json::object());
  EXPECT_EQ(Create("data", {{"tenant", "alice"}, {"mode", "0750"}}), json::object());
  json r = Create("data", {{"tenant", "alice"}, {"mode", "0700"}});
  EXPECT_EQ(Err(r),
            "tenantfs: volume \"data\" already exists with mode=0750; it cannot be re-created "
            "with mode=0700: a binding never changes, so use the same options, or remove the "
            "volume first with \"docker volume rm data\"");
  EXPECT_EQ(stat_of(data("data")).st_mode & 07777, 0750u);  // untouched
}

TEST_F(VolumeDriverTest, UnknownTenantErrorSaysHowToAddIt) {
  json r = Create("data", {{"tenant", "bob"}});
  EXPECT_EQ(Err(r),
            "tenantfs: volume \"data\": unknown tenant \"bob\"; add it with \"tenantfs tenant "
            "add bob --uid UID --gid GID\" or use an existing tenant");
  EXPECT_FALSE(exists(data("data")));
  EXPECT_NE(Err(Call("Get", json{{"Name", "data"}})), "");
}

TEST_F(VolumeDriverTest, TenantIsRequiredUnlessADefaultIsConfigured) {
  json r = Create("data", nullptr);
  EXPECT_NE(Err(r).find("option \"tenant\" is required"), std::string::npos) << r;
  EXPECT_FALSE(exists(data("data")));

  OpenDriver("alice");
  EXPECT_EQ(Create("data", nullptr), json::object());
  EXPECT_EQ(Call("Get", json{{"Name", "data"}})["Volume"]["Status"]["tenant"], "alice");
}

TEST_F(VolumeDriverTest, InvalidOptionsCreateNothing) {
  for (const json& opts :
       {json{{"tenant", "alice"}, {"mode", "0777"}}, json{{"tenant", "alice"}, {"mode", "4700"}},
        json{{"tenant", "alice"}, {"colour", "red"}}, json{{"tenant", "alice"}, {"uid", "-5"}},
        json{{"tenant", "alice"}, {"readonly", 1}}, json{{"tenant", "alice"}, {"cache", "none"}}}) {
    json r = Create("data", opts);
    EXPECT_NE(Err(r).find("tenantfs: volume \"data\": "), std::string::npos) << opts << r;
    EXPECT_FALSE(exists(data("data"))) << opts;
  }
  EXPECT_NE(Err(Create("data", "notanobject")).find("\"Opts\" must be a JSON object"),
            std::string::npos);
}

TEST_F(VolumeDriverTest, MalformedRequestsGetAnErrNeverACrash) {
  EXPECT_EQ(Err(CallRaw("Create", std::string("{not json"))),
            "tenantfs: the request body is not valid JSON");
  EXPECT_EQ(Err(CallRaw("Create", std::string("[1,2]"))),
            "tenantfs: the request body must be a JSON object");
  EXPECT_EQ(Err(CallRaw("Create", std::string(""))), "tenantfs: the request has no \"Name\" field");
  EXPECT_EQ(Err(CallRaw("Get", std::string("null"))),
            "tenantfs: the request has no \"Name\" field");
  EXPECT_EQ(Err(Call("Get", json{{"Name", 42}})),
            "tenantfs: the request's \"Name\" field must be a string");
  ASSERT_EQ(Create("data", {{"tenant", "alice"}}), json::object());
  EXPECT_EQ(Err(Call("Mount", json{{"Name", "data"}})),
            "tenantfs: the request has no \"ID\" field");
  EXPECT_EQ(Err(Call("Unmount", json{{"Name", "data"}, {"ID", true}})),
            "tenantfs: the request's \"ID\" field must be a string");
  DriverReply unknown = driver_->handle("/VolumeDriver.Explode", "{}");
  EXPECT_EQ(unknown.http_status, 404);
  EXPECT_NE(unknown.body.value("Err", "").find("unknown endpoint"), std::string::npos);
  // Deep nesting is refused before parsing, so no copy of it can recurse.
  std::string deep(50000, '[');
  deep += std::string(50000, ']');
  EXPECT_EQ(Err(CallRaw("Create", deep)), "tenantfs: the request body nests deeper than 32 levels");
  EXPECT_EQ(Mounts("data"), 0);
}

TEST_F(VolumeDriverTest, NamesThatCouldEscapeTheDataDirectoryAreRefused) {
  for (const char* name : {"..", "../escape", "a/b", ".trash", "-x", ""}) {
    json r = Create(name, {{"tenant", "alice"}});
    EXPECT_NE(Err(r), "") << name;
  }
  EXPECT_FALSE(exists(tmp_.sub("escape")));
  EXPECT_FALSE(exists(tmp_.sub("data/a")));
  EXPECT_EQ(CallRaw("List", ""), json::parse(R"({"Volumes":[]})"));
}

TEST_F(VolumeDriverTest, NullOptsAndEmptyBodyAreAccepted) {
  OpenDriver("alice");
  EXPECT_EQ(CallRaw("Create", std::string(R"({"Name":"v","Opts":null})")), json::object());
  EXPECT_EQ(CallRaw("List", std::string()), json::parse(R"({"Volumes":[{"Name":"v"}]})"));
  EXPECT_EQ(CallRaw("List", std::string("null")), json::parse(R"({"Volumes":[{"Name":"v"}]})"));
}

TEST_F(VolumeDriverTest, PathBindsExistingDataWithoutChangingIt) {
  const std::string dir = tmp_.sub("allowed/project");
  ASSERT_EQ(::mkdir(dir.c_str(), 0751), 0);
  { std::ofstream(dir + "/keep.txt") << "precious"; }
  ASSERT_EQ(Create("proj", {{"tenant", "alice"}, {"path", dir}}), json::object());
  EXPECT_EQ(stat_of(dir).st_uid, ::geteuid());     // never chowned
  EXPECT_EQ(stat_of(dir).st_mode & 07777, 0751u);  // never chmoded
  EXPECT_FALSE(exists(data("proj")));
  json s = Call("Get", json{{"Name", "proj"}})["Volume"]["Status"];
  EXPECT_EQ(s["path"], dir);
  EXPECT_EQ(s["external"], true);

  EXPECT_EQ(Call("Remove", json{{"Name", "proj"}}), json::object());
  EXPECT_TRUE(exists(dir + "/keep.txt"));  // never deleted
  EXPECT_NE(Err(Call("Get", json{{"Name", "proj"}})), "");
}

TEST_F(VolumeDriverTest, PathMustBeARealDirectoryInsideAnAllowedRoot) {
  const std::string allowed = tmp_.sub("allowed");
  ASSERT_EQ(::mkdir((allowed + "/real").c_str(), 0700), 0);
  ASSERT_EQ(::mkdir((allowed + "/real/sub").c_str(), 0700), 0);
  ASSERT_EQ(::symlink("real", (allowed + "/link").c_str()), 0);
  ASSERT_EQ(::mkdir(tmp_.sub("outside").c_str(), 0700), 0);
  ASSERT_EQ(::symlink(tmp_.sub("outside").c_str(), (allowed + "/escape").c_str()), 0);
  { std::ofstream(allowed + "/file") << "x"; }

  auto err_for = [&](const std::string& p) {
    return Err(Create("x", {{"tenant", "alice"}, {"path", p}}));
  };
  EXPECT_NE(err_for(allowed + "/link/sub").find("symlink component"), std::string::npos);
  EXPECT_NE(err_for(allowed + "/link").find("symlink component"), std::string::npos);
  EXPECT_NE(err_for(allowed + "/escape").find("symlink component"), std::string::npos);
  EXPECT_NE(err_for(allowed + "/file").find("not a directory"), std::string::npos);
  EXPECT_NE(err_for(allowed + "/missing").find("does not exist"), std::string::npos);
  EXPECT_NE(err_for(tmp_.sub("outside")).find("outside the allowed roots"), std::string::npos);
  EXPECT_NE(err_for(allowed + "x/real").find("outside the allowed roots"), std::string::npos);
  EXPECT_NE(err_for(allowed + "/../outside").find("must be an absolute path"), std::string::npos);
  EXPECT_EQ(CallRaw("List", ""), json::parse(R"({"Volumes":[]})"));
  EXPECT_EQ(Create("x", {{"tenant", "alice"}, {"path", allowed + "/real/sub"}}), json::object());
}

TEST_F(VolumeDriverTest, PathMayNotExposeThePluginsOwnDirectories) {
  // An allowed root that holds the plugin's directories, reached through a
  // symlink so that the paths do not reveal it.
  stack_.reset();
  const std::string link = tmp_.sub("allowed/alias");
  ASSERT_EQ(::symlink(tmp_.path().c_str(), link.c_str()), 0);
  auto d = Open(*store_, DriverConfig{"", {link}, "", {tmp_.sub("state")}});
  ASSERT_TRUE(d.ok());
  ASSERT_EQ(::mkdir(tmp_.sub("data/inner").c_str(), 0700), 0);
  for (const std::string& p :
       {link, link + "/data", link + "/data/inner", link + "/mnt", link + "/state"}) {
    DriverReply r = (*d)->driver->handle(
        "/VolumeDriver.Create",
        json{{"Name", "x"}, {"Opts", {{"tenant", "alice"}, {"path", p}}}}.dump());
    EXPECT_NE(r.error.find("overlaps tenantfs's own directory"), std::string::npos)
        << p << ": " << r.error;
  }
  EXPECT_FALSE(store_->get_volume("x").ok());
}

TEST_F(VolumeDriverTest, PathIsRefusedWhenNoRootsAreAllowed) {
  stack_.reset();
  auto d = Open(*store_, DriverConfig{});
  ASSERT_TRUE(d.ok());
  DriverReply r = (*d)->driver->handle(
      "/VolumeDriver.Create",
      json{{"Name", "x"}, {"Opts", {{"tenant", "alice"}, {"path", tmp_.sub("allowed")}}}}.dump());
  EXPECT_NE(r.error.find("no allowed roots are configured; set ALLOWED_ROOTS"), std::string::npos)
      << r.error;
}

TEST_F(VolumeDriverTest, MountCountsPerIdAndStartsOneMapper) {
  ASSERT_EQ(Create("data", {{"tenant", "alice"}}), json::object());
  json m = Call("Mount", json{{"Name", "data"}, {"ID", "c1"}});
  EXPECT_EQ(m, (json{{"Mountpoint", tmp_.sub("mnt/data")}}));
  EXPECT_EQ(Call("Mount", json{{"Name", "data"}, {"ID", "c1"}}), m);  // same ID again
  EXPECT_EQ(Call("Mount", json{{"Name", "data"}, {"ID", "c2"}}), m);
  EXPECT_EQ(launcher_.starts("data"), 1);
  EXPECT_EQ(Mounts("data"), 3);
  EXPECT_EQ(Call("Get", json{{"Name", "data"}})["Volume"]["Mountpoint"], tmp_.sub("mnt/data"));
  EXPECT_EQ(Call("Path", json{{"Name", "data"}}), m);
  EXPECT_EQ(CallRaw("List", ""), json::parse("{\"Volumes\":[{\"Name\":\"data\",\"Mountpoint\":\"" +
                                             tmp_.sub("mnt/data") + "\"}]}"));

  // Unknown and never-mounted IDs are accepted and change nothing.
  EXPECT_EQ(Call("Unmount", json{{"Name", "data"}, {"ID", "never"}}), json::object());
  EXPECT_EQ(Mounts("data"), 3);
  EXPECT_EQ(Call("Unmount", json{{"Name", "data"}, {"ID", "c1"}}), json::object());
  EXPECT_EQ(Call("Unmount", json{{"Name", "data"}, {"ID", "c2"}}), json::object());
  EXPECT_EQ(launcher_.total_stops(), 0);
  EXPECT_EQ(Call("Unmount", json{{"Name", "data"}, {"ID", "c1"}}), json::object());
  EXPECT_EQ(launcher_.total_stops(), 1);
  EXPECT_EQ(Mounts("data"), 0);
  // Never below zero.
  EXPECT_EQ(Call("Unmount", json{{"Name", "data"}, {"ID", "c1"}}), json::object());
  EXPECT_EQ(Mounts("data"), 0);
  EXPECT_EQ(launcher_.total_stops(), 1);
  EXPECT_EQ(Call("Path", json{{"Name", "data"}}), json::parse(R"({"Mountpoint":""})"));

  EXPECT_NE(Err(Call("Mount", json{{"Name", "ghost"}, {"ID", "c1"}})).find("no such volume"),
            std::string::npos);
  EXPECT_NE(Err(Call("Unmount", json{{"Name", "ghost"}, {"ID", "c1"}})).find("no such volume"),
            std::string::npos);
}

TEST_F(VolumeDriverTest, ListNamesEveryVolumeInOrderWithTheMountpointsOfMountedOnes) {
  EXPECT_EQ(CallRaw("List", "{}"), json::parse(R"({"Volumes":[]})"));
  ASSERT_EQ(::mkdir(tmp_.sub("allowed/shared").c_str(), 0755), 0);
  ASSERT_EQ(Create("web", {{"tenant", "alice"}}), json::object());
  ASSERT_EQ(Create("db", {{"tenant", "alice"}, {"mode", "0750"}}), json::object());
  ASSERT_EQ(Create("shared", {{"tenant", "alice"}, {"path", tmp_.sub("allowed/shared")}}),
            json::object());
  ASSERT_EQ(Err(Call("Mount", json{{"Name", "web"}, {"ID", "c1"}})), "");
  ASSERT_EQ(Err(Call("Mount", json{{"Name", "shared"}, {"ID", "c2"}})), "");

  json want = {{"Volumes",
                {{{"Name", "db"}},
                 {{"Name", "shared"}, {"Mountpoint", tmp_.sub("mnt/shared")}},
                 {{"Name", "web"}, {"Mountpoint", tmp_.sub("mnt/web")}}}}};
  EXPECT_EQ(CallRaw("List", "{}"), want);
  EXPECT_EQ(CallRaw("List", ""), want) << "Docker may send no body at all";

  ASSERT_EQ(Err(Call("Unmount", json{{"Name", "web"}, {"ID", "c1"}})), "");
  ASSERT_EQ(Err(Call("Remove", json{{"Name", "db"}})), "");
  EXPECT_EQ(CallRaw("List", "{}"),
            (json{{"Volumes",
                   {{{"Name", "shared"}, {"Mountpoint", tmp_.sub("mnt/shared")}},
                    {{"Name", "web"}}}}}));
}

TEST_F(VolumeDriverTest, EveryRequestForAnUnknownVolumeSaysHowToCreateIt) {
  const std::string want =
      "tenantfs: volume \"ghost\": no such volume; create it with \"docker volume create "
      "--driver tenantfs -o tenant=NAME ghost\"";
  for (const char* endpoint : {"Remove", "Path", "Get"}) {
    DriverReply r =
        driver_->handle(std::string("/VolumeDriver.") + endpoint, R"({"Name":"ghost"})");
    EXPECT_EQ(r.error, want) << endpoint;
    EXPECT_EQ(r.code, Code::kNotFound) << endpoint;
    EXPECT_EQ(r.body, (json{{"Err", want}})) << endpoint;
  }
  for (const char* endpoint : {"Mount", "Unmount"}) {
    DriverReply r = driver_->handle(std::string("/VolumeDriver.") + endpoint,
                                    R"({"Name":"ghost","ID":"c1"})");
    EXPECT_EQ(r.error, want) << endpoint;
    EXPECT_EQ(r.code, Code::kNotFound) << endpoint;
  }
  EXPECT_EQ(launcher_.starts("ghost"), 0);
  EXPECT_EQ(CallRaw("List", "{}"), json::parse(R"({"Volumes":[]})"));
  EXPECT_FALSE(exists(data("ghost")));
}

TEST_F(VolumeDriverTest, MountHandsTheBindingToTheMapper) {
  ASSERT_EQ(Create("data", {{"tenant", "alice"}, {"uid", "0"}, {"readonly", "true"}}),
            json::object());
  ASSERT_EQ(Err(Call("Mount", json{{"Name", "data"}, {"ID", "c"}})), "");
  VolumeBinding b = launcher_.last_binding();
  EXPECT_EQ(b.identity.uid, testing::test_tenant_uid());
  EXPECT_EQ(b.present_uid, 0u);
  EXPECT_TRUE(b.readonly);
  EXPECT_EQ(b.backing_path, data("data"));
}

TEST_F(VolumeDriverTest, FailedMapperKeepsNoReferenceAndReportsItsError) {
  ASSERT_EQ(Create("data", {{"tenant", "alice"}}), json::object());
  launcher_.fail_with("mapper error: mount /x: No such device");
  json r = Call("Mount", json{{"Name", "data"}, {"ID", "c1"}});
  EXPECT_EQ(Err(r),
            "tenantfs: volume \"data\": mount failed: mapper error: mount /x: No such device");
  EXPECT_EQ(Mounts("data"), 0);
  launcher_.fail_with("");
  EXPECT_EQ(Err(Call("Mount", json{{"Name", "data"}, {"ID", "c1"}})), "");
  EXPECT_EQ(Mounts("data"), 1);
}

TEST_F(VolumeDriverTest, ConcurrentMountsAndUnmountsLeaveExactCounts) {
  ASSERT_EQ(Create("data", {{"tenant", "alice"}}), json::object());
  std::vector<std::thread> threads;
  for (int i = 0; i < 200; ++i) {
    threads.emplace_back([this, i] {
      if (i % 4 == 3) {
        Call("Unmount", json{{"Name", "data"}, {"ID", "unknown-" + std::to_string(i)}});
      } else {
        Call("Mount", json{{"Name", "data"}, {"ID", "id-" + std::to_string(i % 7)}});
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(Mounts("data"), 150);
  EXPECT_EQ(launcher_.starts("data"), 1);
}

TEST_F(VolumeDriverTest, RemoveIsRefusedWhileMounted) {
  ASSERT_EQ(Create("data", {{"tenant", "alice"}}), json::object());
  ASSERT_EQ(Err(Call("Mount", json{{"Name", "data"}, {"ID", "c1"}})), "");
  json r = Call("Remove", json{{"Name", "data"}});
  EXPECT_EQ(Err(r),
            "tenantfs: volume \"data\" is in use (1 mount reference); stop and remove the "
            "containers using it first (docker ps -a --filter volume=data)");
  EXPECT_TRUE(exists(data("data")));
  ASSERT_EQ(Err(Call("Unmount", json{{"Name", "data"}, {"ID", "c1"}})), "");
  EXPECT_EQ(Call("Remove", json{{"Name", "data"}}), json::object());
  EXPECT_FALSE(exists(data("data")));
  EXPECT_NE(Err(Call("Remove", json{{"Name", "data"}})).find("no such volume"), std::string::npos);
}

TEST_F(VolumeDriverTest, RemoveIsRefusedWhileAMapperServesAnUnreferencedVolume) {
  ASSERT_EQ(Create("data", {{"tenant", "alice"}}), json::object());
  ASSERT_EQ(Err(Call("Mount", json{{"Name", "data"}, {"ID", "c1"}})), "");
  // Released behind the driver's back, as another process sharing the store
  // could.
  ASSERT_EQ(*store_->release_ref("data", "c1"), 0);
  json r = Call("Remove", json{{"Name", "data"}});
  EXPECT_EQ(Err(r), "tenantfs: volume \"data\": its mapper still serves " + tmp_.sub("mnt/data") +
                        " although no container references it; restart the plugin, which "
                        "unmounts it, then remove the volume again");
  EXPECT_TRUE(exists(data("data")));
  EXPECT_TRUE(store_->get_volume("data").ok());
}

TEST_F(VolumeDriverTest, AMapperThatExitsIsForgottenAndTheNextMountStartsAnother) {
  ASSERT_EQ(Create("data", {{"tenant", "alice"}}), json::object());
  json m = Call("Mount", json{{"Name", "data"}, {"ID", "c1"}});
  ASSERT_EQ(Err(m), "");
  ASSERT_TRUE(exits_.exit(launcher_.last_pid(), 9));  // killed by SIGKILL
  EXPECT_EQ(Call("Path", json{{"Name", "data"}}), json::parse(R"({"Mountpoint":""})"));
  EXPECT_EQ(CallRaw("List", ""), json::parse(R"({"Volumes":[{"Name":"data"}]})"));
  EXPECT_EQ(Mounts("data"), 1) << "the container still holds its reference";
  EXPECT_EQ(Call("Mount", json{{"Name", "data"}, {"ID", "c2"}}), m);
  EXPECT_EQ(launcher_.starts("data"), 2);
  EXPECT_EQ(Call("Path", json{{"Name", "data"}}), m);
}

TEST_F(VolumeDriverTest, RemoveDeletesTenantDataButNeverFollowsSymlinks) {
  ASSERT_EQ(Create("data", {{"tenant", "alice"}}), json::object());
  const std::string outside = tmp_.sub("outside");
  ASSERT_EQ(::mkdir(outside.c_str(), 0755), 0);
  { std::ofstream(outside + "/victim") << "must survive"; }
  // What a tenant could leave behind: nested directories, a read-only
  // directory, and symlinks to data outside the volume.
  const std::string d = data("data");
  ASSERT_EQ(::mkdir((d + "/a").c_str(), 0700), 0);
  ASSERT_EQ(::mkdir((d + "/a/b").c_str(), 0700), 0);
  { std::ofstream(d + "/a/b/file") << "x"; }
  ASSERT_EQ(::mkdir((d + "/ro").c_str(), 0700), 0);
  { std::ofstream(d + "/ro/file") << "x"; }
  ASSERT_EQ(::symlink(outside.c_str(), (d + "/a/link").c_str()), 0);
  ASSERT_EQ(::symlink((outside + "/victim").c_str(), (d + "/filelink").c_str()), 0);
  for (const char* p : {"/a", "/a/b", "/a/b/file", "/ro", "/ro/file"}) {
    ASSERT_EQ(::lchown((d + p).c_str(), testing::test_tenant_uid(), testing::test_tenant_gid()), 0);
  }
  ASSERT_EQ(::chmod((d + "/ro").c_str(), 0500), 0);

  EXPECT_EQ(Call("Remove", json{{"Name", "data"}}), json::object());
  EXPECT_FALSE(exists(d));
  EXPECT_TRUE(exists(outside + "/victim"));
  EXPECT_TRUE(exists(outside));
  // Nothing is left in the trash either.
  EXPECT_EQ(::rmdir(tmp_.sub("data/.trash").c_str()), 0);
}

// The contents of a removed volume are deleted by a process that is the
// tenant and nothing more (common/privileges.h): what the tenant could not
// delete itself, such as a directory of root's inside its volume, stays.
TEST_F(VolumeDriverTest, RemoveDeletesOnlyWhatTheTenantMayDelete) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root: the deletion drops to the tenant only then";
  ASSERT_EQ(Create("data", {{"tenant", "alice"}}), json::object());
  const std::string d = data("data");
  ASSERT_EQ(::mkdir((d + "/roots").c_str(), 0755), 0);
  { std::ofstream(d + "/roots/file") << "root's"; }
  { std::ofstream(d + "/mine") << "x"; }
  ASSERT_EQ(::lchown((d + "/mine").c_str(), testing::test_tenant_uid(), testing::test_tenant_gid()),
            0);

  EXPECT_EQ(Call("Remove", json{{"Name", "data"}}), json::object());
  EXPECT_FALSE(exists(d));
  // The volume's name is free; root's file waits in the trash, untouched.
  int kept = 0;
  for (const auto& e : std::filesystem::directory_iterator(data(".trash"))) {
    EXPECT_FALSE(exists(e.path().string() + "/mine"));
    kept += exists(e.path().string() + "/roots/file");
  }
  EXPECT_EQ(kept, 1);
}

TEST_F(VolumeDriverTest, CreateRefusesAnUnboundLeftoverDirectoryAndBindsNothing) {
  ASSERT_EQ(::mkdir(data("data").c_str(), 0700), 0);
  json r = Create("data", {{"tenant", "alice"}});
  EXPECT_NE(Err(r).find("exists without a binding"), std::string::npos) << r;
  EXPECT_NE(Err(Call("Get", json{{"Name", "data"}})), "");
  // No temporary directory is left behind.
  int entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(tmp_.sub("data"))) {
    (void)e;
    ++entries;
  }
  EXPECT_EQ(entries, 1);
}

// The real store with faults switched on: bind_volume always fails, and
// listing names fails on request, as they would on a full disk or a locked
// database.
class FailingBindStore : public BindingStore {
 public:
  explicit FailingBindStore(BindingStore& real) : real_(real) {}
  bool fail_listing = false;
  Status add_tenant(const Tenant& t) override { return real_.add_tenant(t); }
  Result<Tenant> get_tenant(const std::string& n) override { return real_.get_tenant(n); }
  Result<std::vector<Tenant>> list_tenants() override { return real_.list_tenants(); }
  Status remove_tenant(const std::string& n) override { return real_.remove_tenant(n); }
  Result<BindOutcome> bind_volume(const VolumeBinding&) override {
    return Status::IOError("database is locked");
  }
  Result<VolumeBinding> get_volume(const std::string& n) override { return real_.get_volume(n); }
  Result<std::vector<VolumeBinding>> list_volumes() override { return real_.list_volumes(); }
  Result<std::vector<std::string>> list_volume_names() override {
    if (fail_listing) return Status::IOError("database is locked");
    return real_.list_volume_names();
  }
  Status remove_volume(const std::string& n) override { return real_.remove_volume(n); }
  Result<int64_t> add_ref(const std::string& v, const std::string& id) override {
    return real_.add_ref(v, id);
  }
  Result<int64_t> release_ref(const std::string& v, const std::string& id) override {
    return real_.release_ref(v, id);
  }
  Result<VolumeRefs> refs(const std::string& v) override { return real_.refs(v); }
  Result<std::vector<VolumeRefs>> referenced_volumes() override {
    return real_.referenced_volumes();
  }
  Status allow_user(const std::string& t, const std::string& u) override {
    return real_.allow_user(t, u);
  }
  Status deny_user(const std::string& t, const std::string& u) override {
    return real_.deny_user(t, u);
  }
  Result<bool> user_allowed(const std::string& t, const std::string& u) override {
    return real_.user_allowed(t, u);
  }
  Result<std::vector<AccessGrant>> list_grants() override { return real_.list_grants(); }
  Status add_admin(const std::string& u) override { return real_.add_admin(u); }
  Status remove_admin(const std::string& u) override { return real_.remove_admin(u); }
  Result<bool> is_admin(const std::string& u) override { return real_.is_admin(u); }
  Result<std::vector<std::string>> list_admins() override { return real_.list_admins(); }

 private:
  BindingStore& real_;
};

TEST_F(VolumeDriverTest, CreateThatCannotBindLeavesNoDirectoryBehind) {
  stack_.reset();
  FailingBindStore failing(*store_);
  auto d = Open(failing, DriverConfig{});
  ASSERT_TRUE(d.ok());
  DriverReply r = (*d)->driver->handle(
      "/VolumeDriver.Create", json{{"Name", "data"}, {"Opts", {{"tenant", "alice"}}}}.dump());
  EXPECT_EQ(r.error, "tenantfs: volume \"data\": database is locked");
  EXPECT_FALSE(exists(data("data")));
  for (const auto& e : std::filesystem::directory_iterator(tmp_.sub("data"))) {
    EXPECT_EQ(e.path().filename(), ".trash");  // only the (empty) trash may exist
    EXPECT_EQ(::rmdir(e.path().c_str()), 0) << "not empty: " << e.path();
  }
  EXPECT_FALSE(store_->get_volume("data").ok());
}

TEST_F(VolumeDriverTest, ListOfAStoreThatCannotBeReadSaysWhy) {
  stack_.reset();
  FailingBindStore failing(*store_);
  failing.fail_listing = true;
  auto d = Open(failing, DriverConfig{});
  ASSERT_TRUE(d.ok());
  DriverReply r = (*d)->driver->handle("/VolumeDriver.List", "{}");
  EXPECT_EQ(r.error, "tenantfs: database is locked");
  EXPECT_EQ(r.body, (json{{"Err", "tenantfs: database is locked"}}));
  EXPECT_EQ(r.code, Code::kIOError);
}

TEST_F(VolumeDriverTest, RecoveryCleansLeftoversAndRemountsReferencedVolumes) {
  ASSERT_EQ(Create("kept", {{"tenant", "alice"}}), json::object());
  ASSERT_EQ(Create("idle", {{"tenant", "alice"}}), json::object());
  ASSERT_EQ(Err(Call("Mount", json{{"Name", "kept"}, {"ID", "c1"}})), "");
  ASSERT_EQ(Err(Call("Mount", json{{"Name", "kept"}, {"ID", "c2"}})), "");
  ASSERT_EQ(launcher_.starts("kept"), 1);
  // What a crash can leave: an unfinished create, a half-deleted volume and
  // a directory whose binding never got written.
  ASSERT_EQ(::mkdir(data(".creating-x-123").c_str(), 0700), 0);
  ASSERT_EQ(::mkdir(data(".trash").c_str(), 0700), 0);
  ASSERT_EQ(::mkdir(data(".trash/old-1").c_str(), 0700), 0);
  { std::ofstream(data(".trash/old-1/f")) << "x"; }
  ASSERT_EQ(::mkdir(data("unbound").c_str(), 0700), 0);
  { std::ofstream(data("unbound/data")) << "x"; }

  OpenDriver("");  // a restarted serve: no mapper known
  ASSERT_TRUE(driver_->recover().ok());
  EXPECT_EQ(launcher_.starts("kept"), 2);  // mounted again: it still holds references
  EXPECT_EQ(launcher_.starts("idle"), 0);
  EXPECT_EQ(Mounts("kept"), 2);  // counts preserved
  EXPECT_FALSE(exists(data(".creating-x-123")));
  EXPECT_FALSE(exists(data(".trash/old-1")));
  EXPECT_FALSE(exists(data("unbound")));
  bool kept_orphan = false;
  for (const auto& e : std::filesystem::directory_iterator(data(".orphaned"))) {
    kept_orphan = kept_orphan || exists(e.path().string() + "/data");
  }
  EXPECT_TRUE(kept_orphan);
  EXPECT_TRUE(exists(data("kept")));
  EXPECT_TRUE(exists(data("idle")));
}

// Remove moves the data into .trash before it unbinds: a crash between the
// two leaves a bound volume whose data is in .trash, and the restart puts it
// back, while the trash entry of a volume that is gone is deleted.
TEST_F(VolumeDriverTest, RecoveryPutsBackTheDataOfARemoveThatNeverUnbound) {
  ASSERT_EQ(Create("half-removed", {{"tenant", "alice"}}), json::object());
  { std::ofstream(data("half-removed/keep")) << "data"; }
  ASSERT_EQ(::mkdir(data(".trash").c_str(), 0700), 0);
  ASSERT_EQ(::rename(data("half-removed").c_str(), data(".trash/half-removed-0123abcd4567").c_str()),
            0);
  ASSERT_EQ(::mkdir(data(".trash/gone-0123abcd4567").c_str(), 0700), 0);
  { std::ofstream(data(".trash/gone-0123abcd4567/f")) << "x"; }

  OpenDriver("");
  ASSERT_TRUE(driver_->recover().ok());
  std::string kept;
  std::getline(std::ifstream(data("half-removed/keep")), kept);
  EXPECT_EQ(kept, "data");
  EXPECT_FALSE(exists(data(".trash/half-removed-0123abcd4567")));
  EXPECT_FALSE(exists(data(".trash/gone-0123abcd4567")));
  EXPECT_FALSE(exists(data(".orphaned")));
  ASSERT_EQ(Err(Call("Remove", json{{"Name", "half-removed"}})), "");
  EXPECT_FALSE(exists(data("half-removed")));
}

TEST_F(VolumeDriverTest, OpenRefusesAWorldWritableDataDir) {
  stack_.reset();
  ASSERT_EQ(::chmod(tmp_.sub("data").c_str(), 0777), 0);
  auto d = Open(*store_, DriverConfig{});
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("DATA_DIR"), std::string::npos);
  EXPECT_NE(d.status().message().find("chmod 0700"), std::string::npos);
}

TEST_F(VolumeDriverTest, CreatesItsDirectoriesRootOnly) {
  EXPECT_EQ(stat_of(tmp_.sub("data")).st_mode & 07777, 0700u);
  EXPECT_EQ(stat_of(tmp_.sub("mnt")).st_mode & 07777, 0700u);
}

}  // namespace
}  // namespace tenantfs

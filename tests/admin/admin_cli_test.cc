#include "admin/admin_cli.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <sstream>
#include <string>
#include <vector>

#include "admin/admin_api.h"
#include "tests/admin/test_support.h"

namespace tenantfs {
namespace {

using nlohmann::json;
using testing::TempDir;
using testing::contains;

const std::string kId(64, 'a');

// Splits table output into lines of whitespace-separated cells.
std::vector<std::vector<std::string>> cells(const std::string& text) {
  std::vector<std::vector<std::string>> rows;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream words(line);
    std::vector<std::string> row;
    std::string w;
    while (words >> w) row.push_back(w);
    rows.push_back(row);
  }
  return rows;
}

TEST(PluginSocketFromDockerLsTest, PicksTheEnabledTenantfsPlugin) {
  EXPECT_EQ(plugin_socket_from_docker_ls(kId + " tenantfs:latest true\n"),
            "/run/docker/plugins/" + kId + "/tenantfs.sock");
  EXPECT_EQ(plugin_socket_from_docker_ls(kId + " tenantfs true"),
            "/run/docker/plugins/" + kId + "/tenantfs.sock");
  EXPECT_EQ(plugin_socket_from_docker_ls(kId + " registry.local:5000/org/tenantfs:v1 true\n"),
            "/run/docker/plugins/" + kId + "/tenantfs.sock");

  std::string other(64, 'b');
  std::string output = other + " tenantfs:old false\n" +       // disabled
                       other + " vieux/sshfs:latest true\n" +  // another plugin
                       kId + " tenantfs:latest true\n";
  EXPECT_EQ(plugin_socket_from_docker_ls(output), "/run/docker/plugins/" + kId + "/tenantfs.sock");
}

TEST(PluginSocketFromDockerLsTest, IgnoresEverythingElse) {
  for (const std::string& output : std::vector<std::string>{
           "",
           kId + " tenantfs:latest false",
           kId + " mytenantfs:latest true",
           kId + " tenantfs-dev:latest true",
           kId + " tenantfs: true",
           kId + " org/tenantfs/extra:latest true",
           "abc tenantfs:latest true",                      // short id
           std::string(64, 'A') + " tenantfs:latest true",  // not lowercase hex
           "../../etc tenantfs:latest true",
           kId + " tenantfs:latest",
           "ID NAME ENABLED",
       }) {
    EXPECT_EQ(plugin_socket_from_docker_ls(output), std::nullopt) << output;
  }
}

AdminCliContext fake_context(std::optional<std::string> env, std::optional<std::string> docker,
                             int* docker_calls = nullptr) {
  AdminCliContext ctx;
  ctx.getenv = [env](const std::string& name) -> std::optional<std::string> {
    return name == kSocketEnvVar ? env : std::nullopt;
  };
  ctx.docker_plugin_ls = [docker, docker_calls]() {
    if (docker_calls) ++*docker_calls;
    return docker;
  };
  return ctx;
}

TEST(ResolveAdminSocketTest, FollowsTheDocumentedOrder) {
  const std::string plugin_sock = "/run/docker/plugins/" + kId + "/tenantfs.sock";
  const std::string ls = kId + " tenantfs:latest true\n";
  int calls = 0;
  EXPECT_EQ(resolve_admin_socket("/flag.sock", fake_context("/env.sock", ls, &calls)),
            "/flag.sock");
  EXPECT_EQ(resolve_admin_socket("", fake_context("/env.sock", ls, &calls)), "/env.sock");
  EXPECT_EQ(calls, 0);  // docker is only asked when nothing closer answers
  EXPECT_EQ(resolve_admin_socket("", fake_context(std::nullopt, ls, &calls)), plugin_sock);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(resolve_admin_socket("", fake_context("", ls)), plugin_sock);  // empty env: unset
  EXPECT_EQ(resolve_admin_socket("", fake_context(std::nullopt, std::nullopt)),
            kDefaultAdminSocket);
  EXPECT_EQ(resolve_admin_socket("", fake_context(std::nullopt, "ID NAME ENABLED\n")),
            kDefaultAdminSocket);
}

// The real docker lookup, with a fake `docker` first on PATH.
class DockerLookupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* path = ::getenv("PATH");
    old_path_ = path ? path : "";
    ::setenv("PATH", (dir_.path() + ":" + old_path_).c_str(), 1);
  }
  void TearDown() override {
    ::setenv("PATH", old_path_.c_str(), 1);
    ::unsetenv("DOCKER_HOST");
  }
  void fake_docker(const std::string& script) {
    std::string p = dir_.write("docker", "#!/bin/sh\n" + script);
    ASSERT_EQ(::chmod(p.c_str(), 0700), 0);
  }

  TempDir dir_;
  std::string old_path_;
};

TEST_F(DockerLookupTest, AsksDockerWithTheCallersEnvironment) {
  // Answers only for the expected arguments and the DOCKER_HOST given.
  fake_docker(
      "[ \"$*\" = 'plugin ls --no-trunc --format {{.ID}} {{.Name}} {{.Enabled}}' ] || exit 3\n"
      "[ \"$DOCKER_HOST\" = unix:///tmp/private.sock ] || exit 4\n"
      "echo '" +
      kId + " tenantfs:latest true'\n");
  ::setenv("DOCKER_HOST", "unix:///tmp/private.sock", 1);
  auto ctx = AdminCliContext::Default();
  ctx->getenv = [](const std::string&) { return std::nullopt; };
  EXPECT_EQ(resolve_admin_socket("", *ctx), "/run/docker/plugins/" + kId + "/tenantfs.sock");
}

TEST_F(DockerLookupTest, FailingDockerIsSkipped) {
  fake_docker("echo '" + kId + " tenantfs:latest true'\necho 'daemon down' >&2\nexit 1\n");
  auto ctx = AdminCliContext::Default();
  ctx->getenv = [](const std::string&) { return std::nullopt; };
  EXPECT_EQ(ctx->docker_plugin_ls(), std::nullopt);
  EXPECT_EQ(resolve_admin_socket("", *ctx), kDefaultAdminSocket);
}

TEST(DockerLookupAbsentTest, MissingDockerIsSkipped) {
  const char* path = ::getenv("PATH");
  std::string old = path ? path : "";
  ::setenv("PATH", "/nonexistent-tenantfs-test", 1);
  auto ctx = AdminCliContext::Default();
  auto out = ctx->docker_plugin_ls();
  ::setenv("PATH", old.c_str(), 1);
  EXPECT_EQ(out, std::nullopt);
}

// Runs the CLI in-process against an admin API on a temp socket.
class AdminCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    register_admin_routes(server_, AdminDeps{store_.get(), &tenants_});
    server_.start();
  }

  // argv without the program name; returns the exit code.
  int run(std::vector<std::string> args, std::optional<std::string> env = std::nullopt,
          std::optional<std::string> docker = std::nullopt) {
    out_.str("");
    err_.str("");
    auto ctx = std::make_shared<AdminCliContext>(fake_context(env, docker));
    ctx->out = &out_;
    ctx->err = &err_;
    CLI::App app{"test", "tenantfs"};
    app.require_subcommand(1);
    register_admin_commands(app, ctx);
    args.insert(args.begin(), "tenantfs");
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    try {
      app.parse(static_cast<int>(argv.size()), argv.data());
    } catch (const CLI::ParseError& e) {
      return app.exit(e, out_, err_);
    }
    return 0;
  }

  std::vector<std::string> with_socket(std::vector<std::string> args) {
    args.push_back("--socket");
    args.push_back(server_.path());
    return args;
  }

  TempDir dir_;
  std::unique_ptr<SqliteStore> store_ = testing::open_store(dir_);
  std::string passwd_ = dir_.write("passwd", "hostuser:x:1200:1200::/:/bin/sh\n");
  TenantDirectory tenants_{*store_, passwd_, ""};
  testing::TestUnixServer server_{dir_.sub("admin.sock")};
  std::ostringstream out_, err_;
};

TEST_F(AdminCliTest, TenantAddStoresAndConfirms) {
  ASSERT_EQ(run(with_socket({"tenant", "add", "alice", "--uid", "1000", "--gid", "1000", "--groups",
                             "3001,3000"})),
            0)
      << err_.str();
  EXPECT_EQ(out_.str(), "tenant alice added: uid 1000, gid 1000, groups 3000,3001\n");
  EXPECT_EQ(err_.str(), "");
  auto stored = store_->get_tenant("alice");
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->identity.groups, (std::vector<gid_t>{3000, 3001}));
}

TEST_F(AdminCliTest, TenantAddOfRootPrintsTheServersErrAndExits1) {
  EXPECT_EQ(run(with_socket({"tenant", "add", "alice", "--uid", "0", "--gid", "1000"})), 1);
  EXPECT_EQ(out_.str(), "");
  EXPECT_TRUE(contains(err_.str(), "tenantfs: tenant \"alice\": uid 0 is root")) << err_.str();
  EXPECT_EQ(store_->get_tenant("alice").status().code(), Code::kNotFound);
}

// A name that is not UTF-8 cannot go into the JSON request as it is: its
// bytes are replaced and the server refuses the name it then sees.
TEST_F(AdminCliTest, TenantNameThatIsNotUtf8GetsTheServersErrNotACrash) {
  EXPECT_EQ(run(with_socket({"tenant", "add", "al\xff" "ice", "--uid", "1000", "--gid", "1000"})),
            1);
  EXPECT_EQ(out_.str(), "");
  EXPECT_TRUE(contains(err_.str(), "tenantfs: ")) << err_.str();
  EXPECT_TRUE(contains(err_.str(), "al\xef\xbf\xbd" "ice")) << err_.str();
  auto list = store_->list_tenants();
  ASSERT_TRUE(list.ok());
  EXPECT_TRUE(list->empty());
}

TEST_F(AdminCliTest, ArgumentErrorsAreReportedBeforeAnyRequest) {
  EXPECT_NE(run(with_socket({"tenant", "add", "alice", "--uid", "abc", "--gid", "1"})), 0);
  EXPECT_TRUE(contains(err_.str(), "--uid")) << err_.str();
  EXPECT_TRUE(contains(err_.str(), "\"abc\" is not a numeric id")) << err_.str();

  EXPECT_NE(run(with_socket({"tenant", "add", "alice", "--uid", "5"})), 0);
  EXPECT_TRUE(contains(err_.str(), "--gid is required")) << err_.str();

  EXPECT_NE(
      run(with_socket({"tenant", "add", "alice", "--uid", "5", "--gid", "5", "--groups", "7,x"})),
      0);
  EXPECT_TRUE(contains(err_.str(), "\"x\" is not a numeric id")) << err_.str();

  EXPECT_NE(run({"tenant"}), 0);
  EXPECT_TRUE(contains(err_.str(), "subcommand")) << err_.str();

  auto list = store_->list_tenants();
  ASSERT_TRUE(list.ok());
  EXPECT_TRUE(list->empty());
}

TEST_F(AdminCliTest, TenantLsPrintsATableOfBothSources) {
  ASSERT_TRUE(store_->add_tenant(Tenant{"alice", {1000, 1001, {5, 6}}, 0}).ok());
  ASSERT_TRUE(store_->allow_user("alice", "carol").ok());
  ASSERT_TRUE(store_->allow_user("alice", "alice").ok());
  ASSERT_EQ(run(with_socket({"tenant", "ls"})), 0) << err_.str();
  auto rows = cells(out_.str());
  ASSERT_EQ(rows.size(), 3u) << out_.str();
  EXPECT_EQ(rows[0], (std::vector<std::string>{"NAME", "UID", "GID", "GROUPS", "SOURCE", "USERS"}));
  EXPECT_EQ(rows[1],
            (std::vector<std::string>{"alice", "1000", "1001", "5,6", "registry", "alice,carol"}));
  EXPECT_EQ(rows[2], (std::vector<std::string>{"hostuser", "1200", "1200", "-", "passwd", "-"}));
  // Columns line up: every row has SOURCE at the same offset.
  std::istringstream lines(out_.str());
  std::string header, first;
  std::getline(lines, header);
  std::getline(lines, first);
  EXPECT_EQ(header.find("SOURCE"), first.find("registry"));
}

TEST_F(AdminCliTest, TenantLsJsonIsTheServersReply) {
  ASSERT_TRUE(store_->add_tenant(Tenant{"alice", {1000, 1000, {}}, 0}).ok());
  ASSERT_EQ(run(with_socket({"tenant", "ls", "--json"})), 0) << err_.str();
  json j = json::parse(out_.str());
  ASSERT_EQ(j["tenants"].size(), 2u);
  EXPECT_EQ(j["tenants"][0]["name"], "alice");
  EXPECT_EQ(j["tenants"][1]["source"], "passwd");
}

TEST_F(AdminCliTest, TenantAllowAndDenyChangeWhoMayUseTheTenant) {
  ASSERT_TRUE(store_->add_tenant(Tenant{"alice", {1000, 1000, {}}, 0}).ok());
  ASSERT_EQ(run(with_socket({"tenant", "allow", "alice", "--user", "carol"})), 0) << err_.str();
  EXPECT_EQ(out_.str(), "Docker user carol may now use tenant alice\n");
  EXPECT_TRUE(*store_->user_allowed("alice", "carol"));
  // A passwd tenant can be granted too.
  ASSERT_EQ(run(with_socket({"tenant", "allow", "hostuser", "--user", "carol"})), 0) << err_.str();
  EXPECT_TRUE(*store_->user_allowed("hostuser", "carol"));

  ASSERT_EQ(run(with_socket({"tenant", "deny", "alice", "--user", "carol"})), 0) << err_.str();
  EXPECT_EQ(out_.str(), "Docker user carol may no longer use tenant alice\n");
  EXPECT_FALSE(*store_->user_allowed("alice", "carol"));
  EXPECT_EQ(run(with_socket({"tenant", "deny", "alice", "--user", "carol"})), 1);
  EXPECT_TRUE(contains(err_.str(), "user \"carol\" is not allowed for tenant \"alice\""))
      << err_.str();
}

TEST_F(AdminCliTest, TenantAllowOfAnUnknownTenantSaysHowToAddIt) {
  EXPECT_EQ(run(with_socket({"tenant", "allow", "alcie", "--user", "carol"})), 1);
  EXPECT_TRUE(contains(err_.str(), "alcie")) << err_.str();
  EXPECT_TRUE(contains(err_.str(), "tenantfs tenant add")) << err_.str();
  EXPECT_TRUE(store_->list_grants()->empty());
  // --user is required.
  EXPECT_NE(run(with_socket({"tenant", "allow", "alice"})), 0);
}

TEST_F(AdminCliTest, AdminAllowDenyAndLs) {
  ASSERT_EQ(run(with_socket({"admin", "allow", "ops"})), 0) << err_.str();
  EXPECT_EQ(out_.str(), "Docker user ops is now a tenantfs admin\n");
  ASSERT_EQ(run(with_socket({"admin", "allow", "audit"})), 0) << err_.str();
  ASSERT_EQ(run(with_socket({"admin", "ls"})), 0) << err_.str();
  EXPECT_EQ(cells(out_.str()),
            (std::vector<std::vector<std::string>>{{"ADMIN"}, {"audit"}, {"ops"}}));
  ASSERT_EQ(run(with_socket({"admin", "deny", "ops"})), 0) << err_.str();
  EXPECT_EQ(out_.str(), "Docker user ops is no longer a tenantfs admin\n");
  EXPECT_FALSE(*store_->is_admin("ops"));
  EXPECT_EQ(run(with_socket({"admin", "deny", "ops"})), 1);
  EXPECT_TRUE(contains(err_.str(), "user \"ops\" is not an admin")) << err_.str();
}

TEST_F(AdminCliTest, TenantRmRemovesOrExplainsWhyNot) {
  Tenant alice{"alice", {1000, 1000, {}}, 0};
  ASSERT_TRUE(store_->add_tenant(alice).ok());
  VolumeBinding b;
  b.name = "reports";
  b.tenant = "alice";
  b.identity.uid = b.present_uid = 1000;
  b.identity.gid = b.present_gid = 1000;
  b.backing_path = "/srv/data/reports";
  b.options = {{"tenant", "alice"}};
  ASSERT_TRUE(store_->bind_volume(b).ok());

  EXPECT_EQ(run(with_socket({"tenant", "rm", "alice"})), 1);
  EXPECT_TRUE(contains(err_.str(), "tenantfs: tenant \"alice\" still has 1 volume bound: reports"))
      << err_.str();
  EXPECT_TRUE(contains(err_.str(), "docker volume rm reports")) << err_.str();

  ASSERT_TRUE(store_->remove_volume("reports").ok());
  EXPECT_EQ(run(with_socket({"tenant", "rm", "alice"})), 0) << err_.str();
  EXPECT_EQ(out_.str(), "tenant alice removed\n");
  EXPECT_EQ(store_->get_tenant("alice").status().code(), Code::kNotFound);
}

TEST_F(AdminCliTest, VolumeLsShowsBindingsAndMounts) {
  Tenant alice{"alice", {1000, 1000, {}}, 0};
  ASSERT_TRUE(store_->add_tenant(alice).ok());
  VolumeBinding b;
  b.name = "reports";
  b.tenant = "alice";
  b.identity.uid = b.present_uid = 1000;
  b.identity.gid = b.present_gid = 1000;
  b.mode = 0750;
  b.cache = "auto";
  b.backing_path = "/srv/data/reports";
  b.options = {{"tenant", "alice"}};
  ASSERT_TRUE(store_->bind_volume(b).ok());
  ASSERT_TRUE(store_->add_ref("reports", "c1").ok());
  ASSERT_TRUE(store_->add_ref("reports", "c2").ok());

  ASSERT_EQ(run(with_socket({"volume", "ls"})), 0) << err_.str();
  auto rows = cells(out_.str());
  ASSERT_EQ(rows.size(), 2u) << out_.str();
  EXPECT_EQ(rows[0], (std::vector<std::string>{"VOLUME", "TENANT", "UID", "GID", "MODE", "CACHE",
                                               "MOUNTS", "PATH"}));
  EXPECT_EQ(rows[1], (std::vector<std::string>{"reports", "alice", "1000", "1000", "0750", "auto",
                                               "2", "/srv/data/reports"}));

  ASSERT_EQ(run(with_socket({"volume", "ls", "--json"})), 0) << err_.str();
  json j = json::parse(out_.str());
  EXPECT_EQ(j["volumes"][0]["mount_ids"], (json{{"c1", 1}, {"c2", 1}}));
}

TEST_F(AdminCliTest, SocketFromTheEnvironment) {
  ASSERT_TRUE(store_->add_tenant(Tenant{"alice", {1000, 1000, {}}, 0}).ok());
  ASSERT_EQ(run({"tenant", "ls"}, /*env=*/server_.path()), 0) << err_.str();
  EXPECT_TRUE(contains(out_.str(), "alice")) << out_.str();
}

TEST_F(AdminCliTest, MissingSocketSaysWhatToDo) {
  EXPECT_EQ(run({"tenant", "ls", "--socket", dir_.sub("absent.sock")}), 1);
  EXPECT_EQ(out_.str(), "");
  EXPECT_TRUE(contains(err_.str(),
                       "tenantfs: cannot reach tenantfs: connect to " + dir_.sub("absent.sock")))
      << err_.str();
  EXPECT_TRUE(contains(err_.str(),
                       "is the tenantfs plugin enabled? run `sudo make install`, or pass "
                       "--socket / set TENANTFS_SOCKET"))
      << err_.str();
}

TEST_F(AdminCliTest, SocketOfTheDockerPluginIsTheOneTried) {
  std::string id(64, 'c');
  EXPECT_EQ(run({"volume", "ls"}, std::nullopt, id + " tenantfs:latest true\n"), 1);
  EXPECT_TRUE(contains(err_.str(), "connect to /run/docker/plugins/" + id + "/tenantfs.sock"))
      << err_.str();
}

TEST_F(AdminCliTest, NonJsonErrorReplyIsReportedWithItsStatus) {
  testing::TestUnixServer other(dir_.sub("other.sock"));
  other.Post("/tenantfs/v1/tenants/list", [](const httplib::Request&, httplib::Response& res) {
    res.status = 503;
    res.set_content("overloaded", "text/plain");
  });
  other.start();
  EXPECT_EQ(run({"tenant", "ls", "--socket", other.path()}), 1);
  EXPECT_TRUE(contains(err_.str(), "answered HTTP 503")) << err_.str();
}

}  // namespace
}  // namespace tenantfs

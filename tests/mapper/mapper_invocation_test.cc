// The mapper's command line and readiness report as the plugin and the
// mapper both see them: MapperInvocation::to_argv/from_argv, the CLI of
// `tenantfs mapper`, and the "ready"/"error: " line. No FUSE needed.
#include "common/mapper_invocation.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "common/identity.h"
#include "common/mapper_readiness.h"
#include "mapper/mapper_command.h"

namespace tenantfs {
namespace {

// Every field away from its default, so that a field that to_argv or
// from_argv forgets comes back different.
MapperInvocation every_field_set() {
  MapperInvocation inv;
  inv.backing = "/proc/self/fd/4/.";
  inv.mountpoint = "/mnt/tenantfs/vol-1";
  inv.name = "vol-1";
  inv.identity = Identity{7001, 7002, {7100, 7200}};
  inv.present_uid = 0;
  inv.present_gid = 1000;
  inv.cache = CacheMode::kExclusive;
  inv.readonly = true;
  inv.ready_fd = 3;
  inv.request_loop = "shared";
  inv.max_fds = 4096;
  inv.passthrough = "off";
  return inv;
}

void expect_same(const MapperInvocation& got, const MapperInvocation& want) {
  EXPECT_EQ(got.backing, want.backing);
  EXPECT_EQ(got.mountpoint, want.mountpoint);
  EXPECT_EQ(got.name, want.name);
  EXPECT_EQ(got.identity.uid, want.identity.uid);
  EXPECT_EQ(got.identity.gid, want.identity.gid);
  EXPECT_EQ(got.identity.groups, want.identity.groups);
  EXPECT_EQ(got.present_uid, want.present_uid);
  EXPECT_EQ(got.present_gid, want.present_gid);
  EXPECT_EQ(cache_mode_name(got.cache), std::string(cache_mode_name(want.cache)));
  EXPECT_EQ(got.readonly, want.readonly);
  EXPECT_EQ(got.ready_fd, want.ready_fd);
  EXPECT_EQ(got.request_loop, want.request_loop);
  EXPECT_EQ(got.max_fds, want.max_fds);
  EXPECT_EQ(got.passthrough, want.passthrough);
  EXPECT_TRUE(got == want);
}

// What `tenantfs mapper` itself makes of `args` (argv[1] onwards).
std::optional<MapperInvocation> parse_with_cli(const std::vector<std::string>& args) {
  CLI::App app("tenantfs");
  app.require_subcommand(1);
  std::optional<MapperInvocation> parsed;
  register_mapper_command(app, [&](const MapperInvocation& inv) { parsed = inv; });
  std::vector<std::string> argv_s = {"tenantfs"};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<const char*> argv;
  for (const auto& a : argv_s) argv.push_back(a.c_str());
  try {
    app.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const CLI::ParseError&) {
    return std::nullopt;
  }
  return parsed;
}

TEST(MapperInvocationTest, EveryFieldSurvivesToArgvAndFromArgv) {
  const MapperInvocation inv = every_field_set();
  Result<MapperInvocation> back = MapperInvocation::from_argv(inv.to_argv());
  ASSERT_TRUE(back.ok()) << back.status().message();
  expect_same(*back, inv);
}

TEST(MapperInvocationTest, DefaultsSurviveToArgvAndFromArgv) {
  MapperInvocation inv;
  inv.backing = "/data/vol";
  inv.mountpoint = "/mnt/vol";
  inv.identity = Identity{7001, 7001, {}};
  Result<MapperInvocation> back = MapperInvocation::from_argv(inv.to_argv());
  ASSERT_TRUE(back.ok()) << back.status().message();
  expect_same(*back, inv);
  EXPECT_FALSE(back->present_uid);
  EXPECT_EQ(back->presented_uid(), 7001u);
  EXPECT_EQ(back->volume_name(), "vol");
}

TEST(MapperInvocationTest, TheMapperCommandLineAcceptsWhatToArgvProduces) {
  for (const MapperInvocation& inv :
       {every_field_set(), MapperInvocation::from_argv({"mapper", "--backing", "/b", "--mountpoint",
                                                        "/m", "--uid", "5", "--gid", "6"})
                               .value()}) {
    std::optional<MapperInvocation> parsed = parse_with_cli(inv.to_argv());
    ASSERT_TRUE(parsed) << "the CLI refused what to_argv produced";
    expect_same(*parsed, inv);
  }
}

TEST(MapperInvocationTest, BothParsersRefuseTheSameMistakes) {
  const std::vector<std::string> base = {"mapper", "--backing", "/b", "--mountpoint", "/m", "--uid",
                                         "5",      "--gid",     "6"};
  for (const std::vector<std::string>& extra :
       std::vector<std::vector<std::string>>{{"--cache", "sometimes"},
                                             {"--uid", "alice"},
                                             {"--groups", "7,x"},
                                             {"--no-such-option", "1"},
                                             {"--ready-fd"}}) {
    std::vector<std::string> args = base;
    args.insert(args.end(), extra.begin(), extra.end());
    EXPECT_FALSE(MapperInvocation::from_argv(args).ok()) << extra[0];
    EXPECT_FALSE(parse_with_cli(args)) << extra[0];
  }
}

TEST(MapperInvocationTest, FromArgvRefusesWhatIsNotAMapperCommandLine) {
  EXPECT_FALSE(MapperInvocation::from_argv({}).ok());
  EXPECT_FALSE(MapperInvocation::from_argv({"serve", "--mountpoint", "/m"}).ok());
  Result<MapperInvocation> st = MapperInvocation::from_argv({"mapper", "--cache", "weekly"});
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.status().message().find("strict or exclusive"), std::string::npos)
      << st.status().message();
}

TEST(MapperInvocationTest, CacheModeNamesRoundTrip) {
  for (const std::string& name : cache_mode_names()) {
    std::optional<CacheMode> mode = parse_cache_mode(name);
    ASSERT_TRUE(mode) << name;
    EXPECT_EQ(cache_mode_name(*mode), name);
  }
  EXPECT_FALSE(parse_cache_mode("Strict"));
}

TEST(MapperReadinessTest, ReadyWithoutFieldsIsTheBareWord) {
  EXPECT_EQ(format_ready_line(), "ready\n");
  Readiness r = parse_readiness("ready\n");
  EXPECT_TRUE(r.ready());
  EXPECT_TRUE(r.fields.empty());
}

TEST(MapperReadinessTest, FieldsSurviveFormatAndParse) {
  const ReadyFields fields = {{"request-loop", "per-cpu"}, {"passthrough", "off"}};
  const std::string line = format_ready_line(fields);
  EXPECT_EQ(line, "ready passthrough=off request-loop=per-cpu\n");
  Readiness r = parse_readiness(line);
  ASSERT_TRUE(r.ready()) << r.message;
  EXPECT_EQ(r.fields, fields);
}

TEST(MapperReadinessTest, ErrorCarriesTheMapperMessageOnOneLine) {
  const std::string line = format_error_line("cannot mount /mnt/x:\nno device");
  EXPECT_EQ(line, "error: cannot mount /mnt/x: no device\n");
  Readiness r = parse_readiness(line);
  EXPECT_EQ(r.kind, Readiness::Kind::kError);
  EXPECT_EQ(r.message, "cannot mount /mnt/x: no device");
}

TEST(MapperReadinessTest, AnythingElseIsMalformed) {
  for (const char* line : {"", "readyish", "ready loop", "ready =x", "ok", "READY"}) {
    Readiness r = parse_readiness(line);
    EXPECT_EQ(r.kind, Readiness::Kind::kMalformed) << line;
    EXPECT_FALSE(r.message.empty()) << line;
  }
}

TEST(IdentityTest, OneRuleForTenantIds) {
  EXPECT_TRUE(validate_identity(Identity{1000, 1000, {20, 100}}).ok());
  for (const Identity& bad :
       {Identity{0, 1000, {}}, Identity{1000, 0, {}}, Identity{1000, 1000, {0}},
        Identity{kNoId, 1000, {}}, Identity{1000, 1000, {kNoId}}, Identity{2147483646, 1000, {}},
        Identity{1000, 1000, {2147483646}},
        Identity{1000, 1000, std::vector<gid_t>(kMaxIdentityGroups + 1, 20)}}) {
    Status st = validate_identity(bad);
    EXPECT_EQ(st.code(), Code::kInvalidArgument) << bad.uid << ":" << bad.gid;
    EXPECT_FALSE(st.message().empty());
  }
}

TEST(IdentityTest, RootMayBePresentedButNotBeATenant) {
  EXPECT_TRUE(is_presentable_id(0));
  EXPECT_FALSE(is_tenant_id(0));
  for (uint64_t id : {uint64_t{kNoId}, uint64_t{2147483646}}) {
    EXPECT_FALSE(is_presentable_id(id)) << id;
    EXPECT_FALSE(is_tenant_id(id)) << id;
  }
}

}  // namespace
}  // namespace tenantfs

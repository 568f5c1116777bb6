#include "plugin/volume_spec.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "common/file_mode.h"
#include "plugin/serve.h"

namespace tenantfs {
namespace {

using Opts = std::map<std::string, std::string>;

TEST(VolumeName, AcceptsDockerNames) {
  for (const char* name : {"a", "data", "Data_1.2-x", "0abc", "a..b"}) {
    EXPECT_TRUE(validate_volume_name(name).ok()) << name;
  }
  EXPECT_TRUE(validate_volume_name(std::string(kMaxVolumeNameLength, 'a')).ok());
}

TEST(VolumeName, RefusesNamesThatCouldEscapeOrCollide) {
  for (const char* name :
       {"", ".", "..", "../x", "a/b", "/abs", ".hidden", "-x", "_x", "a b", "a\nb", "é"}) {
    Status st = validate_volume_name(name);
    EXPECT_EQ(st.code(), Code::kInvalidArgument) << name;
  }
  Status st = validate_volume_name(std::string(kMaxVolumeNameLength + 1, 'a'));
  EXPECT_EQ(st.code(), Code::kInvalidArgument);
  EXPECT_NE(st.message().find("at most 128"), std::string::npos) << st.message();
}

TEST(CreateOptions, EmptyOptionsLeaveEverythingUnset) {
  auto o = parse_create_options("v", {});
  ASSERT_TRUE(o.ok());
  EXPECT_FALSE(o->tenant || o->uid || o->gid || o->mode || o->path || o->cache || o->readonly);
}

TEST(CreateOptions, ParsesEveryOption) {
  auto o = parse_create_options("v", Opts{{"tenant", "alice"},
                                          {"uid", "1000"},
                                          {"gid", "0"},
                                          {"mode", "0750"},
                                          {"cache", "exclusive"},
                                          {"readonly", "true"}});
  ASSERT_TRUE(o.ok()) << o.status().message();
  EXPECT_EQ(*o->tenant, "alice");
  EXPECT_EQ(*o->uid, 1000u);
  EXPECT_EQ(*o->gid, 0u);
  EXPECT_EQ(*o->mode, 0750u);
  EXPECT_EQ(*o->cache, "exclusive");
  EXPECT_TRUE(*o->readonly);

  auto p = parse_create_options("v", Opts{{"path", "/srv/data/x"}, {"readonly", "false"}});
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(*p->path, "/srv/data/x");
  EXPECT_FALSE(*p->readonly);
}

TEST(CreateOptions, UnknownOptionListsTheValidOnes) {
  auto o = parse_create_options("data", Opts{{"tenant", "alice"}, {"size", "1G"}});
  ASSERT_FALSE(o.ok());
  EXPECT_EQ(o.status().message(),
            "tenantfs: volume \"data\": unknown option \"size\"; valid options are: tenant, "
            "uid, gid, mode, path, cache, readonly");
}

TEST(CreateOptions, RefusesBadIds) {
  for (const char* v : {"", "-1", "4294967295", "99999999999", "12a", "0x10", " 1"}) {
    auto o = parse_create_options("data", Opts{{"uid", v}});
    ASSERT_FALSE(o.ok()) << v;
    EXPECT_NE(o.status().message().find("option \"uid\" must be a decimal id"), std::string::npos)
        << o.status().message();
  }
  EXPECT_FALSE(parse_create_options("data", Opts{{"gid", "abc"}}).ok());
}

TEST(CreateOptions, RefusesTheMappersProcessId) {
  for (const char* key : {"uid", "gid"}) {
    auto o = parse_create_options("data", Opts{{"tenant", "alice"}, {key, "2147483646"}});
    ASSERT_FALSE(o.ok()) << key;
    EXPECT_EQ(o.status().message(), std::string("tenantfs: volume \"data\": option \"") + key +
                                        "\" must not be 2147483646, which is reserved for "
                                        "tenantfs's own processes; pick another id");
  }
  EXPECT_TRUE(parse_create_options("data", Opts{{"tenant", "alice"}, {"uid", "2147483645"}}).ok());
}

TEST(CreateOptions, RefusesWorldWritableAndSpecialModes) {
  auto ww = parse_create_options("data", Opts{{"mode", "0777"}});
  ASSERT_FALSE(ww.ok());
  EXPECT_NE(ww.status().message().find("world-writable"), std::string::npos);
  EXPECT_FALSE(parse_create_options("data", Opts{{"mode", "0702"}}).ok());
  for (const char* m : {"4700", "2770", "1770"}) {
    auto o = parse_create_options("data", Opts{{"mode", m}});
    ASSERT_FALSE(o.ok()) << m;
    EXPECT_NE(o.status().message().find("setuid, setgid or sticky"), std::string::npos);
  }
  for (const char* m : {"", "0800", "rwx", "17777", "-700"}) {
    auto o = parse_create_options("data", Opts{{"mode", m}});
    ASSERT_FALSE(o.ok()) << m;
    EXPECT_NE(o.status().message().find("octal"), std::string::npos) << m;
  }
  EXPECT_TRUE(parse_create_options("data", Opts{{"mode", "0770"}}).ok());
  EXPECT_TRUE(parse_create_options("data", Opts{{"mode", "700"}}).ok());
}

TEST(CreateOptions, ErrorsNeverQuoteOptionValues) {
  auto o = parse_create_options("data", Opts{{"uid", "s3cr3t-token"}});
  ASSERT_FALSE(o.ok());
  EXPECT_EQ(o.status().message().find("s3cr3t"), std::string::npos);
}

TEST(CreateOptions, RefusesRelativeOrUnnormalisedPaths) {
  for (const char* p : {"", "data", "/", "/srv/../etc", "/srv/./x", "/srv//x", "/srv/x/"}) {
    auto o = parse_create_options("data", Opts{{"path", p}});
    EXPECT_FALSE(o.ok()) << p;
  }
}

TEST(CreateOptions, ModeWithPathIsRefusedBecauseExistingDataIsNeverChmodded) {
  auto o = parse_create_options("data", Opts{{"path", "/srv/x"}, {"mode", "0700"}});
  ASSERT_FALSE(o.ok());
  EXPECT_NE(o.status().message().find("never chmoded"), std::string::npos);
}

TEST(CreateOptions, RefusesUnknownCacheAndReadonlyValues) {
  EXPECT_FALSE(parse_create_options("data", Opts{{"cache", "auto"}}).ok());
  EXPECT_FALSE(parse_create_options("data", Opts{{"readonly", "yes"}}).ok());
  EXPECT_FALSE(parse_create_options("data", Opts{{"tenant", ""}}).ok());
}

TEST(FormatMode, FourOctalDigits) {
  EXPECT_EQ(format_mode(0700), "0700");
  EXPECT_EQ(format_mode(0750), "0750");
  EXPECT_EQ(format_mode(0), "0000");
  EXPECT_EQ(format_mode(S_IFDIR | 02750), "2750");
}

TEST(AllowedRoots, SplitsAndNormalises) {
  auto r = parse_allowed_roots("/srv/data:/mnt/x/::");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, (std::vector<std::string>{"/srv/data", "/mnt/x"}));
  EXPECT_TRUE(parse_allowed_roots("")->empty());
  EXPECT_FALSE(parse_allowed_roots("relative").ok());
  EXPECT_FALSE(parse_allowed_roots("/srv/../etc").ok());
}

}  // namespace
}  // namespace tenantfs

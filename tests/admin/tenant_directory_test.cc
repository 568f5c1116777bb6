#include "admin/tenant_directory.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "tests/admin/test_support.h"

namespace tenantfs {
namespace {

using testing::TempDir;
using testing::contains;

TEST(ParsePasswdTest, ReadsWellFormedLinesAndSkipsCommentsAndBlanks) {
  std::vector<std::string> warnings;
  auto users = parse_passwd(
      "# host users\n"
      "\n"
      "root:x:0:0:root:/root:/bin/bash\n"
      "   \n"
      "alice:x:1000:1000:Alice,,,:/home/alice:/bin/bash\r\n"
      "bob:*:1001:100::/home/bob:/usr/sbin/nologin",  // no final newline
      "passwd", &warnings);
  ASSERT_EQ(users.size(), 3u);
  EXPECT_EQ(users[0].name, "root");
  EXPECT_EQ(users[0].uid, 0u);
  EXPECT_EQ(users[1].name, "alice");
  EXPECT_EQ(users[1].uid, 1000u);
  EXPECT_EQ(users[1].gid, 1000u);
  EXPECT_EQ(users[2].name, "bob");
  EXPECT_EQ(users[2].gid, 100u);
  EXPECT_TRUE(warnings.empty()) << warnings.front();
}

TEST(ParsePasswdTest, SkipsMalformedLinesWithOneWarningEach) {
  std::vector<std::string> warnings;
  auto users = parse_passwd(
      "short:x:1000\n"                       // 3 fields
      "neg:x:-1:100::/:/bin/sh\n"            // negative uid
      "big:x:4294967295:100::/:/bin/sh\n"    // (uid_t)-1
      "huge:x:99999999999:100::/:/bin/sh\n"  // overflows 32 bits
      "word:x:abc:100::/:/bin/sh\n"          // not a number
      "gid:x:1002:1x::/:/bin/sh\n"           // bad gid
      ":x:1003:100::/:/bin/sh\n"             // empty name
      "+::::::\n"                            // NIS compat line: empty uid
      "ok:x:1004:1004::/home/ok:/bin/sh\n"
      "extra:x:1005:100::/:/bin/sh:more\n",  // 8 fields
      "/etc/passwd", &warnings);
  ASSERT_EQ(users.size(), 1u);
  EXPECT_EQ(users[0].name, "ok");
  ASSERT_EQ(warnings.size(), 9u);
  EXPECT_TRUE(contains(warnings[0], "/etc/passwd:1:")) << warnings[0];
  EXPECT_TRUE(contains(warnings[1], "invalid uid \"-1\"")) << warnings[1];
  EXPECT_TRUE(contains(warnings[5], "invalid gid \"1x\"")) << warnings[5];
  EXPECT_TRUE(contains(warnings[8], "/etc/passwd:10:")) << warnings[8];
}

TEST(ParsePasswdTest, SkipsOverlongLines) {
  std::vector<std::string> warnings;
  std::string gecos(5000, 'g');
  auto users = parse_passwd("long:x:1000:1000:" + gecos + ":/:/bin/sh\nok:x:1001:1001::/:/bin/sh\n",
                            "p", &warnings);
  ASSERT_EQ(users.size(), 1u);
  EXPECT_EQ(users[0].name, "ok");
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_TRUE(contains(warnings[0], "p:1: line longer than")) << warnings[0];
}

TEST(ParseGroupTest, ReadsMembersAndSkipsMalformedLines) {
  std::vector<std::string> warnings;
  auto groups = parse_group(
      "# groups\n"
      "staff:x:50:alice, bob ,,\n"
      "empty:x:60:\n"
      "broken:x:70\n"
      "badgid:x:seven:alice\n",
      "group", &warnings);
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0].name, "staff");
  EXPECT_EQ(groups[0].gid, 50u);
  EXPECT_EQ(groups[0].members, (std::vector<std::string>{"alice", "bob"}));
  EXPECT_TRUE(groups[1].members.empty());
  ASSERT_EQ(warnings.size(), 2u);
  EXPECT_TRUE(contains(warnings[0], "group:4:")) << warnings[0];
  EXPECT_TRUE(contains(warnings[1], "invalid gid \"seven\"")) << warnings[1];
}

TEST(TenantsFromFilesTest, SupplementaryGroupsComeFromMemberLists) {
  auto users =
      parse_passwd("alice:x:1000:1000::/:/bin/sh\nbob:x:1001:1001::/:/bin/sh\n", "p", nullptr);
  auto groups = parse_group(
      "alice:x:1000:alice\n"  // her primary group listed again: not a supplementary one
      "video:x:44:bob,alice\n"
      "root:x:0:alice\n"  // gid 0 is never handed to a tenant
      "staff:x:50:alice\n"
      "video2:x:44:alice\n",  // same gid twice: once in the list
      "g", nullptr);
  auto tenants = tenants_from_files(users, groups, nullptr);
  ASSERT_EQ(tenants.size(), 2u);
  EXPECT_EQ(tenants[0].name, "alice");
  EXPECT_EQ(tenants[0].identity.groups, (std::vector<gid_t>{44, 50}));
  EXPECT_EQ(tenants[1].name, "bob");
  EXPECT_EQ(tenants[1].identity.groups, (std::vector<gid_t>{44}));
}

TEST(TenantsFromFilesTest, RootAndInvalidNamesAreNeverTenants) {
  std::vector<std::string> warnings;
  auto users = parse_passwd(
      "root:x:0:0::/root:/bin/sh\n"
      "toor:x:1000:0::/:/bin/sh\n"  // gid 0
      "zero:x:0:1000::/:/bin/sh\n"  // uid 0
      "Debian-exim:x:101:101::/:/bin/sh\n"
      "alice:x:1001:1001::/:/bin/sh\n"
      "alice:x:2001:2001::/:/bin/sh\n",  // a repeated name: the first wins
      "p", nullptr);
  auto tenants = tenants_from_files(users, {}, &warnings);
  ASSERT_EQ(tenants.size(), 1u);
  EXPECT_EQ(tenants[0].name, "alice");
  EXPECT_EQ(tenants[0].identity.uid, 1001u);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_TRUE(contains(warnings[0], "Debian-exim")) << warnings[0];
}

TEST(ValidateTenantNameTest, AcceptsUserNameLikeNames) {
  for (const char* name :
       {"alice", "_svc", "a", "team-7.build_x", "abcdefghijklmnopqrstuvwxyz012345"}) {
    EXPECT_TRUE(validate_tenant_name(name).ok()) << name;
  }
}

TEST(ValidateTenantNameTest, RejectsOthersWithTheRule) {
  for (const char* name : {"", "Alice", "7up", "-x", ".x", "a b", "a/b", "a:b", "ünï",
                           "abcdefghijklmnopqrstuvwxyz0123456"}) {
    Status st = validate_tenant_name(name);
    EXPECT_EQ(st.code(), Code::kInvalidArgument) << name;
    EXPECT_TRUE(contains(st.message(), "invalid tenant name")) << st.message();
    EXPECT_TRUE(contains(st.message(), "at most 32 characters")) << st.message();
  }
}

TEST(ValidateTenantTest, RefusesRootIdentities) {
  Tenant t{"alice", {1000, 1000, {}}, 0};
  EXPECT_TRUE(validate_tenant(t).ok());

  Tenant root_uid{"alice", {0, 1000, {}}, 0};
  Status st = validate_tenant(root_uid);
  EXPECT_EQ(st.code(), Code::kInvalidArgument);
  EXPECT_TRUE(contains(st.message(), "uid 0 is root")) << st.message();

  Tenant root_gid{"alice", {1000, 0, {}}, 0};
  st = validate_tenant(root_gid);
  EXPECT_TRUE(contains(st.message(), "gid 0")) << st.message();

  Tenant root_group{"alice", {1000, 1000, {10, 0}}, 0};
  st = validate_tenant(root_group);
  EXPECT_TRUE(contains(st.message(), "supplementary group 0")) << st.message();

  Tenant minus_one{"alice", {static_cast<uid_t>(-1), 1000, {}}, 0};
  st = validate_tenant(minus_one);
  EXPECT_TRUE(contains(st.message(), "out of range")) << st.message();

  // The mappers' own process uid: a tenant holding it could signal them.
  for (const Tenant& reserved :
       {Tenant{"alice", {2147483646, 1000, {}}, 0}, Tenant{"alice", {1000, 2147483646, {}}, 0},
        Tenant{"alice", {1000, 1000, {10, 2147483646}}, 0}}) {
    st = validate_tenant(reserved);
    EXPECT_EQ(st.code(), Code::kInvalidArgument);
    EXPECT_TRUE(contains(st.message(), "id 2147483646 is reserved for tenantfs's own processes"))
        << st.message();
  }

  Tenant many{"alice", {1000, 1000, std::vector<gid_t>(kMaxTenantGroups + 1, 5)}, 0};
  st = validate_tenant(many);
  EXPECT_TRUE(contains(st.message(), "at most 1024")) << st.message();
}

class TenantDirectoryTest : public ::testing::Test {
 protected:
  TempDir dir_;
  std::unique_ptr<SqliteStore> store_ = testing::open_store(dir_);
  std::string passwd_ = dir_.write("passwd",
                                   "root:x:0:0:root:/root:/bin/bash\n"
                                   "alice:x:1000:1000::/home/alice:/bin/bash\n"
                                   "bob:x:1001:1001::/home/bob:/bin/bash\n");
  std::string group_ = dir_.write("group", "docs:x:3000:alice\nops:x:3001:bob,alice\n");
};

TEST_F(TenantDirectoryTest, ResolvesPasswdUsersWithTheirGroups) {
  TenantDirectory tenants(*store_, passwd_, group_);
  auto alice = tenants.resolve("alice");
  ASSERT_TRUE(alice.ok()) << alice.status().ToString();
  EXPECT_EQ(alice->identity.uid, 1000u);
  EXPECT_EQ(alice->identity.gid, 1000u);
  EXPECT_EQ(alice->identity.groups, (std::vector<gid_t>{3000, 3001}));
}

TEST_F(TenantDirectoryTest, RegistryWinsOverPasswd) {
  ASSERT_TRUE(store_->add_tenant(Tenant{"alice", {5000, 5001, {5002}}, 0}).ok());
  TenantDirectory tenants(*store_, passwd_, group_);
  auto alice = tenants.resolve("alice");
  ASSERT_TRUE(alice.ok());
  EXPECT_EQ(alice->identity.uid, 5000u);
  EXPECT_EQ(alice->identity.groups, (std::vector<gid_t>{5002}));

  auto list = tenants.list();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);  // alice (registry) and bob (passwd); root never
  EXPECT_EQ((*list)[0].tenant.name, "alice");
  EXPECT_EQ((*list)[0].source, "registry");
  EXPECT_EQ((*list)[0].tenant.identity.uid, 5000u);
  EXPECT_EQ((*list)[1].tenant.name, "bob");
  EXPECT_EQ((*list)[1].source, "passwd");
}

TEST_F(TenantDirectoryTest, RootInPasswdIsRefusedWithAReason) {
  TenantDirectory tenants(*store_, passwd_, group_);
  auto root = tenants.resolve("root");
  ASSERT_FALSE(root.ok());
  EXPECT_EQ(root.status().code(), Code::kFailedPrecondition);
  EXPECT_TRUE(contains(root.status().message(), "must never be root")) << root.status().message();
}

TEST_F(TenantDirectoryTest, RootIdentityInTheRegistryIsRefused) {
  // The store itself accepts these; only the admin API validates.
  ASSERT_TRUE(store_->add_tenant(Tenant{"sneaky", {0, 1000, {}}, 0}).ok());
  ASSERT_TRUE(store_->add_tenant(Tenant{"sneaky2", {1000, 1000, {0}}, 0}).ok());
  TenantDirectory tenants(*store_, passwd_, group_);
  for (const char* name : {"sneaky", "sneaky2"}) {
    auto t = tenants.resolve(name);
    ASSERT_FALSE(t.ok()) << name;
    EXPECT_EQ(t.status().code(), Code::kFailedPrecondition);
    EXPECT_TRUE(contains(t.status().message(), "has an identity tenantfs refuses"))
        << t.status().message();
    EXPECT_TRUE(contains(t.status().message(), "must never be root")) << t.status().message();
  }
}

TEST_F(TenantDirectoryTest, UnknownNameSaysHowToAddIt) {
  TenantDirectory tenants(*store_, passwd_, group_);
  auto carol = tenants.resolve("carol");
  ASSERT_FALSE(carol.ok());
  EXPECT_EQ(carol.status().code(), Code::kNotFound);
  EXPECT_TRUE(contains(carol.status().message(), "tenantfs tenant add carol --uid UID --gid GID"))
      << carol.status().message();
  EXPECT_TRUE(contains(carol.status().message(), passwd_)) << carol.status().message();

  auto bad = tenants.resolve("../etc");
  EXPECT_EQ(bad.status().code(), Code::kInvalidArgument);
}

TEST_F(TenantDirectoryTest, WithoutFilesOnlyTheRegistryCounts) {
  ASSERT_TRUE(store_->add_tenant(Tenant{"svc", {7000, 7000, {}}, 0}).ok());
  TenantDirectory tenants(*store_, "", "");
  EXPECT_TRUE(tenants.resolve("svc").ok());
  auto alice = tenants.resolve("alice");
  EXPECT_EQ(alice.status().code(), Code::kNotFound);
  EXPECT_FALSE(contains(alice.status().message(), "passwd")) << alice.status().message();
  auto list = tenants.list();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].source, "registry");
}

TEST_F(TenantDirectoryTest, RereadsFilesWhenTheyChange) {
  TenantDirectory tenants(*store_, passwd_, group_);
  ASSERT_EQ(tenants.resolve("carol").status().code(), Code::kNotFound);

  dir_.write("passwd", "carol:x:1500:1500::/:/bin/sh\n");
  auto carol = tenants.resolve("carol");
  ASSERT_TRUE(carol.ok()) << carol.status().ToString();
  EXPECT_EQ(carol->identity.uid, 1500u);
  EXPECT_EQ(tenants.resolve("alice").status().code(), Code::kNotFound);

  // Same size, different content: caught by the mtime, set apart explicitly
  // so that a coarse clock cannot hide the change.
  dir_.write("passwd", "carol:x:1600:1600::/:/bin/sh\n");
  timespec times[2] = {{0, UTIME_OMIT}, {1, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, passwd_.c_str(), times, 0), 0);
  carol = tenants.resolve("carol");
  ASSERT_TRUE(carol.ok());
  EXPECT_EQ(carol->identity.uid, 1600u);

  // A group file edit alone changes the groups.
  dir_.write("group", "extra:x:4000:carol\n");
  carol = tenants.resolve("carol");
  ASSERT_TRUE(carol.ok());
  EXPECT_EQ(carol->identity.groups, (std::vector<gid_t>{4000}));
}

TEST_F(TenantDirectoryTest, SameSizeRewriteRightAfterAReadIsSeen) {
  // Truncate-and-rewrite keeps the inode and the size, and file timestamps
  // may be only as fine as the kernel's tick: the stamp alone cannot tell the
  // two versions apart when both land in one tick.
  for (int round = 0; round < 20; ++round) {
    std::string a = std::to_string(1100 + round), b = std::to_string(1200 + round);
    dir_.write("passwd", "fred:x:" + a + ":" + a + "::/:/bin/sh\n");
    TenantDirectory tenants(*store_, passwd_, "");
    ASSERT_EQ(tenants.resolve("fred")->identity.uid, static_cast<uid_t>(std::stoul(a)));
    dir_.write("passwd", "fred:x:" + b + ":" + b + "::/:/bin/sh\n");
    ASSERT_EQ(tenants.resolve("fred")->identity.uid, static_cast<uid_t>(std::stoul(b))) << round;
  }
}

TEST_F(TenantDirectoryTest, MissingFileCountsAsEmptyUntilItAppears) {
  std::string later = dir_.sub("passwd.later");
  TenantDirectory tenants(*store_, later, "");
  EXPECT_EQ(tenants.resolve("alice").status().code(), Code::kNotFound);
  auto list = tenants.list();
  ASSERT_TRUE(list.ok());
  EXPECT_TRUE(list->empty());

  dir_.write("passwd.later", "alice:x:1000:1000::/:/bin/sh\n");
  EXPECT_TRUE(tenants.resolve("alice").ok());
}

TEST_F(TenantDirectoryTest, HugeFileIsReadOnlyUpToTheBound) {
  // One valid user at the start, then padding past the bound, then a user
  // that must not be seen.
  std::string text = "first:x:1000:1000::/:/bin/sh\n";
  std::string filler = "# " + std::string(1000, 'x') + "\n";
  while (text.size() <= kMaxIdentityFileBytes) text += filler;
  text += "last:x:1001:1001::/:/bin/sh\n";
  dir_.write("passwd", text);
  TenantDirectory tenants(*store_, passwd_, "");
  EXPECT_TRUE(tenants.resolve("first").ok());
  EXPECT_EQ(tenants.resolve("last").status().code(), Code::kNotFound);
}

TEST_F(TenantDirectoryTest, ConcurrentReadersSeeOneVersionOfTheFilesAtATime) {
  // Each version gives erin uid = gid = 2000 + version and the group
  // 3000 + version: a reader that saw a half-built table would see them differ.
  auto write_version = [&](int v) {
    std::string id = std::to_string(2000 + v);
    std::string pad(static_cast<size_t>(v % 7), '#');  // vary the size
    dir_.write("passwd", pad + "\nerin:x:" + id + ":" + id + "::/:/bin/sh\n");
    std::string gid = std::to_string(3000 + v);
    dir_.write("group", "g:x:" + gid + ":\nh:x:" + gid + ":erin\n");
  };
  write_version(0);
  TenantDirectory tenants(*store_, passwd_, group_);
  std::atomic<bool> stop{false};
  std::atomic<int> mismatches{0}, resolved{0};
  std::vector<std::thread> readers;
  for (int i = 0; i < 3; ++i) {
    readers.emplace_back([&] {
      while (!stop) {
        auto erin = tenants.resolve("erin");
        if (!erin.ok()) continue;  // caught between truncate and write
        ++resolved;
        // The group file may lag the passwd file by one write; the primary
        // gid (passwd) and uid must always agree.
        if (erin->identity.uid != erin->identity.gid) ++mismatches;
        auto list = tenants.list();
        if (!list.ok()) ++mismatches;
      }
    });
  }
  for (int v = 1; v <= 200; ++v) write_version(v);
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(mismatches.load(), 0);
  EXPECT_GT(resolved.load(), 0);
  auto erin = tenants.resolve("erin");
  ASSERT_TRUE(erin.ok());
  EXPECT_EQ(erin->identity.uid, 2200u);
  EXPECT_EQ(erin->identity.groups, (std::vector<gid_t>{3200}));
}

}  // namespace
}  // namespace tenantfs

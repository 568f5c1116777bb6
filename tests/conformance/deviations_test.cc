// The checker of the conformance battery: a difference nobody listed fails,
// a listed deviation that no longer occurs fails, and only exact matches of
// what the mount shows count.
#include "tests/conformance/deviations.h"

#include <gtest/gtest.h>

namespace tenantfs::conformance {
namespace {

const std::set<std::string> kCases = {"fifo_open", "chown_keep", "stat_own"};

std::vector<ListEntry> parse_ok(const std::string& text) {
  std::vector<std::string> errors;
  auto e = parse_list("list.txt", text, &errors);
  EXPECT_TRUE(errors.empty()) << errors.front();
  return e;
}

TEST(DifferingTokens, ShowsOnlyTheMountsChangedAndExtraTokensAndMissingLabels) {
  EXPECT_EQ(differing_tokens("open=ok stat=0100644", "open=ok stat=0100600"), "stat=0100600");
  EXPECT_EQ(differing_tokens("a=1 b=2", "a=1"), "-b");
  EXPECT_EQ(differing_tokens("a=1", "a=1 c=3"), "c=3");
  EXPECT_EQ(differing_tokens("f=0100644,acl=u::rw-", "f=0100644,acl=u::r--"),
            "f=0100644,acl=u::r--");
  EXPECT_EQ(differing_tokens("same=1", "same=1"), "");
}

TEST(Compare, ReportsEveryKeyWhoseLinesDiffer) {
  Outputs native = {{"fifo_open", "rdwr=EACCES"}, {"stat_own", "stat=0100644"}};
  Outputs mount = {{"fifo_open", "rdwr=ok"}, {"stat_own", "stat=0100644"}};
  auto d = compare(native, mount, "root");
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].key, "fifo_open");
  EXPECT_EQ(d[0].caller, "root");
  EXPECT_EQ(d[0].shown, "rdwr=ok");
}

TEST(ParseList, SkipsCommentsAndReportsMalformedLines) {
  std::vector<std::string> errors;
  auto e = parse_list("l.txt",
                      "# comment\n\n"
                      "fifo_open | * | root | rdwr=ok | issue 13 (6)\n"
                      "fifo_open | sometimes | root | rdwr=ok | bad cache\n"
                      "fifo_open | * | root | rdwr=ok\n",
                      &errors);
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].where(), "l.txt:3");
  EXPECT_EQ(e[0].shows, "rdwr=ok");
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_NE(errors[0].find("l.txt:4"), std::string::npos);
  EXPECT_NE(errors[1].find("l.txt:5"), std::string::npos);
}

Difference diff(const std::string& key, const std::string& caller, const std::string& shown) {
  return {key, caller, "native line", "mount line", shown};
}

TEST(Check, PassesWhenEveryDifferenceIsListedAndEveryEntryOccurs) {
  auto entries = parse_ok("fifo_open | * | * | rdwr=ok | fifo permissions\n");
  auto v = check("strict", {"root", "user"},
                 {diff("fifo_open", "root", "rdwr=ok"), diff("fifo_open", "user", "rdwr=ok")},
                 entries, kCases);
  EXPECT_TRUE(v.ok);
}

TEST(Check, FailsOnAnUnlistedDifferenceAndPrintsTheLineToAdd) {
  auto v = check("exclusive", {"root"}, {diff("chown_keep", "root", "stat=0106755")}, {}, kCases);
  EXPECT_FALSE(v.ok);
  ASSERT_FALSE(v.report.empty());
  EXPECT_EQ(v.report[0].rfind("NEW", 0), 0u);
  EXPECT_NE(v.report[1].find("chown_keep | exclusive | root | stat=0106755 | <reason>"),
            std::string::npos);
}

TEST(Check, FailsWhenTheMountShowsSomethingElseThanListed) {
  auto entries = parse_ok("fifo_open | * | root | rdwr=ok | fifo permissions\n");
  auto v = check("strict", {"root"}, {diff("fifo_open", "root", "rdwr=EPERM")}, entries, kCases);
  EXPECT_FALSE(v.ok);
}

TEST(Check, FailsOnAListedDeviationThatNoLongerOccurs) {
  auto entries = parse_ok("fifo_open | strict | * | rdwr=ok | fifo permissions\n");
  auto v =
      check("strict", {"root", "user"}, {diff("fifo_open", "root", "rdwr=ok")}, entries, kCases);
  EXPECT_FALSE(v.ok);
  bool gone_for_user = false;
  for (const std::string& line : v.report)
    gone_for_user = gone_for_user ||
                    (line.rfind("GONE", 0) == 0 && line.find("caller=user") != std::string::npos &&
                     line.find("list.txt:1") != std::string::npos);
  EXPECT_TRUE(gone_for_user);
}

TEST(Check, IgnoresEntriesOfTheOtherCacheMode) {
  auto entries = parse_ok("fifo_open | exclusive | * | rdwr=ok | only with writeback\n");
  EXPECT_TRUE(check("strict", {"root"}, {}, entries, kCases).ok);
  EXPECT_FALSE(check("exclusive", {"root"}, {}, entries, kCases).ok);
}

TEST(Check, FailsOnAnEntryForAnUnknownCaseAndOnTheSameDifferenceListedTwice) {
  EXPECT_FALSE(
      check("strict", {"root"}, {}, parse_ok("no_such_case | * | * | x=1 | typo\n"), kCases).ok);
  EXPECT_TRUE(check("strict", {"root"}, {diff("stat_own@storage", "root", "f=1")},
                    parse_ok("stat_own@storage | * | root | f=1 | storage view\n"), kCases)
                  .ok);
  auto twice = parse_ok(
      "fifo_open | * | root | rdwr=ok | a\n"
      "fifo_open | strict | root | rdwr=ok | b\n");
  EXPECT_FALSE(check("strict", {"root"}, {diff("fifo_open", "root", "rdwr=ok")}, twice, kCases).ok);
}

}  // namespace
}  // namespace tenantfs::conformance

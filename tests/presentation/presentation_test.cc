// The presentation rules of mapper/presentation.h: what the mount shows of
// owners, FIFOs and ACLs, and what a chown through the mount does on the
// storage.
#include "mapper/presentation.h"

#include <endian.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace tenantfs {
namespace {

constexpr uid_t kTenantUid = 100000;
constexpr gid_t kTenantGid = 100001;  // differs from the uid, to tell them apart
constexpr gid_t kTenantSupplementary = 100005;
constexpr uid_t kPresentUid = 1000;
constexpr gid_t kPresentGid = 1001;
constexpr uid_t kOtherUid = 2000;
constexpr gid_t kOtherGid = 2001;

IdentityFsOptions options() {
  IdentityFsOptions o;
  o.tenant_uid = kTenantUid;
  o.tenant_gid = kTenantGid;
  o.tenant_groups = {kTenantSupplementary};
  o.present_uid = kPresentUid;
  o.present_gid = kPresentGid;
  return o;
}

struct stat stat_of(mode_t mode, uid_t uid, gid_t gid) {
  struct stat st {};
  st.st_mode = mode;
  st.st_uid = uid;
  st.st_gid = gid;
  return st;
}

TEST(PresentOwnerTest, TenantIdsAreShownAsThePresentedOnes) {
  struct stat st = stat_of(S_IFREG | 0644, kTenantUid, kTenantGid);
  present_owner(options(), &st);
  EXPECT_EQ(st.st_uid, kPresentUid);
  EXPECT_EQ(st.st_gid, kPresentGid);
}

TEST(PresentOwnerTest, OtherOwnersAppearAsTheyAre) {
  struct stat st = stat_of(S_IFREG | 0644, kOtherUid, kTenantSupplementary);
  present_owner(options(), &st);
  EXPECT_EQ(st.st_uid, kOtherUid);
  EXPECT_EQ(st.st_gid, kTenantSupplementary);  // only the primary gid is presented

  st = stat_of(S_IFREG | 0644, kTenantUid, kOtherGid);
  present_owner(options(), &st);
  EXPECT_EQ(st.st_uid, kPresentUid);
  EXPECT_EQ(st.st_gid, kOtherGid);
}

TEST(PresentAttrTest, HiddenFifoIsShownAsDeviceZeroKeepingItsPermissions) {
  struct stat st = stat_of(S_IFIFO | 0620, kOtherUid, kOtherGid);
  st.st_rdev = 5;
  present_attr(options(), true, &st);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0620u);
  EXPECT_EQ(st.st_rdev, 0u);
  EXPECT_EQ(st.st_uid, kOtherUid);
}

TEST(PresentAttrTest, OpenableFifoAndOtherTypesKeepTheirType) {
  struct stat fifo = stat_of(S_IFIFO | 0666, kTenantUid, kTenantGid);
  present_attr(options(), false, &fifo);
  EXPECT_TRUE(S_ISFIFO(fifo.st_mode));
  EXPECT_EQ(fifo.st_uid, kPresentUid);

  // The FIFO choice means nothing for anything but a FIFO.
  struct stat file = stat_of(S_IFREG | 0644, kOtherUid, kOtherGid);
  present_attr(options(), true, &file);
  EXPECT_TRUE(S_ISREG(file.st_mode));
}

TEST(TenantInGroupTest, PrimaryAndSupplementaryGroupsOnly) {
  EXPECT_TRUE(tenant_in_group(options(), kTenantGid));
  EXPECT_TRUE(tenant_in_group(options(), kTenantSupplementary));
  EXPECT_FALSE(tenant_in_group(options(), kOtherGid));
  EXPECT_FALSE(tenant_in_group(options(), kPresentGid));
}

// ACLs in the kernel's xattr form (see map_acl_ids).
constexpr uint16_t kUserObj = 0x01;
constexpr uint16_t kUser = 0x02;
constexpr uint16_t kGroupObj = 0x04;
constexpr uint16_t kGroup = 0x08;
constexpr uint16_t kMask = 0x10;
constexpr uint16_t kOther = 0x20;
constexpr uint32_t kUndefinedId = 0xffffffff;

struct AclEntry {
  uint16_t tag;
  uint16_t perm;
  uint32_t id;
  bool operator==(const AclEntry&) const = default;
};

std::string encode_acl(const std::vector<AclEntry>& entries, uint32_t version = 2) {
  std::string out(4 + 8 * entries.size(), '\0');
  const uint32_t v = htole32(version);
  std::memcpy(out.data(), &v, 4);
  for (size_t i = 0; i < entries.size(); ++i) {
    const uint16_t tag = htole16(entries[i].tag);
    const uint16_t perm = htole16(entries[i].perm);
    const uint32_t id = htole32(entries[i].id);
    std::memcpy(out.data() + 4 + 8 * i, &tag, 2);
    std::memcpy(out.data() + 6 + 8 * i, &perm, 2);
    std::memcpy(out.data() + 8 + 8 * i, &id, 4);
  }
  return out;
}

std::vector<AclEntry> decode_acl(const std::string& acl) {
  std::vector<AclEntry> entries;
  for (size_t off = 4; off + 8 <= acl.size(); off += 8) {
    uint16_t tag;
    uint16_t perm;
    uint32_t id;
    std::memcpy(&tag, acl.data() + off, 2);
    std::memcpy(&perm, acl.data() + off + 2, 2);
    std::memcpy(&id, acl.data() + off + 4, 4);
    entries.push_back({le16toh(tag), le16toh(perm), le32toh(id)});
  }
  return entries;
}

std::string mapped(std::string acl, const AclIdMap& map) {
  map_acl_ids(acl.data(), acl.size(), map);
  return acl;
}

TEST(MapAclIdsTest, TenantEntriesAreShownWithThePresentedIdsAndSortedAgain) {
  // On the storage the tenant's entries sort after user 5000 and group
  // 5001; in the mount they sort before them.
  const std::string storage = encode_acl({{kUserObj, 6, kUndefinedId},
                                          {kUser, 4, 5000},
                                          {kUser, 6, kTenantUid},
                                          {kGroupObj, 4, kUndefinedId},
                                          {kGroup, 4, 5001},
                                          {kGroup, 2, kTenantGid},
                                          {kMask, 6, kUndefinedId},
                                          {kOther, 0, kUndefinedId}});
  const std::vector<AclEntry> mount = {
      {kUserObj, 6, kUndefinedId},  {kUser, 6, kPresentUid},  {kUser, 4, 5000},
      {kGroupObj, 4, kUndefinedId}, {kGroup, 2, kPresentGid}, {kGroup, 4, 5001},
      {kMask, 6, kUndefinedId},     {kOther, 0, kUndefinedId}};
  EXPECT_EQ(decode_acl(mapped(storage, storage_to_mount(options()))), mount);
}

TEST(MapAclIdsTest, MountToStorageUndoesStorageToMount) {
  const std::string storage = encode_acl({{kUserObj, 7, kUndefinedId},
                                          {kUser, 4, kOtherUid},
                                          {kUser, 5, kTenantUid},
                                          {kGroupObj, 5, kUndefinedId},
                                          {kGroup, 5, kTenantGid},
                                          {kMask, 7, kUndefinedId},
                                          {kOther, 5, kUndefinedId}});
  const std::string mount = mapped(storage, storage_to_mount(options()));
  EXPECT_NE(mount, storage);
  EXPECT_EQ(mapped(mount, mount_to_storage(options())), storage);
}

TEST(MapAclIdsTest, AnIdIsMappedOnlyUnderItsOwnTag) {
  // A user entry whose id happens to be the tenant's gid names another user.
  const std::string acl = encode_acl({{kUserObj, 6, kUndefinedId},
                                      {kUser, 4, kTenantGid},
                                      {kGroupObj, 4, kUndefinedId},
                                      {kGroup, 4, kTenantUid},
                                      {kMask, 6, kUndefinedId},
                                      {kOther, 0, kUndefinedId}});
  EXPECT_EQ(mapped(acl, storage_to_mount(options())), acl);
}

TEST(MapAclIdsTest, ValuesOfAnyOtherFormAreLeftAsTheyAre) {
  const std::string entries = encode_acl({{kUser, 6, kTenantUid}});
  const std::vector<std::string> malformed = {
      "",
      "ab",
      encode_acl({{kUser, 6, kTenantUid}}, 1),  // unknown version
      entries.substr(0, entries.size() - 1),    // truncated entry
      entries + "xyz",                          // trailing bytes
  };
  for (const std::string& value : malformed) {
    EXPECT_EQ(mapped(value, storage_to_mount(options())), value) << value.size() << " bytes";
  }
}

TEST(MapAclIdsTest, OnlyNeededWhenTheMountShowsOtherIds) {
  EXPECT_TRUE(presents_other_ids(options()));
  IdentityFsOptions same = options();
  same.present_uid = same.tenant_uid;
  same.present_gid = same.tenant_gid;
  EXPECT_FALSE(presents_other_ids(same));
  same.present_gid = kPresentGid;
  EXPECT_TRUE(presents_other_ids(same));
}

// One row of the chown decision table.
struct ChownCase {
  const char* what;
  struct stat cur;  // on the storage
  std::optional<uid_t> uid;
  std::optional<gid_t> gid;
  ChownDecision want;
};

constexpr uid_t kKeepUid = static_cast<uid_t>(-1);
constexpr gid_t kKeepGid = static_cast<gid_t>(-1);

TEST(DecideChownTest, DecisionTable) {
  const struct stat own = stat_of(S_IFREG | 0644, kTenantUid, kTenantGid);
  const struct stat other = stat_of(S_IFREG | 0644, kOtherUid, kOtherGid);
  const struct stat in_supplementary = stat_of(S_IFREG | 0644, kTenantUid, kTenantSupplementary);
  const std::vector<ChownCase> cases = {
      {"nothing asked", own, std::nullopt, std::nullopt, {0, kKeepUid, kKeepGid}},
      {"own file to the presented uid", own, kPresentUid, std::nullopt, {0, kKeepUid, kKeepGid}},
      {"other's file to the presented uid",
       other,
       kPresentUid,
       std::nullopt,
       {0, kTenantUid, kKeepGid}},
      {"other's file to the uid it shows", other, kOtherUid, std::nullopt, {0, kKeepUid, kKeepGid}},
      {"own file to the storage uid", own, kTenantUid, std::nullopt, {EPERM, kKeepUid, kKeepGid}},
      {"own file to root", own, 0, std::nullopt, {EPERM, kKeepUid, kKeepGid}},
      {"own file to the presented gid", own, std::nullopt, kPresentGid, {0, kKeepUid, kKeepGid}},
      {"supplementary group to the presented gid",
       in_supplementary,
       std::nullopt,
       kPresentGid,
       {0, kKeepUid, kTenantGid}},
      {"own file to a supplementary group",
       own,
       std::nullopt,
       kTenantSupplementary,
       {0, kKeepUid, kTenantSupplementary}},
      {"already in that supplementary group",
       in_supplementary,
       std::nullopt,
       kTenantSupplementary,
       {0, kKeepUid, kKeepGid}},
      {"other's file to the gid it shows", other, std::nullopt, kOtherGid, {0, kKeepUid, kKeepGid}},
      {"own file to the storage gid", own, std::nullopt, kTenantGid, {EPERM, kKeepUid, kKeepGid}},
      {"own file to a group of others", own, std::nullopt, kOtherGid, {EPERM, kKeepUid, kKeepGid}},
      {"both presented on other's file",
       other,
       kPresentUid,
       kPresentGid,
       {0, kTenantUid, kTenantGid}},
      {"refused uid with an accepted gid", own, 0, kPresentGid, {EPERM, kKeepUid, kKeepGid}},
      {"accepted uid with a refused gid",
       other,
       kPresentUid,
       kTenantGid,
       {EPERM, kKeepUid, kKeepGid}},
  };
  for (const ChownCase& c : cases) {
    const ChownDecision got = decide_chown(options(), c.cur, c.uid, c.gid);
    EXPECT_EQ(got.err, c.want.err) << c.what;
    if (c.want.err != 0) continue;
    EXPECT_EQ(got.uid, c.want.uid) << c.what;
    EXPECT_EQ(got.gid, c.want.gid) << c.what;
    EXPECT_EQ(got.changes_ids(), c.want.uid != kKeepUid || c.want.gid != kKeepGid) << c.what;
  }
}

TEST(ModeAfterUnchangedChownTest, ClearsSuidAndSgidAsNativeChownDoes) {
  const IdentityFsOptions o = options();
  const std::vector<std::pair<struct stat, mode_t>> cases = {
      {stat_of(S_IFREG | 04755, kTenantUid, kTenantGid), 0755},
      // sgid with group execute always goes.
      {stat_of(S_IFREG | 02755, kTenantUid, kTenantGid), 0755},
      // sgid without group execute (mandatory locking) stays for a member.
      {stat_of(S_IFREG | 02745, kTenantUid, kTenantGid), 02745},
      {stat_of(S_IFREG | 02745, kTenantUid, kTenantSupplementary), 02745},
      {stat_of(S_IFREG | 02745, kTenantUid, kOtherGid), 0745},
      {stat_of(S_IFREG | 0644, kTenantUid, kTenantGid), 0644},
      // Directories and symlinks keep their bits.
      {stat_of(S_IFDIR | 06755, kTenantUid, kTenantGid), 06755},
      {stat_of(S_IFLNK | 0777, kTenantUid, kTenantGid), 0777},
  };
  for (const auto& [st, want] : cases) {
    EXPECT_EQ(mode_after_unchanged_chown(o, st), want) << std::oct << st.st_mode;
  }
}

}  // namespace
}  // namespace tenantfs

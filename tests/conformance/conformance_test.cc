// The conformance battery (battery.h) natively and through a mount, compared
// case by case (issue 13: the pjdfstest comparison, kept in the project).
//
// Native: a plain directory, the battery run by the tenant itself (its uid,
// gid and supplementary group). Mount: a real `tenantfs mapper` serving an
// equivalent backing directory as that tenant, the battery run by root (as a
// container's root would) and by an ordinary uid. Root prepares every case's
// files before anything runs; after the runs, and after the unmount that
// flushes the writeback cache, root also records what the storage holds.
//
// Every difference must be named in accepted_deviations.txt (the identity
// model's) or pending_fixes.txt (defects being fixed); an entry that no
// longer matches a difference fails too.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>

#include "tests/conformance/battery.h"
#include "tests/conformance/deviations.h"
#include "tests/mapper/mapper_fixture.h"

namespace tenantfs::testing {
namespace {

using conformance::battery;
using conformance::Case;
using conformance::Outputs;

constexpr const char* kLists[] = {"accepted_deviations.txt", "pending_fixes.txt"};

const conformance::Ids kIds{kTenantUid, kTenantGid, kSharedGid, kOtherUid, kOtherGid};

struct NamedCaller {
  const char* name;  // as the lists name it
  Caller who;
};
const NamedCaller kCallers[] = {{"root", Caller{0, 0, {}}}, {"user", Caller{1000, 1000, {1000}}}};

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Runs every case in base/<case> as `who`, each in a child of its own so
// that one case cannot disturb the next (cwd, umask, a crash).
Outputs run_battery(const Caller& who, const std::string& base) {
  UniqueFd base_fd(::open(base.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  EXPECT_TRUE(base_fd) << base << ": " << std::strerror(errno);
  Outputs out;
  for (const Case& c : battery()) {
    Outcome o = run_as(who, [&] {
      Outcome r;
      if (::fchdir(base_fd.get()) != 0 || ::chdir(c.name) != 0) {
        r = sys(-1);
        r.data = "chdir=" + errno_name(r.err);
        return r;
      }
      r.data = conformance::run_case(c, kIds);
      return r;
    });
    out[c.name] = o.ret < 0 && o.data.rfind("chdir=", 0) != 0
                      ? "child=" + errno_name(o.err)  // crashed, hung or could not switch ids
                      : o.data;
  }
  return out;
}

void add_snapshots(const std::string& base, Outputs* out) {
  UniqueFd base_fd(::open(base.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ASSERT_TRUE(base_fd) << base << ": " << std::strerror(errno);
  for (const Case& c : battery())
    (*out)[std::string(c.name) + "@storage"] = conformance::snapshot(base_fd.get(), c.name);
}

void prepare_in(const std::string& base) {
  UniqueFd base_fd(::open(base.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ASSERT_TRUE(base_fd) << base << ": " << std::strerror(errno);
  ASSERT_NO_THROW(conformance::prepare(base_fd.get(), kIds));
}

// With TENANTFS_CONFORMANCE_OUT=DIR, each run's lines go to DIR/<name>.txt
// ("case: line"), for diff(1) by hand.
void save(const std::string& name, const Outputs& out) {
  const char* dir = std::getenv("TENANTFS_CONFORMANCE_OUT");
  if (dir == nullptr || *dir == 0) return;
  std::ofstream f(std::string(dir) + "/" + name + ".txt");
  for (const auto& [key, line] : out) f << key << ": " << line << "\n";
}

class ConformanceTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ConformanceTest, MountDiffersFromNativeTenantOnlyAsListed) {
  SKIP_UNLESS_MAPPER_TESTS_CAN_RUN();
  const std::string cache = GetParam();

  VolumeDirs native;
  VolumeOptions opts;
  opts.groups = {kSharedGid};
  opts.cache = cache;
  MountedVolume vol(opts);
  prepare_in(native.backing());
  for (const NamedCaller& c : kCallers) {
    const std::string base = vol.backing_path(c.name);
    ASSERT_EQ(::mkdir(base.c_str(), 0755), 0) << base << ": " << std::strerror(errno);
    ASSERT_EQ(::chown(base.c_str(), kTenantUid, kTenantGid), 0) << std::strerror(errno);
    prepare_in(base);
  }
  if (HasFatalFailure()) return;
  ASSERT_EQ(vol.start(), "ready");

  Outputs native_out = run_battery(Caller{kTenantUid, kTenantGid, {kSharedGid}}, native.backing());
  std::map<std::string, Outputs> mount_out;
  for (const NamedCaller& c : kCallers) mount_out[c.name] = run_battery(c.who, vol.path(c.name));
  // Unmounting flushes what the writeback cache still holds.
  vol.stop();
  add_snapshots(native.backing(), &native_out);
  for (const NamedCaller& c : kCallers) add_snapshots(vol.backing_path(c.name), &mount_out[c.name]);

  // The native side must really be the tenant with its supplementary group,
  // or every comparison below is meaningless.
  ASSERT_EQ(native_out["create_mode_and_owner"], "open=ok stat=0100640," +
                                                     std::to_string(kTenantUid) + ":" +
                                                     std::to_string(kTenantGid) + ",0B");
  ASSERT_EQ(native_out["open_other_0600_file"], "rdonly=EACCES wronly=EACCES");
  ASSERT_EQ(native_out["open_group_readable_other_file"], "read='data/' wronly=EACCES");

  save("native", native_out);
  std::vector<conformance::Difference> diffs;
  std::vector<std::string> callers;
  for (const NamedCaller& c : kCallers) {
    save("mount-" + cache + "-" + c.name, mount_out[c.name]);
    auto d = conformance::compare(native_out, mount_out[c.name], c.name);
    diffs.insert(diffs.end(), d.begin(), d.end());
    callers.push_back(c.name);
  }

  std::vector<std::string> errors;
  std::vector<conformance::ListEntry> entries;
  for (const char* list : kLists) {
    std::string text = slurp(std::string(TENANTFS_CONFORMANCE_DIR) + "/" + list);
    auto e = conformance::parse_list(list, text, &errors);
    entries.insert(entries.end(), e.begin(), e.end());
  }
  for (const std::string& e : errors) ADD_FAILURE() << e;
  std::set<std::string> names;
  for (const Case& c : battery()) names.insert(c.name);
  conformance::Verdict v = conformance::check(cache, callers, diffs, entries, names);

  std::cout << "conformance cache=" << cache << ": " << battery().size() << " cases, callers";
  for (const std::string& c : callers) std::cout << " " << c;
  std::cout << "; " << diffs.size() << " differences from the tenant natively\n";
  for (const std::string& line : v.report) std::cout << "  " << line << "\n";
  EXPECT_TRUE(v.ok) << "the mount differs from native other than as listed (see above)";
}

INSTANTIATE_TEST_SUITE_P(CacheModes, ConformanceTest, ::testing::Values("strict", "exclusive"),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });

}  // namespace
}  // namespace tenantfs::testing

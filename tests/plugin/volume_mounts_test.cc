// VolumeMounts with stand-ins for what a unit test cannot make: FUSE mounts
// (a mount table kept in memory) and mapper processes (a recording
// launcher). What is checked is what ends up mounted, adopted or started.
#include "plugin/volume_mounts.h"

#include <fcntl.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/unique_fd.h"

#include "tests/support/recording_launcher.h"
#include "tests/support/temp_dir.h"

namespace tenantfs {
namespace {

using testing::RecordedExits;
using testing::RecordingLauncher;
using testing::TempDir;

// Mounts as a list; unmounting one takes every mount on that path and is
// recorded as "unmount PATH" or "lazy PATH". Thread-safe: supervision uses
// it from its own thread.
class FakeMountTable final : public MountTable {
 public:
  void mount(const std::string& path, const std::string& volume) {
    std::lock_guard<std::mutex> lock(mu_);
    entries_.push_back(MountEntry{path, kMapperFsType, kMapperSourcePrefix + volume});
  }
  // Its server is gone from now on.
  void kill(const std::string& path) {
    std::lock_guard<std::mutex> lock(mu_);
    dead_.insert(path);
  }
  std::vector<std::string> log() {
    std::lock_guard<std::mutex> lock(mu_);
    return log_;
  }

  Result<std::vector<MountEntry>> entries() override {
    std::lock_guard<std::mutex> lock(mu_);
    return entries_;
  }
  bool is_dead(const std::string& path) override {
    std::lock_guard<std::mutex> lock(mu_);
    return dead_.count(path) != 0;
  }
  Status unmount(const std::string& path) override { return take("unmount ", path); }
  Status unmount_lazily(const std::string& path) override { return take("lazy ", path); }

 private:
  Status take(const std::string& how, const std::string& path) {
    std::lock_guard<std::mutex> lock(mu_);
    log_.push_back(how + path);
    std::erase_if(entries_, [&](const MountEntry& e) { return e.mount_point == path; });
    dead_.erase(path);
    return Status::Ok();
  }
  std::mutex mu_;
  std::vector<MountEntry> entries_;
  std::set<std::string> dead_;
  std::vector<std::string> log_;
};

// A mapper that mounts and then fails, as one whose FUSE session broke
// right after the mount.
class MountThenFailLauncher final : public MapperLauncher {
 public:
  explicit MountThenFailLauncher(FakeMountTable& table) : table_(table) {}
  Result<StartedMapper> start(const VolumeBinding& b, int, const std::string& mountpoint) override {
    table_.mount(mountpoint, b.name);
    return Status::IOError("mapper error: fuse session ended");
  }
  void stop(pid_t, const std::string&) override {}
  void stop_strays(const std::string&, const std::string&) override {}

 private:
  FakeMountTable& table_;
};

class VolumeMountsTest : public ::testing::Test {
 protected:
  void SetUp() override { mounts_ = Open(launcher_); }

  std::unique_ptr<VolumeMounts> Open(MapperLauncher& launcher) {
    auto m = VolumeMounts::Open(tmp_.sub("mnt"), locks_, launcher, table_, exits_);
    EXPECT_TRUE(m.ok()) << m.status().message();
    return m.ok() ? std::move(*m) : nullptr;
  }
  std::string mp(const std::string& name) { return tmp_.sub("mnt/" + name); }
  VolumeBinding binding(const std::string& name) {
    VolumeBinding b;
    b.name = name;
    b.tenant = "alice";
    b.backing_path = tmp_.path();  // what RecordingLauncher checks the fd against
    return b;
  }
  Status Start(VolumeMounts& mounts, const std::string& name) {
    UniqueFd dir(::open(tmp_.path().c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    return mounts.start(locks_.lock(name), binding(name), dir.get());
  }
  bool Live(const std::string& name) { return mounts_->live(locks_.lock(name)); }

  TempDir tmp_;
  VolumeLocks locks_;
  FakeMountTable table_;
  RecordedExits exits_;
  RecordingLauncher launcher_;
  std::unique_ptr<VolumeMounts> mounts_;
};

TEST_F(VolumeMountsTest, ReconcileAdoptsLiveMountsOfReferencedVolumesAndTakesDownTheRest) {
  table_.mount(mp("kept"), "kept");
  table_.mount(mp("idle"), "idle");
  table_.mount(mp("dead"), "dead");
  table_.kill(mp("dead"));
  table_.mount(mp("taken"), "someone-else");  // not this volume's mapper
  ASSERT_TRUE(
      mounts_->reconcile({{"kept", {"alice", 2}}, {"dead", {"alice", 1}}, {"taken", {"alice", 1}}})
          .ok());
  EXPECT_EQ(table_.log(), (std::vector<std::string>{"unmount " + mp("idle"), "lazy " + mp("dead"),
                                                    "unmount " + mp("taken")}));
  EXPECT_EQ(mounts_->live_names(), (std::set<std::string>{"kept"}));
  EXPECT_TRUE(Live("kept"));
  EXPECT_FALSE(Live("dead"));
  EXPECT_EQ(launcher_.starts("kept"), 0) << "an adopted mount needs no new mapper";

  // An adopted mount whose mapper died is forgotten and lazily unmounted.
  table_.kill(mp("kept"));
  EXPECT_FALSE(Live("kept"));
  EXPECT_EQ(table_.log().back(), "lazy " + mp("kept"));
  EXPECT_EQ(mounts_->live_count(), 0u);
}

TEST_F(VolumeMountsTest, StartTakesDownAStaleMountFirstAndStopTakesTheMountDown) {
  table_.mount(mp("v"), "v");  // left by a mapper nobody knows
  ASSERT_TRUE(Start(*mounts_, "v").ok());
  EXPECT_EQ(table_.log(), (std::vector<std::string>{"lazy " + mp("v")}));
  EXPECT_EQ(launcher_.starts("v"), 1);
  EXPECT_TRUE(Live("v"));

  table_.mount(mp("v"), "v");  // what the mapper mounted
  ASSERT_TRUE(mounts_->stop(locks_.lock("v")).ok());
  EXPECT_EQ(table_.log().back(), "unmount " + mp("v"));
  EXPECT_EQ(launcher_.total_stops(), 1);
  EXPECT_FALSE(Live("v"));
  EXPECT_EQ(launcher_.violations(), 0);
}

TEST_F(VolumeMountsTest, AFailedStartLeavesNothingMounted) {
  MountThenFailLauncher failing(table_);
  auto mounts = Open(failing);
  ASSERT_NE(mounts, nullptr);
  Status st = Start(*mounts, "v");
  EXPECT_EQ(st.message(), "mapper error: fuse session ended");
  EXPECT_EQ(table_.log(), (std::vector<std::string>{"lazy " + mp("v")}));
  auto entries = table_.entries();
  EXPECT_FALSE(is_mount_point(*entries, mp("v")));
  EXPECT_FALSE(mounts->live(locks_.lock("v")));
}

TEST_F(VolumeMountsTest, AMapperExitForgetsItsVolumeAndLazilyUnmounts) {
  ASSERT_TRUE(Start(*mounts_, "v").ok());
  table_.mount(mp("v"), "v");
  mounts_->start_supervision();
  ASSERT_TRUE(exits_.exit(launcher_.last_pid(), 0));
  // Supervision takes the dead mount down on its own, without a request.
  for (int i = 0; i < 500 && table_.log().empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(table_.log(), (std::vector<std::string>{"lazy " + mp("v")}));
  EXPECT_EQ(mounts_->live_count(), 0u);
}

}  // namespace
}  // namespace tenantfs

// Reference counting under concurrency, without FUSE: the real VolumeDriver,
// VolumeMounts and SqliteStore, a launcher that records mapper starts and
// stops. Built
// into the ordinary unit tests and, by sanitize.sh, under ThreadSanitizer.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <random>
#include <thread>
#include <vector>

#include "plugin/volume_driver.h"
#include "store/sqlite_store.h"
#include "tests/support/driver_stack.h"
#include "tests/support/recording_launcher.h"

namespace tenantfs {
namespace {

using json = nlohmann::json;
using testing::DriverStack;
using testing::RecordedExits;
using testing::RecordingLauncher;

class RefcountStressTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/tenantfs-refstress.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    auto store = SqliteStore::Open(root_ + "/state/tenantfs.db");
    ASSERT_TRUE(store.ok()) << store.status().message();
    store_ = std::move(*store);
    Tenant alice{"alice",
                 {::geteuid() == 0 ? 2001 : ::geteuid(), ::geteuid() == 0 ? 2001 : ::getegid(), {}},
                 0};
    ASSERT_TRUE(store_->add_tenant(alice).ok());
    tenants_ = std::make_unique<TenantDirectory>(*store_, "", "");
    DriverConfig cfg{root_ + "/data", {}, "alice", {}};
    auto d = DriverStack::Open(*store_, *tenants_, launcher_, exits_, root_ + "/mnt", cfg);
    ASSERT_TRUE(d.ok()) << d.status().message();
    stack_ = std::move(*d);
  }
  void TearDown() override {
    stack_.reset();
    std::error_code ec;
    if (!root_.empty()) std::filesystem::remove_all(root_, ec);
  }
  DriverReply Call(const std::string& op, const json& body) {
    return stack_->driver->handle("/VolumeDriver." + op, body.dump());
  }
  int64_t Mounts(const std::string& name) {
    DriverReply r = Call("Get", json{{"Name", name}});
    EXPECT_EQ(r.error, "");
    return r.body["Volume"]["Status"]["mounts"].get<int64_t>();
  }

  std::string root_;
  std::unique_ptr<SqliteStore> store_;
  std::unique_ptr<TenantDirectory> tenants_;
  RecordingLauncher launcher_;
  RecordedExits exits_;
  std::unique_ptr<DriverStack> stack_;
};

TEST_F(RefcountStressTest, ConcurrentMountsUnmountsCreatesAndRemovesKeepExactCounts) {
  const std::vector<std::string> volumes = {"r0", "r1", "r2"};
  for (const auto& v : volumes) {
    ASSERT_EQ(Call("Create", json{{"Name", v}, {"Opts", {{"tenant", "alice"}}}}).error, "");
  }
  constexpr int kThreads = 6;
  constexpr int kOps = 300;
  // Each thread owns its mount IDs, so it knows their exact counts.
  std::vector<std::map<std::pair<std::string, std::string>, int64_t>> held(kThreads);
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(static_cast<unsigned>(t) + 1);
      for (int i = 0; i < kOps; ++i) {
        const std::string& v = volumes[rng() % volumes.size()];
        const std::string id = "t" + std::to_string(t) + "-" + std::to_string(rng() % 3);
        int64_t& count = held[static_cast<size_t>(t)][{v, id}];
        switch (rng() % 5) {
          case 0:
          case 1:
            if (Call("Mount", json{{"Name", v}, {"ID", id}}).error.empty()) {
              ++count;
            } else {
              ++errors;
            }
            break;
          case 2:
          case 3:
            // Possibly an ID never mounted: accepted, changes nothing.
            if (!Call("Unmount", json{{"Name", v}, {"ID", id}}).error.empty()) ++errors;
            if (count > 0) --count;
            break;
          case 4: {
            // Churn on volumes of their own, and reads of everything.
            const std::string mine = "own-" + std::to_string(t);
            if (!Call("Create", json{{"Name", mine}, {"Opts", json::object()}}).error.empty())
              ++errors;
            if (!Call("Remove", json{{"Name", mine}}).error.empty()) ++errors;
            if (!Call("Get", json{{"Name", v}}).error.empty()) ++errors;
            (void)Call("List", json::object());
            break;
          }
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(launcher_.violations(), 0) << "two mappers for one volume, or a stop without one";
  for (const auto& v : volumes) {
    int64_t want = 0;
    for (const auto& h : held) {
      for (const auto& [key, n] : h) want += key.first == v ? n : 0;
    }
    EXPECT_EQ(Mounts(v), want) << v;
    EXPECT_EQ(launcher_.live(v), want > 0 ? 1 : 0) << v;
  }
  // Releasing exactly what is held unmounts everything; then Remove works.
  for (const auto& h : held) {
    for (const auto& [key, n] : h) {
      for (int64_t i = 0; i < n; ++i) {
        EXPECT_EQ(Call("Unmount", json{{"Name", key.first}, {"ID", key.second}}).error, "");
      }
    }
  }
  for (const auto& v : volumes) {
    EXPECT_EQ(Mounts(v), 0);
    EXPECT_EQ(launcher_.live(v), 0);
    EXPECT_EQ(Call("Remove", json{{"Name", v}}).error, "");
  }
  EXPECT_EQ(Call("List", json::object()).body, json::parse(R"({"Volumes":[]})"));
}

TEST_F(RefcountStressTest, TwoStoreConnectionsCountingTheSameVolumeAgree) {
  // Two processes' view of one store file: two connections, many threads.
  auto other = SqliteStore::Open(root_ + "/state/tenantfs.db");
  ASSERT_TRUE(other.ok()) << other.status().message();
  ASSERT_EQ(Call("Create", json{{"Name", "shared"}, {"Opts", json::object()}}).error, "");
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      BindingStore& s = t % 2 ? static_cast<BindingStore&>(**other) : *store_;
      const std::string id = "c" + std::to_string(t);
      for (int i = 0; i < 100; ++i) {
        if (!s.add_ref("shared", id).ok()) ++errors;
      }
      for (int i = 0; i < 60; ++i) {
        if (!s.release_ref("shared", id).ok()) ++errors;
      }
      for (int i = 0; i < 10; ++i) {
        if (!s.release_ref("shared", "ghost").ok()) ++errors;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(errors.load(), 0);
  auto refs = store_->refs("shared");
  ASSERT_TRUE(refs.ok());
  EXPECT_EQ(refs->total(), 4 * 40);
  EXPECT_EQ(refs->ids.size(), 4u);
  auto refs_other = (*other)->refs("shared");
  ASSERT_TRUE(refs_other.ok());
  EXPECT_EQ(refs_other->ids, refs->ids);
}

}  // namespace
}  // namespace tenantfs

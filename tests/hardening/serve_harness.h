// A `tenantfs serve` of its own for the hardening tests: the real binary on a
// temp socket with the real mapper, plus the helpers the attacks need (acting
// as a container process, reading the mount table, finding mappers).
//
// Needs root and /dev/fuse; ServeHarness::SetUp skips the test otherwise.
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

namespace tenantfs::hardening {

using json = nlohmann::json;

inline constexpr uid_t kAliceUid = 2001;  // tenant "alice"
inline constexpr uid_t kBobUid = 2002;    // tenant "bob"
inline constexpr uid_t kContainerUid = 3000;

struct Reply {
  int status = 0;  // 0: no HTTP answer at all
  json body;
  std::string err() const;
};

// Runs `fn` in a forked child as uid:gid without supplementary groups (uid 0
// keeps root, as container root would). Returns fn's value, which should be
// 0 or an errno; 250+ when the child could not become the user.
int as_user(uid_t uid, gid_t gid, const std::function<int()>& fn);

// Runs `fn` in a forked child that looks like a container: its own mount
// namespace whose root is an empty tmpfs holding only `binds` (mountpoint on
// the host -> path inside), then as uid:gid. Absolute paths, symlinks
// included, resolve inside that root.
int in_container(const std::vector<std::pair<std::string, std::string>>& binds, uid_t uid,
                 gid_t gid, const std::function<int()>& fn);

std::string read_file(const std::string& path);
bool is_mounted(const std::string& path);
std::vector<pid_t> mapper_pids(const std::string& mountpoint);
// Waits for cond; the bound only stops a broken test from hanging.
bool eventually(const std::function<bool()>& cond,
                std::chrono::seconds bound = std::chrono::seconds(30));

class ServeHarness : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  // Extra serve flags (e.g. another --data-dir) for the next StartServe.
  std::vector<std::string> extra_args_;
  void StartServe();
  void KillServe(int sig);  // and reap it

  Reply Post(const std::string& endpoint, const std::string& body,
             std::chrono::milliseconds timeout = std::chrono::milliseconds(60000));
  Reply Call(const std::string& op, const json& body) {
    return Post("/VolumeDriver." + op, body.dump());
  }
  void AddTenant(const std::string& name, uid_t uid);
  void CreateVolume(const std::string& name, const json& opts);
  std::string MountVolume(const std::string& name, const std::string& id);
  int64_t Mounts(const std::string& name);
  bool ServiceAnswers();

  std::string mp(const std::string& name) const { return root_ + "/mnt/" + name; }
  std::string backing(const std::string& name) const { return data_dir_ + "/" + name; }

  std::string root_;
  std::string socket_;
  std::string data_dir_;
  pid_t serve_pid_ = -1;
};

}  // namespace tenantfs::hardening

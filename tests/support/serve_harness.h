// ServeHarness: a `tenantfs serve` of the test's own, as Docker sees it: the
// real binary on a temp unix socket, the real mapper mounting FUSE, HTTP
// requests over the socket. Plus the helpers the tests need around it (acting
// as a container process, reading the mount table, finding mappers).
//
// Used by the serve integration tests and by the hardening tests. Needs root
// and /dev/fuse; ServeHarness::SetUp skips the test otherwise.
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace tenantfs::testing {

using json = nlohmann::json;

// The tenants the suites add (uid = gid), and whoever runs in a container.
inline constexpr uid_t kAliceUid = 2001;
inline constexpr uid_t kBobUid = 2002;
inline constexpr uid_t kContainerUid = 3000;

struct Reply {
  int status = 0;  // 0: no HTTP answer at all
  std::string content_type;
  json body;  // discarded (not an object) when the body is not JSON
  // The Err that Docker would print; empty when there is none.
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

// The whole file; empty when it cannot be read.
std::string read_file(const std::string& path);
bool is_mounted(const std::string& path);
// Pids of mapper processes serving `mountpoint`, found by command line: the
// mappers are serve's children, not the test's.
std::vector<pid_t> mapper_pids(const std::string& mountpoint);
// True once `pid` (any process, not only a child) has released its files: a
// zombie, or gone.
bool has_exited(pid_t pid);
// Waits for `cond`; the bound only stops a broken test from hanging, no
// assertion depends on how long it took.
bool eventually(const std::function<bool()>& cond,
                std::chrono::seconds bound = std::chrono::seconds(30));

class ServeHarness : public ::testing::Test {
 protected:
  // Makes the temp tree (root_/allowed is the one allowed root) and starts
  // serve with ServeArgs(). Adds no tenant.
  void SetUp() override;
  // Stops serve, takes down the mounts its mappers left, prints the end of
  // the serve log if the test failed, and removes the temp tree unless
  // something is still mounted under it.
  void TearDown() override;

  // The flags of a serve on socket_ with everything under root_ (DATA_DIR
  // is data_dir_), followed by extra_args_.
  std::vector<std::string> ServeArgs() const;
  // Starts `args` (ServeArgs() when empty) with `env` added to the
  // environment, logging to root_/serve.log, and waits until it answers
  // Activate on `socket` (socket_ when empty).
  void StartServe(std::vector<std::string> args = {}, std::vector<std::string> env = {},
                  const std::string& socket = "");
  // Sends `sig` to serve and reaps it; returns its wait status (0 when no
  // serve runs).
  int StopServe(int sig);

  // POSTs to socket_ as Docker does. A request goes unanswered for one
  // expected reason only: the test killed serve (SIGKILL) under it; the
  // reply then has status 0. Any other unanswered request is a test failure.
  Reply Post(const std::string& endpoint, const std::string& body,
             std::chrono::milliseconds timeout = std::chrono::milliseconds(60000));
  Reply Call(const std::string& op, const json& body) {
    return Post("/VolumeDriver." + op, body.dump());
  }
  // Adds a tenant with gid = uid through the admin API.
  void AddTenant(const std::string& name, uid_t uid, const std::vector<gid_t>& groups = {});
  void CreateVolume(const std::string& name, const json& opts = {{"tenant", "alice"}});
  // The Mountpoint answered, empty on failure (which also fails the test).
  std::string MountVolume(const std::string& name, const std::string& id);
  // The reference count Get reports, -1 when there is none.
  int64_t Mounts(const std::string& name);
  // True when serve answers Capabilities correctly.
  bool ServiceAnswers();

  std::string mp(const std::string& name) const { return root_ + "/mnt/" + name; }
  std::string backing(const std::string& name) const { return data_dir_ + "/" + name; }

  // Set before SetUp (data_dir_) or before StartServe (extra_args_) to change
  // the serve the next start runs.
  std::vector<std::string> extra_args_;
  std::string data_dir_;  // root_/data unless set

  std::string root_;
  std::string socket_;
  pid_t serve_pid_ = -1;

 private:
  // After a request went unanswered: what that says about serve (waiting a
  // little for it to finish exiting), or empty when serve was killed with
  // SIGKILL, which only a test does.
  std::string UnexpectedServeState();
};

}  // namespace tenantfs::testing

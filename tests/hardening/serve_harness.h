// The shared serve harness (tests/support/serve_harness.h) under the names
// the hardening tests use, with the two tenants every attack needs.
#pragma once

#include "tests/support/serve_harness.h"

namespace tenantfs::hardening {

using json = nlohmann::json;
using testing::as_user;
using testing::eventually;
using testing::in_container;
using testing::is_mounted;
using testing::kAliceUid;
using testing::kBobUid;
using testing::kContainerUid;
using testing::mapper_pids;
using testing::read_file;
using testing::Reply;

// Starts each test with tenants "alice" and "bob" (uid = gid, no
// supplementary groups) on a serve of its own.
class ServeHarness : public testing::ServeHarness {
 protected:
  void SetUp() override {
    testing::ServeHarness::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    AddTenant("alice", kAliceUid);
    AddTenant("bob", kBobUid);
  }
};

}  // namespace tenantfs::hardening

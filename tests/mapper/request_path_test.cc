// Which path requests take (mapper/uring_loop.h): io_uring when the kernel
// offers it, /dev/fuse otherwise, and what the user is told either way.
// Each test sets the fuse module's enable_uring as it needs and restores it.
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "tests/mapper/mapper_fixture.h"

namespace tenantfs::testing {
namespace {

using std::chrono::seconds;

constexpr char kEnableUring[] = "/sys/module/fuse/parameters/enable_uring";

// Sets enable_uring for the life of the object, then puts back what it was.
class EnableUringSetting {
 public:
  explicit EnableUringSetting(const std::string& value) {
    std::ifstream in(kEnableUring);
    if (!(in >> old_)) return;
    ok_ = write(value);
  }
  ~EnableUringSetting() {
    if (ok_) write(old_);
  }
  EnableUringSetting(const EnableUringSetting&) = delete;
  EnableUringSetting& operator=(const EnableUringSetting&) = delete;
  bool ok() const { return ok_; }

 private:
  static bool write(const std::string& value) {
    std::ofstream out(kEnableUring);
    out << value << "\n";
    out.flush();
    return static_cast<bool>(out);
  }
  std::string old_;
  bool ok_ = false;
};

// The volume's command line with `loop` as its request loop.
std::vector<std::string> args_with_loop(const MountedVolume& vol, const std::string& loop) {
  std::vector<std::string> args;
  const std::vector<std::string> all = vol.mapper_args();
  for (size_t i = 0; i < all.size(); ++i) {
    if (all[i] == "--request-loop") {
      ++i;
      continue;
    }
    args.push_back(all[i]);
  }
  args.insert(args.end(), {"--request-loop", loop});
  return args;
}

// Writes `data` through the mount and reads it back, then unmounts as a
// user would: the mapper must end with 0.
void expect_serves_then_exits_cleanly(const MountedVolume& vol, MapperProcess& mapper,
                                      const std::string& data) {
  ASSERT_TRUE(write_file(vol.path("data"), data));
  EXPECT_EQ(read_file(vol.path("data")), data);
  ASSERT_EQ(::umount2(vol.mountpoint().c_str(), 0), 0) << std::strerror(errno);
  EXPECT_TRUE(exited_with(mapper.wait_exit(seconds(10)), 0));
}

// Waits for the readiness line of a mapper that must serve through
// /dev/fuse (the per-cpu loop, or libfuse's beyond 8 CPUs).
void expect_ready_through_dev_fuse(MapperProcess& mapper) {
  mapper.wait_ready_line(seconds(10));
  const std::string line = mapper.full_ready_line();
  EXPECT_TRUE(line == "ready request-loop=per-cpu" || line == "ready request-loop=shared")
      << "ready line: \"" << line << "\"";
}

// The error line of a mapper that refuses to start; it must then end
// non-zero and leave no mount behind.
std::string refusal(const MountedVolume& vol, MapperProcess& mapper) {
  const std::string line = mapper.wait_ready_line(seconds(10));
  EXPECT_EQ(line.rfind("error: ", 0), 0u) << "ready line: \"" << line << "\"";
  std::optional<int> status = mapper.wait_exit(seconds(10));
  EXPECT_TRUE(status) << "mapper still running after reporting an error";
  EXPECT_FALSE(exited_with(status, 0)) << describe_status(status);
  EXPECT_FALSE(find_mount(vol.mountpoint())) << "a refused start left a mount behind";
  return line;
}

// Runs in the mapper's child before exec: io_uring_setup fails with EPERM,
// as under a container runtime's seccomp profile that blocks io_uring.
void block_io_uring_setup() {
  sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  sock_fprog prog{static_cast<unsigned short>(sizeof filter / sizeof filter[0]), filter};
  if (::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) ::_exit(126);
}

class RequestPathTest : public ::testing::Test {
 protected:
  void SetUp() override { SKIP_UNLESS_MAPPER_TESTS_CAN_RUN(); }
};

#define SET_ENABLE_URING_OR_SKIP(setting)                                                    \
  do {                                                                                       \
    if (!(setting).ok()) GTEST_SKIP() << "cannot set " << kEnableUring << " on this kernel"; \
  } while (0)

TEST_F(RequestPathTest, ExplicitUringFailsBeforeReadyWhenTheKernelDisablesIt) {
  EnableUringSetting off("N");
  SET_ENABLE_URING_OR_SKIP(off);
  MountedVolume vol;
  MapperProcess mapper(args_with_loop(vol, "uring"), vol.log_path());
  const std::string line = refusal(vol, mapper);
  // Says why and how to fix it.
  EXPECT_NE(line.find("enable_uring is N"), std::string::npos) << line;
  EXPECT_NE(line.find("echo Y > /sys/module/fuse/parameters/enable_uring"), std::string::npos)
      << line;
  EXPECT_NE(line.find("fuse.enable_uring=1"), std::string::npos) << line;
}

// `--request-loop auto` with enable_uring set to `setting` and `pre_exec`
// run in the mapper's child: it must serve through /dev/fuse and log `why`.
void expect_auto_serves_through_dev_fuse(const std::string& setting,
                                         const std::function<void()>& pre_exec,
                                         const std::string& why) {
  EnableUringSetting set(setting);
  SET_ENABLE_URING_OR_SKIP(set);
  MountedVolume vol;
  MapperProcess mapper(args_with_loop(vol, "auto"), vol.log_path(), pre_exec);
  expect_ready_through_dev_fuse(mapper);
  EXPECT_NE(vol.log().find(why), std::string::npos) << vol.log();
  expect_serves_then_exits_cleanly(vol, mapper, "served");
}

TEST_F(RequestPathTest, AutoServesThroughDevFuseAndSaysWhyWhenTheKernelDisablesUring) {
  expect_auto_serves_through_dev_fuse("N", {},
                                      "io_uring not offered by the kernel (enable_uring is N)");
}

TEST_F(RequestPathTest, AutoServesThroughUringWhenTheKernelOffersIt) {
  EnableUringSetting on("Y");
  SET_ENABLE_URING_OR_SKIP(on);
  MountedVolume vol;
  MapperProcess mapper(args_with_loop(vol, "auto"), vol.log_path());
  mapper.wait_ready_line(seconds(10));
  ASSERT_EQ(mapper.full_ready_line(), "ready request-loop=uring") << vol.log();
  EXPECT_NE(vol.log().find("request loop uring ("), std::string::npos) << vol.log();
  // Small replies (copied into the ring) and a large fd-backed read (which
  // libfuse splices, and the mapper reads into the ring instead).
  ASSERT_TRUE(write_file(vol.path("small"), "ring"));
  EXPECT_EQ(read_file(vol.path("small")), "ring");
  expect_serves_then_exits_cleanly(vol, mapper, random_bytes(3 << 20, 7));
}

TEST_F(RequestPathTest, AutoFallsBackToDevFuseWhenSeccompBlocksIoUring) {
  expect_auto_serves_through_dev_fuse("Y", block_io_uring_setup,
                                      "io_uring_setup: Operation not permitted");
}

TEST_F(RequestPathTest, ExplicitUringFailsBeforeMountingWhenSeccompBlocksIoUring) {
  EnableUringSetting on("Y");
  SET_ENABLE_URING_OR_SKIP(on);
  MountedVolume vol;
  MapperProcess mapper(args_with_loop(vol, "uring"), vol.log_path(), block_io_uring_setup);
  const std::string line = refusal(vol, mapper);
  EXPECT_NE(line.find("io_uring_setup: Operation not permitted"), std::string::npos) << line;
  EXPECT_NE(line.find("seccomp"), std::string::npos) << line;
}

}  // namespace
}  // namespace tenantfs::testing

// Data integrity: bytes written through the mount are exactly the bytes on
// the storage and the bytes read back, whatever the size and offset; the
// less common file operations either work or say they are unsupported.
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/falloc.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <iostream>
#include <memory>
#include <random>
#include <thread>

#include "tests/mapper/mapper_fixture.h"

namespace tenantfs::testing {
namespace {

constexpr size_t KiB = 1024, MiB = 1024 * 1024;

// The errnos by which an optional operation may decline; anything else is a
// wrong answer.
bool is_unsupported(int err) { return err == ENOSYS || err == EOPNOTSUPP; }

// Every data test runs under both cache policies: the kernel's page cache
// and writeback buffering (exclusive) must not change a single byte.
class DataTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    SKIP_UNLESS_MAPPER_TESTS_CAN_RUN();
    VolumeOptions opts;
    opts.cache = GetParam();
    vol_ = std::make_unique<MountedVolume>(opts);
    ASSERT_EQ(vol_->start(), "ready");
  }
  void TearDown() override { vol_.reset(); }

  std::string m(const std::string& rel) const { return vol_->path(rel); }
  std::string b(const std::string& rel) const { return vol_->backing_path(rel); }

  UniqueFd open_in_mount(const std::string& rel, int flags, mode_t mode = 0644) {
    UniqueFd fd(::open(m(rel).c_str(), flags | O_CLOEXEC, mode));
    EXPECT_TRUE(fd) << "open " << rel << ": " << std::strerror(errno);
    return fd;
  }

  std::unique_ptr<MountedVolume> vol_;
};

bool pwrite_all(int fd, const std::string& data, off_t offset) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n =
        ::pwrite(fd, data.data() + done, data.size() - done, offset + static_cast<off_t>(done));
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

std::string pread_exact(int fd, size_t len, off_t offset) {
  std::string out(len, '\0');
  size_t done = 0;
  while (done < len) {
    ssize_t n = ::pread(fd, out.data() + done, len - done, offset + static_cast<off_t>(done));
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  out.resize(done);
  return out;
}

// Reports the first differing byte instead of dumping megabytes.
::testing::AssertionResult same_bytes(const std::string& got, const std::string& want) {
  if (got == want) return ::testing::AssertionSuccess();
  size_t i = 0;
  while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
  return ::testing::AssertionFailure()
         << "sizes " << got.size() << " vs " << want.size() << ", first difference at byte " << i;
}

TEST_P(DataTest, RandomDataOfManySizesReadsBackIdenticallyOnMountAndBacking) {
  const size_t sizes[] = {
      0, 1, 4095, 4096, 4097, 65535, 65536, 128 * KiB + 1, 1 * MiB, 3 * MiB + 17, 5 * MiB - 1};
  unsigned seed = 1;
  for (size_t size : sizes) {
    SCOPED_TRACE("size " + std::to_string(size));
    std::string name = "file-" + std::to_string(size);
    std::string data = random_bytes(size, seed++);
    ASSERT_TRUE(write_file(m(name), data));
    EXPECT_TRUE(same_bytes(read_file(b(name)), data)) << "on the backing store";
    EXPECT_TRUE(same_bytes(read_file(m(name)), data)) << "through the mount";
    EXPECT_EQ(lstat_path(m(name)).st_size, static_cast<off_t>(size));
  }
}

TEST_P(DataTest, WritesInOddChunksReadBackIdentically) {
  std::string data = random_bytes(2 * MiB + 333, 42);
  UniqueFd fd = open_in_mount("chunks", O_WRONLY | O_CREAT | O_TRUNC);
  ASSERT_TRUE(fd);
  std::mt19937 gen(7);
  for (size_t at = 0; at < data.size();) {
    size_t len = std::min<size_t>(data.size() - at, 1 + gen() % (200 * KiB));
    ASSERT_EQ(::write(fd.get(), data.data() + at, len), static_cast<ssize_t>(len))
        << std::strerror(errno);
    at += len;
  }
  fd.reset();
  EXPECT_TRUE(same_bytes(read_file(b("chunks")), data));
  EXPECT_TRUE(same_bytes(read_file(m("chunks")), data));
}

TEST_P(DataTest, RandomOffsetWritesAndReadsMatchAModel) {
  std::string model;
  std::mt19937 gen(2024);
  UniqueFd fd = open_in_mount("random", O_RDWR | O_CREAT | O_TRUNC);
  ASSERT_TRUE(fd);
  for (int i = 0; i < 300; ++i) {
    size_t offset = gen() % (4 * MiB);
    size_t len = 1 + gen() % (70 * KiB);
    std::string chunk = random_bytes(len, static_cast<unsigned>(gen()));
    ASSERT_TRUE(pwrite_all(fd.get(), chunk, static_cast<off_t>(offset))) << std::strerror(errno);
    if (model.size() < offset + len) model.resize(offset + len, '\0');
    model.replace(offset, len, chunk);
    if (i % 10 == 0) {  // interleave reads of random ranges, holes included
      size_t ro = gen() % model.size();
      size_t rl = std::min<size_t>(model.size() - ro, 1 + gen() % (300 * KiB));
      ASSERT_TRUE(
          same_bytes(pread_exact(fd.get(), rl, static_cast<off_t>(ro)), model.substr(ro, rl)))
          << "pread at " << ro << " length " << rl << " after " << i << " writes";
    }
  }
  ASSERT_EQ(::fsync(fd.get()), 0) << std::strerror(errno);
  fd.reset();
  EXPECT_TRUE(same_bytes(read_file(b("random")), model)) << "on the backing store";
  EXPECT_TRUE(same_bytes(read_file(m("random")), model)) << "through the mount";
}

TEST_P(DataTest, SparseWriteLeavesHoleOnBackingThatReadsAsZeros) {
  std::string head = random_bytes(4096, 1), tail = random_bytes(4096, 2);
  UniqueFd fd = open_in_mount("sparse", O_RDWR | O_CREAT | O_TRUNC);
  ASSERT_TRUE(fd);
  ASSERT_TRUE(pwrite_all(fd.get(), head, 0));
  ASSERT_TRUE(pwrite_all(fd.get(), tail, 64 * MiB));
  fd.reset();
  struct stat st = lstat_path(b("sparse"));
  EXPECT_EQ(st.st_size, static_cast<off_t>(64 * MiB + 4096));
  EXPECT_LT(st.st_blocks * 512, static_cast<blkcnt_t>(4 * MiB))
      << "the hole was filled on the storage";
  UniqueFd rd = open_in_mount("sparse", O_RDONLY);
  ASSERT_TRUE(rd);
  EXPECT_EQ(pread_exact(rd.get(), 4096, 0), head);
  EXPECT_EQ(pread_exact(rd.get(), 1 * MiB, 32 * MiB), std::string(1 * MiB, '\0'));
  EXPECT_EQ(pread_exact(rd.get(), 4096, 64 * MiB), tail);
}

TEST_P(DataTest, SeekDataAndSeekHoleNeverGiveAWrongAnswer) {
  // data [0, 64K), hole, data [1M, 1M+64K), hole up to the 2M end.
  std::string model(2 * MiB, '\0');
  std::string d1 = random_bytes(64 * KiB, 3), d2 = random_bytes(64 * KiB, 4);
  model.replace(0, d1.size(), d1);
  model.replace(1 * MiB, d2.size(), d2);
  {
    UniqueFd fd = open_in_mount("holes", O_RDWR | O_CREAT | O_TRUNC);
    ASSERT_TRUE(fd);
    ASSERT_TRUE(pwrite_all(fd.get(), d1, 0));
    ASSERT_TRUE(pwrite_all(fd.get(), d2, 1 * MiB));
    ASSERT_EQ(::ftruncate(fd.get(), 2 * MiB), 0);
  }
  UniqueFd fd = open_in_mount("holes", O_RDONLY);
  ASSERT_TRUE(fd);
  auto zeros = [&](size_t from, size_t to) {
    return std::all_of(model.begin() + static_cast<long>(from),
                       model.begin() + static_cast<long>(to), [](char c) { return c == 0; });
  };
  for (size_t off : {size_t{0}, 10 * KiB, 64 * KiB, 100 * KiB, 1 * MiB, 1 * MiB + 5,
                     1 * MiB + 64 * KiB, 2 * MiB - 1, 2 * MiB, 3 * MiB}) {
    SCOPED_TRACE("offset " + std::to_string(off));
    off_t data = ::lseek(fd.get(), static_cast<off_t>(off), SEEK_DATA);
    if (data < 0) {
      int err = errno;
      if (is_unsupported(err)) continue;
      EXPECT_EQ(err, ENXIO) << errno_name(err);
      // ENXIO: no data at or after off, i.e. past the end or only zeros left.
      EXPECT_TRUE(off >= model.size() || zeros(off, model.size()));
    } else {
      size_t r = static_cast<size_t>(data);
      EXPECT_GE(r, off);
      ASSERT_LE(r, model.size());
      EXPECT_TRUE(zeros(off, r)) << "SEEK_DATA skipped data: returned " << r;
    }
    off_t hole = ::lseek(fd.get(), static_cast<off_t>(off), SEEK_HOLE);
    if (hole < 0) {
      int err = errno;
      if (is_unsupported(err)) continue;
      EXPECT_EQ(err, ENXIO) << errno_name(err);
      EXPECT_GE(off, model.size()) << "SEEK_HOLE failed inside the file";
    } else {
      size_t r = static_cast<size_t>(hole);
      EXPECT_GE(r, off);
      ASSERT_LE(r, model.size());
      // A reported hole must read as zeros; the end of file is always a hole.
      if (r < model.size()) {
        EXPECT_EQ(model[r], '\0') << "SEEK_HOLE landed on data at " << r;
      }
    }
  }
}

TEST_P(DataTest, FallocateExtendsFileWithZerosOrIsUnsupported) {
  UniqueFd fd = open_in_mount("alloc", O_RDWR | O_CREAT | O_TRUNC);
  ASSERT_TRUE(fd);
  if (::fallocate(fd.get(), 0, 0, 1 * MiB) != 0) {
    EXPECT_TRUE(is_unsupported(errno)) << errno_name(errno);
    return;
  }
  fd.reset();
  EXPECT_EQ(lstat_path(b("alloc")).st_size, static_cast<off_t>(1 * MiB));
  EXPECT_GE(lstat_path(b("alloc")).st_blocks * 512, static_cast<blkcnt_t>(1 * MiB))
      << "fallocate succeeded but allocated nothing on the storage";
  EXPECT_EQ(read_file(m("alloc")), std::string(1 * MiB, '\0'));
}

TEST_P(DataTest, PunchHoleZeroesRangeOrIsUnsupported) {
  std::string model = random_bytes(256 * KiB, 9);
  ASSERT_TRUE(write_file(m("punch"), model));
  UniqueFd fd = open_in_mount("punch", O_RDWR);
  ASSERT_TRUE(fd);
  if (::fallocate(fd.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 64 * KiB, 64 * KiB) != 0) {
    EXPECT_TRUE(is_unsupported(errno)) << errno_name(errno);
    return;
  }
  fd.reset();
  model.replace(64 * KiB, 64 * KiB, std::string(64 * KiB, '\0'));
  EXPECT_TRUE(same_bytes(read_file(b("punch")), model)) << "on the backing store";
  EXPECT_TRUE(same_bytes(read_file(m("punch")), model)) << "through the mount";
}

TEST_P(DataTest, CopyFileRangeCopiesExactBytesOrIsUnsupported) {
  std::string data = random_bytes(1 * MiB + 3, 11);
  ASSERT_TRUE(write_file(m("src"), data));
  UniqueFd src = open_in_mount("src", O_RDONLY);
  UniqueFd dst = open_in_mount("dst", O_WRONLY | O_CREAT | O_TRUNC);
  ASSERT_TRUE(src && dst);
  size_t copied = 0;
  while (copied < data.size()) {
    ssize_t n = ::copy_file_range(src.get(), nullptr, dst.get(), nullptr, data.size() - copied, 0);
    if (n < 0) {
      int err = errno;
      EXPECT_TRUE(is_unsupported(err) || err == EXDEV) << errno_name(err);
      return;
    }
    ASSERT_GT(n, 0) << "copy_file_range stopped at " << copied;
    copied += static_cast<size_t>(n);
  }
  dst.reset();
  EXPECT_TRUE(same_bytes(read_file(b("dst")), data)) << "on the backing store";
  EXPECT_TRUE(same_bytes(read_file(m("dst")), data)) << "through the mount";
}

TEST_P(DataTest, FlockExcludesSecondOpenFileUntilReleased) {
  ASSERT_TRUE(write_file(m("lock"), "x"));
  UniqueFd a = open_in_mount("lock", O_RDWR), c = open_in_mount("lock", O_RDWR);
  ASSERT_TRUE(a && c);
  if (::flock(a.get(), LOCK_EX | LOCK_NB) != 0) {
    EXPECT_TRUE(is_unsupported(errno)) << errno_name(errno);
    return;
  }
  EXPECT_EQ(::flock(c.get(), LOCK_EX | LOCK_NB), -1);
  EXPECT_EQ(errno, EWOULDBLOCK) << errno_name(errno);
  ASSERT_EQ(::flock(a.get(), LOCK_UN), 0);
  EXPECT_EQ(::flock(c.get(), LOCK_EX | LOCK_NB), 0) << std::strerror(errno);
}

TEST_P(DataTest, PosixRecordLockConflictsAcrossProcesses) {
  ASSERT_TRUE(write_file(m("plock"), "0123456789"));
  UniqueFd fd = open_in_mount("plock", O_RDWR);
  ASSERT_TRUE(fd);
  struct flock lk {};
  lk.l_type = F_WRLCK;
  lk.l_whence = SEEK_SET;
  lk.l_start = 0;
  lk.l_len = 5;
  if (::fcntl(fd.get(), F_SETLK, &lk) != 0) {
    EXPECT_TRUE(is_unsupported(errno)) << errno_name(errno);
    return;
  }
  std::string path = m("plock");
  Outcome o = run_as(Caller{}, [&] {
    UniqueFd other(::open(path.c_str(), O_RDWR | O_CLOEXEC));
    if (!other) return sys(-1);
    struct flock want {};
    want.l_type = F_WRLCK;
    want.l_whence = SEEK_SET;
    want.l_start = 2;
    want.l_len = 1;
    return sys(::fcntl(other.get(), F_SETLK, &want));
  });
  EXPECT_EQ(o.ret, -1);
  EXPECT_TRUE(o.err == EAGAIN || o.err == EACCES) << describe(o);
}

TEST_P(DataTest, FsyncAndFdatasyncSucceed) {
  UniqueFd fd = open_in_mount("sync", O_WRONLY | O_CREAT | O_TRUNC);
  ASSERT_TRUE(fd);
  ASSERT_EQ(::write(fd.get(), "durable", 7), 7);
  EXPECT_EQ(::fsync(fd.get()), 0) << std::strerror(errno);
  EXPECT_EQ(::fdatasync(fd.get()), 0) << std::strerror(errno);
  UniqueFd dir(::open(vol_->mountpoint().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ASSERT_TRUE(dir);
  EXPECT_EQ(::fsync(dir.get()), 0) << "fsync of a directory: " << std::strerror(errno);
  EXPECT_EQ(read_file(b("sync")), "durable");
}

TEST_P(DataTest, SharedMmapWritesReachBacking) {
  std::string data = random_bytes(3 * 4096 + 100, 13);
  ASSERT_TRUE(write_file(m("mapped"), std::string(data.size(), 'z')));
  UniqueFd fd = open_in_mount("mapped", O_RDWR);
  ASSERT_TRUE(fd);
  void* p = ::mmap(nullptr, data.size(), PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  ASSERT_NE(p, MAP_FAILED) << std::strerror(errno);
  std::memcpy(p, data.data(), data.size());
  EXPECT_EQ(::msync(p, data.size(), MS_SYNC), 0) << std::strerror(errno);
  ::munmap(p, data.size());
  fd.reset();
  EXPECT_TRUE(same_bytes(read_file(b("mapped")), data));
}

TEST_P(DataTest, ReaddirListsEveryEntryOnce) {
  // Enough entries to need several readdir replies.
  std::vector<std::string> names;
  for (int i = 0; i < 600; ++i)
    names.push_back("entry-" + std::to_string(i) + std::string(static_cast<size_t>(i % 40), 'n'));
  ASSERT_EQ(::mkdir(m("many").c_str(), 0755), 0);
  for (const auto& n : names) ASSERT_TRUE(write_file(m("many/" + n), ""));
  std::vector<std::string> seen;
  DIR* d = ::opendir(m("many").c_str());
  ASSERT_NE(d, nullptr) << std::strerror(errno);
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") seen.push_back(n);
  }
  ::closedir(d);
  std::sort(seen.begin(), seen.end());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(seen, names);
}

TEST_P(DataTest, UnlinkedOpenFileStaysReadableAndWritable) {
  std::string data = random_bytes(100 * KiB, 21);
  UniqueFd fd = open_in_mount("doomed", O_RDWR | O_CREAT | O_TRUNC);
  ASSERT_TRUE(fd);
  ASSERT_TRUE(pwrite_all(fd.get(), data, 0));
  ASSERT_EQ(::unlink(m("doomed").c_str()), 0) << std::strerror(errno);
  EXPECT_EQ(::access(b("doomed").c_str(), F_OK), -1) << "still on the storage after unlink";
  std::string more = random_bytes(5000, 22);
  ASSERT_TRUE(pwrite_all(fd.get(), more, static_cast<off_t>(data.size())));
  EXPECT_TRUE(same_bytes(pread_exact(fd.get(), data.size() + more.size(), 0), data + more));
  struct stat st {};
  ASSERT_EQ(::fstat(fd.get(), &st), 0) << std::strerror(errno);
  EXPECT_EQ(st.st_size, static_cast<off_t>(data.size() + more.size()));
}

TEST_P(DataTest, ConcurrentWritersOfSeparateFilesAllLandIntact) {
  constexpr int kWriters = 4;
  constexpr size_t kSize = 3 * MiB + 123;
  std::vector<pid_t> children;
  for (int w = 0; w < kWriters; ++w) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0) << std::strerror(errno);
    if (pid == 0) {
      // Child: write in 64 KiB + w pieces, read back, exit 0 only if equal.
      std::string data = random_bytes(kSize, 100 + static_cast<unsigned>(w));
      int fd =
          ::open(m("w" + std::to_string(w)).c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fd < 0) ::_exit(2);
      size_t piece = 64 * KiB + static_cast<size_t>(w);
      for (size_t at = 0; at < kSize; at += piece) {
        size_t len = std::min(piece, kSize - at);
        if (::pwrite(fd, data.data() + at, len, static_cast<off_t>(at)) !=
            static_cast<ssize_t>(len))
          ::_exit(3);
      }
      bool same = pread_exact(fd, kSize, 0) == data;
      ::close(fd);
      ::_exit(same ? 0 : 4);
    }
    children.push_back(pid);
  }
  for (int w = 0; w < kWriters; ++w) {
    int status = 0;
    ASSERT_EQ(::waitpid(children[static_cast<size_t>(w)], &status, 0),
              children[static_cast<size_t>(w)]);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "writer " << w << " status " << status << " (2 open, 3 write, 4 read-back mismatch)";
  }
  for (int w = 0; w < kWriters; ++w) {
    EXPECT_TRUE(same_bytes(read_file(b("w" + std::to_string(w))),
                           random_bytes(kSize, 100 + static_cast<unsigned>(w))))
        << "writer " << w << " on the backing store";
  }
}

TEST_P(DataTest, StatfsReportsTheBackingFilesystem) {
  struct statvfs in_mount {
  }, backing{};
  ASSERT_EQ(::statvfs(vol_->mountpoint().c_str(), &in_mount), 0) << std::strerror(errno);
  ASSERT_EQ(::statvfs(vol_->backing().c_str(), &backing), 0) << std::strerror(errno);
  EXPECT_EQ(in_mount.f_blocks * in_mount.f_frsize, backing.f_blocks * backing.f_frsize)
      << "total size";
  EXPECT_EQ(in_mount.f_files, backing.f_files) << "total inodes";
  EXPECT_EQ(in_mount.f_namemax, backing.f_namemax);
}

TEST_P(DataTest, TmpfileCanBeLinkedInOrIsUnsupported) {
  UniqueFd fd(::open(vol_->mountpoint().c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0640));
  if (!fd) {
    EXPECT_TRUE(is_unsupported(errno)) << errno_name(errno);
    return;
  }
  ASSERT_EQ(::write(fd.get(), "anonymous", 9), 9);
  std::string proc = "/proc/self/fd/" + std::to_string(fd.get());
  ASSERT_EQ(::linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, m("named").c_str(), AT_SYMLINK_FOLLOW), 0)
      << std::strerror(errno);
  EXPECT_EQ(read_file(b("named")), "anonymous");
  EXPECT_EQ(lstat_path(b("named")).st_uid, kTenantUid);
}

TEST_P(DataTest, DirectIoRoundTripsOrIsRefusedAtOpen) {
  UniqueFd fd(::open(m("direct").c_str(), O_RDWR | O_CREAT | O_DIRECT | O_CLOEXEC, 0644));
  if (!fd) {
    EXPECT_EQ(errno, EINVAL) << errno_name(errno);
    return;
  }
  constexpr size_t kLen = 64 * KiB;
  void* buf = nullptr;
  ASSERT_EQ(::posix_memalign(&buf, 4096, kLen), 0);
  std::unique_ptr<void, decltype(&::free)> owned(buf, &::free);
  std::string data = random_bytes(kLen, 31);
  std::memcpy(buf, data.data(), kLen);
  ASSERT_EQ(::pwrite(fd.get(), buf, kLen, 0), static_cast<ssize_t>(kLen)) << std::strerror(errno);
  std::memset(buf, 0, kLen);
  ASSERT_EQ(::pread(fd.get(), buf, kLen, 0), static_cast<ssize_t>(kLen)) << std::strerror(errno);
  EXPECT_EQ(std::memcmp(buf, data.data(), kLen), 0);
  EXPECT_TRUE(same_bytes(read_file(b("direct")), data));
}

int remove_one(const char* path, const struct stat*, int type, FTW*) {
  return type == FTW_DP ? ::rmdir(path) : ::unlink(path);
}

TEST_P(DataTest, RecursiveRemovalThroughMountEmptiesTheTree) {
  // rm -rf: readdir offsets must stay valid while entries disappear.
  for (int d = 0; d < 5; ++d) {
    std::string dir = m("tree/d" + std::to_string(d));
    ASSERT_EQ(::mkdir(m("tree").c_str(), 0755) == 0 || errno == EEXIST, true);
    ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0) << std::strerror(errno);
    for (int f = 0; f < 120; ++f) ASSERT_TRUE(write_file(dir + "/file-" + std::to_string(f), "x"));
    ASSERT_EQ(::symlink("file-0", (dir + "/link").c_str()), 0);
  }
  ASSERT_EQ(::nftw(m("tree").c_str(), remove_one, 16, FTW_DEPTH | FTW_PHYS), 0)
      << std::strerror(errno);
  EXPECT_EQ(::access(b("tree").c_str(), F_OK), -1) << "the tree is still on the storage";
}

TEST_P(DataTest, NamesWithUnusualBytesRoundTrip) {
  const std::vector<std::string> names = {"with space",  "tab\there",          "new\nline",
                                          "caf\xc3\xa9", "\xff\xfe-not-utf8",  "-leading-dash",
                                          "...dots",     std::string(255, 'n')};
  for (const std::string& n : names) {
    ASSERT_TRUE(write_file(m(n), "named " + n)) << n;
    EXPECT_EQ(read_file(b(n)), "named " + n);
  }
  std::vector<std::string> listed;
  DIR* d = ::opendir(vol_->mountpoint().c_str());
  ASSERT_NE(d, nullptr);
  while (dirent* e = ::readdir(d))
    if (std::string(e->d_name) != "." && std::string(e->d_name) != "..")
      listed.push_back(e->d_name);
  ::closedir(d);
  std::vector<std::string> want = names;
  std::sort(want.begin(), want.end());
  std::sort(listed.begin(), listed.end());
  EXPECT_EQ(listed, want);
}

TEST_P(DataTest, PartialOverwriteOfWriteOnlyFileLandsOnBacking) {
  // Mode 0200: the tenant may write but not read, so a cache that needs to
  // read around a partial page cannot do it with the tenant's rights.
  std::string b_path = b("wo");
  ASSERT_TRUE(write_file(b_path, "0123456789"));
  ASSERT_EQ(::chown(b_path.c_str(), kTenantUid, kTenantGid), 0);
  ASSERT_EQ(::chmod(b_path.c_str(), 0200), 0);
  Outcome o = run_as(Caller{1000, 1000, {1000}}, [&] {
    auto failed = [](const char* step) {
      Outcome r = sys(-1);
      r.data = step;
      return r;
    };
    UniqueFd fd(::open(m("wo").c_str(), O_WRONLY | O_CLOEXEC));
    if (!fd) return failed("open");
    if (::pwrite(fd.get(), "AB", 2, 3) != 2) return failed("pwrite");
    if (::close(fd.release()) != 0) return failed("close");
    return Outcome{};
  });
  ASSERT_EQ(o.ret, 0) << o.data << ": " << describe(o);
  EXPECT_EQ(read_file(b_path), "012AB56789");
}

TEST_P(DataTest, AppendsFromTwoDescriptorsNeverOverwriteEachOther) {
  ASSERT_TRUE(write_file(m("log"), "start\n"));
  UniqueFd a = open_in_mount("log", O_WRONLY | O_APPEND),
           c = open_in_mount("log", O_WRONLY | O_APPEND);
  ASSERT_TRUE(a && c);
  std::string want = "start\n";
  for (int i = 0; i < 50; ++i) {
    std::string line = std::string(i % 2 ? "c" : "a") + std::to_string(i) + "\n";
    ASSERT_EQ(::write((i % 2 ? c : a).get(), line.data(), line.size()),
              static_cast<ssize_t>(line.size()));
    want += line;
  }
  a.reset();
  c.reset();
  EXPECT_EQ(read_file(b("log")), want);
  EXPECT_EQ(read_file(m("log")), want);
}

INSTANTIATE_TEST_SUITE_P(Cache, DataTest, ::testing::Values("strict", "exclusive"),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });

// Strict mode promises no stale data: the page cache is dropped when a file
// is opened, so a change made on the storage behind the mapper's back shows
// on the next open.
TEST(StrictCacheTest, ChangeOnBackingIsSeenOnNextOpen) {
  SKIP_UNLESS_MAPPER_TESTS_CAN_RUN();
  VolumeOptions opts;
  opts.cache = "strict";
  MountedVolume vol(opts);
  ASSERT_EQ(vol.start(), "ready");
  ASSERT_TRUE(write_file(vol.path("f"), "version one"));
  EXPECT_EQ(read_file(vol.path("f")), "version one");
  {
    // Same size, so only the content (not cached attributes) can be stale.
    UniqueFd fd(::open(vol.backing_path("f").c_str(), O_WRONLY | O_CLOEXEC));
    ASSERT_TRUE(fd);
    ASSERT_EQ(::pwrite(fd.get(), "version two", 11, 0), 11);
  }
  EXPECT_EQ(read_file(vol.path("f")), "version two");
}

size_t open_fds_of(pid_t pid) {
  size_t n = 0;
  DIR* d = ::opendir(("/proc/" + std::to_string(pid) + "/fd").c_str());
  if (!d) return 0;
  while (dirent* e = ::readdir(d))
    if (e->d_name[0] != '.') ++n;
  ::closedir(d);
  return n;
}

// When the kernel evicts inodes it sends FORGET; the mapper must release what
// it held for them and still serve every file when asked again.
TEST(InodeLifetimeTest, FilesAreServedAgainAfterKernelForgetsInodes) {
  SKIP_UNLESS_MAPPER_TESTS_CAN_RUN();
  MountedVolume vol;
  ASSERT_EQ(vol.start(), "ready");
  constexpr int kDirs = 10, kFilesPerDir = 150;
  for (int d = 0; d < kDirs; ++d) {
    std::string dir = vol.path("d" + std::to_string(d));
    ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0) << std::strerror(errno);
    for (int f = 0; f < kFilesPerDir; ++f)
      ASSERT_TRUE(
          write_file(dir + "/f" + std::to_string(f), "content " + std::to_string(d * 1000 + f)));
  }
  const size_t fds_while_cached = open_fds_of(vol.mapper()->pid());

  // Drops unused dentries and inodes machine-wide; only costs cache warmth.
  {
    UniqueFd drop(::open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC));
    ASSERT_TRUE(drop) << std::strerror(errno);
    ASSERT_EQ(::write(drop.get(), "2", 1), 1) << std::strerror(errno);
  }
  // FORGETs are processed asynchronously: wait (bounded) for the mapper to
  // let go of most of what it held.
  size_t fds_after = fds_while_cached;
  for (int i = 0; i < 100 && fds_after > fds_while_cached / 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    fds_after = open_fds_of(vol.mapper()->pid());
  }
  std::cout << "mapper fds: " << fds_while_cached << " with inodes cached, " << fds_after
            << " after the kernel forgot them\n";
  if (fds_while_cached > static_cast<size_t>(kDirs * kFilesPerDir)) {
    EXPECT_LE(fds_after, fds_while_cached / 2)
        << "the mapper held " << fds_while_cached << " fds and still holds " << fds_after
        << " after the kernel forgot the inodes";
  }
  for (int d = 0; d < kDirs; ++d)
    for (int f = 0; f < kFilesPerDir; f += 7)
      EXPECT_EQ(read_file(vol.path("d" + std::to_string(d) + "/f" + std::to_string(f))),
                "content " + std::to_string(d * 1000 + f));
  ASSERT_EQ(::rename(vol.path("d3/f10").c_str(), vol.path("d4/moved").c_str()), 0)
      << std::strerror(errno);
  EXPECT_EQ(read_file(vol.backing_path("d4/moved")), "content 3010");
}

}  // namespace
}  // namespace tenantfs::testing

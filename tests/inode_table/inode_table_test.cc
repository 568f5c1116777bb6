// InodeTable keeps at most `max_open` fds open, reopens a closed object by
// the name it was found under, and answers ESTALE when that name no longer
// holds the same object.
#include "mapper/inode_table.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/temp_dir.h"

namespace tenantfs {
namespace {

using testing::TempDir;

class InodeTableTest : public ::testing::Test {
 protected:
  // A table over the scratch directory keeping at most `max_open` fds.
  void make_table(size_t max_open) {
    UniqueFd root(::open(dir_.path().c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    ASSERT_TRUE(root);
    BackingStat st;
    ASSERT_EQ(backing_stat(root.get(), "", AT_EMPTY_PATH, &st), 0);
    table_ = std::make_unique<InodeTable>(std::move(root), st, max_open);
  }

  // Looks `name` up in `parent` as the kernel would have the mapper do.
  fuse_ino_t lookup(fuse_ino_t parent, const std::string& name) {
    PinnedFd dir;
    EXPECT_EQ(table_->pin(parent, &dir), 0);
    BackingStat st;
    EXPECT_EQ(backing_stat(dir.get(), name.c_str(), AT_SYMLINK_NOFOLLOW, &st), 0) << name;
    return table_->add_lookup(st.st, parent, name.c_str());
  }

  // The inode number the pinned fd of `id` refers to, or -errno.
  long pinned_ino(fuse_ino_t id) {
    PinnedFd fd;
    if (int err = table_->pin(id, &fd); err != 0) return -err;
    struct stat st;
    if (::fstat(fd.get(), &st) != 0) return -errno;
    return static_cast<long>(st.st_ino);
  }

  long ino_on_disk(const std::string& name) {
    struct stat st;
    return ::lstat(dir_.sub(name).c_str(), &st) == 0 ? static_cast<long>(st.st_ino) : -1;
  }

  TempDir dir_;
  std::unique_ptr<InodeTable> table_;
};

TEST_F(InodeTableTest, KeepsAtMostMaxOpenFdsAndReopensByName) {
  make_table(3);
  std::vector<fuse_ino_t> ids;
  for (int i = 0; i < 20; ++i) {
    dir_.write("f" + std::to_string(i), "x");
    ids.push_back(lookup(FUSE_ROOT_ID, "f" + std::to_string(i)));
  }
  EXPECT_EQ(table_->open_fds(), 0u) << "a lookup opens nothing";
  for (int round = 0; round < 2; ++round) {
    for (int i = 0; i < 20; ++i) {
      EXPECT_EQ(pinned_ino(ids[i]), ino_on_disk("f" + std::to_string(i)));
      EXPECT_LE(table_->open_fds(), 3u);
    }
  }
}

TEST_F(InodeTableTest, ReopensThroughClosedParentDirectories) {
  make_table(1);
  ASSERT_EQ(::mkdir(dir_.sub("a").c_str(), 0700), 0);
  ASSERT_EQ(::mkdir(dir_.sub("a/b").c_str(), 0700), 0);
  dir_.write("a/b/file", "x");
  const fuse_ino_t a = lookup(FUSE_ROOT_ID, "a");
  const fuse_ino_t b = lookup(a, "b");
  const fuse_ino_t file = lookup(b, "file");
  dir_.write("other", "x");
  (void)pinned_ino(lookup(FUSE_ROOT_ID, "other"));  // closes every other fd
  EXPECT_EQ(pinned_ino(file), ino_on_disk("a/b/file"));
  EXPECT_LE(table_->open_fds(), 1u);
}

TEST_F(InodeTableTest, NameHoldingAnotherObjectOrNoneIsStale) {
  make_table(1);
  dir_.write("victim", "old");
  dir_.write("gone", "old");
  dir_.write("other", "x");
  const fuse_ino_t victim = lookup(FUSE_ROOT_ID, "victim");
  const fuse_ino_t gone = lookup(FUSE_ROOT_ID, "gone");
  const fuse_ino_t other = lookup(FUSE_ROOT_ID, "other");
  dir_.write("victim.new", "new");
  ASSERT_EQ(::rename(dir_.sub("victim.new").c_str(), dir_.sub("victim").c_str()), 0);
  ASSERT_EQ(::unlink(dir_.sub("gone").c_str()), 0);
  struct stat st {};
  EXPECT_EQ(table_->stat(victim, &st), ESTALE);
  EXPECT_EQ(table_->stat(gone, &st), ESTALE);
  EXPECT_EQ(pinned_ino(victim), -ESTALE);
  EXPECT_EQ(pinned_ino(gone), -ESTALE);
  EXPECT_EQ(pinned_ino(other), ino_on_disk("other"));
  // A lookup of the new object gives it an id of its own.
  const fuse_ino_t fresh = lookup(FUSE_ROOT_ID, "victim");
  EXPECT_NE(fresh, victim);
  EXPECT_EQ(pinned_ino(fresh), ino_on_disk("victim"));
}

// stat() finds an object without an fd by name and opens nothing for it (a
// parent closed on the way is reopened); its checks are a reopen's (below).
TEST_F(InodeTableTest, StatByNameOpensNothingAndChecksTheObject) {
  make_table(1);
  ASSERT_EQ(::mkdir(dir_.sub("d").c_str(), 0700), 0);
  dir_.write("d/file", "12345");
  const fuse_ino_t d = lookup(FUSE_ROOT_ID, "d");
  const fuse_ino_t file = lookup(d, "file");
  struct stat st {};
  ASSERT_EQ(table_->stat(file, &st), 0);
  EXPECT_EQ(static_cast<long>(st.st_ino), ino_on_disk("d/file"));
  EXPECT_EQ(st.st_size, 5);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(table_->open_fds(), 1u) << "only the parent's fd";
  ASSERT_EQ(table_->stat(d, &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  // The same object held open is stat'ed through its fd.
  ASSERT_GT(pinned_ino(file), 0);
  dir_.write("d/file", "1234567");
  ASSERT_EQ(table_->stat(file, &st), 0);
  EXPECT_EQ(st.st_size, 7);
  // The root has no name to be found by.
  ASSERT_EQ(table_->stat(FUSE_ROOT_ID, &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
}

// use_in_place() hands an object without an fd over as a name in its
// parent, opens nothing for it, and refuses (ESTALE) a result obtained from
// a name that then holds another object; without `by_name` it opens the fd.
TEST_F(InodeTableTest, UseInPlaceGoesByNameAndChecksTheObjectAfterwards) {
  make_table(4);
  dir_.write("file", "x");
  dir_.write("victim", "old");
  const fuse_ino_t file = lookup(FUSE_ROOT_ID, "file");
  const fuse_ino_t victim = lookup(FUSE_ROOT_ID, "victim");
  auto ino_in_place = [&](fuse_ino_t id, bool by_name, std::string* name_seen) {
    struct stat st {};
    const int err = table_->use_in_place(id, by_name, [&](int fd, const char* name) {
      *name_seen = name;
      return ::fstatat(fd, name, &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == 0 ? 0 : errno;
    });
    return err != 0 ? -err : static_cast<long>(st.st_ino);
  };
  std::string seen;
  EXPECT_EQ(ino_in_place(file, true, &seen), ino_on_disk("file"));
  EXPECT_EQ(seen, "file");
  EXPECT_EQ(table_->open_fds(), 0u) << "the root's fd served; nothing opened";
  // Replaced between the lookup and the use: whatever the use got, stale.
  dir_.write("victim.new", "new");
  ASSERT_EQ(::rename(dir_.sub("victim.new").c_str(), dir_.sub("victim").c_str()), 0);
  EXPECT_EQ(ino_in_place(victim, true, &seen), -ESTALE);
  EXPECT_EQ(seen, "victim");
  // Without by_name the fd is opened, and used from then on.
  EXPECT_EQ(ino_in_place(file, false, &seen), ino_on_disk("file"));
  EXPECT_EQ(seen, "");
  EXPECT_EQ(table_->open_fds(), 1u);
  EXPECT_EQ(ino_in_place(file, true, &seen), ino_on_disk("file"));
  EXPECT_EQ(seen, "");
}

TEST_F(InodeTableTest, ParentsRecordedInACycleGiveEstaleNotACrash) {
  make_table(1);
  ASSERT_EQ(::mkdir(dir_.sub("a").c_str(), 0700), 0);
  ASSERT_EQ(::mkdir(dir_.sub("a/b").c_str(), 0700), 0);
  const fuse_ino_t a = lookup(FUSE_ROOT_ID, "a");
  const fuse_ino_t b = lookup(a, "b");
  ASSERT_GT(pinned_ino(b), 0);  // b's fd stays open (and a's is closed)
  // Rearranged on the storage: b moves up, a moves into it. The kernel,
  // still caching b under a, then finds a in b: each is recorded as the
  // other's parent.
  ASSERT_EQ(::rename(dir_.sub("a/b").c_str(), dir_.sub("b").c_str()), 0);
  ASSERT_EQ(::rename(dir_.sub("a").c_str(), dir_.sub("b/a").c_str()), 0);
  EXPECT_EQ(lookup(b, "a"), a);
  dir_.write("other", "x");
  (void)pinned_ino(lookup(FUSE_ROOT_ID, "other"));  // closes a's and b's fds
  EXPECT_EQ(pinned_ino(a), -ESTALE);
  // A fresh lookup from the root mends it.
  EXPECT_EQ(lookup(FUSE_ROOT_ID, "b"), b);
  EXPECT_EQ(pinned_ino(a), ino_on_disk("b/a"));
}

TEST_F(InodeTableTest, RenameKeepsAClosedObjectReachable) {
  make_table(1);
  dir_.write("before", "x");
  dir_.write("other", "x");
  const fuse_ino_t id = lookup(FUSE_ROOT_ID, "before");
  const long ino = ino_on_disk("before");
  ASSERT_EQ(::rename(dir_.sub("before").c_str(), dir_.sub("after").c_str()), 0);
  struct stat st;
  ASSERT_EQ(::lstat(dir_.sub("after").c_str(), &st), 0);
  table_->renamed(st.st_ino, st.st_dev, FUSE_ROOT_ID, "after");
  (void)pinned_ino(lookup(FUSE_ROOT_ID, "other"));
  EXPECT_EQ(pinned_ino(id), ino);
}

TEST_F(InodeTableTest, HeldObjectKeepsItsFdWhileOthersCome) {
  make_table(2);
  dir_.write("held", "x");
  const fuse_ino_t held = lookup(FUSE_ROOT_ID, "held");
  ASSERT_EQ(pinned_ino(held), ino_on_disk("held"));
  table_->hold(held);  // as an open file does
  ASSERT_EQ(::unlink(dir_.sub("held").c_str()), 0);
  for (int i = 0; i < 10; ++i) {
    dir_.write("f" + std::to_string(i), "x");
    (void)pinned_ino(lookup(FUSE_ROOT_ID, "f" + std::to_string(i)));
  }
  // Unlinked, so only the fd kept open reaches it.
  EXPECT_GT(pinned_ino(held), 0);
  table_->unpin(held);
}

TEST_F(InodeTableTest, ForgottenObjectsGoOnceNoChildNamesThem) {
  make_table(1);
  ASSERT_EQ(::mkdir(dir_.sub("d").c_str(), 0700), 0);
  dir_.write("d/f", "x");
  dir_.write("other", "x");
  const fuse_ino_t d = lookup(FUSE_ROOT_ID, "d");
  const fuse_ino_t f = lookup(d, "f");
  EXPECT_EQ(pinned_ino(f), ino_on_disk("d/f"));
  table_->forget(d, 1);
  // Closes f's fd (one fd at most): f must now be reopened through d.
  const fuse_ino_t other = lookup(FUSE_ROOT_ID, "other");
  EXPECT_EQ(pinned_ino(other), ino_on_disk("other"));
  EXPECT_EQ(pinned_ino(f), ino_on_disk("d/f")) << "d/f still needs d to be reopened";
  table_->forget(f, 1);
  table_->forget(other, 1);
  EXPECT_EQ(table_->open_fds(), 0u) << "forgotten objects keep no fd open";
}

TEST_F(InodeTableTest, ConcurrentPinsStatsAndUsesAlwaysReachTheirOwnObject) {
  constexpr int kFiles = 40;
  make_table(4);
  std::vector<fuse_ino_t> ids;
  std::vector<long> inos;
  for (int i = 0; i < kFiles; ++i) {
    dir_.write("f" + std::to_string(i), "x");
    ids.push_back(lookup(FUSE_ROOT_ID, "f" + std::to_string(i)));
    inos.push_back(ino_on_disk("f" + std::to_string(i)));
  }
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int n = 0; n < 2000; ++n) {
        const int i = (n * 7 + t * 13) % kFiles;
        // Pins, stats and uses by name interleave on the same objects.
        struct stat st {};
        switch ((n + t) % 3) {
          case 0:
            if (pinned_ino(ids[i]) != inos[i]) ++wrong;
            break;
          case 1:
            if (table_->stat(ids[i], &st) != 0 || static_cast<long>(st.st_ino) != inos[i]) ++wrong;
            break;
          default: {
            const int err = table_->use_in_place(ids[i], true, [&](int fd, const char* name) {
              return ::fstatat(fd, name, &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == 0 ? 0 : errno;
            });
            if (err != 0 || static_cast<long>(st.st_ino) != inos[i]) ++wrong;
          }
        }
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_LE(table_->open_fds(), 4u);
}

}  // namespace
}  // namespace tenantfs

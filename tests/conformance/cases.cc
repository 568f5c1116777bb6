// The cases of the battery, grouped as pjdfstest groups its tests: by system
// call. Names are stable: accepted_deviations.txt and pending_fixes.txt
// refer to them.
//
// Fixture ids: T the tenant (uid, gid), S a supplementary group of the
// tenant, O another user and its group. The case directory itself is the
// tenant's, 0755; a sticky directory is another user's and 01777, like /tmp.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <string>

#include "tests/conformance/battery.h"

namespace tenantfs::conformance {
namespace {

using F = const Fixture&;
using I = const Ids&;
using S = Steps&;

// Writes `text` to fd and records the count written (or the errno).
void write_to(S s, std::string_view label, int fd, const std::string& text) {
  s.value(label, static_cast<long>(::write(fd, text.data(), text.size())));
}

// Writes one byte to `path` through an fd of its own, closes it, and
// records what stat shows after: a write may clear setuid/setgid.
void write_then_stat(S s, const std::string& path) {
  UniqueFd fd = s.open("open", path, O_WRONLY);
  write_to(s, "write", fd.get(), "x");
  fd.reset();
  s.stat("stat", path);
}

// Runs `path` in a child and records "exit<N>", or the errno of execve.
void exec(S s, std::string_view label, const std::string& path) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return s.call(label, -1);
  UniqueFd rd(fds[0]), wr(fds[1]);
  pid_t pid = ::fork();
  if (pid < 0) return s.call(label, -1);
  if (pid == 0) {
    rd.reset();
    char* argv[] = {const_cast<char*>(path.c_str()), nullptr};
    char* envp[] = {nullptr};
    ::execve(path.c_str(), argv, envp);
    int err = errno;
    (void)!::write(wr.get(), &err, sizeof err);
    ::_exit(127);
  }
  wr.reset();
  // The pipe closes on a successful exec (O_CLOEXEC) and carries errno otherwise.
  int err = 0;
  const bool exec_failed = ::read(rd.get(), &err, sizeof err) == sizeof err;
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (exec_failed) {
    errno = err;
    return s.call(label, -1);
  }
  s.note(label, WIFEXITED(status) ? "exit" + std::to_string(WEXITSTATUS(status)) : "signal");
}

// The sticky directory of the sticky cases: another user's, world-writable.
void sticky_dir(F f, I id) { f.dir("st", id.other_uid, id.other_gid, 01777); }

const std::string kScript = "#!/bin/sh\nexit 3\n";
// An access ACL naming another user, as setfacl -m u:O:r would leave it.
std::string named_acl(I id) {
  return "u::rw-,u:" + std::to_string(id.other_uid) + ":r--,g::r--,m::r--,o::---";
}

std::vector<Case> make_battery() {
  return {
      // ---------------------------------------------------------- open, creat
      {"create_mode_and_owner",
       {},
       [](S s, I) {
         UniqueFd fd = s.open("open", "new", O_WRONLY | O_CREAT | O_EXCL, 0640);
         s.stat("stat", "new");
       }},
      {"create_excl_existing", [](F f, I id) { f.file("f", id.tenant_uid, id.tenant_gid, 0644); },
       [](S s, I) { s.open("open", "f", O_WRONLY | O_CREAT | O_EXCL, 0644); }},
      {"open_trunc_own_files",
       [](F f, I id) {
         f.file("w", id.tenant_uid, id.tenant_gid, 0644, "hello\n");
         f.file("r", id.tenant_uid, id.tenant_gid, 0444, "hello\n");
       },
       [](S s, I) {
         s.open("open_w", "w", O_WRONLY | O_TRUNC);
         s.stat("stat_w", "w");
         s.open("open_r", "r", O_WRONLY | O_TRUNC);
         s.stat("stat_r", "r");
       }},
      {"open_directory_for_writing",
       [](F f, I id) { f.dir("d", id.tenant_uid, id.tenant_gid, 0755); },
       [](S s, I) {
         s.open("wronly", "d", O_WRONLY);
         s.open("rdwr", "d", O_RDWR);
         s.open("rdonly", "d", O_RDONLY);
       }},
      {"open_file_with_o_directory",
       [](F f, I id) { f.file("f", id.tenant_uid, id.tenant_gid, 0644); },
       [](S s, I) {
         s.open("open", "f", O_RDONLY | O_DIRECTORY);
         s.open("below_file", "f/x", O_RDONLY);
       }},
      {"open_symlink_nofollow",
       [](F f, I id) {
         f.file("f", id.tenant_uid, id.tenant_gid, 0644);
         f.symlink("f", "s");
       },
       [](S s, I) {
         s.open("nofollow", "s", O_RDONLY | O_NOFOLLOW);
         s.open("follow", "s", O_RDONLY);
       }},
      {"open_symlink_loop",
       [](F f, I) {
         f.symlink("b", "a");
         f.symlink("a", "b");
       },
       [](S s, I) {
         s.open("open", "a", O_RDONLY);
         s.open("create", "a", O_WRONLY | O_CREAT, 0644);
       }},
      {"name_too_long",
       {},
       [](S s, I) {
         s.open("create256", std::string(NAME_MAX + 1, 'a'), O_WRONLY | O_CREAT, 0644);
         s.call("mkdir256", ::mkdir(std::string(NAME_MAX + 1, 'b').c_str(), 0755));
         s.open("create255", std::string(NAME_MAX, 'a'), O_WRONLY | O_CREAT, 0644);
       }},
      {"open_other_0600_file", [](F f, I id) { f.file("f", id.other_uid, id.other_gid, 0600); },
       [](S s, I) {
         s.open("rdonly", "f", O_RDONLY);
         s.open("wronly", "f", O_WRONLY);
       }},
      {"open_group_readable_other_file",
       [](F f, I id) { f.file("f", id.other_uid, id.shared_gid, 0640); },
       [](S s, I) {
         s.read("read", "f");
         s.open("wronly", "f", O_WRONLY);
       }},
      {"open_group_writable_other_file",
       [](F f, I id) { f.file("f", id.other_uid, id.shared_gid, 0660); },
       [](S s, I) {
         UniqueFd fd = s.open("wronly", "f", O_WRONLY | O_APPEND);
         write_to(s, "write", fd.get(), "abc");
         fd.reset();
         s.stat("stat", "f");
       }},
      {"open_owner_class_decides",
       [](F f, I id) { f.file("f", id.tenant_uid, id.shared_gid, 0066); },
       [](S s, I) {
         s.open("rdonly", "f", O_RDONLY);
         s.open("wronly", "f", O_WRONLY);
       }},
      {"create_in_other_0755_dir", [](F f, I id) { f.dir("d", id.other_uid, id.other_gid, 0755); },
       [](S s, I) {
         s.open("create", "d/new", O_WRONLY | O_CREAT, 0644);
         s.call("mkdir", ::mkdir("d/sub", 0755));
         s.call("symlink", ::symlink("x", "d/s"));
       }},
      {"create_in_group_writable_dir",
       [](F f, I id) { f.dir("d", id.other_uid, id.shared_gid, 0770); },
       [](S s, I) {
         s.open("create", "d/new", O_WRONLY | O_CREAT, 0644);
         s.stat("stat", "d/new");
         s.call("mkdir", ::mkdir("d/sub", 0755));
         s.stat("stat_dir", "d/sub");
       }},
      {"create_in_setgid_dir", [](F f, I id) { f.dir("d", id.other_uid, id.shared_gid, 02775); },
       [](S s, I) {
         s.open("create", "d/new", O_WRONLY | O_CREAT, 0644);
         s.stat("stat", "d/new");
         s.call("mkdir", ::mkdir("d/sub", 0755));
         s.stat("stat_dir", "d/sub");
       }},
      {"create_in_own_readonly_dir",
       [](F f, I id) {
         f.dir("d", id.tenant_uid, id.tenant_gid, 0755);
         f.file("d/f", id.tenant_uid, id.tenant_gid, 0644);
       },
       [](S s, I) {
         s.call("chmod", ::chmod("d", 0555));
         s.open("create", "d/new", O_WRONLY | O_CREAT, 0644);
         s.call("unlink", ::unlink("d/f"));
         s.call("chmod_back", ::chmod("d", 0755));
       }},

      // ---------------------------------------------------- directory search
      {"search_denied_dir",
       [](F f, I id) {
         f.dir("d", id.other_uid, id.other_gid, 0700);
         f.file("d/f", id.other_uid, id.other_gid, 0644);
       },
       [](S s, I) {
         s.stat("stat", "d/f");
         s.open("open", "d/f", O_RDONLY);
         s.list("list", "d");
         s.call("chdir", ::chdir("d"));
       }},
      {"search_only_dir",
       [](F f, I id) {
         f.dir("d", id.other_uid, id.other_gid, 0711);
         f.file("d/f", id.other_uid, id.other_gid, 0644);
       },
       [](S s, I) {
         s.stat("stat", "d/f");
         s.read("read", "d/f");
         s.list("list", "d");
       }},
      {"read_only_dir_without_search",
       [](F f, I id) {
         f.dir("d", id.other_uid, id.other_gid, 0744);
         f.file("d/f", id.other_uid, id.other_gid, 0644);
       },
       [](S s, I) {
         s.list("list", "d");
         s.stat("stat", "d/f");
         s.call("chdir", ::chdir("d"));
       }},

      // ------------------------------------------------------- mkdir, rmdir
      {"mkdir_mode_and_existing",
       {},
       [](S s, I) {
         s.call("mkdir", ::mkdir("d", 0750));
         s.stat("stat", "d");
         s.call("again", ::mkdir("d", 0750));
       }},
      {"rmdir_errors",
       [](F f, I id) {
         f.dir("d", id.tenant_uid, id.tenant_gid, 0755);
         f.file("d/f", id.tenant_uid, id.tenant_gid, 0644);
       },
       [](S s, I) {
         s.call("non_empty", ::rmdir("d"));
         s.call("file", ::rmdir("d/f"));
         s.call("dot", ::rmdir("d/."));
         s.call("missing", ::rmdir("nope"));
         s.call("unlink_dir", ::unlink("d"));
       }},
      {"rmdir_other_dir_in_own_dir",
       [](F f, I id) { f.dir("d", id.other_uid, id.other_gid, 0700); },
       [](S s, I) {
         s.call("rmdir", ::rmdir("d"));
         s.stat("stat", "d");
       }},
      {"rmdir_in_sticky_dir",
       [](F f, I id) {
         sticky_dir(f, id);
         f.dir("st/other", id.other_uid, id.other_gid, 0755);
         f.dir("st/own", id.tenant_uid, id.tenant_gid, 0755);
       },
       [](S s, I) {
         s.call("other", ::rmdir("st/other"));
         s.call("own", ::rmdir("st/own"));
       }},

      // -------------------------------------------------------------- unlink
      {"unlink_other_file_in_own_dir",
       [](F f, I id) { f.file("f", id.other_uid, id.other_gid, 0600); },
       [](S s, I) {
         s.call("unlink", ::unlink("f"));
         s.stat("stat", "f");
       }},
      {"unlink_in_other_dir",
       [](F f, I id) {
         f.dir("d", id.other_uid, id.other_gid, 0755);
         f.file("d/f", id.tenant_uid, id.tenant_gid, 0644);
       },
       [](S s, I) { s.call("unlink", ::unlink("d/f")); }},
      {"unlink_in_sticky_dir",
       [](F f, I id) {
         sticky_dir(f, id);
         f.file("st/other", id.other_uid, id.other_gid, 0666);
         f.file("st/own", id.tenant_uid, id.tenant_gid, 0644);
       },
       [](S s, I) {
         s.call("other", ::unlink("st/other"));
         s.call("own", ::unlink("st/own"));
       }},

      // -------------------------------------------------------------- rename
      {"rename_over_existing",
       [](F f, I id) {
         f.file("a", id.tenant_uid, id.tenant_gid, 0644, "A");
         f.file("b", id.tenant_uid, id.tenant_gid, 0644, "B");
       },
       [](S s, I) {
         s.call("rename", ::rename("a", "b"));
         s.read("read", "b");
         s.stat("old", "a");
       }},
      {"rename_across_dirs",
       [](F f, I id) {
         f.dir("d1", id.tenant_uid, id.tenant_gid, 0755);
         f.dir("d2", id.tenant_uid, id.tenant_gid, 0755);
         f.file("d1/f", id.tenant_uid, id.tenant_gid, 0644);
       },
       [](S s, I) {
         s.call("rename", ::rename("d1/f", "d2/g"));
         s.list("d1", "d1");
         s.list("d2", "d2");
       }},
      {"rename_dir_errors",
       [](F f, I id) {
         f.dir("a", id.tenant_uid, id.tenant_gid, 0755);
         f.dir("b", id.tenant_uid, id.tenant_gid, 0755);
         f.file("b/f", id.tenant_uid, id.tenant_gid, 0644);
         f.file("g", id.tenant_uid, id.tenant_gid, 0644);
       },
       [](S s, I) {
         s.call("over_non_empty", ::rename("a", "b"));
         s.call("into_itself", ::rename("a", "a/sub"));
         s.call("dir_over_file", ::rename("a", "g"));
         s.call("file_over_dir", ::rename("g", "a"));
       }},
      {"rename_noreplace_and_exchange",
       [](F f, I id) {
         f.file("a", id.tenant_uid, id.tenant_gid, 0644, "A");
         f.file("b", id.tenant_uid, id.tenant_gid, 0644, "B");
       },
       [](S s, I) {
         s.call("noreplace", ::renameat2(AT_FDCWD, "a", AT_FDCWD, "b", RENAME_NOREPLACE));
         s.call("exchange", ::renameat2(AT_FDCWD, "a", AT_FDCWD, "b", RENAME_EXCHANGE));
         s.read("a", "a");
         s.read("b", "b");
       }},
      {"rename_in_sticky_dir",
       [](F f, I id) {
         sticky_dir(f, id);
         f.file("st/other", id.other_uid, id.other_gid, 0666);
         f.file("st/own", id.tenant_uid, id.tenant_gid, 0644);
         f.file("st/a", id.tenant_uid, id.tenant_gid, 0644);
         f.file("st/b", id.other_uid, id.other_gid, 0666);
       },
       [](S s, I) {
         s.call("other", ::rename("st/other", "st/other2"));
         s.call("own", ::rename("st/own", "st/own2"));
         s.call("over_other", ::rename("st/a", "st/b"));
       }},
      {"rename_out_of_other_dir",
       [](F f, I id) {
         f.dir("d", id.other_uid, id.other_gid, 0755);
         f.file("d/f", id.tenant_uid, id.tenant_gid, 0644);
       },
       [](S s, I) { s.call("rename", ::rename("d/f", "g")); }},

      // ---------------------------------------------------------------- link
      {"link_own_file",
       [](F f, I id) {
         f.file("f", id.tenant_uid, id.tenant_gid, 0644);
         f.dir("d", id.tenant_uid, id.tenant_gid, 0755);
       },
       [](S s, I) {
         s.call("link", ::link("f", "g"));
         s.nlink("nlink", "f");
         s.call("again", ::link("f", "g"));
         s.call("dir", ::link("d", "e"));
       }},
      {"link_other_file", [](F f, I id) { f.file("f", id.other_uid, id.other_gid, 0644); },
       [](S s, I) { s.call("link", ::link("f", "g")); }},
      {"link_group_writable_other_file",
       [](F f, I id) { f.file("f", id.other_uid, id.shared_gid, 0660); },
       [](S s, I) {
         s.call("link", ::link("f", "g"));
         s.stat("stat", "g");
       }},

      // ---------------------------------------------------- symlink, readlink
      {"symlink_and_readlink", [](F f, I id) { f.file("f", id.tenant_uid, id.tenant_gid, 0644); },
       [](S s, I) {
         s.call("symlink", ::symlink("target/x", "s"));
         s.readlink("readlink", "s");
         s.stat("lstat", "s");
         s.call("again", ::symlink("other", "s"));
         s.readlink("readlink_file", "f");
       }},

      // --------------------------------------------------------------- chmod
      {"chmod_own_file", [](F f, I id) { f.file("f", id.tenant_uid, id.tenant_gid, 0644); },
       [](S s, I) {
         s.call("chmod", ::chmod("f", 0600));
         s.stat("stat", "f");
       }},
      {"chmod_other_file", [](F f, I id) { f.file("f", id.other_uid, id.other_gid, 0666); },
       [](S s, I) { s.call("chmod", ::chmod("f", 0600)); }},
      {"chmod_setuid_setgid_own_file",
       [](F f, I id) { f.file("f", id.tenant_uid, id.tenant_gid, 0755); },
       [](S s, I) {
         s.call("chmod", ::chmod("f", 06755));
         s.stat("stat", "f");
       }},
      {"chmod_setgid_foreign_group_dropped",
       [](F f, I id) { f.file("f", id.tenant_uid, id.other_gid, 0755); },
       [](S s, I) {
         s.call("chmod", ::chmod("f", 02755));
         s.stat("stat", "f");
       }},
      {"chmod_setgid_supplementary_group_kept",
       [](F f, I id) { f.file("f", id.tenant_uid, id.shared_gid, 0755); },
       [](S s, I) {
         s.call("chmod", ::chmod("f", 02755));
         s.stat("stat", "f");
       }},
      {"chmod_sticky_own_dir", [](F f, I id) { f.dir("d", id.tenant_uid, id.tenant_gid, 0755); },
       [](S s, I) {
         s.call("chmod", ::chmod("d", 01755));
         s.stat("stat", "d");
       }},

      // ------------------------------------------------------- chown, chgrp
      {"chown_unchanged_clears_setuid_setgid",
       [](F f, I id) { f.file("f", id.tenant_uid, id.tenant_gid, 06755); },
       [](S s, I) {
         s.call("chown", ::chown("f", static_cast<uid_t>(-1), static_cast<gid_t>(-1)));
         s.stat("stat", "f");
       }},
      {"chown_to_own_ids", [](F f, I id) { f.file("f", id.tenant_uid, id.tenant_gid, 0644); },
       [](S s, I id) {
         s.call("chown", ::chown("f", id.tenant_uid, id.tenant_gid));
         s.stat("stat", "f");
       }},
      {"chgrp_to_supplementary_group",
       [](F f, I id) { f.file("f", id.tenant_uid, id.tenant_gid, 0644); },
       [](S s, I id) {
         s.call("chgrp", ::chown("f", static_cast<uid_t>(-1), id.shared_gid));
         s.stat("stat", "f");
       }},
      {"chgrp_from_supplementary_to_primary_group",
       [](F f, I id) { f.file("f", id.tenant_uid, id.shared_gid, 0644); },
       [](S s, I id) {
         s.call("chgrp", ::chown("f", static_cast<uid_t>(-1), id.tenant_gid));
         s.stat("stat", "f");
       }},
      {"chown_to_other_ids", [](F f, I id) { f.file("f", id.tenant_uid, id.tenant_gid, 0644); },
       [](S s, I id) {
         s.call("chown", ::chown("f", id.other_uid, static_cast<gid_t>(-1)));
         s.call("chgrp", ::chown("f", static_cast<uid_t>(-1), id.other_gid));
         s.call("root", ::chown("f", 0, 0));
         s.stat("stat", "f");
       }},
      {"chown_other_file", [](F f, I id) { f.file("f", id.other_uid, id.other_gid, 0644); },
       [](S s, I id) {
         s.call("to_tenant", ::chown("f", id.tenant_uid, id.tenant_gid));
         s.call("unchanged", ::chown("f", static_cast<uid_t>(-1), static_cast<gid_t>(-1)));
         s.stat("stat", "f");
       }},

      // ---------------------------------------------------- truncate, ftruncate
      {"truncate_own_file",
       [](F f, I id) { f.file("f", id.tenant_uid, id.tenant_gid, 0644, "hello\n"); },
       [](S s, I) {
         s.call("truncate", ::truncate("f", 2));
         s.stat("stat", "f");
         s.call("negative", ::truncate("f", -1));
         s.call("directory", ::truncate(".", 0));
       }},
      {"truncate_other_readonly_file",
       [](F f, I id) { f.file("f", id.other_uid, id.other_gid, 0644); },
       [](S s, I) { s.call("truncate", ::truncate("f", 0)); }},
      {"truncate_group_writable_other_file",
       [](F f, I id) { f.file("f", id.other_uid, id.shared_gid, 0664, "hello\n"); },
       [](S s, I) {
         s.call("truncate", ::truncate("f", 1));
         s.stat("stat", "f");
       }},
      {"ftruncate_readonly_fd", [](F f, I id) { f.file("f", id.tenant_uid, id.tenant_gid, 0644); },
       [](S s, I) {
         UniqueFd fd = s.open("open", "f", O_RDONLY);
         s.call("ftruncate", ::ftruncate(fd.get(), 0));
       }},

      // ----------------------------------------------------- utimensat, touch
      {"utime_own_file", [](F f, I id) { f.file("f", id.tenant_uid, id.tenant_gid, 0644); },
       [](S s, I) {
         struct timespec t[2] = {{1000, 0}, {2000, 0}};
         s.call("explicit", ::utimensat(AT_FDCWD, "f", t, 0));
         s.mtime("mtime", "f");
         struct timespec now[2] = {{0, UTIME_NOW}, {0, UTIME_NOW}};
         s.call("utime_now", ::utimensat(AT_FDCWD, "f", now, 0));
       }},
      {"utime_now_group_writable_other_file",
       [](F f, I id) { f.file("f", id.other_uid, id.shared_gid, 0664); },
       [](S s, I) {
         s.call("null", ::utimensat(AT_FDCWD, "f", nullptr, 0));
         struct timespec now[2] = {{0, UTIME_NOW}, {0, UTIME_NOW}};
         s.call("utime_now", ::utimensat(AT_FDCWD, "f", now, 0));
       }},
      {"utime_explicit_group_writable_other_file",
       [](F f, I id) { f.file("f", id.other_uid, id.shared_gid, 0664); },
       [](S s, I) {
         struct timespec t[2] = {{1000, 0}, {2000, 0}};
         s.call("utimensat", ::utimensat(AT_FDCWD, "f", t, 0));
       }},
      {"utime_now_other_readonly_file",
       [](F f, I id) { f.file("f", id.other_uid, id.other_gid, 0644); },
       [](S s, I) { s.call("utimensat", ::utimensat(AT_FDCWD, "f", nullptr, 0)); }},
      {"touch_group_writable_other_file",
       [](F f, I id) { f.file("f", id.other_uid, id.shared_gid, 0664); },
       [](S s, I) {
         // What touch(1) does: open for writing, creating, then futimens(NULL).
         UniqueFd fd = s.open("open", "f", O_WRONLY | O_CREAT | O_NOCTTY | O_NONBLOCK, 0666);
         s.call("futimens", ::futimens(fd.get(), nullptr));
       }},

      // ------------------------------------------------------ fsync, fdatasync
      {"fsync_after_write_group_writable_other_file",
       [](F f, I id) { f.file("f", id.other_uid, id.shared_gid, 0664); },
       [](S s, I) {
         UniqueFd fd = s.open("open", "f", O_WRONLY);
         write_to(s, "write", fd.get(), "x");
         s.call("fsync", ::fsync(fd.get()));
       }},
      {"fdatasync_after_write_group_writable_other_file",
       [](F f, I id) { f.file("f", id.other_uid, id.shared_gid, 0664); },
       [](S s, I) {
         UniqueFd fd = s.open("open", "f", O_WRONLY);
         write_to(s, "write", fd.get(), "x");
         s.call("fdatasync", ::fdatasync(fd.get()));
       }},
      {"fsync_after_write_own_file",
       [](F f, I id) { f.file("f", id.tenant_uid, id.tenant_gid, 0644); },
       [](S s, I) {
         UniqueFd fd = s.open("open", "f", O_WRONLY);
         write_to(s, "write", fd.get(), "x");
         s.call("fsync", ::fsync(fd.get()));
         s.fstat("fstat", fd.get());
       }},

      // --------------------------------------------------- setuid on write
      {"write_clears_setuid_setgid",
       [](F f, I id) { f.file("f", id.tenant_uid, id.tenant_gid, 06755); },
       [](S s, I) { write_then_stat(s, "f"); }},
      {"write_by_group_clears_setgid",
       [](F f, I id) { f.file("f", id.other_uid, id.shared_gid, 02770); },
       [](S s, I) { write_then_stat(s, "f"); }},
      {"truncate_clears_setuid_setgid",
       [](F f, I id) { f.file("f", id.tenant_uid, id.tenant_gid, 06755); },
       [](S s, I) {
         s.call("truncate", ::truncate("f", 0));
         s.stat("stat", "f");
       }},

      // ------------------------------------------------------- mknod, FIFOs
      {"fifo_open_permissions",
       [](F f, I id) {
         f.fifo("p", id.other_uid, id.other_gid, 0600);
         f.fifo("g", id.other_uid, id.shared_gid, 0660);
       },
       [](S s, I) {
         // None of these opens blocks: O_RDWR never waits for a peer, an
         // O_NONBLOCK reader neither.
         s.open("other_rdwr", "p", O_RDWR);
         s.open("other_rdonly", "p", O_RDONLY | O_NONBLOCK);
         s.open("group_rdwr", "g", O_RDWR);
       }},
      {"mknod_types",
       {},
       [](S s, I) {
         s.call("fifo", ::mkfifo("p", 0640));
         s.stat("stat_fifo", "p");
         s.call("char", ::mknod("c", S_IFCHR | 0600, makedev(1, 3)));
         s.call("block", ::mknod("b", S_IFBLK | 0600, makedev(7, 0)));
       }},

      // -------------------------------------------------------------- access
      {"access_own_file", [](F f, I id) { f.file("f", id.tenant_uid, id.tenant_gid, 0640); },
       [](S s, I) {
         s.call("F_OK", ::access("f", F_OK));
         s.call("R_OK", ::access("f", R_OK));
         s.call("W_OK", ::access("f", W_OK));
         s.call("X_OK", ::access("f", X_OK));
       }},
      {"access_other_0600_file", [](F f, I id) { f.file("f", id.other_uid, id.other_gid, 0600); },
       [](S s, I) {
         s.call("F_OK", ::access("f", F_OK));
         s.call("R_OK", ::access("f", R_OK));
         s.call("W_OK", ::access("f", W_OK));
       }},
      {"access_group_readable_other_file",
       [](F f, I id) { f.file("f", id.other_uid, id.shared_gid, 0640); },
       [](S s, I) {
         s.call("R_OK", ::access("f", R_OK));
         s.call("W_OK", ::access("f", W_OK));
         s.call("missing", ::access("nope", F_OK));
       }},
      {"access_search_only_dir", [](F f, I id) { f.dir("d", id.other_uid, id.other_gid, 0711); },
       [](S s, I) {
         s.call("X_OK", ::access("d", X_OK));
         s.call("R_OK", ::access("d", R_OK));
         s.call("W_OK", ::access("d", W_OK));
       }},

      // ---------------------------------------------------------------- exec
      {"exec_scripts",
       [](F f, I id) {
         f.file("own", id.tenant_uid, id.tenant_gid, 0700, kScript);
         f.file("group", id.other_uid, id.shared_gid, 0750, kScript);
         f.file("other", id.other_uid, id.other_gid, 0700, kScript);
         f.file("noexec", id.tenant_uid, id.tenant_gid, 0600, kScript);
       },
       [](S s, I) {
         exec(s, "own", "./own");
         exec(s, "group", "./group");
         exec(s, "other", "./other");
         exec(s, "noexec", "./noexec");
       }},

      // -------------------------------------------------------------- xattrs
      {"xattr_user_own_file", [](F f, I id) { f.file("f", id.tenant_uid, id.tenant_gid, 0644); },
       [](S s, I) {
         s.call("set", ::setxattr("f", "user.a", "v1", 2, 0));
         s.getxattr("get", "f", "user.a");
         s.call("create_again", ::setxattr("f", "user.a", "v2", 2, XATTR_CREATE));
         s.call("remove", ::removexattr("f", "user.a"));
         s.getxattr("get_removed", "f", "user.a");
         s.call("trusted", ::setxattr("f", "trusted.t", "1", 1, 0));
       }},
      {"xattr_user_other_readonly_file",
       [](F f, I id) {
         f.file("f", id.other_uid, id.other_gid, 0644);
         f.xattr("f", "user.k", "val");
       },
       [](S s, I) {
         s.getxattr("get", "f", "user.k");
         s.call("set", ::setxattr("f", "user.k", "new", 3, 0));
         s.call("remove", ::removexattr("f", "user.k"));
       }},
      {"xattr_user_group_writable_other_file",
       [](F f, I id) { f.file("f", id.other_uid, id.shared_gid, 0664); },
       [](S s, I) {
         s.call("set", ::setxattr("f", "user.g", "1", 1, 0));
         s.getxattr("get", "f", "user.g");
       }},
      {"xattr_user_on_symlink_and_fifo",
       [](F f, I id) {
         f.symlink("x", "s");
         f.fifo("p", id.tenant_uid, id.tenant_gid, 0644);
       },
       [](S s, I) {
         s.call("symlink", ::lsetxattr("s", "user.l", "1", 1, 0));
         s.call("fifo", ::lsetxattr("p", "user.l", "1", 1, 0));
       }},

      // ---------------------------------------------------------- POSIX ACLs
      {"acl_present_on_own_file",
       [](F f, I id) {
         f.file("f", id.tenant_uid, id.tenant_gid, 0640);
         f.acl("f", named_acl(id));
       },
       [](S s, I) {
         s.getacl("getfacl", "f");
         s.stat("stat", "f");
       }},
      {"acl_grants_named_user",
       [](F f, I id) {
         f.file("f", id.other_uid, id.other_gid, 0600);
         f.acl("f", "u::rw-,u:" + std::to_string(id.tenant_uid) + ":r--,g::---,m::r--,o::---");
       },
       [](S s, I) {
         s.read("read", "f");
         s.open("wronly", "f", O_WRONLY);
       }},
      {"acl_grants_named_group",
       [](F f, I id) {
         f.file("f", id.other_uid, id.other_gid, 0600);
         f.acl("f", "u::rw-,g::---,g:" + std::to_string(id.shared_gid) + ":rw-,m::rw-,o::---");
       },
       [](S s, I) {
         s.open("wronly", "f", O_WRONLY);
         s.call("access_W", ::access("f", W_OK));
       }},
      {"acl_set_own_file", [](F f, I id) { f.file("f", id.tenant_uid, id.tenant_gid, 0644); },
       [](S s, I id) {
         s.setacl("setfacl", "f", named_acl(id));
         s.getacl("getfacl", "f");
         s.stat("stat", "f");
       }},
      {"acl_set_other_file", [](F f, I id) { f.file("f", id.other_uid, id.other_gid, 0666); },
       [](S s, I id) { s.setacl("setfacl", "f", named_acl(id)); }},
      {"acl_default_inherited",
       [](F f, I id) {
         f.dir("d", id.tenant_uid, id.tenant_gid, 0755);
         f.acl("d", "u::rwx,u:" + std::to_string(id.other_uid) + ":r-x,g::r-x,m::r-x,o::---", true);
       },
       [](S s, I) {
         s.open("create", "d/f", O_WRONLY | O_CREAT, 0644);
         s.getacl("getfacl", "d/f");
         s.stat("stat", "d/f");
         s.getacl("default", "d", true);
       }},
  };
}

}  // namespace

const std::vector<Case>& battery() {
  static const std::vector<Case> cases = make_battery();
  return cases;
}

}  // namespace tenantfs::conformance

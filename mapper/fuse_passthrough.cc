#include "mapper/fuse_passthrough.h"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstring>
#include <string>
#include <vector>

namespace tenantfs {
namespace {

// The kernel's wire structs (include/uapi/linux/fuse.h) that are used here.
struct WireInHeader {
  uint32_t len;
  uint32_t opcode;
  uint64_t unique;
  uint64_t nodeid;
  uint32_t uid, gid, pid;
  uint16_t total_extlen;
  uint16_t padding;
};
static_assert(sizeof(WireInHeader) == 40);

struct WireInitIn {
  uint32_t major, minor, max_readahead, flags, flags2;
};

struct WireInitOut {
  uint32_t major, minor, max_readahead, flags;
  uint16_t max_background, congestion_threshold;
  uint32_t max_write, time_gran;
  uint16_t max_pages, map_alignment;
  uint32_t flags2;
  uint32_t max_stack_depth;
};
static_assert(offsetof(WireInitOut, flags2) == 32);
static_assert(offsetof(WireInitOut, max_stack_depth) == 36);

struct WireAttr {
  uint64_t ino, size, blocks, atime, mtime, ctime;
  uint32_t atimensec, mtimensec, ctimensec;
  uint32_t mode, nlink, uid, gid, rdev, blksize, flags;
};
static_assert(sizeof(WireAttr) == 88);

struct WireEntryOut {
  uint64_t nodeid, generation, entry_valid, attr_valid;
  uint32_t entry_valid_nsec, attr_valid_nsec;
  WireAttr attr;
};
static_assert(sizeof(WireEntryOut) == 128);

struct WireOpenOut {
  uint64_t fh;
  uint32_t open_flags;
  int32_t backing_id;  // "padding" before protocol 7.40
};
static_assert(sizeof(WireOpenOut) == 16);

constexpr uint32_t kFuseInitOpcode = 26;
constexpr uint32_t kFopenNonseekable = 1u << 2;
constexpr uint32_t kFopenNoflush = 1u << 5;

// The INIT request kept by take_init_request. Written once before any
// request thread exists, handed out once by the first read.
std::vector<char> g_init_request;
std::atomic<bool> g_init_request_pending{false};
// max_stack_depth for the INIT reply; 0: passthrough not requested.
std::atomic<uint32_t> g_max_stack_depth{0};

// libfuse's split of a timeout in seconds into the kernel's sec + nsec.
uint64_t timeout_sec(double t) {
  if (t <= 0) return 0;
  if (t >= static_cast<double>(ULONG_MAX)) return ULONG_MAX;
  return static_cast<uint64_t>(t);
}

uint32_t timeout_nsec(double t) {
  const double frac = t - static_cast<double>(timeout_sec(t));
  if (frac <= 0) return 0;
  if (frac >= 0.999999999) return 999999999;
  return static_cast<uint32_t>(frac * 1.0e9);
}

void fill_attr(const struct stat& st, WireAttr* a) {
  a->ino = st.st_ino;
  a->mode = st.st_mode;
  a->nlink = static_cast<uint32_t>(st.st_nlink);
  a->uid = st.st_uid;
  a->gid = st.st_gid;
  a->rdev = static_cast<uint32_t>(st.st_rdev);
  a->size = static_cast<uint64_t>(st.st_size);
  a->blksize = static_cast<uint32_t>(st.st_blksize);
  a->blocks = static_cast<uint64_t>(st.st_blocks);
  a->atime = static_cast<uint64_t>(st.st_atim.tv_sec);
  a->mtime = static_cast<uint64_t>(st.st_mtim.tv_sec);
  a->ctime = static_cast<uint64_t>(st.st_ctim.tv_sec);
  a->atimensec = static_cast<uint32_t>(st.st_atim.tv_nsec);
  a->mtimensec = static_cast<uint32_t>(st.st_mtim.tv_nsec);
  a->ctimensec = static_cast<uint32_t>(st.st_ctim.tv_nsec);
}

void fill_open(const fuse_file_info* fi, int32_t backing_id, WireOpenOut* o) {
  o->fh = fi->fh;
  o->open_flags = kFopenPassthrough;
  // keep_cache and direct_io are left out on purpose (see the header).
  if (fi->nonseekable) o->open_flags |= kFopenNonseekable;
  if (fi->noflush) o->open_flags |= kFopenNoflush;
  o->backing_id = backing_id;
}

}  // namespace

Status take_init_request(int fuse_fd, int timeout_ms, InitOffer* offer) {
  *offer = InitOffer{};
  pollfd p{fuse_fd, POLLIN, 0};
  for (;;) {
    const int n = ::poll(&p, 1, timeout_ms);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return PosixError("poll /dev/fuse for INIT", errno);
    if (n == 0) return Status::IOError("the kernel sent no INIT request within the timeout");
    break;
  }
  // The kernel refuses reads into buffers smaller than a whole request could
  // be; libfuse's own size (1 MiB + a page) is always enough.
  std::vector<char> buf((1u << 20) + 4096);
  ssize_t got;
  do {
    got = ::read(fuse_fd, buf.data(), buf.size());
  } while (got < 0 && errno == EINTR);
  if (got < 0) return PosixError("read INIT from /dev/fuse", errno);
  WireInHeader in{};
  if (static_cast<size_t>(got) < sizeof in) return Status::IOError("short INIT request");
  std::memcpy(&in, buf.data(), sizeof in);
  if (in.opcode != kFuseInitOpcode) {
    return Status::IOError("first request is opcode " + std::to_string(in.opcode) + ", not INIT");
  }
  WireInitIn init{};
  const size_t body = static_cast<size_t>(got) - sizeof in;
  std::memcpy(&init, buf.data() + sizeof in, std::min(body, sizeof init));
  offer->minor = init.minor;
  const bool ext = body >= sizeof init && (init.flags & kFuseInitExt) != 0;
  const uint64_t flags = init.flags | (ext ? static_cast<uint64_t>(init.flags2) << 32 : 0);
  offer->passthrough = (flags & kFusePassthroughFlag) != 0;
  buf.resize(static_cast<size_t>(got));
  g_init_request = std::move(buf);
  g_init_request_pending.store(true);
  return Status::Ok();
}

bool replay_init_request(void* buf, size_t len, ssize_t* n) {
  if (!g_init_request_pending.exchange(false)) return false;
  if (len < g_init_request.size()) {
    errno = EINVAL;
    *n = -1;
    return true;
  }
  std::memcpy(buf, g_init_request.data(), g_init_request.size());
  *n = static_cast<ssize_t>(g_init_request.size());
  std::vector<char>().swap(g_init_request);
  return true;
}

void request_passthrough_in_init_reply(uint32_t max_stack_depth) {
  g_max_stack_depth.store(max_stack_depth);
}

bool add_passthrough_to_init_reply(struct iovec* iov, int count) {
  const uint32_t depth = g_max_stack_depth.load();
  if (depth == 0 || count < 2 || iov[0].iov_len != 16 || iov[1].iov_len < sizeof(WireInitOut)) {
    return false;
  }
  int32_t error;
  std::memcpy(&error, static_cast<const char*>(iov[0].iov_base) + 4, sizeof error);
  auto* out = static_cast<WireInitOut*>(iov[1].iov_base);
  if (error != 0 || (out->flags & kFuseWritebackCache) != 0) return false;
  // The 64-bit flags only exist when INIT_EXT is set; libfuse sets it
  // whenever the kernel offered it, which a kernel with passthrough does.
  out->flags |= kFuseInitExt;
  out->flags2 |= static_cast<uint32_t>(kFusePassthroughFlag >> 32);
  out->max_stack_depth = depth;
  return true;
}

int reply_open_passthrough(fuse_req_t req, const fuse_file_info* fi, int32_t backing_id) {
  WireOpenOut out{};
  fill_open(fi, backing_id, &out);
  return fuse_reply_buf(req, reinterpret_cast<const char*>(&out), sizeof out);
}

int reply_create_passthrough(fuse_req_t req, const fuse_entry_param* e, const fuse_file_info* fi,
                             int32_t backing_id) {
  struct {
    WireEntryOut entry;
    WireOpenOut open;
  } out{};
  static_assert(sizeof out == sizeof(WireEntryOut) + sizeof(WireOpenOut));
  out.entry.nodeid = e->ino;
  out.entry.generation = e->generation;
  out.entry.entry_valid = timeout_sec(e->entry_timeout);
  out.entry.entry_valid_nsec = timeout_nsec(e->entry_timeout);
  out.entry.attr_valid = timeout_sec(e->attr_timeout);
  out.entry.attr_valid_nsec = timeout_nsec(e->attr_timeout);
  fill_attr(e->attr, &out.entry.attr);
  fill_open(fi, backing_id, &out.open);
  return fuse_reply_buf(req, reinterpret_cast<const char*>(&out), sizeof out);
}

}  // namespace tenantfs

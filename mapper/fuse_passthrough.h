// FUSE passthrough on the wire: what libfuse 3.14 cannot say for us.
//
// The kernel (6.9+, CONFIG_FUSE_PASSTHROUGH) lets an open file's reads,
// writes, splice and mmap go straight to a backing file the server
// registered (backing_broker.h), never reaching the mapper. libfuse 3.14
// knows neither the INIT flag nor the open reply's backing id, so this file
// holds the protocol pieces the mapper adds itself:
//   - the INIT request is read before the privilege drop (take_init_request)
//     so that the mapper knows, before it reports "ready", whether the kernel
//     offers passthrough; libfuse later receives the same bytes
//     (replay_init_request) and answers as usual;
//   - the INIT reply, on its way to the kernel, gets FUSE_PASSTHROUGH and
//     max_stack_depth (add_passthrough_to_init_reply);
//   - OPEN and CREATE replies carrying FOPEN_PASSTHROUGH and a backing id are
//     built by hand (reply_open_passthrough, reply_create_passthrough).
//
// Layouts are the kernel's UAPI (include/uapi/linux/fuse.h, protocol 7.40+),
// copied with static_asserts because the installed headers predate them.
#pragma once

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>

#include "common/status.h"

namespace tenantfs {

inline constexpr uint64_t kFusePassthroughFlag = 1ull << 37;  // FUSE_PASSTHROUGH
inline constexpr uint32_t kFuseInitExt = 1u << 30;            // FUSE_INIT_EXT
inline constexpr uint32_t kFuseWritebackCache = 1u << 16;     // FUSE_WRITEBACK_CACHE
inline constexpr uint32_t kFopenPassthrough = 1u << 7;        // FOPEN_PASSTHROUGH
inline constexpr unsigned long kFuseDevIocBackingOpen = 0x4010e501;
inline constexpr unsigned long kFuseDevIocBackingClose = 0x4004e502;

// FUSE_DEV_IOC_BACKING_OPEN's argument.
struct FuseBackingMap {
  int32_t fd;
  uint32_t flags;  // must be 0
  uint64_t padding;
};
static_assert(sizeof(FuseBackingMap) == 16);

// What the INIT request said that the mapper needs before serving.
struct InitOffer {
  uint32_t minor = 0;
  bool passthrough = false;  // the kernel offers FUSE_PASSTHROUGH
};

// Reads the INIT request the kernel queued when the filesystem was mounted
// (it sends it before mount(2) returns), keeps its bytes for
// replay_init_request, and says what it offered. Waits at most `timeout_ms`.
// Call once, after the mount and before the request loop starts.
Status take_init_request(int fuse_fd, int timeout_ms, InitOffer* offer);

// For the custom I/O read hook: on the first call after take_init_request,
// copies the kept INIT request into `buf`, stores the read's result in `*n`
// and returns true; afterwards (or if none was kept) returns false: then
// read /dev/fuse itself.
bool replay_init_request(void* buf, size_t len, ssize_t* n);

// Makes add_passthrough_to_init_reply ask for passthrough with
// `max_stack_depth` (1 or 2). Call before the request loop starts.
void request_passthrough_in_init_reply(uint32_t max_stack_depth);

// Called by the custom I/O writev hook on the INIT reply (iov[0] the out
// header, iov[1] fuse_init_out). If passthrough was requested and the reply
// is a success that does not ask for the writeback cache (the kernel refuses
// the two together), sets FUSE_PASSTHROUGH and max_stack_depth. Returns
// whether it did.
bool add_passthrough_to_init_reply(struct iovec* iov, int count);

// Replies to OPEN with `fi` (as fuse_reply_open would) plus FOPEN_PASSTHROUGH
// and `backing_id`. keep_cache and direct_io must not be set: the kernel
// refuses them with passthrough. Returns what fuse_reply_buf returned.
int reply_open_passthrough(fuse_req_t req, const fuse_file_info* fi, int32_t backing_id);

// Replies to CREATE with the entry `e` and the open `fi`, as
// fuse_reply_create would, plus FOPEN_PASSTHROUGH and `backing_id`.
int reply_create_passthrough(fuse_req_t req, const fuse_entry_param* e, const fuse_file_info* fi,
                             int32_t backing_id);

}  // namespace tenantfs

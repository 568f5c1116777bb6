// The kernel's FUSE-over-io_uring interface (include/uapi/linux/fuse.h,
// protocol 7.42+), which Debian 12's 6.1 headers and libfuse 3.14 predate.
// Layouts are fixed by the kernel ABI; the static_asserts keep them so.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tenantfs::fuse_uring {

// INIT: bit 41 of the 64-bit flags, i.e. bit 9 of fuse_init_in/out.flags2.
// flags2 is only read when FUSE_INIT_EXT (bit 30 of flags) is set.
inline constexpr uint32_t kInitExt = 1u << 30;
inline constexpr uint32_t kOverIoUringFlags2 = 1u << 9;
inline constexpr uint32_t kMaxPagesFlag = 1u << 22;  // FUSE_MAX_PAGES
inline constexpr uint32_t kDefaultMaxPages = 32;     // kernel default without it

// Byte offsets in fuse_init_in (after the 40-byte fuse_in_header).
inline constexpr size_t kInitInFlags = 12;
inline constexpr size_t kInitInFlags2 = 16;
// Byte offsets in fuse_init_out.
inline constexpr size_t kInitOutFlags = 12;
inline constexpr size_t kInitOutMaxWrite = 20;
inline constexpr size_t kInitOutMaxPages = 28;  // uint16_t
inline constexpr size_t kInitOutFlags2 = 32;

// The kernel's minimum payload (FUSE_MIN_READ_BUFFER).
inline constexpr size_t kMinPayload = 8192;

// IORING_OP_URING_CMD's cmd_op values.
enum CmdOp : uint32_t {
  kRegister = 1,
  kCommitAndFetch = 2,
};

inline constexpr uint8_t kOpUringCmd = 46;  // IORING_OP_URING_CMD

struct InHeader {  // struct fuse_in_header
  uint32_t len;
  uint32_t opcode;
  uint64_t unique;
  uint64_t nodeid;
  uint32_t uid;
  uint32_t gid;
  uint32_t pid;
  uint16_t total_extlen;
  uint16_t padding;
};
static_assert(sizeof(InHeader) == 40);
static_assert(offsetof(InHeader, unique) == 8);

struct OutHeader {  // struct fuse_out_header
  uint32_t len;
  int32_t error;
  uint64_t unique;
};
static_assert(sizeof(OutHeader) == 16);

inline constexpr size_t kHeaderInOutSize = 128;
inline constexpr size_t kOpInSize = 128;

struct EntInOut {  // struct fuse_uring_ent_in_out
  uint64_t flags;
  uint64_t commit_id;  // the request's unique, to send back with the commit
  uint32_t payload_sz;
  uint32_t padding;
  uint64_t reserved;
};
static_assert(sizeof(EntInOut) == 32);

// What the kernel writes before each request and reads back with its reply.
struct ReqHeader {                // struct fuse_uring_req_header
  char in_out[kHeaderInOutSize];  // fuse_in_header, then fuse_out_header
  char op_in[kOpInSize];          // the operation's own header
  EntInOut ring_ent_in_out;
};
static_assert(sizeof(ReqHeader) == 288);
static_assert(offsetof(ReqHeader, op_in) == 128);
static_assert(offsetof(ReqHeader, ring_ent_in_out) == 256);

// At sqe->cmd (byte 48 of a 128-byte SQE).
struct CmdReq {  // struct fuse_uring_cmd_req
  uint64_t flags;
  uint64_t commit_id;
  uint16_t qid;
  uint8_t padding[6];
};
static_assert(sizeof(CmdReq) == 24);
static_assert(offsetof(CmdReq, qid) == 16);

// FUSE opcodes the request path looks at.
enum Opcode : uint32_t {
  kRead = 15,
  kWrite = 16,
  kFsync = 20,
  kSetXattr = 21,
  kRemoveXattr = 24,
  kFlush = 25,
  kFsyncDir = 30,
  kGetLk = 31,
  kSetLk = 32,
  kSetLkW = 33,
  kFallocate = 43,
  kLseek = 46,
  kCopyFileRange = 47,
};
// fuse_read_in.size and fuse_write_in.size.
inline constexpr size_t kReadInSize = 16;
inline constexpr size_t kWriteInSize = 16;

}  // namespace tenantfs::fuse_uring

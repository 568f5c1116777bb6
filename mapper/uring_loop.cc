// FUSE over io_uring as an adapter under libfuse 3.14.
//
// Why an adapter, not a protocol layer of our own: libfuse already decodes
// every request, keeps the interrupt list, builds every reply and drives the
// handlers in identity_fs.cc, flock_waiters.cc and the cache notifier; an
// own decoder would duplicate all of that and fork from libfuse's fixes. The
// ring only changes how request bytes arrive and how reply bytes leave, so
// the adapter rebuilds, per request, the buffer read(/dev/fuse) would have
// produced and gives it to fuse_session_process_buf(), and it catches the
// reply in libfuse's custom I/O hooks (fuse_custom_io), which libfuse calls with the
// reply's fuse_out_header first. The cost is one copy of the headers (at
// most 168 bytes) per request; payloads are not copied: each entry reserves
// 168 bytes in front of its payload buffer, and the headers are copied
// there.
//
// Measured (bench/rtt.sh: getxattr round trips, `tfsbench xattr`, 20,000
// calls, median of 5, 3 rounds, 2 vCPUs under load 6-8; µs per call):
//
//   caller on        CPU 0       CPU 1
//   uring            15.8-20.6   12.1-21.4
//   per-cpu          22.7-25.5   18.4-19.2
//   shared           15.4-29.6   18.2-31.0
//
// The ring serves a caller on any CPU at the cost the per-cpu loop reaches
// only on its receiver's own CPU, and wakes no other receiver. Bulk reads
// pay one more copy (see reply_splice): 1.1-1.2 GB/s against 1.6-1.8 GB/s
// for per-cpu (bench/README.md, fifth round).
//
// Threads:
//   queue thread (one per possible CPU, pinned): waits on its ring, rebuilds
//     requests, runs fast ones itself and commits every reply of its queue
//     (an io_uring is not safe to submit to from several threads at once, so
//     COMMIT_AND_FETCH comes from the ring's own thread only);
//   workers (kWorkers, shared): requests that may block (fsync, fallocate,
//     copy_file_range), so that no queue stalls;
//   a bulk thread per queue (started on first use): big reads and writes,
//     and small ones while big ones wait, in the order the queue got them.
//     Writeback sends a file's pages as several WRITEs at once; served out
//     of order, the small tail could land while the big writes before it
//     fail for a full disk, leaving a file of full length with a hole where
//     the writer was told ENOSPC (seen in full_disk_test).
//   any thread that replies late (workers, flock waiters) puts the entry on
//     its queue's done list and wakes the queue thread through an eventfd
//     that the ring itself reads.
//
// Finding the entry of a reply: the thread serving a request knows its entry
// (t_current); other threads (flock waiters) search every entry's `unique`:
// the entries are the map from unique to entry, without a lock on the fast
// path, and a search costs a few hundred loads per queue. Whoever clears
// `unique` owns the reply, so a request is answered once.
#include "mapper/uring_loop.h"

#include <fcntl.h>
#include <liburing.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <thread>
#include <utility>
#include <vector>

#include "common/thread_annotations.h"
#include "common/unique_fd.h"
#include "mapper/flock_waiters.h"
#include "mapper/fuse_uring_abi.h"
#include "mapper/request_loop.h"

namespace tenantfs {

namespace abi = fuse_uring;

namespace {

constexpr char kEnableUringPath[] = "/sys/module/fuse/parameters/enable_uring";

// Headers rebuilt in front of the payload: fuse_in_header and the largest
// operation header the ring carries (op_in).
constexpr size_t kReserve = sizeof(abi::InHeader) + abi::kOpInSize;
static_assert(kReserve == 168);

// Entries per queue: how many requests one CPU's callers may have in the
// mapper at once; more wait in the kernel's queue. A request holds its entry
// until it is answered, and a flock wait (flock_waiters.h) may last
// forever, so a queue needs more entries than the mount lets flocks wait
// (256): else 40 callers waiting for one lock hold every entry and the
// unlock that ends their wait never comes in (seen in flock_test). Growing
// on demand does not work: the kernel gives a newly registered entry only
// requests that arrive after it, never the backlog already queued.
//
// Memory: each entry has a payload buffer of max_write (about 1 MiB here),
// reserved but not committed. The kernel hands out the entry made free
// last first (a LIFO list), so only as many entries become resident as
// requests were in flight at once on that CPU; an idle entry costs address
// space and about 100 bytes of kernel memory. Measured (2 vCPUs, 296
// entries per queue, 1 MiB payloads: 1.1 GB of address space): RSS 10.6 MB
// after 20,000 getxattr round trips, 11.9 MB after writing and reading back
// 30 MiB; 12.0 MB with 8 entries per queue after a similar mix.
constexpr size_t kEntriesPerQueue = FlockWaiters::kDefaultMaxWaiters + 40;

// Requests handed off the queue thread: they may block for long (disk
// flushes, allocation, big copies) and would stall their CPU's queue
// meanwhile.
constexpr uint32_t kBigTransfer = 128u << 10;
constexpr int kWorkers = 4;

// liburing 2.3 has no prep function for IORING_OP_URING_CMD: the SQE is filled by
// hand, with the fuse command in its second half.
static_assert(offsetof(io_uring_sqe, cmd) == 48);
static_assert(sizeof(abi::CmdReq) <= 2 * sizeof(io_uring_sqe) - 48);

// user_data of the eventfd read; entries are pointers, never 1.
constexpr uint64_t kWakeTag = 1;

std::shared_ptr<spdlog::logger> uring_log() {
  if (auto l = spdlog::get("mapper")) return l;
  return spdlog::default_logger();
}

// Number of CPUs in /sys/devices/system/cpu/possible ("0-3", "0,2-5"): the
// kernel makes a queue for each and picks one by the caller's CPU number.
Status possible_cpus(unsigned* count) {
  std::ifstream in("/sys/devices/system/cpu/possible");
  std::string text;
  if (!(in >> text)) return Status::IOError("cannot read /sys/devices/system/cpu/possible");
  unsigned n = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find(',', pos);
    if (end == std::string::npos) end = text.size();
    const std::string part = text.substr(pos, end - pos);
    unsigned lo = 0;
    unsigned hi = 0;
    if (std::sscanf(part.c_str(), "%u-%u", &lo, &hi) == 2) {
      n += hi >= lo ? hi - lo + 1 : 0;
    } else if (std::sscanf(part.c_str(), "%u", &lo) == 1) {
      n += 1;
    }
    pos = end + 1;
  }
  if (n == 0) return Status::IOError("no CPU in /sys/devices/system/cpu/possible: " + text);
  *count = n;
  return Status::Ok();
}

uint32_t load_u32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

void store_u32(char* p, uint32_t v) { std::memcpy(p, &v, sizeof v); }

// Reads exactly `len` bytes; the pipe already holds them.
bool read_full(int fd, void* buf, size_t len) {
  auto* p = static_cast<char*>(buf);
  while (len > 0) {
    const ssize_t n = ::read(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

class UringLoop::Impl {
 public:
  struct Queue;

  struct Entry {
    Queue* queue = nullptr;
    abi::ReqHeader* header = nullptr;  // at the start of the entry's header page
    char* payload = nullptr;           // right after the header page, whose end is kReserve
    iovec iov[2]{};
    uint32_t last_cmd = abi::kRegister;
    bool dead = false;  // the kernel ended it (connection gone); queue thread only
    fuse_buf buf{};     // the rebuilt request
    // The request being served; 0 when none. Cleared by whoever replies.
    std::atomic<uint64_t> unique{0};
  };

  // Threads that serve handed-off requests in the order they came.
  struct Lane {
    Mutex mu;
    std::condition_variable cv;
    std::deque<Entry*> jobs GUARDED_BY(mu);
    bool stopping GUARDED_BY(mu) = false;
    std::atomic<int> pending{0};       // handed off and not yet served
    std::vector<std::thread> threads;  // changed by one thread at a time, see users
  };

  struct Queue {
    Impl* impl = nullptr;
    Lane bulk;  // big reads and writes, one thread, started by the queue thread
    unsigned qid = 0;
    io_uring ring{};
    bool ring_made = false;
    UniqueFd wake;  // eventfd: late replies and stop()
    uint64_t wake_count = 0;
    // Set up on the INIT reply, before the thread registers them, and
    // unchanged after.
    std::unique_ptr<Entry[]> entries{new Entry[kEntriesPerQueue]};
    char* mem = nullptr;  // one mapping for every entry's header and payload
    size_t mem_len = 0;
    std::thread thread;
    std::atomic<bool> stopping{false};
    Mutex mu;
    std::vector<Entry*> done GUARDED_BY(mu);  // replied, to be committed
    bool closed GUARDED_BY(mu) = false;       // the thread has left
  };

  Impl(fuse_session* se, std::string volume, unsigned queues)
      : se_(se), fd_(fuse_session_fd(se)), volume_(std::move(volume)) {
    for (unsigned q = 0; q < queues; ++q) {
      auto queue = std::make_unique<Queue>();
      queue->impl = this;
      queue->qid = q;
      queues_.push_back(std::move(queue));
    }
  }

  ~Impl() {
    stop();
    for (auto& q : queues_) {
      if (q->mem != nullptr) ::munmap(q->mem, q->mem_len);
    }
  }

  // Starts every queue thread and waits until each has made its ring.
  Status start() {
    for (auto& q : queues_) {
      Queue* queue = q.get();
      queue->thread = start_thread_signals_blocked([this, queue] { queue_main(queue); });
    }
    MutexLock lock(phase_mu_);
    while (made_ < queues_.size()) phase_mu_.wait(phase_cv_);
    return make_error_.empty() ? Status::Ok() : Status::IOError(make_error_);
  }

  // On the INIT reply: every entry, for a payload of `payload` bytes. Each
  // entry is a header page (the kernel's fuse_uring_req_header at its
  // start, the rebuilt request headers at its end) followed by the payload.
  bool allocate(size_t payload) {
    const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
    payload_size_ = (payload + page - 1) / page * page;
    const size_t stride = page + payload_size_;
    for (auto& q : queues_) {
      // Reserved, not committed: only what requests touch becomes resident.
      void* m = ::mmap(nullptr, stride * kEntriesPerQueue, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (m == MAP_FAILED) {
        uring_log()->warn("volume {}: io_uring entries: mmap of {} bytes: {}", volume_,
                          stride * kEntriesPerQueue, std::strerror(errno));
        return false;
      }
      q->mem = static_cast<char*>(m);
      q->mem_len = stride * kEntriesPerQueue;
      for (size_t i = 0; i < kEntriesPerQueue; ++i) {
        Entry* e = &q->entries[i];
        char* base = q->mem + i * stride;
        e->queue = q.get();
        e->header = reinterpret_cast<abi::ReqHeader*>(base);
        e->payload = base + page;
        e->iov[0] = {e->header, sizeof(abi::ReqHeader)};
        e->iov[1] = {e->payload, payload_size_};
      }
    }
    negotiated_.store(true);
    return true;
  }

  bool negotiated() const { return negotiated_.load(); }

  Status register_queues() {
    MutexLock lock(phase_mu_);
    phase_ = Phase::kRegister;
    phase_cv_.notify_all();
    while (registered_ < queues_.size()) phase_mu_.wait(phase_cv_);
    return register_error_.empty() ? Status::Ok() : Status::IOError(register_error_);
  }

  void stop() {
    {
      MutexLock lock(phase_mu_);
      if (phase_ == Phase::kStopped) return;
      phase_ = Phase::kStopped;
      phase_cv_.notify_all();
    }
    for (auto& q : queues_) {
      q->stopping.store(true);
      if (q->wake) {
        const uint64_t one = 1;
        [[maybe_unused]] ssize_t n = ::write(q->wake.get(), &one, sizeof one);
      }
    }
    for (auto& q : queues_) {
      if (q->thread.joinable()) q->thread.join();
    }
    stop_lane(&workers_);
    for (auto& q : queues_) stop_lane(&q->bulk);
  }

  size_t queue_count() const { return queues_.size(); }

  // Reply side (any thread).
  Entry* claim(uint64_t unique);
  bool reply_writev(const iovec* iov, int count, ssize_t* result);
  bool reply_splice(int pipe_fd, size_t len, ssize_t* result);

 private:
  enum class Phase { kMake, kRegister, kStopped };

  void queue_main(Queue* q);
  Status make_ring(Queue* q);
  std::string register_entries(Queue* q);
  void serve(Queue* q);
  void on_request(Entry* e);
  void process(Entry* e);
  void complete(Entry* e);
  void prep_cmd(Queue* q, Entry* e, uint32_t cmd_op, uint64_t commit_id);
  void arm_wake(Queue* q);
  void commit_done(Queue* q);
  void commit(Queue* q, Entry* e);
  void hand_off(Lane* lane, Entry* e);
  void lane_main(Lane* lane);
  static void stop_lane(Lane* lane);
  void reply_error_inline(Entry* e, int err);

  fuse_session* const se_;
  const int fd_;
  const std::string volume_;
  std::vector<std::unique_ptr<Queue>> queues_;
  size_t payload_size_ = 0;  // set before any queue registers
  std::atomic<bool> negotiated_{false};

  Mutex phase_mu_;
  std::condition_variable phase_cv_;
  Phase phase_ GUARDED_BY(phase_mu_) = Phase::kMake;
  size_t made_ GUARDED_BY(phase_mu_) = 0;
  size_t registered_ GUARDED_BY(phase_mu_) = 0;
  std::string make_error_ GUARDED_BY(phase_mu_);
  std::string register_error_ GUARDED_BY(phase_mu_);

  Lane workers_;  // threads started by the first queue thread to register
  std::once_flag workers_once_;
};

namespace {

std::atomic<UringLoop::Impl*> g_loop{nullptr};
// The entry whose request this thread is serving, and the queue this thread
// drains (queue threads only).
thread_local UringLoop::Impl::Entry* t_current = nullptr;
thread_local UringLoop::Impl::Queue* t_queue = nullptr;

}  // namespace

Status UringLoop::Impl::make_ring(Queue* q) {
  io_uring_params p{};
  // SQE128: the fuse command sits in the SQE's second half. One SQE per
  // entry plus the eventfd read is all that is ever outstanding, so neither
  // queue can overflow. SINGLE_ISSUER with
  // DEFER_TASKRUN (the kernel copies requests in only while this thread
  // waits) saved 1-4 µs per round trip but was dropped: after a crash of
  // the mapper the mount then sometimes answered ECANCELED instead of
  // ENOTCONN (bench/README.md, tuning log).
  p.flags = IORING_SETUP_SQE128;
  const int rc = io_uring_queue_init_params(kEntriesPerQueue + 1, &q->ring, &p);
  if (rc < 0) return PosixError("io_uring_setup", -rc);
  q->ring_made = true;
  q->wake.reset(::eventfd(0, EFD_CLOEXEC));
  if (!q->wake) return PosixError("eventfd", errno);
  return Status::Ok();
}

void UringLoop::Impl::queue_main(Queue* q) {
  t_queue = q;
  // Requests for CPU qid come from callers on that CPU; the thread that
  // answers them runs there too. A CPU outside the mapper's cpuset leaves
  // the thread unpinned, which costs speed, not correctness.
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(q->qid, &one);
  pthread_setaffinity_np(pthread_self(), sizeof one, &one);

  Status made = make_ring(q);
  {
    MutexLock lock(phase_mu_);
    if (!made.ok() && make_error_.empty()) {
      make_error_ = "queue " + std::to_string(q->qid) + ": " + made.message();
    }
    ++made_;
    phase_cv_.notify_all();
    while (phase_ == Phase::kMake) phase_mu_.wait(phase_cv_);
    if (phase_ == Phase::kStopped || !made.ok() || !negotiated_.load()) {
      if (phase_ == Phase::kRegister) {
        ++registered_;
        phase_cv_.notify_all();
      }
      lock.unlock();
      if (q->ring_made) io_uring_queue_exit(&q->ring);
      MutexLock qlock(q->mu);
      q->closed = true;
      return;
    }
  }
  std::call_once(workers_once_, [this] {
    for (int i = 0; i < kWorkers; ++i) {
      workers_.threads.push_back(start_thread_signals_blocked([this] { lane_main(&workers_); }));
    }
  });
  const std::string err = register_entries(q);
  {
    MutexLock lock(phase_mu_);
    if (!err.empty() && register_error_.empty()) register_error_ = err;
    ++registered_;
    phase_cv_.notify_all();
  }
  if (err.empty()) serve(q);
  io_uring_queue_exit(&q->ring);
  MutexLock lock(q->mu);
  q->closed = true;
  q->done.clear();
}

void UringLoop::Impl::prep_cmd(Queue* q, Entry* e, uint32_t cmd_op, uint64_t commit_id) {
  io_uring_sqe* sqe = io_uring_get_sqe(&q->ring);
  if (sqe == nullptr) {
    // Cannot happen (one SQE per entry, the SQ holds them all), but an
    // overfull SQ empties on submit.
    io_uring_submit(&q->ring);
    sqe = io_uring_get_sqe(&q->ring);
    if (sqe == nullptr) return;
  }
  std::memset(sqe, 0, 2 * sizeof(io_uring_sqe));  // SQE128
  sqe->opcode = abi::kOpUringCmd;
  sqe->fd = fd_;
  sqe->cmd_op = cmd_op;
  if (cmd_op == abi::kRegister) {
    sqe->addr = reinterpret_cast<uint64_t>(e->iov);
    sqe->len = 2;
  }
  abi::CmdReq req{};
  req.commit_id = commit_id;
  req.qid = static_cast<uint16_t>(q->qid);
  std::memcpy(sqe->cmd, &req, sizeof req);
  io_uring_sqe_set_data(sqe, e);
  e->last_cmd = cmd_op;
}

void UringLoop::Impl::arm_wake(Queue* q) {
  io_uring_sqe* sqe = io_uring_get_sqe(&q->ring);
  if (sqe == nullptr) {
    io_uring_submit(&q->ring);
    sqe = io_uring_get_sqe(&q->ring);
    if (sqe == nullptr) return;
  }
  io_uring_prep_read(sqe, q->wake.get(), &q->wake_count, sizeof q->wake_count, 0);
  // prep_read fills 64 bytes only; the second half must not hold a stale
  // fuse command.
  std::memset(reinterpret_cast<char*>(sqe) + sizeof(io_uring_sqe), 0, sizeof(io_uring_sqe));
  io_uring_sqe_set_data64(sqe, kWakeTag);
}

// Registers every entry. Errors come back at once, as completions, because
// the kernel registers while submitting; a silent submit means the entries
// wait for requests. Returns what failed, empty when nothing did.
std::string UringLoop::Impl::register_entries(Queue* q) {
  for (size_t i = 0; i < kEntriesPerQueue; ++i) prep_cmd(q, &q->entries[i], abi::kRegister, 0);
  arm_wake(q);
  const int rc = io_uring_submit(&q->ring);
  if (rc < 0) return "queue " + std::to_string(q->qid) + ": submit: " + std::strerror(-rc);
  io_uring_cqe* cqe;
  unsigned head;
  std::string err;
  io_uring_for_each_cqe(&q->ring, head, cqe) {
    // Left in the ring: serve() handles them (requests, retries).
    const uint64_t tag = io_uring_cqe_get_data64(cqe);
    if (tag == kWakeTag || cqe->res >= 0 || cqe->res == -EAGAIN || cqe->res == -EINTR) continue;
    if (err.empty()) {
      err = "queue " + std::to_string(q->qid) +
            ": FUSE_IO_URING_CMD_REGISTER: " + std::strerror(-cqe->res);
    }
  }
  return err;
}

void UringLoop::Impl::serve(Queue* q) {
  for (;;) {
    const int rc = io_uring_submit_and_wait(&q->ring, 1);
    if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
      uring_log()->error("volume {}: io_uring queue {}: {}", volume_, q->qid, std::strerror(-rc));
      return;
    }
    io_uring_cqe* cqe;
    unsigned head;
    unsigned seen = 0;
    bool stop = false;
    io_uring_for_each_cqe(&q->ring, head, cqe) {
      ++seen;
      const uint64_t tag = io_uring_cqe_get_data64(cqe);
      if (tag == kWakeTag) {
        if (q->stopping.load()) {
          stop = true;
          continue;
        }
        commit_done(q);
        arm_wake(q);
        continue;
      }
      auto* e = reinterpret_cast<Entry*>(tag);
      if (cqe->res == 0) {
        on_request(e);
      } else if (cqe->res == -EAGAIN || cqe->res == -EINTR) {
        prep_cmd(q, e, e->last_cmd,
                 e->last_cmd == abi::kRegister ? 0 : e->header->ring_ent_in_out.commit_id);
      } else if (!e->dead) {
        // ENOTCONN: the connection is going away (unmount, abort); the
        // /dev/fuse loop notices too and stop() follows.
        e->dead = true;
        if (cqe->res != -ENOTCONN && cqe->res != -ECANCELED) {
          uring_log()->warn("volume {}: io_uring queue {}: {}", volume_, q->qid,
                            std::strerror(-cqe->res));
        }
      }
    }
    io_uring_cq_advance(&q->ring, seen);
    if (stop) return;
  }
}

void UringLoop::Impl::on_request(Entry* e) {
  abi::ReqHeader* h = e->header;
  abi::InHeader in;
  std::memcpy(&in, h->in_out, sizeof in);
  const size_t payload_sz = h->ring_ent_in_out.payload_sz;
  // The operation header is what the request holds besides fuse_in_header
  // and the payload (a LOOKUP has none, a WRITE's is fuse_write_in).
  const size_t op_sz = in.len - sizeof in - payload_sz;
  if (in.len < sizeof in + payload_sz || op_sz > abi::kOpInSize || payload_sz > payload_size_) {
    uring_log()->error("volume {}: malformed ring request (opcode {}, len {}, payload {})", volume_,
                       in.opcode, in.len, payload_sz);
    e->unique.store(in.unique);
    e->buf.mem = nullptr;
    reply_error_inline(e, EIO);
    return;
  }
  char* start = e->payload - sizeof in - op_sz;
  std::memcpy(start, &in, sizeof in);
  std::memcpy(start + sizeof in, h->op_in, op_sz);
  e->buf = fuse_buf{};
  e->buf.size = in.len;
  e->buf.mem = start;
  e->unique.store(in.unique);

  Lane* lane = nullptr;
  switch (in.opcode) {
    case abi::kFsync:
    case abi::kFsyncDir:
    case abi::kFlush:  // close() of a remote file may write back
    case abi::kSetLkW:
    // An access ACL change on a directory drops the kernel's entries below
    // it after the reply (identity_fs.cc), which takes the directory's
    // lock: a caller holding it may wait for a request of this very queue.
    case abi::kSetXattr:
    case abi::kRemoveXattr:
    case abi::kFallocate:
    case abi::kCopyFileRange:
      lane = &workers_;
      break;
    case abi::kRead:
    case abi::kWrite:
      // Small ones follow big ones still in the lane, so that a file's
      // writes land in the order they came.
      if ((op_sz >= abi::kReadInSize + sizeof(uint32_t) &&
           load_u32(h->op_in + abi::kReadInSize) > kBigTransfer) ||
          e->queue->bulk.pending.load() > 0) {
        lane = &e->queue->bulk;
        if (lane->threads.empty()) {
          lane->threads.push_back(start_thread_signals_blocked([this, lane] { lane_main(lane); }));
        }
      }
      break;
    default:
      break;
  }
  if (lane != nullptr) {
    hand_off(lane, e);
    return;
  }
  process(e);
}

void UringLoop::Impl::hand_off(Lane* lane, Entry* e) {
  lane->pending.fetch_add(1);
  MutexLock lock(lane->mu);
  lane->jobs.push_back(e);
  lane->cv.notify_one();
}

void UringLoop::Impl::stop_lane(Lane* lane) {
  {
    MutexLock lock(lane->mu);
    lane->stopping = true;
    lane->cv.notify_all();
  }
  for (auto& t : lane->threads) t.join();
  lane->threads.clear();
}

void UringLoop::Impl::process(Entry* e) {
  Entry* outer = std::exchange(t_current, e);
  fuse_session_process_buf(se_, &e->buf);
  t_current = outer;
}

void UringLoop::Impl::lane_main(Lane* lane) {
  for (;;) {
    Entry* e;
    {
      MutexLock lock(lane->mu);
      while (lane->jobs.empty() && !lane->stopping) lane->mu.wait(lane->cv);
      if (lane->stopping) return;
      e = lane->jobs.front();
      lane->jobs.pop_front();
    }
    process(e);
    lane->pending.fetch_sub(1);
  }
}

void UringLoop::Impl::reply_error_inline(Entry* e, int err) {
  if (e->unique.exchange(0) == 0) return;
  abi::OutHeader out{sizeof(abi::OutHeader), -err, 0};
  std::memcpy(&out.unique, e->header->in_out + offsetof(abi::InHeader, unique), sizeof out.unique);
  std::memcpy(e->header->in_out, &out, sizeof out);
  e->header->ring_ent_in_out.payload_sz = 0;
  complete(e);
}

// The reply is in the entry: commit it from the queue's thread.
void UringLoop::Impl::complete(Entry* e) {
  Queue* q = e->queue;
  if (t_queue == q) {
    commit(q, e);
    return;
  }
  bool wake;
  {
    MutexLock lock(q->mu);
    if (q->closed) return;  // shutting down: nobody waits for it
    q->done.push_back(e);
    wake = q->done.size() == 1;
  }
  if (wake) {
    const uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(q->wake.get(), &one, sizeof one);
  }
}

void UringLoop::Impl::commit_done(Queue* q) {
  std::vector<Entry*> done;
  {
    MutexLock lock(q->mu);
    done.swap(q->done);
  }
  for (Entry* e : done) commit(q, e);
}

void UringLoop::Impl::commit(Queue* q, Entry* e) {
  prep_cmd(q, e, abi::kCommitAndFetch, e->header->ring_ent_in_out.commit_id);
}

UringLoop::Impl::Entry* UringLoop::Impl::claim(uint64_t unique) {
  if (Entry* e = t_current) {
    uint64_t want = unique;
    if (e->unique.compare_exchange_strong(want, 0)) return e;
  }
  for (auto& q : queues_) {
    for (size_t i = 0; i < kEntriesPerQueue; ++i) {
      Entry* e = &q->entries[i];
      uint64_t want = unique;
      if (e->unique.load(std::memory_order_relaxed) == unique &&
          e->unique.compare_exchange_strong(want, 0)) {
        return e;
      }
    }
  }
  return nullptr;
}

bool UringLoop::Impl::reply_writev(const iovec* iov, int count, ssize_t* result) {
  if (count < 1 || iov[0].iov_len != sizeof(abi::OutHeader)) return false;
  abi::OutHeader out;
  std::memcpy(&out, iov[0].iov_base, sizeof out);
  if (out.unique == 0) return false;  // a notification: /dev/fuse only
  Entry* e = claim(out.unique);
  if (e == nullptr) return false;
  size_t total = 0;
  for (int i = 0; i < count; ++i) total += iov[i].iov_len;
  size_t args = total - sizeof out;
  if (args > payload_size_) {
    // Cannot happen for a kernel that negotiated these sizes.
    uring_log()->error("volume {}: reply of {} bytes exceeds the ring's {}", volume_, args,
                       payload_size_);
    out.error = -EIO;
    args = 0;
  } else {
    size_t off = 0;
    for (int i = 1; i < count; ++i) {
      std::memmove(e->payload + off, iov[i].iov_base, iov[i].iov_len);
      off += iov[i].iov_len;
    }
  }
  std::memcpy(e->header->in_out, &out, sizeof out);
  e->header->ring_ent_in_out.payload_sz = static_cast<uint32_t>(args);
  complete(e);
  *result = static_cast<ssize_t>(total);
  return true;
}

// libfuse splices fd-backed replies (reads, see op_read) through a pipe: it
// vmsplices the header into the pipe, splices the file's data behind it and
// asks this hook to splice the whole `len` bytes into /dev/fuse.
bool UringLoop::Impl::reply_splice(int pipe_fd, size_t len, ssize_t* result) {
  Entry* e = t_current;
  if (e == nullptr || len < sizeof(abi::OutHeader)) return false;
  abi::OutHeader out;
  if (!read_full(pipe_fd, &out, sizeof out)) {
    *result = -1;
    return true;
  }
  const size_t data = len - sizeof out;
  uint64_t want = out.unique;
  if (out.unique == 0 || !e->unique.compare_exchange_strong(want, 0)) {
    // Not this thread's ring request (cannot happen with today's handlers):
    // what was meant for /dev/fuse goes there.
    std::vector<char> rest(data);
    if (!read_full(pipe_fd, rest.data(), data)) {
      *result = -1;
      return true;
    }
    iovec iov[2] = {{&out, sizeof out}, {rest.data(), data}};
    ssize_t n = 0;
    if (!reply_writev(iov, 2, &n)) n = ::writev(fd_, iov, 2);
    *result = n < 0 ? n : static_cast<ssize_t>(len);
    return true;
  }
  if (data > payload_size_) {
    std::vector<char> sink(data);
    [[maybe_unused]] bool drained = read_full(pipe_fd, sink.data(), data);
    out.error = -EIO;
    e->header->ring_ent_in_out.payload_sz = 0;
  } else if (!read_full(pipe_fd, e->payload, data)) {
    out.error = -EIO;
    e->header->ring_ent_in_out.payload_sz = 0;
  } else {
    e->header->ring_ent_in_out.payload_sz = static_cast<uint32_t>(data);
  }
  std::memcpy(e->header->in_out, &out, sizeof out);
  complete(e);
  *result = static_cast<ssize_t>(len);
  return true;
}

// --- public surface ---

bool init_offers_uring(const fuse_buf& init) {
  constexpr uint32_t kFuseInit = 26;
  if (init.mem == nullptr || init.size < sizeof(abi::InHeader) + abi::kInitInFlags2 + 4) {
    return false;
  }
  const char* p = static_cast<const char*>(init.mem);
  abi::InHeader in;
  std::memcpy(&in, p, sizeof in);
  if (in.opcode != kFuseInit) return false;
  const char* arg = p + sizeof in;
  return (load_u32(arg + abi::kInitInFlags) & abi::kInitExt) != 0 &&
         (load_u32(arg + abi::kInitInFlags2) & abi::kOverIoUringFlags2) != 0;
}

std::string uring_parameter_state() {
  std::ifstream in(kEnableUringPath);
  std::string v;
  if (!(in >> v)) return "this kernel has no fuse enable_uring parameter";
  return "enable_uring is " + v;
}

std::string uring_fix_hint() {
  return std::string("enable it on the host with `echo Y > ") + kEnableUringPath +
         "` (or `make install FUSE_URING=on`; boot parameter fuse.enable_uring=1 to keep it), "
         "or use --request-loop auto";
}

Status uring_precheck() {
  std::ifstream in(kEnableUringPath);
  std::string v;
  if (!(in >> v)) {
    return Status::FailedPrecondition(
        "FUSE over io_uring is not available: this kernel has no fuse enable_uring parameter "
        "(it needs Linux 6.14+ with CONFIG_FUSE_IO_URING); use --request-loop auto");
  }
  if (v != "Y") {
    return Status::FailedPrecondition("FUSE over io_uring is not available: enable_uring is " + v +
                                      "; " + uring_fix_hint());
  }
  io_uring ring{};
  io_uring_params p{};
  p.flags = IORING_SETUP_SQE128;
  const int rc = io_uring_queue_init_params(2, &ring, &p);
  if (rc < 0) {
    return Status::FailedPrecondition(
        std::string("FUSE over io_uring is not available: io_uring_setup: ") + std::strerror(-rc) +
        " (a container's seccomp profile, Docker's default among them, blocks io_uring); use "
        "--request-loop auto");
  }
  io_uring_queue_exit(&ring);
  return Status::Ok();
}

Result<std::unique_ptr<UringLoop>> UringLoop::create(fuse_session* se, std::string volume_name) {
  unsigned cpus = 0;
  TENANTFS_RETURN_IF_ERROR(possible_cpus(&cpus));
  auto impl = std::make_unique<Impl>(se, std::move(volume_name), cpus);
  if (Status st = impl->start(); !st.ok()) {
    impl->stop();
    return st;
  }
  g_loop.store(impl.get());
  return std::unique_ptr<UringLoop>(new UringLoop(std::move(impl)));
}

UringLoop::UringLoop(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

UringLoop::~UringLoop() {
  impl_->stop();
  g_loop.store(nullptr);
}

bool UringLoop::negotiated() const { return impl_->negotiated(); }
Status UringLoop::register_queues() { return impl_->register_queues(); }
void UringLoop::stop() { impl_->stop(); }
size_t UringLoop::queue_count() const { return impl_->queue_count(); }
size_t UringLoop::entries_per_queue() const { return kEntriesPerQueue; }

void uring_amend_init_reply(char* init_out, size_t len) {
  UringLoop::Impl* loop = g_loop.load();
  if (loop == nullptr || len < abi::kInitOutFlags2 + 4) return;
  const uint32_t flags = load_u32(init_out + abi::kInitOutFlags);
  const uint32_t max_write = load_u32(init_out + abi::kInitOutMaxWrite);
  uint16_t max_pages;
  std::memcpy(&max_pages, init_out + abi::kInitOutMaxPages, sizeof max_pages);
  const size_t pages =
      (flags & abi::kMaxPagesFlag) != 0 ? std::max<size_t>(max_pages, 1) : abi::kDefaultMaxPages;
  const size_t payload = std::max({abi::kMinPayload, static_cast<size_t>(max_write), pages * 4096});
  if (!loop->allocate(payload)) return;
  store_u32(init_out + abi::kInitOutFlags, flags | abi::kInitExt);
  store_u32(init_out + abi::kInitOutFlags2,
            load_u32(init_out + abi::kInitOutFlags2) | abi::kOverIoUringFlags2);
}

bool uring_reply_writev(const struct iovec* iov, int count, ssize_t* result) {
  UringLoop::Impl* loop = g_loop.load();
  return loop != nullptr && loop->negotiated() && loop->reply_writev(iov, count, result);
}

bool uring_reply_splice(int pipe_fd, size_t len, ssize_t* result) {
  UringLoop::Impl* loop = g_loop.load();
  return loop != nullptr && loop->negotiated() && loop->reply_splice(pipe_fd, len, result);
}

}  // namespace tenantfs

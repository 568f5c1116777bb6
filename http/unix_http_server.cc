#include "http/unix_http_server.h"

#include <fcntl.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <optional>
#include <set>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/thread_annotations.h"
#include "common/unique_fd.h"
#include "http/chunked.h"
#include "http/text.h"

namespace tenantfs {
namespace {

using Clock = std::chrono::steady_clock;
using Verdict = RequestFraming::Verdict;

// Not complete yet: refused once it has reached the size its request never
// exceeds.
RequestFraming need_more(std::string_view received, size_t max_request) {
  return {received.size() >= max_request ? Verdict::kRefused : Verdict::kIncomplete, 0};
}

// A chunked body starting at `pos`, framed by the decoder the client shares.
RequestFraming frame_chunked_body(std::string_view received, size_t pos, size_t max_body,
                                  size_t max_request) {
  ChunkedDecoder decoder(max_body);
  const ChunkedProgress progress = decoder.feed(received.substr(pos), nullptr);
  switch (progress.verdict) {
    case ChunkedProgress::Verdict::kNeedMore:
      return need_more(received, max_request);
    case ChunkedProgress::Verdict::kComplete:
      return {Verdict::kComplete, pos + progress.consumed};
    case ChunkedProgress::Verdict::kTooLarge:
      return {Verdict::kRefused, 0, false, true};
    case ChunkedProgress::Verdict::kMalformed:
      break;
  }
  return {Verdict::kRefused, 0, false, false, progress.error};
}

// Reads what `fd` has queued without waiting, appending it to `received`
// (nullptr: discarding it) up to `max_bytes` in all, the largest request of
// any path (frame_request refuses those of other paths before). Returns
// false once the peer has hung up or the connection failed.
bool read_queued(int fd, std::string* received, size_t max_bytes) {
  char buf[16 * 1024];
  for (;;) {
    size_t want = sizeof buf;
    if (received != nullptr) {
      want = std::min(want, max_bytes - std::min(max_bytes, received->size()));
      if (want == 0) return true;  // full: frame_request refuses it
    }
    ssize_t n = ::recv(fd, buf, want, MSG_DONTWAIT);
    if (n > 0) {
      if (received != nullptr) received->append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }
}

// Waits until `fd` can take more bytes, at most until `deadline`.
bool wait_writable(int fd, Clock::time_point deadline) {
  for (;;) {
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    pollfd p{fd, POLLOUT, 0};
    int rc = ::poll(&p, 1, static_cast<int>(std::min<decltype(left)>(left, 60000)));
    if (rc > 0) return (p.revents & (POLLERR | POLLHUP | POLLNVAL)) == 0;
    if (rc < 0 && errno != EINTR) return false;
  }
}

// The request httplib parses: the bytes the waiting room (or the first look
// at the connection) received, so parsing never waits on the client. The
// reply goes to the socket, within `timeout` from its first byte.
class ReceivedRequestStream final : public httplib::Stream {
 public:
  ReceivedRequestStream(int fd, std::string request, bool complete,
                        std::chrono::milliseconds timeout)
      : fd_(fd), request_(std::move(request)), complete_(complete), timeout_(timeout) {}

  bool is_readable() const override { return pos_ < request_.size(); }
  bool is_writable() const override {
    return wait_writable(fd_, write_deadline_ ? *write_deadline_ : Clock::now() + timeout_);
  }

  // A complete request ends like a connection the client closed: httplib
  // then reads a POST without Content-Length as an empty body. The end of a
  // refused one is an error, so that httplib answers it with a 4xx.
  ssize_t read(char* ptr, size_t size) override {
    if (pos_ == request_.size()) return complete_ ? 0 : -1;
    size_t n = std::min(size, request_.size() - pos_);
    std::memcpy(ptr, request_.data() + pos_, n);
    pos_ += n;
    return static_cast<ssize_t>(n);
  }

  ssize_t write(const char* ptr, size_t size) override {
    if (!write_deadline_) write_deadline_ = Clock::now() + timeout_;
    for (;;) {
      ssize_t n = ::send(fd_, ptr, size, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n >= 0) return n;
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) return -1;
      if (!wait_writable(fd_, *write_deadline_)) return -1;
    }
  }

  // A unix socket peer has no address worth logging.
  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    ip.clear();
    port = 0;
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    ip.clear();
    port = 0;
  }
  socket_t socket() const override { return fd_; }

 private:
  int fd_;
  std::string request_;
  size_t pos_ = 0;
  bool complete_;
  std::chrono::milliseconds timeout_;
  std::optional<Clock::time_point> write_deadline_;
};

std::string request_timeout_message(std::chrono::milliseconds timeout) {
  return fmt::format(
      "tenantfs: the request was not complete within {:g} s; send the whole request at once",
      static_cast<double>(timeout.count()) / 1000.0);
}

// The path of the request line, "" when it has none.
std::string_view request_path(std::string_view head) {
  const std::string_view line = head.substr(0, head.find("\r\n"));
  const size_t start = line.find(' ');
  if (start == std::string_view::npos) return {};
  const size_t end = line.find(' ', start + 1);
  std::string_view target = line.substr(
      start + 1, end == std::string_view::npos ? std::string_view::npos : end - start - 1);
  return target.substr(0, target.find('?'));
}

// At most half the open-file limit: accepted connections, workers, the store
// and the mappers' pipes need the rest.
size_t waiting_room_capacity() {
  rlimit rl{};
  size_t capacity = UnixHttpServer::kMaxWaitingConnections;
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
    capacity = std::min<size_t>(capacity, std::max<size_t>(rl.rlim_cur / 2, 16));
  }
  return capacity;
}

// Connections whose request is still arriving, and connections whose refused
// request the client is still sending after its answer. One thread watches
// them all (edge-triggered epoll) and reads whatever arrives; none holds a
// worker. A connection leaves when its request is complete (to `dispatch`),
// when the client hangs up, when its deadline passes (408 when anything of
// the request came), or, oldest first, when the room is full.
class WaitingRoom {
 public:
  using Dispatch = std::function<void(int fd, std::string received, RequestFraming framing)>;

  // `limits` must outlive the room; `timeout_reply` is the whole 408 reply.
  WaitingRoom(size_t capacity, std::chrono::milliseconds timeout, const RequestLimits& limits,
              std::string timeout_reply, Dispatch dispatch)
      : capacity_(capacity),
        timeout_(timeout),
        limits_(limits),
        timeout_reply_(std::move(timeout_reply)),
        dispatch_(std::move(dispatch)),
        epoll_(::epoll_create1(EPOLL_CLOEXEC)),
        wake_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = wake_.get();
    if (!epoll_ || !wake_ || ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, wake_.get(), &ev) != 0) {
      // Without it every unfinished request is closed at once: the service
      // still answers clients that send their request whole, as Docker does.
      spdlog::error("waiting room: {}; requests that do not arrive at once are closed",
                    std::strerror(errno));
      stopped_ = true;
      return;
    }
    thread_ = std::thread([this] { run(); });
  }

  ~WaitingRoom() { stop(); }

  // Takes `fd`, whose request has begun with `received`.
  void admit(int fd, std::string received, Clock::time_point deadline) {
    enqueue(Guest{fd, deadline, std::move(received), false});
  }

  // Takes `fd`, whose refused request was answered and whose sending side is
  // shut down: discards what the client still sends, so that it reads the
  // answer instead of a reset, until it hangs up or the timeout passes.
  void linger(int fd) { enqueue(Guest{fd, Clock::now() + timeout_, {}, true}); }

  // Closes every connection in the room; later arrivals are closed at once.
  void stop() {
    {
      MutexLock lock(mu_);
      stopped_ = true;
    }
    wake();
    if (thread_.joinable()) thread_.join();
  }

 private:
  struct Guest {
    int fd;
    Clock::time_point deadline;
    std::string received;
    bool lingering;
  };

  void enqueue(Guest guest) {
    const int fd = guest.fd;
    bool taken = false;
    {
      MutexLock lock(mu_);
      if (!stopped_) {
        arrivals_.push_back(std::move(guest));
        taken = true;
      }
    }
    if (taken) {
      wake();
    } else {
      ::close(fd);
    }
  }

  void wake() {
    if (wake_) (void)!::eventfd_write(wake_.get(), 1);
  }

  void run() {
    std::vector<epoll_event> events(64);
    for (;;) {
      const int n =
          ::epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()), wait_ms());
      for (int i = 0; i < n; ++i) {
        if (events[i].data.fd == wake_.get()) {
          eventfd_t drained;
          (void)!::eventfd_read(wake_.get(), &drained);
        } else {
          on_readable(events[i].data.fd);
        }
      }
      std::vector<Guest> arrivals;
      bool stopping;
      {
        MutexLock lock(mu_);
        arrivals.swap(arrivals_);
        stopping = stopped_;
      }
      for (auto& g : arrivals) {
        if (stopping) {
          ::close(g.fd);
        } else {
          enter(std::move(g));
        }
      }
      if (stopping) break;
      expire_due();
      report(false);
    }
    for (auto& [fd, guest] : guests_) ::close(fd);
    guests_.clear();
    by_deadline_.clear();
    report(true);
  }

  // Until the next deadline; at most a second while a report is pending.
  int wait_ms() const {
    long ms = -1;
    if (!by_deadline_.empty()) {
      auto left =
          std::chrono::ceil<std::chrono::milliseconds>(by_deadline_.begin()->first - Clock::now());
      ms = std::max<long>(0, static_cast<long>(left.count()));
    }
    if (expired_ + evicted_ > 0 && (ms < 0 || ms > 1000)) ms = 1000;
    return static_cast<int>(std::min<long>(ms, 60000));
  }

  void enter(Guest guest) {
    if (guests_.size() >= capacity_) {
      close_guest(by_deadline_.begin()->second);
      ++evicted_;
    }
    const int fd = guest.fd;
    // Added edge-triggered: bytes already queued raise the first event now.
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP | EPOLLET;
    ev.data.fd = fd;
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
      spdlog::warn("waiting room: epoll_ctl: {}; connection closed", std::strerror(errno));
      ::close(fd);
      return;
    }
    by_deadline_.emplace(guest.deadline, fd);
    guests_.emplace(fd, std::move(guest));
  }

  Guest leave(int fd) {
    auto it = guests_.find(fd);
    Guest guest = std::move(it->second);
    guests_.erase(it);
    by_deadline_.erase({guest.deadline, fd});
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
    return guest;
  }

  void close_guest(int fd) { ::close(leave(fd).fd); }

  void on_readable(int fd) {
    auto it = guests_.find(fd);
    if (it == guests_.end()) return;
    Guest& guest = it->second;
    const bool open = read_queued(fd, guest.lingering ? nullptr : &guest.received,
                                  limits_.max_any_request_bytes());
    if (guest.lingering) {
      if (!open) close_guest(fd);
      return;
    }
    RequestFraming framing = frame_request(guest.received, limits_);
    if (framing.verdict != Verdict::kIncomplete) {
      Guest ready = leave(fd);
      dispatch_(ready.fd, std::move(ready.received), framing);
    } else if (!open) {
      close_guest(fd);  // hung up before finishing its request
    }
  }

  void expire_due() {
    const auto now = Clock::now();
    while (!by_deadline_.empty() && by_deadline_.begin()->first <= now) {
      Guest guest = leave(by_deadline_.begin()->second);
      if (!guest.lingering) {
        ++expired_;
        // A client that sent nothing gets nothing: it may be an idle
        // connection its client is about to reuse.
        if (!guest.received.empty()) {
          (void)!::send(guest.fd, timeout_reply_.data(), timeout_reply_.size(),
                        MSG_NOSIGNAL | MSG_DONTWAIT);
        }
      }
      ::close(guest.fd);
    }
  }

  // One warning per ten seconds at most: a flood of stalled clients must not
  // flood the log too.
  void report(bool now) {
    if (expired_ + evicted_ == 0) return;
    if (!now && Clock::now() - last_report_ < std::chrono::seconds(10)) return;
    if (expired_ > 0) {
      spdlog::warn("closed {} connection(s) whose request was not complete within {} ms", expired_,
                   timeout_.count());
    }
    if (evicted_ > 0) {
      spdlog::warn("closed {} unfinished request(s), oldest first: more than {} were arriving",
                   evicted_, capacity_);
    }
    expired_ = evicted_ = 0;
    last_report_ = Clock::now();
  }

  const size_t capacity_;
  const std::chrono::milliseconds timeout_;
  const RequestLimits& limits_;
  const std::string timeout_reply_;
  const Dispatch dispatch_;
  UniqueFd epoll_;
  UniqueFd wake_;
  std::thread thread_;

  Mutex mu_;
  std::vector<Guest> arrivals_ GUARDED_BY(mu_);
  bool stopped_ GUARDED_BY(mu_) = false;

  // The room's thread only.
  std::unordered_map<int, Guest> guests_;
  std::set<std::pair<Clock::time_point, int>> by_deadline_;
  size_t expired_ = 0;
  size_t evicted_ = 0;
  Clock::time_point last_report_{};
};

}  // namespace

size_t RequestLimits::max_body(std::string_view path) const {
  auto it = max_body_bytes_for.find(path);
  return it == max_body_bytes_for.end() ? max_body_bytes : it->second;
}

size_t RequestLimits::max_request_bytes(std::string_view path) const {
  return max_head_bytes + max_body(path);
}

size_t RequestLimits::max_any_request_bytes() const {
  size_t body = max_body_bytes;
  for (const auto& [path, limit] : max_body_bytes_for) body = std::max(body, limit);
  return max_head_bytes + body;
}

RequestFraming frame_request(std::string_view received, const RequestLimits& limits) {
  const size_t head_end = received.find("\r\n\r\n");
  if (head_end == std::string_view::npos) {
    return {received.size() > limits.max_head_bytes ? Verdict::kRefused : Verdict::kIncomplete, 0};
  }
  const size_t head_size = head_end + 4;
  if (head_size > limits.max_head_bytes) return {Verdict::kRefused, 0};
  const std::string_view path = request_path(received.substr(0, head_end));
  if (limits.head_only.contains(path)) return {Verdict::kComplete, head_size, true};
  const size_t max_body = limits.max_body(path);
  const size_t max_request = limits.max_request_bytes(path);
  // The first of each header counts, as in httplib; names are not trimmed.
  std::optional<std::string_view> content_length;
  std::optional<std::string_view> transfer_encoding;
  const std::string_view head = received.substr(0, head_end + 2);
  for (size_t pos = head.find("\r\n") + 2; pos < head.size();) {
    const size_t eol = head.find("\r\n", pos);
    const std::string_view line = head.substr(pos, eol - pos);
    pos = eol + 2;
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    const std::string_view name = line.substr(0, colon);
    const std::string_view value = trim_blanks(line.substr(colon + 1));
    if (!content_length && equals_ignoring_case(name, "Content-Length")) content_length = value;
    if (!transfer_encoding && equals_ignoring_case(name, "Transfer-Encoding")) {
      transfer_encoding = value;
    }
  }
  if (transfer_encoding) {
    if (!equals_ignoring_case(*transfer_encoding, "chunked")) return {Verdict::kRefused, 0};
    return frame_chunked_body(received, head_size, max_body, max_request);
  }
  size_t body = 0;
  if (content_length) {
    std::optional<size_t> n = parse_size(*content_length, 10);
    if (!n) return {Verdict::kRefused, 0};
    if (*n > max_body) return {Verdict::kRefused, 0, false, true};
    body = *n;
  }
  if (received.size() < head_size + body) return need_more(received, max_request);
  return {Verdict::kComplete, head_size + body};
}

// The task queue httplib's listen loop runs connections on: the workers and
// the waiting room that feeds them. httplib calls shutdown() when listening
// ends, then deletes it: the room stops first, so nothing is handed to a
// worker after the workers are gone.
class UnixHttpServer::Dispatcher : public httplib::TaskQueue {
 public:
  explicit Dispatcher(UnixHttpServer& server)
      : pool_(kWorkerThreads),
        room_(waiting_room_capacity(), server.request_timeout_, server.limits_,
              error_reply(server.error_format_, "408 Request Timeout",
                          request_timeout_message(server.request_timeout_)),
              [this, &server](int fd, std::string received, RequestFraming framing) {
                pool_.enqueue([&server, fd, received = std::move(received), framing]() mutable {
                  server.answer(fd, std::move(received), framing);
                });
              }) {}

  void enqueue(std::function<void()> fn) override { pool_.enqueue(std::move(fn)); }
  void shutdown() override {
    room_.stop();
    pool_.shutdown();
  }
  WaitingRoom& room() { return room_; }

 private:
  httplib::ThreadPool pool_;
  WaitingRoom room_;
};

UnixHttpServer::UnixHttpServer() {
  new_task_queue = [this] {
    auto* dispatcher = new Dispatcher(*this);
    dispatcher_ = dispatcher;
    return dispatcher;
  };
}

bool UnixHttpServer::process_and_close_socket(socket_t sock) {
  const auto deadline = Clock::now() + request_timeout_;
  // httplib accepts without O_CLOEXEC; mappers must not inherit clients.
  ::fcntl(sock, F_SETFD, FD_CLOEXEC);
  std::string received;
  const bool open = read_queued(sock, &received, limits_.max_any_request_bytes());
  RequestFraming framing = frame_request(received, limits_);
  if (framing.verdict != Verdict::kIncomplete) {
    answer(sock, std::move(received), framing);
  } else if (!open) {
    ::close(sock);
  } else {
    dispatcher_.load()->room().admit(sock, std::move(received), deadline);
  }
  return true;
}

void UnixHttpServer::answer(int fd, std::string received, RequestFraming framing) {
  const bool complete = framing.verdict == Verdict::kComplete;
  if (framing.too_large || !framing.malformed.empty()) {
    // Answered here: httplib's own limit is the largest of all paths, and
    // httplib reads a chunk without its CRLF as the end of the body.
    const std::string reply = refusal_reply(received, framing, limits_, error_format_);
    ReceivedRequestStream stream(fd, {}, true, request_timeout_);
    for (size_t sent = 0; sent < reply.size();) {
      const ssize_t n = stream.write(reply.data() + sent, reply.size() - sent);
      if (n <= 0) break;
      sent += static_cast<size_t>(n);
    }
    ::shutdown(fd, SHUT_WR);
    dispatcher_.load()->room().linger(fd);
    return;
  }
  if (framing.body_ignored) {
    // The request line alone: no header announces the body that is ignored.
    received = received.substr(0, received.find("\r\n")) + "\r\n\r\n";
  } else if (complete) {
    received.resize(framing.length);  // one request per connection
  }
  ReceivedRequestStream stream(fd, std::move(received), complete, request_timeout_);
  bool connection_closed = false;
  process_request(stream, /*close_connection=*/true, connection_closed, nullptr);
  if (complete && !framing.body_ignored) {
    ::close(fd);
  } else {
    ::shutdown(fd, SHUT_WR);
    dispatcher_.load()->room().linger(fd);
  }
}

std::string error_reply(const ErrorReplyFormat& format, const char* status_line,
                        const std::string& message) {
  std::string body = message;
  std::string content_type = format.content_type;
  if (format.body) {
    try {
      body = format.body(message);
    } catch (const std::exception& e) {
      spdlog::error("error reply format failed ({}); answering in plain text", e.what());
      body = std::string(status_line);
      content_type = "text/plain";
    }
  }
  return std::string("HTTP/1.1 ") + status_line + "\r\nContent-Type: " + content_type +
         "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" +
         body;
}

std::string refusal_reply(std::string_view received, const RequestFraming& framing,
                          const RequestLimits& limits, const ErrorReplyFormat& format) {
  const std::string_view full_path = request_path(received.substr(0, received.find("\r\n")));
  const std::string path(full_path.substr(0, 100));
  const char* status = framing.too_large ? "413 Payload Too Large" : "400 Bad Request";
  const std::string msg =
      framing.too_large ? "tenantfs: request body too large for " + path + " (limit " +
                              std::to_string(limits.max_body(full_path) / 1024) + " KiB)"
                        : "tenantfs: " + framing.malformed + " in the request body";
  spdlog::warn("{} http {}: {}", path.empty() ? "-" : path, std::string_view(status, 3), msg);
  return error_reply(format, status, msg);
}

Status UnixHttpServer::bind_unix(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path[0] != '/' || path.size() >= sizeof(addr.sun_path)) {
    return Status::InvalidArgument("SOCKET must be an absolute path of at most " +
                                   std::to_string(sizeof(addr.sun_path) - 1) + " bytes");
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  const std::string dir = path.substr(0, path.rfind('/'));
  if (!dir.empty()) {
    for (size_t pos = 1; pos <= dir.size(); ++pos) {
      if (pos == dir.size() || dir[pos] == '/') {
        std::string p = dir.substr(0, pos);
        if (::mkdir(p.c_str(), 0700) != 0 && errno != EEXIST) {
          return PosixError("create the socket directory " + p, errno);
        }
      }
    }
    struct stat st;
    if (::stat(dir.c_str(), &st) != 0) return PosixError("stat " + dir, errno);
    if (st.st_mode & 022) {
      return Status::FailedPrecondition("the socket directory " + dir +
                                        " is writable by group or others; chmod 0700 it or "
                                        "choose another SOCKET");
    }
  }
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return Status::FailedPrecondition(path +
                                        " exists and is not a socket; remove it or "
                                        "choose another SOCKET");
    }
    // A socket that still accepts belongs to a running serve: taking it over
    // would leave two services on one store. One that refuses is stale.
    UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (probe && ::connect(probe.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
      return Status::FailedPrecondition("another process is serving on " + path +
                                        "; stop it first or choose another SOCKET");
    }
    ::unlink(path.c_str());
  }
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return PosixError("socket", errno);
  mode_t old_umask = ::umask(0177);
  int rc = ::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  int err = errno;
  ::umask(old_umask);
  if (rc != 0) return PosixError("bind " + path, err);
  if (::chmod(path.c_str(), 0600) != 0) return PosixError("chmod " + path, errno);
  if (::listen(fd.get(), SOMAXCONN) != 0) return PosixError("listen " + path, errno);
  svr_sock_ = fd.release();
  return Status::Ok();
}

}  // namespace tenantfs

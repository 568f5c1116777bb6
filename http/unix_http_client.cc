#include "http/unix_http_client.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <optional>
#include <utility>

#include "common/unique_fd.h"
#include "http/chunked.h"
#include "http/text.h"

namespace tenantfs {
namespace {

using Clock = std::chrono::steady_clock;

// Status line plus headers larger than this are not a tenantfs server.
constexpr size_t kMaxHeaderBytes = size_t{64} * 1024;

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Waits until fd is ready for `events` or the deadline passes.
Status wait_ready(int fd, short events, Clock::time_point deadline, const std::string& what) {
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return Status::IOError(what + ": timed out");
    pollfd p{fd, events, 0};
    int n = ::poll(&p, 1, static_cast<int>(std::min<long long>(left.count(), 60000)));
    if (n > 0) return Status::Ok();
    if (n < 0 && errno != EINTR) return PosixError(what + ": poll", errno);
  }
}

// Buffered reader over a non-blocking socket with one overall deadline.
class Reader {
 public:
  Reader(int fd, Clock::time_point deadline, std::string what)
      : fd_(fd), deadline_(deadline), what_(std::move(what)) {}

  // Appends more bytes to the buffer; sets *eof when the peer closed.
  Status fill(bool* eof) {
    *eof = false;
    char chunk[16 * 1024];
    for (;;) {
      ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n > 0) {
        buf_.append(chunk, static_cast<size_t>(n));
        return Status::Ok();
      }
      if (n == 0) {
        *eof = true;
        return Status::Ok();
      }
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) return PosixError(what_ + ": recv", errno);
      TENANTFS_RETURN_IF_ERROR(wait_ready(fd_, POLLIN, deadline_, what_));
    }
  }

  // Reads one CRLF- (or LF-) terminated line, without the terminator.
  Result<std::string> line(size_t limit) {
    for (;;) {
      size_t nl = buf_.find('\n', pos_);
      if (nl != std::string::npos) {
        std::string l = buf_.substr(pos_, nl - pos_);
        pos_ = nl + 1;
        if (!l.empty() && l.back() == '\r') l.pop_back();
        return l;
      }
      if (buf_.size() - pos_ > limit) return Status::IOError(what_ + ": reply line too long");
      bool eof = false;
      TENANTFS_RETURN_IF_ERROR(fill(&eof));
      if (eof) return Status::IOError(what_ + ": connection closed in the middle of the reply");
    }
  }

  // Appends exactly n bytes to out.
  Status exact(size_t n, std::string* out) {
    while (buf_.size() - pos_ < n) {
      bool eof = false;
      TENANTFS_RETURN_IF_ERROR(fill(&eof));
      if (eof) return Status::IOError(what_ + ": connection closed before the body ended");
    }
    out->append(buf_, pos_, n);
    pos_ += n;
    compact();
    return Status::Ok();
  }

  // Appends the data of a chunked body to out, at most `limit` bytes of it.
  Status chunked(size_t limit, std::string* out) {
    ChunkedDecoder decoder(limit);
    for (;;) {
      const ChunkedProgress progress = decoder.feed(std::string_view(buf_).substr(pos_), out);
      pos_ += progress.consumed;
      compact();
      switch (progress.verdict) {
        case ChunkedProgress::Verdict::kComplete:
          return Status::Ok();
        case ChunkedProgress::Verdict::kTooLarge:
          return Status::IOError(what_ + ": reply body too large (" + progress.error + ")");
        case ChunkedProgress::Verdict::kMalformed:
          return Status::IOError(what_ + ": " + progress.error + " in reply");
        case ChunkedProgress::Verdict::kNeedMore:
          break;
      }
      // What is left is an unfinished size or trailer line.
      if (buf_.size() - pos_ > kMaxHeaderBytes) {
        return Status::IOError(what_ + ": reply line too long");
      }
      bool eof = false;
      TENANTFS_RETURN_IF_ERROR(fill(&eof));
      if (eof) return Status::IOError(what_ + ": connection closed before the body ended");
    }
  }

  // Appends everything up to the peer's close to out, at most `limit` bytes.
  Status to_eof(size_t limit, std::string* out) {
    for (;;) {
      out->append(buf_, pos_, std::string::npos);
      pos_ = buf_.size();
      compact();
      if (out->size() > limit) return Status::IOError(what_ + ": reply body too large");
      bool eof = false;
      TENANTFS_RETURN_IF_ERROR(fill(&eof));
      if (eof) {
        out->append(buf_);
        buf_.clear();
        pos_ = 0;
        if (out->size() > limit) return Status::IOError(what_ + ": reply body too large");
        return Status::Ok();
      }
    }
  }

 private:
  // Keeps the buffer from growing with consumed bytes on long bodies.
  void compact() {
    if (pos_ > size_t{64} * 1024 || pos_ == buf_.size()) {
      buf_.erase(0, pos_);
      pos_ = 0;
    }
  }

  int fd_;
  Clock::time_point deadline_;
  std::string what_;
  std::string buf_;
  size_t pos_ = 0;
};

Status send_all(int fd, std::string_view data, Clock::time_point deadline,
                const std::string& what) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n >= 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return PosixError(what + ": send", errno);
    TENANTFS_RETURN_IF_ERROR(wait_ready(fd, POLLOUT, deadline, what));
  }
  return Status::Ok();
}

Result<UniqueFd> connect_unix(const std::string& path, std::chrono::milliseconds timeout) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path) {
    return Status::InvalidArgument("socket path \"" + path + "\" is empty or longer than " +
                                   std::to_string(sizeof addr.sun_path - 1) + " bytes");
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);

  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return PosixError("socket(AF_UNIX)", errno);
  // A blocking AF_UNIX connect only waits when the listen backlog is full;
  // SO_SNDTIMEO bounds that wait (Linux applies it to connect).
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0) {
    return PosixError("setsockopt(SO_SNDTIMEO)", errno);
  }
  int rc;
  do {
    rc = ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    int err = errno;
    Status st = PosixError("connect to " + path, err);
    if (err == ENOENT || err == ECONNREFUSED) return Status::NotFound(st.message());
    if (err == EAGAIN || err == EINPROGRESS) {
      return Status::IOError("connect to " + path + ": timed out (server busy)");
    }
    return st;
  }
  int flags = ::fcntl(fd.get(), F_GETFL);
  if (flags < 0 || ::fcntl(fd.get(), F_SETFL, flags | O_NONBLOCK) != 0) {
    return PosixError("fcntl(O_NONBLOCK)", errno);
  }
  return fd;
}

}  // namespace

UnixHttpClient::UnixHttpClient(std::string socket_path, UnixHttpOptions options)
    : socket_path_(std::move(socket_path)), options_(options) {}

Result<HttpResponse> UnixHttpClient::request(const std::string& method, const std::string& target,
                                             const std::string& body,
                                             const std::string& content_type) const {
  const std::string what = method + " " + target + " on " + socket_path_;
  auto fd = connect_unix(socket_path_, options_.connect_timeout);
  if (!fd.ok()) return fd.status();
  const auto deadline = Clock::now() + options_.request_timeout;

  std::string head = method + " " + target + " HTTP/1.1\r\n";
  head += "Host: tenantfs\r\n";
  head += "User-Agent: tenantfs\r\n";
  head += "Accept: application/json\r\n";
  head += "Connection: close\r\n";
  head += "Content-Type: " + content_type + "\r\n";
  head += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n";
  TENANTFS_RETURN_IF_ERROR(send_all(fd->get(), head, deadline, what));
  TENANTFS_RETURN_IF_ERROR(send_all(fd->get(), body, deadline, what));

  Reader in(fd->get(), deadline, what);
  HttpResponse res;
  auto status_line = in.line(kMaxHeaderBytes);
  if (!status_line.ok()) return status_line.status();
  // "HTTP/1.1 200 OK": version, three digits, optional reason.
  const std::string& sl = *status_line;
  if (sl.size() < 12 || sl.compare(0, 5, "HTTP/") != 0 || sl[8] != ' ' ||
      !std::isdigit(static_cast<unsigned char>(sl[9])) ||
      !std::isdigit(static_cast<unsigned char>(sl[10])) ||
      !std::isdigit(static_cast<unsigned char>(sl[11])) || (sl.size() > 12 && sl[12] != ' ')) {
    return Status::IOError(what + ": not an HTTP reply: \"" + sl.substr(0, 80) + "\"");
  }
  res.status = (sl[9] - '0') * 100 + (sl[10] - '0') * 10 + (sl[11] - '0');
  res.reason = sl.size() > 13 ? std::string(trim_blanks(std::string_view(sl).substr(13))) : "";

  size_t header_bytes = sl.size();
  for (;;) {
    auto l = in.line(kMaxHeaderBytes);
    if (!l.ok()) return l.status();
    if (l->empty()) break;
    header_bytes += l->size();
    if (header_bytes > kMaxHeaderBytes) return Status::IOError(what + ": reply headers too large");
    size_t colon = l->find(':');
    if (colon == std::string::npos || colon == 0) {
      return Status::IOError(what + ": malformed header line \"" + l->substr(0, 80) + "\"");
    }
    res.headers[lower(std::string(trim_blanks(std::string_view(*l).substr(0, colon))))] =
        trim_blanks(std::string_view(*l).substr(colon + 1));
  }

  // Replies that never carry a body, whatever their headers say.
  if (method == "HEAD" || res.status == 204 || res.status == 304 ||
      (res.status >= 100 && res.status < 200)) {
    return res;
  }
  auto te = res.headers.find("transfer-encoding");
  auto cl = res.headers.find("content-length");
  if (te != res.headers.end() && lower(te->second).find("chunked") != std::string::npos) {
    TENANTFS_RETURN_IF_ERROR(in.chunked(options_.max_body_bytes, &res.body));
  } else if (cl != res.headers.end()) {
    const std::optional<size_t> n = parse_size(cl->second, 10);
    if (!n) return Status::IOError(what + ": malformed Content-Length \"" + cl->second + "\"");
    if (*n > options_.max_body_bytes) return Status::IOError(what + ": reply body too large");
    TENANTFS_RETURN_IF_ERROR(in.exact(*n, &res.body));
  } else {
    TENANTFS_RETURN_IF_ERROR(in.to_eof(options_.max_body_bytes, &res.body));
  }
  return res;
}

}  // namespace tenantfs

#include "http/unix_http_client.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <future>
#include <string>
#include <thread>

#include "common/unique_fd.h"
#include "tests/admin/test_support.h"

namespace tenantfs {
namespace {

using testing::TempDir;
using testing::contains;

UniqueFd listen_unix(const std::string& path, bool do_listen = true) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  EXPECT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  if (do_listen) {
    EXPECT_EQ(::listen(fd.get(), 8), 0);
  }
  return fd;
}

// Accepts one connection, reads the whole request (headers and the
// Content-Length body), answers with canned bytes (in two writes a moment
// apart when given where to cut them), and closes unless told to stay
// silent; the request it read is handed back through request().
class RawServer {
 public:
  RawServer(std::string path, std::string reply, bool silent = false,
            size_t cut = std::string::npos)
      : listener_(listen_unix(path)), reply_(std::move(reply)), silent_(silent), cut_(cut) {
    thread_ = std::thread([this] { serve(); });
  }
  ~RawServer() {
    done_ = true;
    ::shutdown(listener_.get(), SHUT_RDWR);
    thread_.join();
  }
  std::string request() { return request_.get_future().get(); }

 private:
  void serve() {
    UniqueFd conn(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!conn) {
      request_.set_value("");
      return;
    }
    std::string req;
    char buf[65536];
    size_t need = std::string::npos;
    while (req.size() < need) {
      ssize_t n = ::recv(conn.get(), buf, sizeof buf, 0);
      if (n <= 0) break;
      req.append(buf, static_cast<size_t>(n));
      size_t end = req.find("\r\n\r\n");
      if (need == std::string::npos && end != std::string::npos) {
        size_t cl = req.find("Content-Length: ");
        size_t len = cl == std::string::npos ? 0 : std::stoul(req.substr(cl + 16));
        need = end + 4 + len;
      }
    }
    request_.set_value(req);
    const size_t first = std::min(cut_, reply_.size());
    ::send(conn.get(), reply_.data(), first, MSG_NOSIGNAL);
    if (first < reply_.size()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      ::send(conn.get(), reply_.data() + first, reply_.size() - first, MSG_NOSIGNAL);
    }
    if (silent_) {
      // Keep the connection open without answering until the test ends.
      while (!done_) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  UniqueFd listener_;
  std::string reply_;
  bool silent_;
  size_t cut_;
  std::atomic<bool> done_{false};
  std::promise<std::string> request_;
  std::thread thread_;
};

class UnixHttpClientTest : public ::testing::Test {
 protected:
  TempDir dir_;
  std::string sock_ = dir_.sub("s.sock");
};

TEST_F(UnixHttpClientTest, PostsToAnHttplibServerAndReadsTheReply) {
  testing::TestUnixServer server(sock_);
  server.Post("/echo", [](const httplib::Request& req, httplib::Response& res) {
    res.status = 201;
    res.set_header("X-Seen-Type", req.get_header_value("Content-Type"));
    res.set_content("got:" + req.body, "text/plain");
  });
  server.start();

  auto res = UnixHttpClient(sock_).post("/echo", R"({"a":1})");
  ASSERT_TRUE(res.ok()) << res.status().ToString();
  EXPECT_EQ(res->status, 201);
  EXPECT_EQ(res->reason, "Created");
  EXPECT_EQ(res->headers["x-seen-type"], "application/json");
  EXPECT_EQ(res->body, R"(got:{"a":1})");
}

TEST_F(UnixHttpClientTest, ReadsAChunkedBodyFromHttplib) {
  testing::TestUnixServer server(sock_);
  server.Post("/chunks", [](const httplib::Request&, httplib::Response& res) {
    auto sent = std::make_shared<int>(0);
    res.set_chunked_content_provider("text/plain", [sent](size_t, httplib::DataSink& sink) {
      if (*sent < 3) {
        std::string part = "part" + std::to_string((*sent)++) + ";";
        sink.write(part.data(), part.size());
      } else {
        sink.done();
      }
      return true;
    });
  });
  server.start();

  auto res = UnixHttpClient(sock_).post("/chunks", "");
  ASSERT_TRUE(res.ok()) << res.status().ToString();
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->headers["transfer-encoding"], "chunked");
  EXPECT_EQ(res->body, "part0;part1;part2;");
}

TEST_F(UnixHttpClientTest, SendsAWellFormedRequest) {
  RawServer server(sock_, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  std::string body(300000, 'b');  // larger than one socket buffer
  auto res = UnixHttpClient(sock_).post("/VolumeDriver.Create", body);
  ASSERT_TRUE(res.ok()) << res.status().ToString();
  std::string req = server.request();
  EXPECT_EQ(req.substr(0, req.find("\r\n")), "POST /VolumeDriver.Create HTTP/1.1");
  EXPECT_TRUE(contains(req, "\r\nContent-Length: 300000\r\n"));
  EXPECT_TRUE(contains(req, "\r\nContent-Type: application/json\r\n"));
  EXPECT_TRUE(contains(req, "\r\nHost: "));
  EXPECT_EQ(req.substr(req.find("\r\n\r\n") + 4), body);
  EXPECT_TRUE(res->body.empty());
}

TEST_F(UnixHttpClientTest, ChunkedBodyWithExtensionsAndTrailers) {
  RawServer server(sock_,
                   "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: y\r\n\r\n");
  auto res = UnixHttpClient(sock_).post("/x", "{}");
  ASSERT_TRUE(res.ok()) << res.status().ToString();
  EXPECT_EQ(res->body, "hello, world");
}

TEST_F(UnixHttpClientTest, ChunkedReplyCutAtAnyByteIsReadWhole) {
  const std::string head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  const std::string reply = head + "5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: y\r\n\r\n";
  for (size_t cut = head.size(); cut < reply.size(); ++cut) {
    ::unlink(sock_.c_str());
    RawServer server(sock_, reply, false, cut);
    auto res = UnixHttpClient(sock_).post("/x", "{}");
    ASSERT_TRUE(res.ok()) << "cut at " << cut << ": " << res.status().ToString();
    EXPECT_EQ(res->body, "hello, world") << "cut at " << cut;
  }
}

TEST_F(UnixHttpClientTest, ChunkedReplyOverTheLimitIsRefused) {
  RawServer server(sock_,
                   "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "200\r\n" +
                       std::string(0x200, 'x') + "\r\n401\r\n");
  UnixHttpOptions options;
  options.max_body_bytes = 1024;
  auto res = UnixHttpClient(sock_, options).post("/x", "{}");
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.status().code(), Code::kIOError);
  EXPECT_TRUE(contains(res.status().message(), "reply body too large")) << res.status().message();
}

TEST_F(UnixHttpClientTest, BodyDelimitedByClose) {
  RawServer server(sock_, "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{\"ok\":true}");
  auto res = UnixHttpClient(sock_).post("/x", "{}");
  ASSERT_TRUE(res.ok()) << res.status().ToString();
  EXPECT_EQ(res->body, "{\"ok\":true}");
}

TEST_F(UnixHttpClientTest, ErrorStatusIsAReplyNotAFailure) {
  RawServer server(sock_,
                   "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 16\r\n\r\n"
                   "{\"Err\":\"boom!\"}\n");
  auto res = UnixHttpClient(sock_).post("/x", "{}");
  ASSERT_TRUE(res.ok()) << res.status().ToString();
  EXPECT_EQ(res->status, 500);
  EXPECT_EQ(res->reason, "Internal Server Error");
  EXPECT_EQ(res->body, "{\"Err\":\"boom!\"}\n");
}

TEST_F(UnixHttpClientTest, MalformedRepliesAreErrors) {
  struct Case {
    const char* reply;
    const char* message;
  };
  const Case cases[] = {
      {"SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP reply"},
      {"HTTP/1.1 2x0 OK\r\n\r\n", "not an HTTP reply"},
      {"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "malformed header line"},
      {"HTTP/1.1 200 OK\r\nContent-Length: -3\r\n\r\n", "malformed Content-Length"},
      {"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort", "closed before the body ended"},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "malformed chunk size"},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n", "chunk terminator"},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n",
       "malformed chunk size \"-1\""},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\n0\r\n\r\n",
       "malformed chunk terminator"},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
       "closed before the body ended"},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n",
       "closed before the body ended"},
      {"HTTP/1.1 200 OK\r\nContent-Length: 5", "closed in the middle of the reply"},
  };
  for (const auto& c : cases) {
    ::unlink(sock_.c_str());
    RawServer server(sock_, c.reply);
    auto res = UnixHttpClient(sock_).post("/x", "{}");
    ASSERT_FALSE(res.ok()) << c.reply;
    EXPECT_EQ(res.status().code(), Code::kIOError);
    EXPECT_TRUE(contains(res.status().message(), c.message))
        << c.reply << " -> " << res.status().message();
  }
}

TEST_F(UnixHttpClientTest, OversizedBodyIsRefused) {
  RawServer server(sock_, "HTTP/1.1 200 OK\r\nContent-Length: 2048\r\n\r\n");
  UnixHttpOptions options;
  options.max_body_bytes = 1024;
  auto res = UnixHttpClient(sock_, options).post("/x", "{}");
  ASSERT_FALSE(res.ok());
  EXPECT_TRUE(contains(res.status().message(), "reply body too large")) << res.status().message();
}

TEST_F(UnixHttpClientTest, SilentServerTimesOut) {
  RawServer server(sock_, "", /*silent=*/true);
  UnixHttpOptions options;
  options.request_timeout = std::chrono::milliseconds(200);
  auto res = UnixHttpClient(sock_, options).post("/x", "{}");
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.status().code(), Code::kIOError);
  EXPECT_TRUE(contains(res.status().message(), "timed out")) << res.status().message();
}

TEST_F(UnixHttpClientTest, NobodyListeningIsNotFound) {
  auto missing = UnixHttpClient(sock_).post("/x", "{}");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), Code::kNotFound);
  EXPECT_TRUE(contains(missing.status().message(), "connect to " + sock_))
      << missing.status().message();

  // A socket file left behind by a dead server refuses connections.
  UniqueFd stale = listen_unix(sock_, /*do_listen=*/false);
  auto refused = UnixHttpClient(sock_).post("/x", "{}");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), Code::kNotFound);
  EXPECT_TRUE(contains(refused.status().message(), "Connection refused"))
      << refused.status().message();
}

TEST_F(UnixHttpClientTest, OverlongSocketPathIsInvalid) {
  auto res = UnixHttpClient("/" + std::string(200, 'p')).post("/x", "{}");
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.status().code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace tenantfs

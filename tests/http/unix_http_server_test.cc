// UnixHttpServer: when a request counts as complete (frame_request), and what
// clients see of the waiting room on a real socket: stalled clients hold no
// worker, unfinished requests are answered 408 at their deadline, requests
// sent in many small writes or chunks are served, an oversized body is
// answered 413 while its client is still sending it, and stop() closes the
// connections that are still waiting.
#include "http/unix_http_server.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "common/unique_fd.h"
#include "tests/support/temp_dir.h"

namespace tenantfs {
namespace {

using namespace std::chrono_literals;
using Verdict = RequestFraming::Verdict;

// The defaults: 16 KiB of head, 64 KiB of body, for every path.
const RequestLimits kLimits;
const size_t kMaxRequestBodyBytes = kLimits.max_body_bytes;
const size_t kMaxRequestHeadBytes = kLimits.max_head_bytes;
const size_t kMaxRequestBytes = kLimits.max_request_bytes("/echo");

const std::string kHead = "POST /echo HTTP/1.1\r\nHost: plugin\r\n";

// Announces a body and sends only its start.
const std::string kMissingBody = kHead + "Content-Length: 100\r\n\r\n{\"Na";

std::string with_body(const std::string& body) {
  return kHead + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

TEST(FrameRequest, ContentLengthBodyIsCompleteOnceAllOfItArrived) {
  const std::string request = with_body(R"({"Name":"v"})");
  for (size_t n = 0; n < request.size(); ++n) {
    EXPECT_EQ(frame_request(request.substr(0, n), kLimits).verdict, Verdict::kIncomplete) << n;
  }
  RequestFraming f = frame_request(request, kLimits);
  EXPECT_EQ(f.verdict, Verdict::kComplete);
  EXPECT_EQ(f.length, request.size());
  // Whatever follows belongs to no request of this connection.
  f = frame_request(request + "POST /again", kLimits);
  EXPECT_EQ(f.verdict, Verdict::kComplete);
  EXPECT_EQ(f.length, request.size());
}

TEST(FrameRequest, HeaderNamesAnyCaseFirstOneCountsValuesTrimmed) {
  const std::string request = kHead + "content-LENGTH: \t2 \r\nContent-Length: 9\r\n\r\n{}";
  RequestFraming f = frame_request(request, kLimits);
  EXPECT_EQ(f.verdict, Verdict::kComplete);
  EXPECT_EQ(f.length, request.size());
}

TEST(FrameRequest, NoContentLengthMeansNoBody) {
  const std::string request = kHead + "\r\n";
  RequestFraming f = frame_request(request + "{}", kLimits);
  EXPECT_EQ(f.verdict, Verdict::kComplete);
  EXPECT_EQ(f.length, request.size());
}

TEST(FrameRequest, OversizedOrUnreadableRequestsAreRefusedAtOnce) {
  // The body is refused from the head alone: nothing of it needs to come.
  EXPECT_EQ(frame_request(
                kHead + "Content-Length: " + std::to_string(kMaxRequestBodyBytes + 1) + "\r\n\r\n",
                kLimits)
                .verdict,
            Verdict::kRefused);
  EXPECT_EQ(frame_request(kHead + "Content-Length: 99999999999999999999\r\n\r\n", kLimits).verdict,
            Verdict::kRefused);
  EXPECT_EQ(frame_request(kHead + "Content-Length: -1\r\n\r\n", kLimits).verdict,
            Verdict::kRefused);
  EXPECT_EQ(frame_request(kHead + "Content-Length: 1e3\r\n\r\n", kLimits).verdict,
            Verdict::kRefused);
  EXPECT_EQ(frame_request(kHead + "Transfer-Encoding: gzip\r\n\r\n", kLimits).verdict,
            Verdict::kRefused);
  // A head that never ends.
  const std::string endless = kHead + "X-Pad: " + std::string(kMaxRequestHeadBytes, 'a');
  EXPECT_EQ(frame_request(endless, kLimits).verdict, Verdict::kRefused);
  EXPECT_EQ(frame_request(endless.substr(0, kMaxRequestHeadBytes), kLimits).verdict,
            Verdict::kIncomplete);
  EXPECT_EQ(frame_request(endless + "\r\n\r\n", kLimits).verdict, Verdict::kRefused);
  // The largest body allowed is complete, not refused.
  const std::string largest = with_body(std::string(kMaxRequestBodyBytes, 'x'));
  EXPECT_EQ(frame_request(largest, kLimits).verdict, Verdict::kComplete);
}

TEST(FrameRequest, ChunkedBodyIsCompleteAtTheZeroChunkAndItsEmptyLine) {
  const std::string request =
      kHead +
      "Transfer-Encoding: chunked\r\n\r\n"
      "5;ext=1\r\n{\"Nam\r\nA\r\ne\":\"v\"}   \r\n0\r\nX-Trailer: t\r\n\r\n";
  for (size_t n = 0; n < request.size(); ++n) {
    EXPECT_EQ(frame_request(request.substr(0, n), kLimits).verdict, Verdict::kIncomplete) << n;
  }
  RequestFraming f = frame_request(request + "extra", kLimits);
  EXPECT_EQ(f.verdict, Verdict::kComplete);
  EXPECT_EQ(f.length, request.size());
}

TEST(FrameRequest, ChunkedBodiesTooLargeOrMalformedAreRefused) {
  const std::string head = kHead + "Transfer-Encoding: Chunked\r\n\r\n";
  EXPECT_EQ(frame_request(head + "zz\r\n", kLimits).verdict, Verdict::kRefused);
  EXPECT_EQ(frame_request(head + "2\r\nabc\r\n", kLimits).verdict,
            Verdict::kRefused);  // no CRLF after
  EXPECT_EQ(frame_request(head + "10001\r\n", kLimits).verdict, Verdict::kRefused);  // 64 KiB + 1
  // Many chunks adding up to more than the body limit.
  std::string chunks = head;
  for (int i = 0; i < 17; ++i) chunks += "1000\r\n" + std::string(0x1000, 'x') + "\r\n";
  EXPECT_EQ(frame_request(chunks, kLimits).verdict, Verdict::kRefused);
  // Framing that grows without end (1-byte chunks) stops at kMaxRequestBytes.
  std::string tiny = head;
  while (tiny.size() < kMaxRequestBytes) tiny += "1\r\nx\r\n";
  EXPECT_EQ(frame_request(tiny, kLimits).verdict, Verdict::kRefused);
}

TEST(FrameRequest, PathsHaveTheirOwnBodyLimitOrNoneAtAll) {
  RequestLimits limits;
  limits.max_body_bytes_for.emplace("/big", 1024 * 1024);
  limits.head_only.emplace("/ignored");
  const std::string big(kMaxRequestBodyBytes * 4, 'x');
  const std::string big_head = "POST /big?q=1 HTTP/1.1\r\nContent-Length: ";
  RequestFraming f =
      frame_request(big_head + std::to_string(big.size()) + "\r\n\r\n" + big, limits);
  EXPECT_EQ(f.verdict, Verdict::kComplete);
  f = frame_request(big_head + std::to_string(1024 * 1024 + 1) + "\r\n\r\n", limits);
  EXPECT_EQ(f.verdict, Verdict::kRefused);
  EXPECT_TRUE(f.too_large);
  EXPECT_EQ(limits.max_any_request_bytes(), kMaxRequestHeadBytes + 1024 * 1024);
  // Other paths keep the default.
  f = frame_request(kHead + "Content-Length: " + std::to_string(big.size()) + "\r\n\r\n", limits);
  EXPECT_EQ(f.verdict, Verdict::kRefused);
  EXPECT_TRUE(f.too_large);
  // A head-only path is complete with its head, whatever body it announces.
  const std::string ignored_head = "POST /ignored HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n";
  f = frame_request(ignored_head + "{\"Resp", limits);
  EXPECT_EQ(f.verdict, Verdict::kComplete);
  EXPECT_TRUE(f.body_ignored);
  EXPECT_EQ(f.length, ignored_head.size());
}

// A UnixHttpServer on a temp socket whose one route echoes the body.
class WaitingRoomTest : public ::testing::Test {
 protected:
  void Start(std::chrono::milliseconds request_timeout) {
    socket_ = dir_.sub("run/test.sock");
    server_.set_request_timeout(request_timeout);
    server_.set_payload_max_length(kMaxRequestBodyBytes);
    server_.set_idle_interval(0, 100000);
    server_.Post("/echo", [](const httplib::Request& req, httplib::Response& res) {
      res.set_content(req.body, "text/plain");
    });
    ASSERT_TRUE(server_.bind_unix(socket_).ok());
    listener_ = std::thread([this] { server_.listen_after_bind(); });
  }

  void TearDown() override {
    if (listener_.joinable()) {
      server_.stop();
      listener_.join();
    }
  }

  UniqueFd Connect() {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, socket_.c_str(), sizeof addr.sun_path - 1);
    EXPECT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0)
        << std::strerror(errno);
    return fd;
  }

  static void SendAll(int fd, const std::string& bytes) {
    size_t sent = 0;
    while (sent < bytes.size()) {
      ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      ASSERT_GT(n, 0) << std::strerror(errno);
      sent += static_cast<size_t>(n);
    }
  }

  // Everything the server sends until it closes the connection. The bound
  // only keeps a broken server from hanging the test.
  static std::string ReadToEnd(int fd) {
    std::string out;
    for (;;) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 30000) != 1) {
        ADD_FAILURE() << "the server neither answered nor closed within 30 s";
        return out;
      }
      char buf[4096];
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) return out;  // EOF, or a reset after the answer
      out.append(buf, static_cast<size_t>(n));
    }
  }

  std::string Echo(const std::string& body) {
    UniqueFd fd = Connect();
    SendAll(fd.get(), "POST /echo HTTP/1.1\r\nContent-Length: " + std::to_string(body.size()) +
                          "\r\n\r\n" + body);
    return ReadToEnd(fd.get());
  }

  static bool EndsWith(const std::string& s, const std::string& end) {
    return s.size() >= end.size() && s.compare(s.size() - end.size(), end.size(), end) == 0;
  }

  testing::TempDir dir_;
  std::string socket_;
  UnixHttpServer server_;
  std::thread listener_;
};

TEST_F(WaitingRoomTest, MoreStalledClientsThanWorkersDoNotDelayOthers) {
  // A deadline far beyond the test: the stalled clients stay for all of it.
  Start(3600s);
  std::vector<UniqueFd> stalled;
  for (size_t i = 0; i < 3 * UnixHttpServer::kWorkerThreads; ++i) {
    stalled.push_back(Connect());
    if (i % 3 == 1) SendAll(stalled.back().get(), kHead);
    if (i % 3 == 2) SendAll(stalled.back().get(), kMissingBody);
  }
  for (int i = 0; i < 10; ++i) {
    std::string reply = Echo("hello " + std::to_string(i));
    EXPECT_EQ(reply.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << reply;
    EXPECT_TRUE(EndsWith(reply, "\r\n\r\nhello " + std::to_string(i))) << reply;
    EXPECT_NE(reply.find("Connection: close\r\n"), std::string::npos) << reply;
  }
  // Still waiting, not closed: none of them got anything.
  for (const auto& fd : stalled) {
    pollfd p{fd.get(), POLLIN, 0};
    EXPECT_EQ(::poll(&p, 1, 0), 0);
  }
}

TEST_F(WaitingRoomTest, UnfinishedRequestsAreAnswered408AtTheirDeadlineSilentOnesClosed) {
  Start(300ms);
  UniqueFd silent = Connect();
  UniqueFd partial = Connect();
  SendAll(partial.get(), kHead);
  UniqueFd short_body = Connect();
  SendAll(short_body.get(), kMissingBody);
  EXPECT_EQ(ReadToEnd(silent.get()), "");
  for (int fd : {partial.get(), short_body.get()}) {
    std::string reply = ReadToEnd(fd);
    EXPECT_EQ(reply.rfind("HTTP/1.1 408 Request Timeout\r\n", 0), 0u) << reply;
    EXPECT_TRUE(EndsWith(reply,
                         "\r\n\r\ntenantfs: the request was not complete within 0.3 s; "
                         "send the whole request at once"))
        << reply;
  }
  EXPECT_EQ(Echo("still here").substr(0, 15), "HTTP/1.1 200 OK");
}

// 1-byte writes cost the sender far more socket buffer than the bytes
// themselves: a server that left them queued until the request was complete
// would never see this one complete.
TEST_F(WaitingRoomTest, RequestSentOneByteAtATimeIsServed) {
  Start(60s);
  const std::string body(2000, 'b');
  const std::string request =
      "POST /echo HTTP/1.1\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  UniqueFd fd = Connect();
  for (char c : request) SendAll(fd.get(), std::string(1, c));
  std::string reply = ReadToEnd(fd.get());
  EXPECT_EQ(reply.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << reply.substr(0, 200);
  EXPECT_TRUE(EndsWith(reply, "\r\n\r\n" + body));
}

TEST_F(WaitingRoomTest, ChunkedRequestIsServed) {
  Start(60s);
  UniqueFd fd = Connect();
  SendAll(fd.get(), "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n");
  SendAll(fd.get(), "4\r\ndefg\r\n0\r\n\r\n");
  std::string reply = ReadToEnd(fd.get());
  EXPECT_EQ(reply.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << reply;
  EXPECT_TRUE(EndsWith(reply, "\r\n\r\nabcdefg")) << reply;
}

TEST_F(WaitingRoomTest, OversizedBodyIsAnswered413WhileItsClientIsStillSendingIt) {
  Start(60s);
  UniqueFd fd = Connect();
  // All of it goes through: the server drains it after answering.
  const std::string body(4 << 20, 'x');
  SendAll(fd.get(), "POST /echo HTTP/1.1\r\nContent-Length: " + std::to_string(body.size()) +
                        "\r\n\r\n" + body);
  std::string reply = ReadToEnd(fd.get());
  EXPECT_EQ(reply.rfind("HTTP/1.1 413 Payload Too Large\r\n", 0), 0u) << reply;
}

TEST_F(WaitingRoomTest, ErrorRepliesTakeTheConfiguredFormat) {
  server_.set_error_reply_format({"application/json", [](const std::string& message) {
                                    return "{\"Err\":\"" + message + "\"}";
                                  }});
  Start(60s);
  UniqueFd fd = Connect();
  SendAll(fd.get(), "POST /echo HTTP/1.1\r\nContent-Length: 70000\r\n\r\n");
  std::string reply = ReadToEnd(fd.get());
  EXPECT_EQ(reply.rfind("HTTP/1.1 413 Payload Too Large\r\n", 0), 0u) << reply;
  EXPECT_NE(reply.find("\r\nContent-Type: application/json\r\n"), std::string::npos) << reply;
  const std::string err = "tenantfs: request body too large for /echo (limit 64 KiB)";
  EXPECT_TRUE(EndsWith(reply, "{\"Err\":\"" + err + "\"}")) << reply;
}

// The chunked decoder as clients meet it: a request cut anywhere is served
// once the rest arrives; a malformed one is answered 400, one over the body
// limit 413, without waiting for the rest. (Trailer fields are framed, but
// httplib 0.11 answers a request carrying them 400.)
TEST_F(WaitingRoomTest, ChunkedRequestCutAtAnyByteIsServed) {
  Start(60s);
  const std::string request =
      "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3;name=value\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n";
  for (size_t split = 1; split < request.size(); ++split) {
    UniqueFd fd = Connect();
    SendAll(fd.get(), request.substr(0, split));
    std::this_thread::sleep_for(1ms);
    SendAll(fd.get(), request.substr(split));
    std::string reply = ReadToEnd(fd.get());
    EXPECT_EQ(reply.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << "cut at " << split << ": " << reply;
    EXPECT_TRUE(EndsWith(reply, "\r\n\r\nabcdefg")) << "cut at " << split << ": " << reply;
  }
}

TEST_F(WaitingRoomTest, MalformedChunkedRequestsAreAnswered400SayingWhatIsWrong) {
  Start(60s);
  const std::string head = "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
  struct Case {
    std::string body;
    std::string message;
  };
  const Case cases[] = {
      {"zz\r\n", "tenantfs: malformed chunk size \"zz\" in the request body"},
      {"-1\r\n", "tenantfs: malformed chunk size \"-1\" in the request body"},
      // httplib alone would serve these as the body "abc".
      {"3\r\nabcX\r\n", "tenantfs: malformed chunk terminator"},
      {"3\r\nabc\n0\r\n\r\n", "tenantfs: malformed chunk terminator"},
  };
  for (const Case& c : cases) {
    UniqueFd fd = Connect();
    SendAll(fd.get(), head + c.body);  // and nothing more: no answer would wait for it
    std::string reply = ReadToEnd(fd.get());
    EXPECT_EQ(reply.rfind("HTTP/1.1 400 Bad Request\r\n", 0), 0u) << c.body << ": " << reply;
    EXPECT_NE(reply.find("\r\n\r\n" + c.message), std::string::npos) << c.body << ": " << reply;
  }
}

TEST_F(WaitingRoomTest, ChunkOverTheBodyLimitIsAnswered413BeforeItsData) {
  Start(60s);
  UniqueFd fd = Connect();
  SendAll(fd.get(), "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n10001\r\n");
  std::string reply = ReadToEnd(fd.get());
  EXPECT_EQ(reply.rfind("HTTP/1.1 413 Payload Too Large\r\n", 0), 0u) << reply;
  EXPECT_TRUE(EndsWith(reply, "tenantfs: request body too large for /echo (limit 64 KiB)"))
      << reply;
}

TEST_F(WaitingRoomTest, StopClosesWaitingConnections) {
  Start(3600s);
  UniqueFd partial = Connect();
  SendAll(partial.get(), kHead);
  UniqueFd silent = Connect();
  EXPECT_EQ(Echo("x").substr(0, 15), "HTTP/1.1 200 OK");
  // Waiting or not yet taken up, both are closed unanswered.
  server_.stop();
  listener_.join();
  EXPECT_EQ(ReadToEnd(partial.get()), "");
  EXPECT_EQ(ReadToEnd(silent.get()), "");
}

}  // namespace
}  // namespace tenantfs

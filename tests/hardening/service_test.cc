// Hostile clients of the socket: oversized and pathological bodies, clients
// that never finish a request, and a flood of Creates. The service must keep
// answering everyone else, and the store must stay exact.
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "http/unix_http_server.h"
#include "serve_harness.h"
#include "store/sqlite_store.h"

namespace tenantfs::hardening {
namespace {

using namespace std::chrono_literals;

class ServiceTest : public ServeHarness {
 protected:
  int Connect() {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, socket_.c_str(), sizeof addr.sun_path - 1);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(fd);
      return -1;
    }
    return fd;
  }
};

TEST_F(ServiceTest, OversizedAndPathologicalBodiesAnswerWithAnErr) {
  // 1 MiB of JSON: refused before parsing.
  std::string big = R"({"Name":"x","Opts":{"tenant":")" + std::string(1 << 20, 'a') + "\"}}";
  Reply r = Post("/VolumeDriver.Create", big);
  EXPECT_EQ(r.status, 413);
  EXPECT_NE(r.err().find("too large"), std::string::npos) << r.body;
  // Within the size limit but deeply nested: refused before parsing.
  std::string nested = std::string(30000, '[') + std::string(30000, ']');
  r = Post("/VolumeDriver.Create", nested);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.err(), "tenantfs: the request body nests deeper than 32 levels");
  // Many options, long keys, long values.
  json opts = {{"tenant", "alice"}};
  for (int i = 0; i < 1000; ++i) opts["k" + std::to_string(i)] = std::string(20, 'v');
  r = Call("Create", json{{"Name", "x"}, {"Opts", opts}});
  EXPECT_NE(r.err().find("unknown option"), std::string::npos) << r.body;
  // Admin API too.
  r = Post("/tenantfs/v1/tenants/add", big);
  EXPECT_EQ(r.status, 413);
  r = Post("/tenantfs/v1/tenants/add", nested);
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_TRUE(ServiceAnswers());
  EXPECT_EQ(Call("List", json::object()).body, json::parse(R"({"Volumes":[]})"));
}

// Copying a parsed nlohmann::json recurses once per level: a 40 KB Create
// whose Opts are 20,000 nested arrays once overflowed a worker's stack. The
// nesting is now bounded before parsing.
TEST_F(ServiceTest, DeeplyNestedOptsGetAnErrAndServeSurvives) {
  std::string nested_obj = R"({"Name":"x","Opts":)" + std::string(20000, '[') +
                           std::string(20000, ']') + "}";
  Reply r = Post("/VolumeDriver.Create", nested_obj);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.err(), "tenantfs: the request body nests deeper than 32 levels") << r.body;
  EXPECT_TRUE(ServiceAnswers());
}

// A request for an unknown path holding invalid UTF-8 (POST /nope%FF) is
// echoed in the 404's Err; encoding it once threw outside httplib's handler
// and ended serve.
TEST_F(ServiceTest, UnknownPathWithInvalidUtf8GetsAnErrAndServeSurvives) {
  Reply r = Post("/nope%FF", "{}");
  EXPECT_EQ(r.status, 404);
  EXPECT_NE(r.err().find("unknown endpoint"), std::string::npos) << r.body;
  r = Post("/VolumeDriver.%C3%28", "{}");
  EXPECT_EQ(r.status, 404);
  EXPECT_TRUE(ServiceAnswers());
}

// Clients that connect and send nothing, stop in the headers, announce a
// body they never send, or drip a byte at a time once held a worker thread
// each (httplib's read timeout applied per read): with more of them than
// workers, Docker got no answer. Now a connection gets a worker only once its
// whole request has arrived; until then it waits without one, for at most
// --request-timeout, and is then closed (with a 408 when it sent anything).
class StalledClientsTest : public ServiceTest {
 protected:
  static constexpr int kRequestTimeoutSeconds = 3;
  void SetUp() override {
    extra_args_ = {"--request-timeout", std::to_string(kRequestTimeoutSeconds)};
    ServiceTest::SetUp();
  }

  // True while serve has neither answered nor closed `fd`.
  static bool Waiting(int fd) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, 0) == 0;
  }

  // What serve sends on `fd` before it closes it; the bound only keeps a
  // broken serve from hanging the test.
  static std::string AnswerOf(int fd) {
    std::string out;
    char buf[4096];
    pollfd p{fd, POLLIN, 0};
    while (::poll(&p, 1, 60000) == 1) {
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) return out;
      out.append(buf, static_cast<size_t>(n));
    }
    ADD_FAILURE() << "serve kept a stalled connection open for 60 s";
    return out;
  }
};

TEST_F(StalledClientsTest, ClientsThatNeverFinishTheirRequestDoNotStopTheService) {
  enum Kind { kSilent, kPartialHeaders, kMissingBody, kDripper };
  struct Stalled {
    int fd;
    Kind kind;
  };
  const size_t kStalled = 2 * UnixHttpServer::kWorkerThreads + 16;
  std::mutex mu;
  std::vector<Stalled> stalled;  // every one opened, guarded by mu
  // Before each well-behaved request: at least kStalled stalled connections
  // that serve has not closed yet, of every kind.
  auto top_up = [&] {
    std::lock_guard lock(mu);
    size_t waiting = 0;
    for (const auto& s : stalled) waiting += Waiting(s.fd);
    for (; waiting < kStalled; ++waiting) {
      int fd = Connect();
      ASSERT_GE(fd, 0);
      const Kind kind = static_cast<Kind>(stalled.size() % 4);
      // A dripper starts with one byte; the dripper thread sends the rest.
      const char* partial = kind == kDripper ? "P" : "";
      if (kind == kPartialHeaders) partial = "POST /VolumeDriver.List HTTP/1.1\r\nHost: x\r\n";
      if (kind == kMissingBody) {
        partial = "POST /VolumeDriver.Create HTTP/1.1\r\nContent-Length: 60000\r\n\r\n{\"Na";
      }
      if (*partial != '\0') {
        ASSERT_GT(::write(fd, partial, std::strlen(partial)), 0);
      }
      stalled.push_back({fd, kind});
    }
  };
  std::atomic<bool> stop{false};
  std::thread dripper([&] {
    const std::string head = "POST /VolumeDriver.List HTTP/1.1\r\nX-Slow: ";
    for (size_t pos = 1; !stop.load(); ++pos) {
      {
        std::lock_guard lock(mu);
        for (const auto& s : stalled) {
          if (s.kind != kDripper || !Waiting(s.fd)) continue;
          char c = pos < head.size() ? head[pos] : 'a';
          (void)!::send(s.fd, &c, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        }
      }
      // The pace of the drip, not a wait for anything.
      for (int i = 0; i < 10 && !stop.load(); ++i) std::this_thread::sleep_for(10ms);
    }
  });

  // A well-behaved client's requests are all answered meanwhile.
  for (int i = 0; i < 5; ++i) {
    top_up();
    Reply r = Post("/VolumeDriver.List", "{}", 30000ms);
    EXPECT_EQ(r.status, 200) << "List " << i;
    EXPECT_EQ(r.body, json::parse(R"({"Volumes":[]})")) << "List " << i;
  }
  top_up();
  Reply c = Call("Create", json{{"Name", "during"}, {"Opts", {{"tenant", "alice"}}}});
  EXPECT_EQ(c.status, 200);
  EXPECT_EQ(c.err(), "") << c.body;
  top_up();
  Reply list = Call("List", json::object());
  ASSERT_EQ(list.status, 200);
  ASSERT_EQ(list.body["Volumes"].size(), 1u) << list.body;
  EXPECT_EQ(list.body["Volumes"][0]["Name"], "during");
  stop = true;
  dripper.join();

  // serve closes every stalled connection once its deadline has passed;
  // those that sent part of a request are told why.
  const std::string err = "tenantfs: the request was not complete within " +
                          std::to_string(kRequestTimeoutSeconds) +
                          " s; send the whole request at once";
  for (const auto& s : stalled) {
    const std::string answer = AnswerOf(s.fd);
    if (s.kind == kSilent) {
      EXPECT_EQ(answer, "");
    } else {
      EXPECT_EQ(answer.rfind("HTTP/1.1 408 Request Timeout\r\n", 0), 0u) << answer;
      const size_t body = answer.find("\r\n\r\n");
      ASSERT_NE(body, std::string::npos) << answer;
      const json expected = {{"Err", err}};
      EXPECT_EQ(json::parse(answer.substr(body + 4), nullptr, false), expected) << answer;
    }
    ::close(s.fd);
  }
  EXPECT_TRUE(ServiceAnswers());
}

TEST_F(ServiceTest, TenThousandCreatesLeaveTheServiceAnsweringAndListExact) {
  constexpr int kVolumes = 10000;
  constexpr int kThreads = 8;
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = t; i < kVolumes; i += kThreads) {
        Reply r = Call("Create", json{{"Name", "flood-" + std::to_string(i)},
                                      {"Opts", {{"tenant", i % 2 ? "alice" : "bob"}}}});
        if (r.status != 200 || !r.err().empty()) ++errors;
      }
    });
  }
  // Others are still served during the flood.
  std::this_thread::sleep_for(500ms);
  EXPECT_TRUE(ServiceAnswers());
  for (auto& th : threads) th.join();
  EXPECT_EQ(errors.load(), 0);

  Reply list = Post("/VolumeDriver.List", "{}", 120000ms);
  ASSERT_EQ(list.status, 200);
  std::set<std::string> names;
  for (const auto& v : list.body["Volumes"]) names.insert(v["Name"].get<std::string>());
  EXPECT_EQ(names.size(), static_cast<size_t>(kVolumes));
  EXPECT_EQ(list.body["Volumes"].size(), static_cast<size_t>(kVolumes));  // no duplicates
  for (int i = 0; i < kVolumes; ++i) {
    if (names.count("flood-" + std::to_string(i)) == 0) {
      ADD_FAILURE() << "flood-" << i << " missing from List";
      break;
    }
  }
  // Each has its tenant-owned directory, and the binding says the same.
  for (int i : {0, 1, 4999, 9998, 9999}) {
    const std::string name = "flood-" + std::to_string(i);
    struct stat st {};
    ASSERT_EQ(::stat(backing(name).c_str(), &st), 0) << name;
    EXPECT_EQ(st.st_uid, i % 2 ? kAliceUid : kBobUid) << name;
    Reply g = Call("Get", json{{"Name", name}});
    EXPECT_EQ(g.body["Volume"]["Status"]["tenant"], i % 2 ? "alice" : "bob");
  }
  // The same names again are no-ops (Docker re-creates).
  EXPECT_EQ(Call("Create", json{{"Name", "flood-7"}, {"Opts", {{"tenant", "alice"}}}}).err(), "");
  EXPECT_TRUE(ServiceAnswers());
}

}  // namespace
}  // namespace tenantfs::hardening

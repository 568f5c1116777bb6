// Hostile clients of the socket: oversized and pathological bodies, clients
// that never finish a request, and a flood of Creates. The service must keep
// answering everyone else, and the store must stay exact.
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <set>
#include <thread>
#include <vector>

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

// BUG (plugin/plugin_server.cc, register_plugin_routes): the read timeout
// (10 s) applies to each read, not to the whole request, and there are 32
// worker threads. 40 clients that send one header byte per second each hold
// a worker for ever: in 200 s only 1 of 5 List requests of a well-behaved
// client was answered and a Create got no answer at all. Bound the whole
// request (headers and body) in time, or per client. Enable once fixed.
TEST_F(ServiceTest, DISABLED_ClientsThatNeverFinishTheirRequestDoNotStopTheService) {
  // More stalled clients than worker threads: silent ones, ones that stop in
  // the headers, ones that announce a body and never send it, and ones that
  // drip a byte at a time.
  std::vector<int> fds;
  for (int i = 0; i < 48; ++i) {
    int fd = Connect();
    ASSERT_GE(fd, 0);
    const char* partial = "";
    switch (i % 3) {
      case 0:
        partial = "";
        break;
      case 1:
        partial = "POST /VolumeDriver.List HTTP/1.1\r\nHost: x\r\n";
        break;
      case 2:
        partial = "POST /VolumeDriver.Create HTTP/1.1\r\nContent-Length: 60000\r\n\r\n{\"Na";
        break;
    }
    if (*partial != '\0') {
      ASSERT_GT(::write(fd, partial, std::strlen(partial)), 0);
    }
    fds.push_back(fd);
  }
  std::atomic<bool> stop{false};
  std::thread dripper([&] {
    std::vector<int> drip;
    for (int i = 0; i < 40; ++i) drip.push_back(Connect());
    const std::string req = "POST /VolumeDriver.List HTTP/1.1\r\nX-Slow: ";
    for (size_t pos = 0; !stop.load(); ++pos) {
      for (int fd : drip) {
        if (fd < 0) continue;
        char c = pos < req.size() ? req[pos] : 'a';
        (void)!::send(fd, &c, 1, MSG_NOSIGNAL);
      }
      for (int i = 0; i < 10 && !stop.load(); ++i) std::this_thread::sleep_for(100ms);
    }
    for (int fd : drip) {
      if (fd >= 0) ::close(fd);
    }
  });
  // Requests of a well-behaved client keep being answered meanwhile.
  int answered = 0;
  for (int i = 0; i < 5; ++i) {
    Reply r = Post("/VolumeDriver.List", "{}", 30000ms);
    answered += r.status == 200 && r.body == json::parse(R"({"Volumes":[]})");
    std::this_thread::sleep_for(1s);
  }
  Reply c = Call("Create", json{{"Name", "during"}, {"Opts", {{"tenant", "alice"}}}});
  stop = true;
  dripper.join();
  for (int fd : fds) ::close(fd);
  EXPECT_EQ(answered, 5);
  EXPECT_EQ(c.status, 200);
  EXPECT_EQ(c.err(), "") << c.body;
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

// Helpers shared by the admin unit tests: a temp directory, an in-process
// httplib server on a unix socket, and a real SqliteStore in a temp dir.
#pragma once

#include <httplib.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

#include "store/sqlite_store.h"
#include "tests/support/temp_dir.h"

namespace tenantfs::testing {

// True when `needle` occurs in `haystack`: message checks read as sentences.
inline bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// httplib::Server bound to a unix socket and served on its own thread until
// destruction. httplib 0.11.4 binds only TCP, but listen_after_bind() serves
// whatever socket svr_sock_ holds.
class TestUnixServer : public httplib::Server {
 public:
  explicit TestUnixServer(std::string path) : path_(std::move(path)) {}
  ~TestUnixServer() override { shutdown(); }

  void start() {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw std::runtime_error("socket failed");
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path_.c_str(), sizeof addr.sun_path - 1);
    ::unlink(path_.c_str());
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 64) != 0) {
      ::close(fd);
      throw std::runtime_error("bind/listen " + path_ + " failed");
    }
    svr_sock_ = fd;
    thread_ = std::thread([this] { listen_after_bind(); });
  }

  void shutdown() {
    if (thread_.joinable()) {
      // listen_after_bind may not have started its loop yet; stop() only
      // works once it runs, so retry until the thread ends.
      while (!is_running() && svr_sock_ != INVALID_SOCKET) std::this_thread::yield();
      stop();
      thread_.join();
    }
    ::unlink(path_.c_str());
  }

  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::thread thread_;
};

inline std::unique_ptr<SqliteStore> open_store(const TempDir& dir) {
  auto store = SqliteStore::Open(dir.sub("state/tenantfs.db"));
  if (!store.ok()) throw std::runtime_error("SqliteStore::Open: " + store.status().ToString());
  return std::move(store).value();
}

}  // namespace tenantfs::testing

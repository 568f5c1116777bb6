// TempDir: a fresh 0700 directory under /tmp, removed with its content when
// the object goes. Shared by the test suites that need scratch space.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

namespace tenantfs::testing {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/tenantfs-test.XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // The path of `name` inside the directory.
  std::string sub(const std::string& name) const { return path_ + "/" + name; }

  // Writes `text` to `name` (replacing it) and returns its path.
  std::string write(const std::string& name, const std::string& text) const {
    std::string p = sub(name);
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << text;
    return p;
  }

 private:
  std::string path_;
};

}  // namespace tenantfs::testing

// libFuzzer target: sequences of VolumeDriver and admin requests against the
// real handlers, the real SqliteStore (on a temp directory), the real tenant
// directory and real backing directories, with a launcher that never forks.
//
// Input: one request per line, "<endpoint> <body>". The endpoint is a
// VolumeDriver method ("Create", "Mount", ...), "Activate", an admin endpoint
// ("tenants/add"), or a raw path starting with '/'. "@ROOT@" in a body stands
// for the fuzzer's temp directory, so seeds can name paths in the allowed
// root (@ROOT@/allowed).
//
// After every request the store, DATA_DIR and List must agree; after the
// whole input, releasing every reference and removing every volume must
// succeed and leave DATA_DIR empty. State is reset between inputs, so a
// crash reproduces from its input alone.
#include <dirent.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <string_view>

#include "admin/admin_api.h"
#include "plugin/mapper_launcher.h"
#include "admin/tenant_directory.h"
#include "plugin/volume_driver.h"
#include "store/sqlite_store.h"
#include "tests/support/driver_stack.h"
#include "tests/support/recording_launcher.h"

namespace {

using json = nlohmann::json;

[[noreturn]] void violated(const char* what, const std::string& detail) {
  std::fprintf(stderr, "invariant violated: %s: %s\n", what, detail.c_str());
  std::abort();
}
void check(bool ok, const char* what, const std::string& detail) {
  if (!ok) violated(what, detail);
}

// Starts succeed with a fake pid, except for volumes named "fail*", whose
// mapper "fails to start" the way a real one reports it.
class FakeLauncher final : public tenantfs::MapperLauncher {
 public:
  tenantfs::Result<tenantfs::StartedMapper> start(const tenantfs::VolumeBinding& b, int,
                                                  const std::string&) override {
    if (b.name.rfind("fail", 0) == 0) return tenantfs::Status::IOError("mapper error: fuzz");
    std::lock_guard<std::mutex> lock(mu_);
    live_.insert(b.name);
    return tenantfs::StartedMapper{next_pid_++, {}};
  }
  void stop(pid_t, const std::string& mountpoint) override {
    std::lock_guard<std::mutex> lock(mu_);
    live_.erase(mountpoint.substr(mountpoint.rfind('/') + 1));
  }
  void stop_strays(const std::string&, const std::string&) override {}
  size_t live() {
    std::lock_guard<std::mutex> lock(mu_);
    return live_.size();
  }

 private:
  std::mutex mu_;
  std::set<std::string> live_;
  pid_t next_pid_ = 4000000;  // beyond pid_max: never a real process
};

uid_t tenant_uid() { return ::geteuid() == 0 ? 2001 : ::geteuid(); }
gid_t tenant_gid() { return ::geteuid() == 0 ? 2001 : ::getegid(); }

struct World {
  std::string root;
  std::unique_ptr<tenantfs::SqliteStore> store;
  std::unique_ptr<tenantfs::TenantDirectory> tenants;
  FakeLauncher launcher;
  tenantfs::testing::RecordedExits exits;  // fake mappers never exit
  std::unique_ptr<tenantfs::testing::DriverStack> stack;
  tenantfs::VolumeDriver* driver = nullptr;  // stack's

  World() {
    char tmpl[] = "/tmp/tenantfs-fuzz.XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) violated("setup", "mkdtemp");
    root = tmpl;
    // One log line per request would drown the fuzzer's own output.
    spdlog::set_level(spdlog::level::off);
    // Removed at exit; a crash leaves it behind, like any crash artefact.
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(instance().root, ec);
    });
    auto s = tenantfs::SqliteStore::Open(root + "/state/tenantfs.db");
    if (!s.ok()) violated("setup", s.status().message());
    store = std::move(*s);
    tenants = std::make_unique<tenantfs::TenantDirectory>(*store, "", "");
    for (const char* d : {"/allowed", "/allowed/data", "/allowed/data/sub", "/outside"}) {
      ::mkdir((root + d).c_str(), 0755);
    }
    if (::symlink((root + "/outside").c_str(), (root + "/allowed/link").c_str()) != 0) {
      violated("setup", "symlink");
    }
    add_base_tenants();
    tenantfs::DriverConfig cfg{root + "/data", {root + "/allowed"}, "", {root + "/state"}};
    auto d = tenantfs::testing::DriverStack::Open(*store, *tenants, launcher, exits,
                                                  root + "/mnt", cfg);
    if (!d.ok()) violated("setup", d.status().message());
    stack = std::move(*d);
    driver = stack->driver.get();
  }

  static World& instance() {
    static World* w = new World();  // never destroyed: libFuzzer exits from anywhere
    return *w;
  }

  void add_base_tenants() {
    tenantfs::Tenant alice{"alice", {tenant_uid(), tenant_gid(), {}}, 0};
    tenantfs::Tenant bob{"bob", {tenant_uid() + 1, tenant_gid() + 1, {}}, 0};
    if (::geteuid() != 0) bob = tenantfs::Tenant{"bob", {tenant_uid(), tenant_gid(), {}}, 0};
    (void)store->add_tenant(alice);
    (void)store->add_tenant(bob);
  }

  std::set<std::string> data_entries() {
    std::set<std::string> out;
    DIR* d = ::opendir((root + "/data").c_str());
    if (d == nullptr) return out;
    while (struct dirent* e = ::readdir(d)) {
      if (e->d_name[0] != '.') out.insert(e->d_name);
    }
    ::closedir(d);
    return out;
  }

  // Store, DATA_DIR and List agree; reference counts are positive.
  void check_consistent(const std::string& after) {
    auto volumes = store->list_volumes();
    check(volumes.ok(), "list_volumes", after);
    std::set<std::string> bound;
    std::set<std::string> internal;
    for (const auto& b : *volumes) {
      bound.insert(b.name);
      if (b.external) continue;
      internal.insert(b.name);
      struct stat st;
      check(::lstat((root + "/data/" + b.name).c_str(), &st) == 0 && S_ISDIR(st.st_mode),
            "bound volume without its backing directory", b.name + " after " + after);
      check(st.st_uid == b.identity.uid, "backing directory not owned by the tenant", b.name);
      check((st.st_mode & 0002) == 0, "world-writable backing directory", b.name);
    }
    check(data_entries() == internal, "DATA_DIR holds unbound data", after);
    json list = driver->handle("/VolumeDriver.List", "").body;
    std::set<std::string> listed;
    for (const auto& v : list.at("Volumes")) listed.insert(v.at("Name").get<std::string>());
    check(listed == bound, "List differs from the store", after);
    auto referenced = store->referenced_volumes();
    check(referenced.ok(), "referenced_volumes", after);
    for (const auto& r : *referenced) {
      check(bound.count(r.volume) == 1, "references of an unbound volume", r.volume);
      for (const auto& [id, n] : r.ids) check(n > 0, "non-positive reference count", r.volume);
    }
  }

  // Every reference released through Unmount, every volume removed through
  // Remove, extra tenants dropped: the next input starts from scratch.
  void reset() {
    auto volumes = store->list_volumes();
    check(volumes.ok(), "list_volumes", "reset");
    for (const auto& b : *volumes) {
      auto refs = store->refs(b.name);
      check(refs.ok(), "refs", b.name);
      for (const auto& [id, n] : refs->ids) {
        for (int64_t i = 0; i < n; ++i) {
          json req = {{"Name", b.name}, {"ID", id}};
          auto r = driver->handle("/VolumeDriver.Unmount", req.dump());
          check(r.error.empty(), "Unmount of a held reference failed", r.error);
        }
      }
      auto r = driver->handle("/VolumeDriver.Remove", json{{"Name", b.name}}.dump());
      check(r.error.empty(), "Remove after releasing every reference failed", r.error);
    }
    check(data_entries().empty(), "DATA_DIR not empty after removing every volume", "reset");
    check(launcher.live() == 0, "a mapper still runs after every Unmount", "reset");
    auto tenants_now = store->list_tenants();
    if (tenants_now.ok()) {
      for (const auto& t : *tenants_now) {
        if (t.name != "alice" && t.name != "bob") (void)store->remove_tenant(t.name);
      }
    }
    add_base_tenants();
    std::error_code ec;
    std::filesystem::remove_all(root + "/data/.orphaned", ec);
    std::filesystem::remove_all(root + "/data/.trash", ec);
  }
};

std::string endpoint_of(std::string_view token, bool* admin) {
  *admin = false;
  if (!token.empty() && token[0] == '/') return std::string(token);
  if (token == "Activate") return "/Plugin.Activate";
  if (token.find('/') != std::string_view::npos) {
    *admin = true;
    return std::string(token);
  }
  return "/VolumeDriver." + std::string(token);
}

void check_reply(const World& w, const std::string& endpoint, const std::string& body,
                 const tenantfs::DriverReply& r) {
  check(r.body.is_object(), "reply is not an object", endpoint + " " + body);
  // What the HTTP layer does with it: must never throw.
  (void)r.body.dump(-1, ' ', false, json::error_handler_t::replace);
  auto err = r.body.find("Err");
  if (err != r.body.end()) {
    check(err->is_string() && !err->get<std::string>().empty(), "empty Err", endpoint);
    check(err->get<std::string>() == r.error, "Err differs from the logged error", endpoint);
    check(r.code != tenantfs::Code::kOk, "Err with an OK code", endpoint);
    check(r.code != tenantfs::Code::kInternal, "internal error", endpoint + " " + body + ": " +
                                                                     r.error);
    return;
  }
  check(r.error.empty(), "error logged without an Err", endpoint);
  if (endpoint == "/VolumeDriver.Mount") {
    json req = json::parse(body, nullptr, false);
    const std::string name = req.at("Name").get<std::string>();
    check(r.body.value("Mountpoint", "") == w.root + "/mnt/" + name, "Mountpoint outside MOUNT_ROOT",
          r.body.dump());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  World& w = World::instance();
  const std::string input(reinterpret_cast<const char*>(data), size);
  size_t pos = 0;
  int requests = 0;
  while (pos < input.size() && requests < 64) {
    size_t eol = input.find('\n', pos);
    if (eol == std::string::npos) eol = input.size();
    std::string line = input.substr(pos, eol - pos);
    pos = eol + 1;
    size_t sp = line.find(' ');
    std::string token = line.substr(0, sp);
    std::string body = sp == std::string::npos ? "" : line.substr(sp + 1);
    for (size_t at = body.find("@ROOT@"); at != std::string::npos; at = body.find("@ROOT@", at)) {
      body.replace(at, 6, w.root);
      at += w.root.size();
    }
    ++requests;
    bool admin = false;
    const std::string endpoint = endpoint_of(token, &admin);
    if (admin) {
      tenantfs::AdminDeps deps{w.store.get(), w.tenants.get()};
      tenantfs::AdminReply r = tenantfs::handle_admin_request(deps, endpoint, body);
      check(r.body.is_object(), "admin reply is not an object", endpoint);
      const std::string shown = r.body.dump(-1, ' ', false, json::error_handler_t::replace);
      check(r.status != 500, "admin internal error", endpoint + " " + body + ": " + shown);
    } else {
      tenantfs::DriverReply r = w.driver->handle(endpoint, body);
      check_reply(w, endpoint, body, r);
    }
    w.check_consistent(token + " " + body);
  }
  w.reset();
  return 0;
}

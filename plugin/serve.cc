#include "plugin/serve.h"

#include <pthread.h>
#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <memory>
#include <thread>

#include "admin/admin_api.h"
#include "plugin/authz.h"
#include "plugin/child_reaper.h"
#include "plugin/mapper_launcher.h"
#include "plugin/mount_table.h"
#include "plugin/plugin_routes.h"
#include "admin/tenant_directory.h"
#include "plugin/volume_driver.h"
#include "plugin/volume_locks.h"
#include "plugin/volume_mounts.h"
#include "store/sqlite_store.h"

namespace tenantfs {
namespace {

// Docker gives Mount two minutes; a mapper normally reports within a second.
constexpr auto kMapperReadyTimeout = std::chrono::seconds(30);

bool is_normalised_absolute(const std::string& p) {
  if (p.empty() || p[0] != '/') return false;
  if (p == "/") return true;
  size_t pos = 1;
  while (pos <= p.size()) {
    size_t next = p.find('/', pos);
    if (next == std::string::npos) next = p.size();
    std::string comp = p.substr(pos, next - pos);
    if (comp.empty() || comp == "." || comp == "..") return false;
    pos = next + 1;
  }
  return true;
}

// Signals are taken synchronously by one thread: SIGCHLD reaps every child
// (serve may be PID 1), SIGTERM and SIGINT stop the server.
sigset_t handled_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  return set;
}

}  // namespace

Result<std::vector<std::string>> parse_allowed_roots(const std::string& text) {
  std::vector<std::string> roots;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t next = text.find(':', pos);
    if (next == std::string::npos) next = text.size();
    std::string root = text.substr(pos, next - pos);
    pos = next + 1;
    if (root.empty()) continue;
    while (root.size() > 1 && root.back() == '/') root.pop_back();
    if (!is_normalised_absolute(root)) {
      return Status::InvalidArgument("ALLOWED_ROOTS: \"" + root +
                                     "\" must be an absolute path without '.', '..' or empty "
                                     "components");
    }
    roots.push_back(root);
  }
  return roots;
}

void register_serve_command(CLI::App& app) {
  auto config = std::make_shared<ServeConfig>();
  CLI::App* sub = app.add_subcommand("serve", "Serve the Docker VolumeDriver API (as root)");
  sub->add_option("--socket", config->socket, "Unix socket to listen on")
      ->envname("SOCKET")
      ->capture_default_str();
  sub->add_option("--state-dir", config->state_dir, "Directory of the store (tenantfs.db)")
      ->envname("STATE_DIR")
      ->capture_default_str();
  sub->add_option("--data-dir", config->data_dir, "Directory of plugin-created volumes")
      ->envname("DATA_DIR")
      ->capture_default_str();
  sub->add_option("--mount-root", config->mount_root, "Directory of the volumes' mountpoints")
      ->envname("MOUNT_ROOT")
      ->capture_default_str();
  sub->add_option("--allowed-roots", config->allowed_roots,
                  "Colon-separated directories that path= volumes may use")
      ->envname("ALLOWED_ROOTS");
  sub->add_option("--passwd-file", config->passwd_file, "passwd file of host tenants")
      ->envname("PASSWD_FILE");
  sub->add_option("--group-file", config->group_file, "group file of host tenants")
      ->envname("GROUP_FILE");
  sub->add_option("--default-tenant", config->default_tenant,
                  "Tenant of volumes created without -o tenant=")
      ->envname("DEFAULT_TENANT");
  sub->add_option("--log-level", config->log_level, "trace|debug|info|warn|error")
      ->envname("LOG_LEVEL")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}))
      ->capture_default_str();
  sub->add_option("--request-timeout", config->request_timeout_s,
                  "Seconds a client has to send a whole request (and to read the reply)")
      ->envname("REQUEST_TIMEOUT")
      ->check(CLI::Range(1, 3600))
      ->capture_default_str();
  sub->add_option("--authz-anonymous", config->authz_anonymous,
                  "Authorization: deny or allow tenantfs volumes to Docker "
                  "requests without a "
                  "TLS client certificate")
      ->envname("AUTHZ_ANONYMOUS")
      ->check(CLI::IsMember({"deny", "allow"}))
      ->capture_default_str();
  sub->callback([config] {
    int rc = run_serve(*config);
    if (rc != 0) throw CLI::RuntimeError(rc);
  });
}

int run_serve(const ServeConfig& config) {
  spdlog::set_default_logger(spdlog::stderr_color_mt("tenantfs"));
  spdlog::set_level(spdlog::level::from_str(config.log_level));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ serve: %v");

  auto roots = parse_allowed_roots(config.allowed_roots);
  if (!roots.ok()) {
    spdlog::error("{}", roots.status().message());
    return 2;
  }

  // Before any thread exists: every thread inherits the mask, so only the
  // signal thread below ever receives these.
  ::signal(SIGPIPE, SIG_IGN);  // a client that hangs up must not kill serve
  sigset_t signals = handled_signals();
  ::pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto store = SqliteStore::Open(config.state_dir + "/tenantfs.db");
  if (!store.ok()) {
    spdlog::error("open the store: {}", store.status().message());
    return 1;
  }
  UnixHttpServer server;
  server.set_request_timeout(std::chrono::seconds(config.request_timeout_s));
  Status bound = server.bind_unix(config.socket);
  if (!bound.ok()) {
    spdlog::error("{}", bound.message());
    return 1;
  }

  std::atomic<bool> stop_requested{false};
  std::atomic<bool> done{false};
  ChildReaper::instance().start_reaping_all();
  std::thread signal_thread([&] {
    while (!done.load()) {
      const struct timespec tick = {0, 200L * 1000 * 1000};
      siginfo_t info;
      int sig = ::sigtimedwait(&signals, &info, &tick);
      if (sig == SIGTERM || sig == SIGINT) {
        spdlog::info("received {}; shutting down", strsignal(sig));
        stop_requested = true;
      }
      // Reap even without SIGCHLD: signals of several exits coalesce.
      ChildReaper::instance().reap_all();
      if (stop_requested.load() && server.is_running()) server.stop();
    }
  });
  auto finish = [&](int rc) {
    done = true;
    signal_thread.join();
    return rc;
  };

  TenantDirectory tenants(**store, config.passwd_file, config.group_file);
  ProcessMapperLauncher launcher("/proc/self/exe", kMapperReadyTimeout);
  KernelMountTable mount_table;
  VolumeLocks volume_locks;
  // The reaper reports mapper exits: it reaps all children since above.
  auto mounts = VolumeMounts::Open(config.mount_root, volume_locks, launcher, mount_table,
                                   ChildReaper::instance());
  if (!mounts.ok()) {
    spdlog::error("{}", mounts.status().message());
    return finish(1);
  }
  const std::string socket_dir = config.socket.substr(0, config.socket.rfind('/'));
  DriverConfig dc{config.data_dir, *roots, config.default_tenant, {config.state_dir, socket_dir}};
  auto driver = VolumeDriver::Open(**store, tenants, volume_locks, **mounts, dc);
  if (!driver.ok()) {
    spdlog::error("{}", driver.status().message());
    return finish(1);
  }
  if (Status st = (*driver)->recover(); !st.ok()) {
    spdlog::error("recovery: {}", st.message());
    return finish(1);
  }
  (*mounts)->start_supervision();

  Authorizer authorizer(**store,
                        AuthzConfig{config.authz_anonymous == "allow", config.default_tenant});
  register_plugin_routes(server, **driver, authorizer);
  register_admin_routes(server, AdminDeps{store->get(), &tenants});
  spdlog::info("listening on {} (data {}, mounts {}, {} allowed root(s))", config.socket,
               config.data_dir, config.mount_root, roots->size());
  if (!stop_requested.load()) server.listen_after_bind();
  size_t left = (*mounts)->live_count();
  ::unlink(config.socket.c_str());
  spdlog::info("stopped; {} mapper(s) keep serving their mounts", left);
  return finish(0);
}

}  // namespace tenantfs

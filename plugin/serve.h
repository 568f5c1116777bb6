// `tenantfs serve`: the long-lived root process answering Docker's
// VolumeDriver API (and the admin API) on a unix socket.
//
// Every setting is a flag and an environment variable (they become
// `docker plugin set` settings). Flags win over the environment; an empty
// variable counts as unset.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"

namespace CLI {
class App;
}

namespace tenantfs {

struct ServeConfig {
  std::string socket = "/run/docker/plugins/tenantfs.sock";  // SOCKET
  std::string state_dir = "/var/lib/tenantfs/state";         // STATE_DIR (tenantfs.db)
  std::string data_dir = "/var/lib/tenantfs/volumes";        // DATA_DIR
  std::string mount_root = "/var/lib/tenantfs/mounts";       // MOUNT_ROOT
  std::string allowed_roots;                                 // ALLOWED_ROOTS, colon-separated
  std::string passwd_file;                                   // PASSWD_FILE
  std::string group_file;                                    // GROUP_FILE
  std::string default_tenant;                                // DEFAULT_TENANT
  std::string log_level = "info";                            // LOG_LEVEL
  int request_timeout_s = 10;                                // REQUEST_TIMEOUT
  std::string authz_anonymous = "deny";                      // AUTHZ_ANONYMOUS: deny|allow
};

// Splits and checks ALLOWED_ROOTS: each entry absolute and normalised (a
// trailing '/' is dropped); empty entries are ignored.
Result<std::vector<std::string>> parse_allowed_roots(const std::string& text);

// Adds the `serve` subcommand to the tenantfs CLI.
void register_serve_command(CLI::App& app);

// Runs the service until SIGTERM or SIGINT. Returns the process exit code.
int run_serve(const ServeConfig& config);

}  // namespace tenantfs

// The admin CLI: `tenantfs tenant add|ls|rm` and `tenantfs volume ls`,
// clients of the admin API (admin_api.h) of a running `tenantfs serve`.
//
// Every command takes --socket PATH and --json. The socket is, in order:
// --socket; $TENANTFS_SOCKET; the socket of the enabled managed plugin named
// tenantfs[:tag] (or .../tenantfs[:tag]) that `docker plugin ls` reports,
// /run/docker/plugins/<id>/tenantfs.sock (skipped silently when docker is
// missing or fails; DOCKER_HOST is honoured since docker inherits the
// environment); else kDefaultAdminSocket.
//
// Output: human tables or messages on stdout, or with --json the server's
// JSON reply. A failure prints "tenantfs: <message>" on stderr and exits 1;
// the message is the server's Err when there is one. Argument errors are
// reported by CLI11 with its own exit codes.
//
// Thread-safety: commands run on the calling thread; nothing is shared.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace tenantfs {

inline constexpr const char* kDefaultAdminSocket = "/run/docker/plugins/tenantfs.sock";
inline constexpr const char* kSocketEnvVar = "TENANTFS_SOCKET";

// What the commands touch outside themselves; tests substitute each part.
struct AdminCliContext {
  std::ostream* out = nullptr;  // both must be set before a command runs
  std::ostream* err = nullptr;
  // The value of an environment variable, nullopt when unset.
  std::function<std::optional<std::string>(const std::string&)> getenv;
  // Standard output of `docker plugin ls --no-trunc --format
  // '{{.ID}} {{.Name}} {{.Enabled}}'`, nullopt when docker is absent, fails
  // or takes too long.
  std::function<std::optional<std::string>()> docker_plugin_ls;

  // std::cout/std::cerr, the process environment and the real docker CLI.
  static std::shared_ptr<AdminCliContext> Default();
};

// Registers the `tenant` and `volume` subcommands on app. The context must
// stay valid until the app is done parsing.
void register_admin_commands(CLI::App& app);
void register_admin_commands(CLI::App& app, const std::shared_ptr<AdminCliContext>& ctx);

// The socket of the enabled tenantfs plugin in `docker plugin ls` output
// ("<full id> <name> <enabled>" per line), or nullopt when there is none.
// Lines that do not fit (short or non-hex ids, other plugins, disabled ones)
// are ignored.
std::optional<std::string> plugin_socket_from_docker_ls(std::string_view output);

// Applies the resolution order above; `flag` is the --socket value ("" when
// not given).
std::string resolve_admin_socket(const std::string& flag, const AdminCliContext& ctx);

}  // namespace tenantfs

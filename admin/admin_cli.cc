#include "admin/admin_cli.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <limits>
#include <nlohmann/json.hpp>
#include <vector>

#include "common/status.h"
#include "common/unique_fd.h"
#include "http/request_json.h"
#include "http/unix_http_client.h"
#include "admin/admin_api.h"
#include "admin/plugin_name.h"

extern char** environ;

namespace tenantfs {
namespace {

using nlohmann::json;

// Bounds how long a wedged dockerd can hold up an admin command.
constexpr std::chrono::seconds kDockerTimeout{10};
constexpr size_t kMaxDockerOutput = size_t{1024} * 1024;

// Runs `docker plugin ls` with the caller's environment (DOCKER_HOST etc.).
std::optional<std::string> run_docker_plugin_ls() {
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) return std::nullopt;
  UniqueFd rd(pipefd[0]), wr(pipefd[1]);

  posix_spawn_file_actions_t actions;
  if (posix_spawn_file_actions_init(&actions) != 0) return std::nullopt;
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, wr.get(), STDOUT_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  std::string a0 = "docker", a1 = "plugin", a2 = "ls", a3 = "--no-trunc", a4 = "--format",
              a5 = "{{.ID}} {{.Name}} {{.Enabled}}";
  char* argv[] = {a0.data(), a1.data(), a2.data(), a3.data(), a4.data(), a5.data(), nullptr};
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, "docker", &actions, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  wr.reset();
  if (rc != 0) return std::nullopt;  // docker is not installed

  std::string out;
  bool complete = false;
  const auto deadline = std::chrono::steady_clock::now() + kDockerTimeout;
  while (out.size() <= kMaxDockerOutput) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{rd.get(), POLLIN, 0};
    int n = ::poll(&p, 1, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    char buf[4096];
    ssize_t got = ::read(rd.get(), buf, sizeof buf);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      complete = got == 0;
      break;
    }
    out.append(buf, static_cast<size_t>(got));
  }
  if (!complete) ::kill(pid, SIGKILL);
  int wstatus = 0;
  while (::waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
  }
  if (!complete || !WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) return std::nullopt;
  return out;
}

bool is_hex_id(std::string_view s) {
  return s.size() >= 12 && s.size() <= 128 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

std::string join_ids(const json& arr) {
  std::string s;
  if (!arr.is_array()) return "-";
  for (const auto& g : arr) s += (s.empty() ? "" : ",") + g.dump();
  return s.empty() ? "-" : s;
}

std::string join_names(const json& arr) {
  std::string s;
  if (!arr.is_array()) return "-";
  for (const auto& n : arr) {
    if (n.is_string()) s += (s.empty() ? "" : ",") + n.get<std::string>();
  }
  return s.empty() ? "-" : s;
}

std::string field_text(const json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return "-";
  if (it->is_string()) {
    std::string s = it->get<std::string>();
    return s.empty() ? "-" : s;
  }
  return it->dump();
}

void print_table(std::ostream& out, const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& r : rows) {
    width.resize(std::max(width.size(), r.size()));
    for (size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  }
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line += std::string(width[i] - r[i].size() + 3, ' ');
    }
    out << line << "\n";
  }
}

// Validates a numeric id given on the command line; root is left for the
// server to refuse, so the message about it is the same everywhere.
std::string check_id(const std::string& v) {
  if (v.empty() || v.size() > 10 ||
      !std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
      std::stoull(v) > std::numeric_limits<uint32_t>::max() - 1ULL) {
    return "\"" + v + "\" is not a numeric id (0 to 4294967294)";
  }
  return {};
}

// Options every admin command shares, plus the context to run in.
struct CommandBase {
  std::shared_ptr<AdminCliContext> ctx;
  std::string socket;
  bool json_output = false;

  void add_common(CLI::App* cmd) {
    cmd->add_option("--socket", socket,
                    "unix socket of tenantfs serve (default: $TENANTFS_SOCKET, the enabled "
                    "tenantfs plugin, then /run/docker/plugins/tenantfs.sock)")
        ->type_name("PATH");
    cmd->add_flag("--json", json_output, "print the server's JSON reply");
  }

  [[noreturn]] void fail(const std::string& message) const {
    *ctx->err << "tenantfs: " << message << std::endl;
    throw CLI::RuntimeError(1);
  }

  // Calls the admin endpoint; returns the reply object, or prints the error
  // and exits 1.
  json call(const std::string& endpoint, const json& request) const {
    const std::string path = resolve_admin_socket(socket, *ctx);
    UnixHttpOptions options;
    options.request_timeout = std::chrono::seconds(60);
    UnixHttpClient client(path, options);
    // Arguments that are not UTF-8 are replaced (json_text); the server then
    // refuses the name it sees, with an Err that shows it.
    auto res = client.post(std::string(kAdminPrefix) + endpoint, json_text(request));
    if (!res.ok()) {
      const Status& st = res.status();
      std::string msg = "cannot reach tenantfs: " + st.message();
      if (st.code() == Code::kNotFound) {
        msg +=
            "\nis the tenantfs plugin enabled? run `sudo make install`, or pass --socket / "
            "set " +
            std::string(kSocketEnvVar);
      } else if (st.message().find("Permission denied") != std::string::npos) {
        msg += "\nthe socket is root's: run the command with sudo";
      }
      fail(msg);
    }
    json body = json::parse(res->body, nullptr, false);
    if (res->status >= 400) {
      if (body.is_object() && body.contains("Err") && body["Err"].is_string()) {
        fail(body["Err"].get<std::string>());
      }
      if (res->status == 404) {
        fail("tenantfs at " + path +
             " does not serve the admin API (HTTP 404): is it older "
             "than this CLI, or another service?");
      }
      fail("tenantfs at " + path + " answered HTTP " + std::to_string(res->status) + " " +
           res->reason);
    }
    if (!body.is_object()) fail("tenantfs at " + path + " sent a reply that is not JSON");
    return body;
  }

  void print_json(const json& body) const { *ctx->out << body.dump(2) << std::endl; }
};

struct TenantAdd : CommandBase {
  std::string name, uid, gid;
  std::vector<std::string> groups;

  void run() const {
    json req{{"name", name},
             {"uid", std::stoull(uid)},
             {"gid", std::stoull(gid)},
             {"groups", json::array()}};
    for (const auto& g : groups) req["groups"].push_back(std::stoull(g));
    json body = call("tenants/add", req);
    if (json_output) return print_json(body);
    const json& t = body.value("tenant", json::object());
    *ctx->out << "tenant " << field_text(t, "name") << " added: uid " << field_text(t, "uid")
              << ", gid " << field_text(t, "gid") << ", groups "
              << join_ids(t.value("groups", json())) << std::endl;
  }
};

struct TenantList : CommandBase {
  void run() const {
    json body = call("tenants/list", json::object());
    if (json_output) return print_json(body);
    std::vector<std::vector<std::string>> rows{{"NAME", "UID", "GID", "GROUPS", "SOURCE", "USERS"}};
    for (const auto& t : body.value("tenants", json::array())) {
      rows.push_back({field_text(t, "name"), field_text(t, "uid"), field_text(t, "gid"),
                      join_ids(t.value("groups", json())), field_text(t, "source"),
                      join_names(t.value("users", json()))});
    }
    print_table(*ctx->out, rows);
  }
};

struct TenantRemove : CommandBase {
  std::string name;

  void run() const {
    json body = call("tenants/remove", json{{"name", name}});
    if (json_output) return print_json(body);
    *ctx->out << "tenant " << name << " removed" << std::endl;
  }
};

// tenant allow|deny NAME --user USER
struct TenantGrant : CommandBase {
  bool allow = true;
  std::string name, user;

  void run() const {
    json body =
        call(allow ? "tenants/allow" : "tenants/deny", json{{"name", name}, {"user", user}});
    if (json_output) return print_json(body);
    *ctx->out << "Docker user " << user << (allow ? " may now use" : " may no longer use")
              << " tenant " << name << std::endl;
  }
};

// admin allow|deny USER, admin ls
struct AdminRole : CommandBase {
  bool allow = true;
  std::string user;

  void run() const {
    json body = call(allow ? "admins/allow" : "admins/deny", json{{"user", user}});
    if (json_output) return print_json(body);
    *ctx->out << "Docker user " << user << (allow ? " is now" : " is no longer")
              << " a tenantfs admin" << std::endl;
  }
};

struct AdminList : CommandBase {
  void run() const {
    json body = call("admins/list", json::object());
    if (json_output) return print_json(body);
    std::vector<std::vector<std::string>> rows{{"ADMIN"}};
    for (const auto& u : body.value("admins", json::array())) {
      if (u.is_string()) rows.push_back({u.get<std::string>()});
    }
    print_table(*ctx->out, rows);
  }
};

struct VolumeList : CommandBase {
  void run() const {
    json body = call("volumes/list", json::object());
    if (json_output) return print_json(body);
    std::vector<std::vector<std::string>> rows{
        {"VOLUME", "TENANT", "UID", "GID", "MODE", "CACHE", "MOUNTS", "PATH"}};
    for (const auto& v : body.value("volumes", json::array())) {
      rows.push_back({field_text(v, "name"), field_text(v, "tenant"), field_text(v, "uid"),
                      field_text(v, "gid"), field_text(v, "mode"), field_text(v, "cache"),
                      field_text(v, "mounts"), field_text(v, "path")});
    }
    print_table(*ctx->out, rows);
  }
};

const CLI::Validator kNumericId([](std::string& v) { return check_id(v); }, "");

}  // namespace

std::shared_ptr<AdminCliContext> AdminCliContext::Default() {
  auto ctx = std::make_shared<AdminCliContext>();
  ctx->out = &std::cout;
  ctx->err = &std::cerr;
  ctx->getenv = [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
  ctx->docker_plugin_ls = run_docker_plugin_ls;
  return ctx;
}

std::optional<std::string> plugin_socket_from_docker_ls(std::string_view output) {
  while (!output.empty()) {
    size_t nl = output.find('\n');
    std::string_view line = output.substr(0, nl);
    output.remove_prefix(nl == std::string_view::npos ? output.size() : nl + 1);
    std::vector<std::string_view> f;
    while (!line.empty()) {
      size_t start = line.find_first_not_of(" \t\r");
      if (start == std::string_view::npos) break;
      line.remove_prefix(start);
      size_t end = line.find_first_of(" \t\r");
      f.push_back(line.substr(0, end));
      line.remove_prefix(end == std::string_view::npos ? line.size() : end);
    }
    if (f.size() != 3 || !is_hex_id(f[0]) || !is_tenantfs_plugin_name(f[1]) || f[2] != "true") {
      continue;
    }
    return "/run/docker/plugins/" + std::string(f[0]) + "/tenantfs.sock";
  }
  return std::nullopt;
}

std::string resolve_admin_socket(const std::string& flag, const AdminCliContext& ctx) {
  if (!flag.empty()) return flag;
  if (ctx.getenv) {
    if (auto env = ctx.getenv(kSocketEnvVar); env && !env->empty()) return *env;
  }
  if (ctx.docker_plugin_ls) {
    if (auto out = ctx.docker_plugin_ls()) {
      if (auto sock = plugin_socket_from_docker_ls(*out)) return *sock;
    }
  }
  return kDefaultAdminSocket;
}

void register_admin_commands(CLI::App& app) {
  register_admin_commands(app, AdminCliContext::Default());
}

void register_admin_commands(CLI::App& app, const std::shared_ptr<AdminCliContext>& ctx) {
  CLI::App* tenant = app.add_subcommand("tenant", "manage tenants (identities volumes act as)");
  tenant->require_subcommand(1);

  auto add = std::make_shared<TenantAdd>();
  add->ctx = ctx;
  CLI::App* add_cmd = tenant->add_subcommand("add", "add a tenant to the registry");
  add_cmd->add_option("NAME", add->name, "tenant name: [a-z_][a-z0-9_.-]{0,31}")
      ->required()
      ->type_name("");
  add_cmd->add_option("--uid", add->uid, "uid files reach the storage as (not 0)")
      ->required()
      ->check(kNumericId)
      ->type_name("UID");
  add_cmd->add_option("--gid", add->gid, "primary gid (not 0)")
      ->required()
      ->check(kNumericId)
      ->type_name("GID");
  add_cmd->add_option("--groups", add->groups, "supplementary gids, comma-separated")
      ->delimiter(',')
      ->check(kNumericId)
      ->type_name("GID,...");
  add->add_common(add_cmd);
  add_cmd->callback([add] { add->run(); });

  auto ls = std::make_shared<TenantList>();
  ls->ctx = ctx;
  CLI::App* ls_cmd = tenant->add_subcommand("ls", "list tenants of the registry and passwd file");
  ls_cmd->alias("list");
  ls->add_common(ls_cmd);
  ls_cmd->callback([ls] { ls->run(); });

  auto rm = std::make_shared<TenantRemove>();
  rm->ctx = ctx;
  CLI::App* rm_cmd = tenant->add_subcommand("rm", "remove a tenant that has no volumes");
  rm_cmd->alias("remove");
  rm_cmd->add_option("NAME", rm->name, "tenant name")->required()->type_name("");
  rm->add_common(rm_cmd);
  rm_cmd->callback([rm] { rm->run(); });

  for (bool allow : {true, false}) {
    auto grant = std::make_shared<TenantGrant>();
    grant->ctx = ctx;
    grant->allow = allow;
    CLI::App* cmd = tenant->add_subcommand(allow ? "allow" : "deny",
                                           allow ? "allow a Docker user (TLS certificate "
                                                   "CN) to create, mount and remove the "
                                                   "tenant's volumes"
                                                 : "take that permission back");
    cmd->add_option("NAME", grant->name, "tenant name")->required()->type_name("");
    cmd->add_option("--user", grant->user, "Docker user: the CN of the client's TLS certificate")
        ->required()
        ->type_name("CN");
    grant->add_common(cmd);
    cmd->callback([grant] { grant->run(); });
  }

  CLI::App* admin = app.add_subcommand("admin",
                                       "manage tenantfs admins (Docker users who "
                                       "may use every tenant and the plugin)");
  admin->require_subcommand(1);
  for (bool allow : {true, false}) {
    auto role = std::make_shared<AdminRole>();
    role->ctx = ctx;
    role->allow = allow;
    CLI::App* cmd = admin->add_subcommand(
        allow ? "allow" : "deny", allow ? "make a Docker user an admin" : "take the role back");
    cmd->add_option("USER", role->user, "Docker user: the CN of the client's TLS certificate")
        ->required()
        ->type_name("");
    role->add_common(cmd);
    cmd->callback([role] { role->run(); });
  }
  auto als = std::make_shared<AdminList>();
  als->ctx = ctx;
  CLI::App* als_cmd = admin->add_subcommand("ls", "list the admins");
  als_cmd->alias("list");
  als->add_common(als_cmd);
  als_cmd->callback([als] { als->run(); });

  CLI::App* volume = app.add_subcommand("volume", "inspect tenantfs volumes");
  volume->require_subcommand(1);
  auto vls = std::make_shared<VolumeList>();
  vls->ctx = ctx;
  CLI::App* vls_cmd = volume->add_subcommand(
      "ls", "list volumes: tenant, storage uid/gid, mode, cache, mounts, path");
  vls_cmd->alias("list");
  vls->add_common(vls_cmd);
  vls_cmd->callback([vls] { vls->run(); });
}

}  // namespace tenantfs

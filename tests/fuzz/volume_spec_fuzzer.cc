// libFuzzer target: volume names, Create options, tenant names, ALLOWED_ROOTS
// and passwd/group text, i.e. everything a Docker user or the host hands the
// service as text before any filesystem access.
//
// Input: the first line is a volume name, every further line "key=value" (a
// Create option); the whole input is also given to every other parser. Beyond
// "no crash", each accepted value must satisfy what the rest of tenantfs
// relies on; a violation aborts with a message naming it.
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "plugin/serve.h"
#include "admin/tenant_directory.h"
#include "plugin/volume_spec.h"

namespace {

[[noreturn]] void violated(const char* what, std::string_view detail) {
  std::fprintf(stderr, "invariant violated: %s: \"%.*s\"\n", what, static_cast<int>(detail.size()),
               detail.data());
  std::abort();
}

void check(bool ok, const char* what, std::string_view detail) {
  if (!ok) violated(what, detail);
}

bool has_dot_component(std::string_view path) {
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t next = path.find('/', pos);
    if (next == std::string_view::npos) next = path.size();
    std::string_view comp = path.substr(pos, next - pos);
    if (comp == "." || comp == "..") return true;
    pos = next + 1;
  }
  return false;
}

void check_volume_name(std::string_view name) {
  if (!tenantfs::validate_volume_name(name).ok()) return;
  // A valid name is exactly one harmless path component under DATA_DIR.
  check(!name.empty() && name.size() <= tenantfs::kMaxVolumeNameLength, "name length", name);
  check(name.find('/') == std::string_view::npos, "name holds '/'", name);
  check(name.find('\0') == std::string_view::npos, "name holds NUL", name);
  check(name != "." && name != "..", "name is a dot entry", name);
  check(name[0] != '.' && name[0] != '-', "name starts with '.' or '-'", name);
}

void check_options(const std::string& volume, const std::map<std::string, std::string>& opts) {
  auto r = tenantfs::parse_create_options(volume, opts);
  if (!r.ok()) {
    const std::string& msg = r.status().message();
    check(r.status().code() == tenantfs::Code::kInvalidArgument, "error code", msg);
    check(msg.rfind("tenantfs: volume \"", 0) == 0, "Err names the volume", msg);
    // Values other than tenant names are never quoted back: they could be
    // secrets pasted by mistake.
    for (const auto& [k, v] : opts) {
      // Only long alphanumeric values: anything else can be pieced together
      // from the message's own text and a key shown with '?' for bytes.
      bool alnum = v.size() >= 12;
      for (char c : v) alnum = alnum && std::isalnum(static_cast<unsigned char>(c));
      if (k == "tenant" || !alnum) continue;
      if (volume.find(v) != std::string::npos) continue;
      bool in_key = false;
      for (const auto& [k2, v2] : opts) in_key = in_key || k2.find(v) != std::string::npos;
      if (in_key) continue;
      // Text that the message holds whatever the value is (the list of
      // valid options, say) does not count.
      std::map<std::string, std::string> other = opts;
      other[k] = std::string(v.size(), '\x01');
      auto r2 = tenantfs::parse_create_options(volume, other);
      if (!r2.ok() && r2.status().message().find(v) != std::string::npos) continue;
      check(msg.find(v) == std::string::npos, "Err quotes an option value", msg);
    }
    return;
  }
  const tenantfs::CreateOptions& o = *r;
  for (const auto& [k, v] : opts) {
    bool known = false;
    for (const char* n : tenantfs::kCreateOptionNames) known = known || k == n;
    check(known, "unknown option accepted", k);
  }
  if (o.mode) {
    check((*o.mode & 0002) == 0, "world-writable mode accepted", opts.at("mode"));
    check((*o.mode & 07000) == 0, "setuid/setgid/sticky mode accepted", opts.at("mode"));
  }
  if (o.uid) check(*o.uid != static_cast<uid_t>(-1), "uid -1 accepted", opts.at("uid"));
  if (o.gid) check(*o.gid != static_cast<gid_t>(-1), "gid -1 accepted", opts.at("gid"));
  if (o.tenant) check(!o.tenant->empty(), "empty tenant accepted", "");
  if (o.path) {
    const std::string& p = *o.path;
    check(p.size() >= 2 && p[0] == '/', "relative path accepted", p);
    check(p.back() != '/', "trailing '/' accepted", p);
    check(p.find("//") == std::string::npos, "empty component accepted", p);
    check(p.find('\0') == std::string::npos, "NUL in path accepted", p);
    check(!has_dot_component(p), "'.' or '..' component accepted", p);
    check(!o.mode, "mode with path accepted", p);
  }
  if (o.cache) check(*o.cache == "strict" || *o.cache == "exclusive", "cache value", *o.cache);
}

void check_allowed_roots(const std::string& text) {
  auto roots = tenantfs::parse_allowed_roots(text);
  if (!roots.ok()) return;
  for (const std::string& r : *roots) {
    check(!r.empty() && r[0] == '/', "relative allowed root accepted", r);
    check(r.find("//") == std::string::npos, "empty component in allowed root", r);
    check(!has_dot_component(r), "dot component in allowed root", r);
    check(r.find(':') == std::string::npos, "':' kept in an allowed root", r);
  }
}

void check_identity_files(std::string_view text) {
  std::vector<std::string> warnings;
  auto users = tenantfs::parse_passwd(text, "fuzz-passwd", &warnings);
  auto groups = tenantfs::parse_group(text, "fuzz-group", &warnings);
  auto tenants = tenantfs::tenants_from_files(users, groups, &warnings);
  for (const tenantfs::Tenant& t : tenants) {
    // A tenant is never root, whatever the files say.
    check(t.identity.uid != 0 && t.identity.gid != 0, "root tenant from passwd", t.name);
    for (gid_t g : t.identity.groups) check(g != 0, "gid 0 as a supplementary group", t.name);
    check(tenantfs::validate_tenant_name(t.name).ok(), "invalid tenant name from passwd", t.name);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  size_t eol = input.find('\n');
  const std::string name = input.substr(0, eol);
  std::map<std::string, std::string> opts;
  while (eol != std::string::npos) {
    size_t start = eol + 1;
    eol = input.find('\n', start);
    std::string line = input.substr(start, eol == std::string::npos ? std::string::npos
                                                                     : eol - start);
    size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    opts[line.substr(0, eq)] = line.substr(eq + 1);
  }
  check_volume_name(name);
  check_volume_name(input);
  check_options(name, opts);
  check_allowed_roots(input);
  (void)tenantfs::validate_tenant_name(name);
  check_identity_files(input);
  return 0;
}

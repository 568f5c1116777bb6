#include "plugin/volume_spec.h"

#include <charconv>
#include <limits>

#include "common/identity.h"
#include "common/reserved_ids.h"

namespace tenantfs {
namespace {

std::string volume_prefix(std::string_view volume) {
  return "tenantfs: volume \"" + std::string(volume) + "\": ";
}

std::string valid_option_list() {
  std::string list;
  for (const char* name : kCreateOptionNames) {
    if (!list.empty()) list += ", ";
    list += name;
  }
  return list;
}

// Decimal id in [0, 2^32-2]: (uid_t)-1 means "no change" to chown and can
// never be a real owner.
std::optional<uint32_t> parse_id(const std::string& text) {
  if (text.empty() || text.size() > 10) return std::nullopt;
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  if (v >= std::numeric_limits<uint32_t>::max()) return std::nullopt;
  return static_cast<uint32_t>(v);
}

std::optional<uint32_t> parse_octal_mode(const std::string& text) {
  if (text.empty() || text.size() > 5) return std::nullopt;
  uint32_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v, 8);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  if (v > 07777) return std::nullopt;
  return v;
}

// Absolute, no empty, "." or ".." component, no trailing slash: the path
// names exactly one directory without any help from lexical resolution.
bool is_normalised_absolute(const std::string& path) {
  if (path.size() < 2 || path[0] != '/' || path.back() == '/') return false;
  if (path.find('\0') != std::string::npos) return false;
  size_t pos = 1;
  while (pos <= path.size()) {
    size_t next = path.find('/', pos);
    if (next == std::string::npos) next = path.size();
    std::string_view comp(path.data() + pos, next - pos);
    if (comp.empty() || comp == "." || comp == "..") return false;
    pos = next + 1;
  }
  return true;
}

}  // namespace

Result<CreateOptions> parse_create_options(std::string_view volume,
                                           const std::map<std::string, std::string>& opts) {
  const std::string pre = volume_prefix(volume);
  CreateOptions out;
  for (const auto& option : opts) {
    // Named references rather than a structured binding: clang before 16
    // (the fuzz build) cannot capture structured bindings in a lambda.
    const std::string& key = option.first;
    const std::string& value = option.second;
    auto bad = [&](const std::string& why) {
      return Status::InvalidArgument(pre + "option \"" + key + "\" " + why);
    };
    if (key == "tenant") {
      if (value.empty()) return bad("is empty; give the tenant's name, e.g. -o tenant=alice");
      out.tenant = value;
    } else if (key == "uid" || key == "gid") {
      auto id = parse_id(value);
      if (!id) {
        return bad("must be a decimal id between 0 and 4294967294, e.g. -o " + key + "=1000");
      }
      if (!is_presentable_id(*id)) {
        return bad("must not be " + std::to_string(kMapperProcessUid) +
                   ", which is reserved for tenantfs's own processes; pick another id");
      }
      if (key == "uid") {
        out.uid = static_cast<uid_t>(*id);
      } else {
        out.gid = static_cast<gid_t>(*id);
      }
    } else if (key == "mode") {
      auto mode = parse_octal_mode(value);
      if (!mode) return bad("must be an octal mode such as 0700 or 0750");
      if (*mode & 0002) {
        return bad(
            "must not make the volume world-writable; use a mode such as 0770 and "
            "give access through the tenant's groups");
      }
      if (*mode & 07000) {
        return bad("must not set the setuid, setgid or sticky bit; use a mode such as 0750");
      }
      out.mode = *mode;
    } else if (key == "path") {
      if (!is_normalised_absolute(value)) {
        return bad(
            "must be an absolute path without '.', '..', empty components or a "
            "trailing '/', naming a directory inside an allowed root");
      }
      out.path = value;
    } else if (key == "cache") {
      if (value != "strict" && value != "exclusive") {
        return bad("must be \"strict\" or \"exclusive\"");
      }
      out.cache = value;
    } else if (key == "readonly") {
      if (value == "true" || value == "1") {
        out.readonly = true;
      } else if (value == "false" || value == "0") {
        out.readonly = false;
      } else {
        return bad("must be \"true\" or \"false\"");
      }
    } else {
      std::string shown;
      for (char c : key.substr(0, 64)) shown += (c >= 0x20 && c < 0x7f && c != '"') ? c : '?';
      return Status::InvalidArgument(pre + "unknown option \"" + shown +
                                     "\"; valid options are: " + valid_option_list());
    }
  }
  if (out.path && out.mode) {
    return Status::InvalidArgument(
        pre +
        "option \"mode\" cannot be used with \"path\": existing data is never chmoded; "
        "drop -o mode or set the permissions on the directory yourself");
  }
  return out;
}

}  // namespace tenantfs

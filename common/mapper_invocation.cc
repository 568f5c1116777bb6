#include "common/mapper_invocation.h"

#include <charconv>
#include <cstdint>

namespace tenantfs {
namespace {

// The one name table of CacheMode.
struct CacheModeName {
  CacheMode mode;
  const char* name;
};
constexpr CacheModeName kCacheModes[] = {{CacheMode::kStrict, "strict"},
                                         {CacheMode::kExclusive, "exclusive"}};

template <typename T>
std::optional<T> parse_number(std::string_view text) {
  T v{};
  if (text.empty() || text.front() == '+' || text.front() == '-') return std::nullopt;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return v;
}

std::string join_ids(const std::vector<gid_t>& ids) {
  std::string s;
  for (gid_t id : ids) s += (s.empty() ? "" : ",") + std::to_string(id);
  return s;
}

std::optional<std::vector<gid_t>> parse_ids(std::string_view text) {
  std::vector<gid_t> ids;
  while (!text.empty()) {
    const size_t comma = text.find(',');
    std::optional<uint32_t> id = parse_number<uint32_t>(text.substr(0, comma));
    if (!id) return std::nullopt;
    ids.push_back(*id);
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
    if (text.empty()) return std::nullopt;  // "1,"
  }
  return ids;
}

Status bad_value(const char* flag, std::string_view value, const char* want) {
  std::string shown;
  for (char c : value.substr(0, 64)) shown += (c >= 0x20 && c < 0x7f && c != '"') ? c : '?';
  return Status::InvalidArgument(std::string(flag) + " \"" + shown + "\": expected " + want);
}

}  // namespace

const char* cache_mode_name(CacheMode mode) {
  for (const auto& m : kCacheModes) {
    if (m.mode == mode) return m.name;
  }
  return "unknown";
}

std::optional<CacheMode> parse_cache_mode(std::string_view name) {
  for (const auto& m : kCacheModes) {
    if (name == m.name) return m.mode;
  }
  return std::nullopt;
}

std::vector<std::string> cache_mode_names() {
  std::vector<std::string> names;
  for (const auto& m : kCacheModes) names.emplace_back(m.name);
  return names;
}

std::string MapperInvocation::volume_name() const {
  if (!name.empty()) return name;
  std::string b = backing;
  while (b.size() > 1 && b.back() == '/') b.pop_back();
  const auto slash = b.rfind('/');
  std::string base = slash == std::string::npos ? b : b.substr(slash + 1);
  return base.empty() || base == "/" ? std::string("volume") : base;
}

std::vector<std::string> MapperInvocation::to_argv() const {
  namespace f = mapper_flag;
  std::vector<std::string> a = {kMapperCommand,
                                f::kBacking,
                                backing,
                                f::kMountpoint,
                                mountpoint,
                                f::kUid,
                                std::to_string(identity.uid),
                                f::kGid,
                                std::to_string(identity.gid),
                                f::kCache,
                                cache_mode_name(cache),
                                f::kRequestLoop,
                                request_loop,
                                f::kMaxFds,
                                std::to_string(max_fds),
                                f::kPassthrough,
                                passthrough};
  if (!name.empty()) a.insert(a.end(), {f::kName, name});
  if (!identity.groups.empty()) a.insert(a.end(), {f::kGroups, join_ids(identity.groups)});
  if (present_uid) a.insert(a.end(), {f::kPresentUid, std::to_string(*present_uid)});
  if (present_gid) a.insert(a.end(), {f::kPresentGid, std::to_string(*present_gid)});
  if (readonly) a.push_back(f::kReadonly);
  if (ready_fd >= 0) a.insert(a.end(), {f::kReadyFd, std::to_string(ready_fd)});
  return a;
}

Result<MapperInvocation> MapperInvocation::from_argv(const std::vector<std::string>& args) {
  namespace f = mapper_flag;
  if (args.empty() || args[0] != kMapperCommand) {
    return Status::InvalidArgument("not a `tenantfs mapper` command line");
  }
  MapperInvocation inv;
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& flag = args[i];
    if (flag == f::kReadonly) {
      inv.readonly = true;
      continue;
    }
    if (i + 1 >= args.size()) return Status::InvalidArgument(flag + " needs a value");
    const std::string& value = args[++i];
    if (flag == f::kBacking) {
      inv.backing = value;
    } else if (flag == f::kMountpoint) {
      inv.mountpoint = value;
    } else if (flag == f::kName) {
      inv.name = value;
    } else if (flag == f::kUid || flag == f::kGid || flag == f::kPresentUid ||
               flag == f::kPresentGid) {
      std::optional<uint32_t> id = parse_number<uint32_t>(value);
      if (!id) return bad_value(flag.c_str(), value, "a decimal id");
      if (flag == f::kUid) inv.identity.uid = *id;
      if (flag == f::kGid) inv.identity.gid = *id;
      if (flag == f::kPresentUid) inv.present_uid = *id;
      if (flag == f::kPresentGid) inv.present_gid = *id;
    } else if (flag == f::kGroups) {
      std::optional<std::vector<gid_t>> ids = parse_ids(value);
      if (!ids) return bad_value(f::kGroups, value, "comma-separated decimal gids");
      inv.identity.groups = std::move(*ids);
    } else if (flag == f::kCache) {
      std::optional<CacheMode> mode = parse_cache_mode(value);
      if (!mode) {
        std::string names;
        for (const std::string& n : cache_mode_names()) names += (names.empty() ? "" : " or ") + n;
        return bad_value(f::kCache, value, names.c_str());
      }
      inv.cache = *mode;
    } else if (flag == f::kReadyFd) {
      std::optional<int> fd = parse_number<int>(value);
      if (!fd) return bad_value(f::kReadyFd, value, "a file descriptor number");
      inv.ready_fd = *fd;
    } else if (flag == f::kRequestLoop) {
      inv.request_loop = value;
    } else if (flag == f::kPassthrough) {
      inv.passthrough = value;
    } else if (flag == f::kMaxFds) {
      std::optional<unsigned> n = parse_number<unsigned>(value);
      if (!n) return bad_value(f::kMaxFds, value, "a number of file descriptors");
      inv.max_fds = *n;
    } else {
      return Status::InvalidArgument("unknown option " + flag.substr(0, 64));
    }
  }
  return inv;
}

bool MapperInvocation::operator==(const MapperInvocation& o) const {
  return backing == o.backing && mountpoint == o.mountpoint && name == o.name &&
         identity == o.identity && present_uid == o.present_uid && present_gid == o.present_gid &&
         cache == o.cache && readonly == o.readonly && ready_fd == o.ready_fd &&
         request_loop == o.request_loop && max_fds == o.max_fds && passthrough == o.passthrough;
}

}  // namespace tenantfs

#include "admin/plugin_name.h"

#include <algorithm>

namespace tenantfs {

bool is_tenantfs_plugin_name(std::string_view name) {
  const size_t slash = name.rfind('/');
  std::string_view base = slash == std::string_view::npos ? name : name.substr(slash + 1);
  const size_t end = base.find_first_of(":@");
  if (end != std::string_view::npos) {
    if (end + 1 == base.size()) return false;  // "tenantfs:" has no tag
    base = base.substr(0, end);
  }
  return base == "tenantfs";
}

bool may_be_plugin_id(std::string_view name) {
  return !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
  });
}

}  // namespace tenantfs

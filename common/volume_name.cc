#include "common/volume_name.h"

#include <string>

namespace tenantfs {
namespace {

bool is_name_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}
bool is_name_char(char c) { return is_name_start(c) || c == '_' || c == '.' || c == '-'; }

}  // namespace

Status validate_volume_name(std::string_view name) {
  if (name.empty()) {
    return Status::InvalidArgument(
        "tenantfs: a volume name is required; use letters, digits, '_', '.' and '-'");
  }
  bool ok = name.size() <= kMaxVolumeNameLength && is_name_start(name[0]);
  for (char c : name) ok = ok && is_name_char(c);
  if (!ok) {
    // Quote the name only when it is printable and short: it ends up in logs.
    std::string shown;
    for (char c : name.substr(0, 64)) shown += (c >= 0x20 && c < 0x7f && c != '"') ? c : '?';
    return Status::InvalidArgument(
        "tenantfs: invalid volume name \"" + shown +
        "\"; a name starts with a letter or digit, continues with letters, digits, '_', "
        "'.' or '-', and has at most " +
        std::to_string(kMaxVolumeNameLength) + " characters");
  }
  return Status::Ok();
}

}  // namespace tenantfs

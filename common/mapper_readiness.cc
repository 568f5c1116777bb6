#include "common/mapper_readiness.h"

#include <algorithm>

namespace tenantfs {
namespace {

constexpr std::string_view kReady = "ready";
constexpr std::string_view kErrorPrefix = "error: ";

Readiness malformed(std::string_view line) {
  Readiness r;
  r.kind = Readiness::Kind::kMalformed;
  // Printable and short: it ends up in an Err that docker prints.
  std::string shown;
  for (char c : line.substr(0, 80)) shown += (c >= 0x20 && c < 0x7f && c != '"') ? c : '?';
  r.message = "unexpected readiness report \"" + shown + "\"";
  return r;
}

}  // namespace

std::string format_ready_line(const ReadyFields& fields) {
  std::string line(kReady);
  for (const auto& [key, value] : fields) line += " " + key + "=" + value;
  return line + "\n";
}

std::string format_error_line(std::string_view message) {
  std::string line(kErrorPrefix);
  for (char c : message) line += (c == '\n' || c == '\r') ? ' ' : c;
  return line + "\n";
}

Readiness parse_readiness(std::string_view line) {
  if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  Readiness r;
  if (line.substr(0, kErrorPrefix.size()) == kErrorPrefix) {
    r.kind = Readiness::Kind::kError;
    r.message = std::string(line.substr(kErrorPrefix.size()));
    return r;
  }
  if (line.substr(0, kReady.size()) != kReady) return malformed(line);
  std::string_view rest = line.substr(kReady.size());
  if (!rest.empty() && rest.front() != ' ') return malformed(line);  // "readyX"
  while (!rest.empty()) {
    rest.remove_prefix(1);  // the space before each field
    const size_t end = std::min(rest.find(' '), rest.size());
    const std::string_view field = rest.substr(0, end);
    const size_t eq = field.find('=');
    if (eq == std::string_view::npos || eq == 0 || field.find('\n') != std::string_view::npos) {
      return malformed(line);
    }
    r.fields[std::string(field.substr(0, eq))] = std::string(field.substr(eq + 1));
    rest.remove_prefix(end);
  }
  r.kind = Readiness::Kind::kReady;
  return r;
}

}  // namespace tenantfs

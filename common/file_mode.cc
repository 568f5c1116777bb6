#include "common/file_mode.h"

#include <cstdio>

namespace tenantfs {

std::string format_mode(uint32_t mode) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777u));
  return buf;
}

}  // namespace tenantfs

// Fields of /proc/self/mountinfo.
#pragma once

#include <string>

namespace tenantfs {

// mountinfo escapes space, tab, newline and backslash in paths as \ooo
// (octal); returns the path with those escapes undone.
std::string unescape_mountinfo(const std::string& field);

}  // namespace tenantfs

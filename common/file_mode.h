// The text form of permission bits, as tenantfs shows them to people.
#pragma once

#include <cstdint>
#include <string>

namespace tenantfs {

// "0750" style text of the permission, setuid/setgid and sticky bits of
// `mode` (the file type bits are left out): the form of Get's Status and the
// admin listing, and the one `-o mode=` accepts.
std::string format_mode(uint32_t mode);

}  // namespace tenantfs

// The small text rules HTTP/1.1 framing needs, shared by the server's
// request framing, the chunked decoder and the client's reply parsing, so
// that both ends of the socket read a header or a size the same way.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

namespace tenantfs {

// `s` without the spaces and tabs (HTTP's optional whitespace) at either end.
std::string_view trim_blanks(std::string_view s);

// ASCII case-insensitive equality, as header names and codings compare.
bool equals_ignoring_case(std::string_view a, std::string_view b);

// A Content-Length (base 10) or chunk size (base 16): digits only, no sign,
// no blanks, at most 12 of them, which no size tenantfs accepts comes near
// (and which keeps the value far from overflowing). nullopt otherwise.
std::optional<size_t> parse_size(std::string_view s, int base);

}  // namespace tenantfs

// The JSON bodies that travel over the socket: parsing what clients POST
// (the VolumeDriver API and the admin API share it), and the text of what
// either side sends.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "common/status.h"

namespace tenantfs {

// Deepest nesting of arrays and objects a request may hold. Docker's requests
// nest two levels; copying or walking a parsed value recurses once per level,
// so an unbounded depth would let one request exhaust a worker's stack.
inline constexpr int kMaxRequestJsonDepth = 32;

// Parses a request body into a JSON object. An empty body and `null` count as
// {}. Errors (kInvalidArgument) read "the request body is not valid JSON",
// "... must be a JSON object" or "... nests deeper than N levels".
Result<nlohmann::json> parse_request_object(std::string_view body);

// The compact text of `body`. Strings from clients or the store (volume
// names, request paths, arguments) may hold invalid UTF-8, on which dump()
// throws: such bytes are replaced (U+FFFD) instead.
std::string json_text(const nlohmann::json& body);

}  // namespace tenantfs

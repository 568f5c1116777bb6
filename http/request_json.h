// Parsing of the JSON bodies that clients POST to the socket (the
// VolumeDriver API and the admin API share it).
#pragma once

#include <nlohmann/json.hpp>
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

}  // namespace tenantfs

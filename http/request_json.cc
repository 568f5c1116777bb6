#include "http/request_json.h"

#include <string>

namespace tenantfs {
namespace {

// True when `body` opens more than `limit` arrays/objects at once, outside
// strings. A linear scan, so it runs before the parser builds anything.
bool nests_deeper_than(std::string_view body, int limit) {
  int depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (char c : body) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > limit) return true;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return false;
}

}  // namespace

Result<nlohmann::json> parse_request_object(std::string_view body) {
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    return nlohmann::json::object();
  }
  if (nests_deeper_than(body, kMaxRequestJsonDepth)) {
    return Status::InvalidArgument("the request body nests deeper than " +
                                   std::to_string(kMaxRequestJsonDepth) + " levels");
  }
  nlohmann::json j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::InvalidArgument("the request body is not valid JSON");
  if (j.is_null()) return nlohmann::json::object();
  if (!j.is_object()) return Status::InvalidArgument("the request body must be a JSON object");
  return j;
}

std::string json_text(const nlohmann::json& body) {
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace tenantfs

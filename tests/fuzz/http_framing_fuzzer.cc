// libFuzzer target: the bytes a client sends on the plugin socket, as the
// server frames them before any route sees them (frame_request with the
// plugin's limits) and answers those it refuses itself (refusal_reply with
// the plugin's error format).
//
// Input: the bytes received on one connection so far. Invariants:
// - a complete request lies within what came, and more bytes after it
//   change nothing (one request per connection);
// - one byte less of a complete request is still arriving, never refused:
//   how a client's bytes are split into reads cannot change the verdict;
// - what is still arriving fits the largest request any path allows;
// - a refusal the server answers itself is a whole HTTP reply whose body
//   is JSON with a string "Err" Docker can print, whatever the path holds.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <string>
#include <string_view>

#include "http/unix_http_server.h"
#include "plugin/plugin_routes.h"

namespace {

using tenantfs::RequestFraming;
using Verdict = tenantfs::RequestFraming::Verdict;

[[noreturn]] void violated(const char* what, std::string_view input) {
  std::fprintf(stderr, "invariant violated: %s (input of %zu bytes)\n", what, input.size());
  std::abort();
}

const char* verdict_name(Verdict v) {
  switch (v) {
    case Verdict::kIncomplete:
      return "incomplete";
    case Verdict::kComplete:
      return "complete";
    case Verdict::kRefused:
      return "refused";
  }
  return "?";
}

void check_refusal_reply(std::string_view input, const RequestFraming& framing,
                         const tenantfs::RequestLimits& limits) {
  static const tenantfs::ErrorReplyFormat format = tenantfs::plugin_error_reply_format();
  const std::string reply = tenantfs::refusal_reply(input, framing, limits, format);
  const std::string_view status = framing.too_large ? "HTTP/1.1 413 " : "HTTP/1.1 400 ";
  if (reply.rfind(status, 0) != 0) violated("refusal status line", input);
  const size_t head_end = reply.find("\r\n\r\n");
  if (head_end == std::string::npos) violated("refusal reply has no end of head", input);
  const std::string body = reply.substr(head_end + 4);
  const std::string length = "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  if (reply.find(length) > head_end) violated("refusal Content-Length", input);
  const nlohmann::json parsed = nlohmann::json::parse(body, nullptr, false);
  if (!parsed.is_object() || !parsed.contains("Err") || !parsed["Err"].is_string() ||
      parsed["Err"].get<std::string>().rfind("tenantfs: ", 0) != 0) {
    violated("refusal body is not {\"Err\": \"tenantfs: ...\"}", input);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const tenantfs::RequestLimits limits = [] {
    // One log line per refusal would drown the fuzzer's own output.
    spdlog::set_level(spdlog::level::off);
    return tenantfs::plugin_request_limits();
  }();
  const std::string input(reinterpret_cast<const char*>(data), size);
  const RequestFraming framing = tenantfs::frame_request(input, limits);
  switch (framing.verdict) {
    case Verdict::kComplete: {
      if (framing.length == 0 || framing.length > input.size()) {
        violated("complete request longer than what came", input);
      }
      const RequestFraming more = tenantfs::frame_request(input + "GET / HTTP/1.1\r\n\r\n", limits);
      if (more.verdict != Verdict::kComplete || more.length != framing.length ||
          more.body_ignored != framing.body_ignored) {
        std::fprintf(stderr, "with bytes after it: %s\n", verdict_name(more.verdict));
        violated("bytes after a complete request changed its framing", input);
      }
      const RequestFraming shorter =
          tenantfs::frame_request(std::string_view(input).substr(0, framing.length - 1), limits);
      if (shorter.verdict != Verdict::kIncomplete) {
        std::fprintf(stderr, "one byte short: %s\n", verdict_name(shorter.verdict));
        violated("a complete request one byte short is not still arriving", input);
      }
      break;
    }
    case Verdict::kIncomplete:
      if (input.size() >= limits.max_any_request_bytes()) {
        violated("still arriving beyond the largest request allowed", input);
      }
      break;
    case Verdict::kRefused:
      // The server answers these itself (UnixHttpServer::answer); httplib
      // answers the other refusals from its own parse.
      if (framing.too_large || !framing.malformed.empty()) {
        check_refusal_reply(input, framing, limits);
      }
      break;
  }
  return 0;
}

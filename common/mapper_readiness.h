// The readiness report of `tenantfs mapper`: the one line a mapper writes to
// its --ready-fd once it serves, or when it gives up before that, and which
// the plugin's launcher waits for.
//
//   "ready" [" " KEY "=" VALUE]... "\n"   serving; the fields describe how
//                                         (e.g. "request-loop=per-cpu")
//   "error: " MESSAGE "\n"                not serving, and why
//
// Keys and values contain no space, '=' in a key, or newline. A reader that
// does not know a key ignores it, so fields can be added without changing
// the reader.
#pragma once

#include <map>
#include <string>
#include <string_view>

namespace tenantfs {

using ReadyFields = std::map<std::string, std::string>;

// "ready\n", or "ready k1=v1 k2=v2\n" (keys in order).
std::string format_ready_line(const ReadyFields& fields = {});
// "error: <message>\n"; newlines in `message` become spaces, so that the
// report stays one line.
std::string format_error_line(std::string_view message);

struct Readiness {
  enum class Kind {
    kReady,      // "ready", with `fields`
    kError,      // "error: ...", with `message`
    kMalformed,  // anything else; `message` describes it
  };
  Kind kind = Kind::kMalformed;
  std::string message;
  ReadyFields fields;

  bool ready() const { return kind == Kind::kReady; }
};

// Parses one line, with or without its "\n".
Readiness parse_readiness(std::string_view line);

}  // namespace tenantfs

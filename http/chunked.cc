#include "http/chunked.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "http/text.h"

namespace tenantfs {
namespace {

// A peer's bytes quoted in an error: short, and without control characters
// that would garble a terminal or a log line.
std::string quoted(std::string_view s) {
  std::string out = "\"";
  for (char c : s.substr(0, 40)) {
    out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? '?' : c;
  }
  return out + (s.size() > 40 ? "...\"" : "\"");
}

}  // namespace

ChunkedProgress ChunkedDecoder::feed(std::string_view input, std::string* body) {
  using Verdict = ChunkedProgress::Verdict;
  size_t pos = 0;
  auto refuse = [&](Verdict verdict, std::string error) {
    phase_ = Phase::kRefused;
    refusal_ = {verdict, 0, error};
    return ChunkedProgress{verdict, pos, std::move(error)};
  };
  for (;;) {
    switch (phase_) {
      case Phase::kSizeLine: {
        const size_t eol = input.find("\r\n", pos);
        if (eol == std::string_view::npos) return {Verdict::kNeedMore, pos, {}};
        const std::string_view line = input.substr(pos, eol - pos);
        // Chunk extensions after ';' carry nothing tenantfs uses.
        const std::optional<size_t> size =
            parse_size(trim_blanks(line.substr(0, line.find(';'))), 16);
        if (!size) return refuse(Verdict::kMalformed, "malformed chunk size " + quoted(line));
        pos = eol + 2;
        if (*size == 0) {
          phase_ = Phase::kTrailer;
          break;
        }
        if (*size > max_body_ - decoded_) {
          return refuse(Verdict::kTooLarge,
                        "chunked body larger than " + std::to_string(max_body_) + " bytes");
        }
        decoded_ += *size;
        chunk_left_ = *size;
        phase_ = Phase::kData;
        break;
      }
      case Phase::kData: {
        const size_t n = std::min(chunk_left_, input.size() - pos);
        if (body != nullptr) body->append(input.substr(pos, n));
        pos += n;
        chunk_left_ -= n;
        if (chunk_left_ > 0) return {Verdict::kNeedMore, pos, {}};
        phase_ = Phase::kDataEnd;
        break;
      }
      case Phase::kDataEnd:
        if (input.size() - pos < 2) return {Verdict::kNeedMore, pos, {}};
        if (input.substr(pos, 2) != "\r\n") {
          return refuse(Verdict::kMalformed, "malformed chunk terminator " +
                                                 quoted(input.substr(pos, 2)) +
                                                 " (CRLF expected after the chunk data)");
        }
        pos += 2;
        phase_ = Phase::kSizeLine;
        break;
      case Phase::kTrailer: {
        const size_t eol = input.find("\r\n", pos);
        if (eol == std::string_view::npos) return {Verdict::kNeedMore, pos, {}};
        const bool last = eol == pos;
        pos = eol + 2;
        if (last) {
          phase_ = Phase::kDone;
          return {Verdict::kComplete, pos, {}};
        }
        break;
      }
      case Phase::kDone:
        return {Verdict::kComplete, 0, {}};
      case Phase::kRefused:
        return refusal_;
    }
  }
}

}  // namespace tenantfs

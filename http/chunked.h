// ChunkedDecoder: the one reader of "Transfer-Encoding: chunked" bodies, for
// the server (framing a request that is still arriving) and the client
// (decoding a reply).
//
// A chunked body is chunks ("<hex size>[;extensions]\r\n<data>\r\n") up to
// the zero chunk, then trailer lines up to an empty one. Extensions and
// trailers are skipped. Every line ends with CRLF.
//
// The decoder is fed the body as it arrives and says on each call whether it
// needs more bytes, is complete, or refuses the body (a malformed size or
// terminator, or more data than its limit). It never buffers: what a call
// does not consume (a line not yet ended) the caller passes again, with what
// arrived after it.
//
// Thread-safety: none; one decoder per body.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace tenantfs {

struct ChunkedProgress {
  enum class Verdict {
    kNeedMore,   // everything so far is well formed; the body goes on
    kComplete,   // the body ended (trailer included)
    kMalformed,  // a chunk size or chunk terminator is not HTTP
    kTooLarge,   // the chunks announce more data than the limit
  };
  Verdict verdict = Verdict::kNeedMore;
  // Bytes of this call's input taken: on kComplete, the last is the end of
  // the body's final CRLF; on kNeedMore, the rest is an unfinished line.
  size_t consumed = 0;
  // kMalformed, kTooLarge: what was wrong, e.g. `malformed chunk size "zz"`.
  std::string error;
};

class ChunkedDecoder {
 public:
  // `max_body`: the most data (chunk contents, not framing) accepted.
  explicit ChunkedDecoder(size_t max_body) : max_body_(max_body) {}

  // Reads `input`: the bytes after those consumed by earlier calls. Chunk
  // data is appended to `*body` (when not nullptr) as it is read. Once a call
  // returns anything but kNeedMore, later calls return the same verdict.
  ChunkedProgress feed(std::string_view input, std::string* body);

  // Chunk data read so far.
  size_t decoded() const { return decoded_; }

 private:
  enum class Phase { kSizeLine, kData, kDataEnd, kTrailer, kDone, kRefused };

  const size_t max_body_;
  Phase phase_ = Phase::kSizeLine;
  size_t decoded_ = 0;
  size_t chunk_left_ = 0;  // kData: bytes of the current chunk still to come
  ChunkedProgress refusal_;
};

}  // namespace tenantfs

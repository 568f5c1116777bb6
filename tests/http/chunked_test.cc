#include "http/chunked.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

namespace tenantfs {
namespace {

using Verdict = ChunkedProgress::Verdict;

constexpr std::string_view kBody =
    "5\r\nhello\r\n7;name=value\r\n, world\r\n0\r\nX-Trailer: y\r\n\r\n";

// Feeds `input` in two parts split at `split`, passing again what the first
// call left unconsumed, as the server and the client do.
ChunkedProgress feed_split(std::string_view input, size_t split, size_t max_body, std::string* body,
                           size_t* consumed_total) {
  ChunkedDecoder decoder(max_body);
  ChunkedProgress first = decoder.feed(input.substr(0, split), body);
  *consumed_total = first.consumed;
  if (first.verdict != Verdict::kNeedMore) return first;
  ChunkedProgress second = decoder.feed(input.substr(first.consumed), body);
  *consumed_total += second.consumed;
  return second;
}

TEST(ChunkedDecoder, WholeBodyWithExtensionsAndTrailerDecodes) {
  ChunkedDecoder decoder(1024);
  std::string body;
  ChunkedProgress p = decoder.feed(std::string(kBody) + "next request", &body);
  EXPECT_EQ(p.verdict, Verdict::kComplete);
  EXPECT_EQ(p.consumed, kBody.size());
  EXPECT_EQ(body, "hello, world");
}

TEST(ChunkedDecoder, EveryPrefixNeedsMoreAndEverySplitDecodesTheSame) {
  for (size_t n = 0; n < kBody.size(); ++n) {
    ChunkedDecoder decoder(1024);
    EXPECT_EQ(decoder.feed(kBody.substr(0, n), nullptr).verdict, Verdict::kNeedMore)
        << "prefix of " << n << " bytes";
  }
  for (size_t split = 0; split <= kBody.size(); ++split) {
    std::string body;
    size_t consumed = 0;
    ChunkedProgress p = feed_split(kBody, split, 1024, &body, &consumed);
    EXPECT_EQ(p.verdict, Verdict::kComplete) << "split at " << split;
    EXPECT_EQ(consumed, kBody.size()) << "split at " << split;
    EXPECT_EQ(body, "hello, world") << "split at " << split;
  }
}

TEST(ChunkedDecoder, DataOverTheLimitIsTooLargeBeforeItArrives) {
  ChunkedDecoder decoder(8);
  ChunkedProgress p = decoder.feed("5\r\nhello\r\n4\r\n", nullptr);
  EXPECT_EQ(p.verdict, Verdict::kTooLarge);
  EXPECT_EQ(p.error, "chunked body larger than 8 bytes");
  EXPECT_EQ(decoder.feed("abcd\r\n0\r\n\r\n", nullptr).verdict, Verdict::kTooLarge);

  ChunkedDecoder exact(10);
  EXPECT_EQ(exact.feed("5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n", nullptr).verdict,
            Verdict::kComplete);
}

TEST(ChunkedDecoder, MalformedSizesAreRefusedNamingTheLine) {
  const std::string_view lines[] = {"zz", "", "-1", "+5", "0x5", "1 2", "1234567890abc"};
  for (std::string_view line : lines) {
    ChunkedDecoder decoder(1024);
    ChunkedProgress p = decoder.feed(std::string(line) + "\r\nhello\r\n0\r\n\r\n", nullptr);
    EXPECT_EQ(p.verdict, Verdict::kMalformed) << line;
    EXPECT_EQ(p.error, "malformed chunk size \"" + std::string(line) + "\"");
  }
  // Blanks around the size and after it, before an extension, are allowed.
  ChunkedDecoder decoder(1024);
  EXPECT_EQ(decoder.feed(" 5 ;x\r\nhello\r\n0\r\n\r\n", nullptr).verdict, Verdict::kComplete);
}

TEST(ChunkedDecoder, DataNotFollowedByCrlfIsRefused) {
  for (std::string_view input : {"3\r\nabcX\r\n", "3\r\nabc\n0\r\n\r\n", "3\r\nabc\r0\r\n\r\n"}) {
    ChunkedDecoder decoder(1024);
    ChunkedProgress p = decoder.feed(input, nullptr);
    EXPECT_EQ(p.verdict, Verdict::kMalformed) << input;
    EXPECT_NE(p.error.find("malformed chunk terminator"), std::string::npos) << p.error;
  }
  // One byte of the terminator is not yet a verdict.
  ChunkedDecoder decoder(1024);
  EXPECT_EQ(decoder.feed("3\r\nabc\r", nullptr).verdict, Verdict::kNeedMore);
}

TEST(ChunkedDecoder, BodyWithoutTheFinalEmptyLineIsNotComplete) {
  ChunkedDecoder decoder(1024);
  EXPECT_EQ(decoder.feed("3\r\nabc\r\n0\r\nX-Trailer: y\r\n", nullptr).verdict, Verdict::kNeedMore);
}

}  // namespace
}  // namespace tenantfs

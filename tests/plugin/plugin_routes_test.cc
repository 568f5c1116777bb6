// The request limits of the plugin socket: what Docker's requests may carry,
// endpoint by endpoint, as UnixHttpServer frames them.
#include "plugin/plugin_routes.h"

#include <gtest/gtest.h>

#include <string>

namespace tenantfs {
namespace {

using Verdict = RequestFraming::Verdict;

const std::string kHead = "POST /VolumeDriver.List HTTP/1.1\r\nHost: plugin\r\n";

TEST(PluginRequestLimits, DockerRequestsHave64KiBOfBodyAnd16KiBOfHead) {
  const RequestLimits limits = plugin_request_limits();
  const std::string largest(kMaxRequestBodyBytes, 'x');
  EXPECT_EQ(frame_request(
                kHead + "Content-Length: " + std::to_string(largest.size()) + "\r\n\r\n" + largest,
                limits)
                .verdict,
            Verdict::kComplete);
  RequestFraming f = frame_request(
      kHead + "Content-Length: " + std::to_string(kMaxRequestBodyBytes + 1) + "\r\n\r\n", limits);
  EXPECT_EQ(f.verdict, Verdict::kRefused);
  EXPECT_TRUE(f.too_large);
  EXPECT_EQ(
      frame_request(kHead + "X-Pad: " + std::string(kMaxRequestHeadBytes, 'a'), limits).verdict,
      Verdict::kRefused);
  // What one waiting connection may cost in memory.
  EXPECT_EQ(limits.max_any_request_bytes(), kMaxRequestHeadBytes + kMaxAuthzBodyBytes);
}

TEST(PluginRequestLimits, AuthorizationRequestsHaveTheirOwnLimits) {
  const RequestLimits limits = plugin_request_limits();
  // A request phase carries a forwarded API body: up to kMaxAuthzBodyBytes.
  const std::string req_head = "POST /AuthZPlugin.AuthZReq HTTP/1.1\r\nContent-Length: ";
  const std::string big(kMaxRequestBodyBytes * 4, 'x');
  RequestFraming f =
      frame_request(req_head + std::to_string(big.size()) + "\r\n\r\n" + big, limits);
  EXPECT_EQ(f.verdict, Verdict::kComplete);
  f = frame_request(req_head + std::to_string(kMaxAuthzBodyBytes + 1) + "\r\n\r\n", limits);
  EXPECT_EQ(f.verdict, Verdict::kRefused);
  EXPECT_TRUE(f.too_large);
  // Other endpoints keep theirs.
  f = frame_request(kHead + "Content-Length: " + std::to_string(big.size()) + "\r\n\r\n", limits);
  EXPECT_EQ(f.verdict, Verdict::kRefused);
  EXPECT_TRUE(f.too_large);
  // The response phase is complete with its head, whatever body it announces.
  const std::string res_head =
      "POST /AuthZPlugin.AuthZRes HTTP/1.1\r\nContent-Length: "
      "99999999999\r\n\r\n";
  f = frame_request(res_head + "{\"Resp", limits);
  EXPECT_EQ(f.verdict, Verdict::kComplete);
  EXPECT_TRUE(f.body_ignored);
  EXPECT_EQ(f.length, res_head.size());
}

}  // namespace
}  // namespace tenantfs

// libFuzzer target: authorization requests as dockerd sends them, against
// the real Authorizer and SqliteStore (on a temp directory) holding alice's
// volume "data", a grant for alice and an admin.
//
// Input: the first line is "<user> <method> <uri>"; the rest is the API
// request body, sent base64-encoded as RequestBody (as Docker does). An
// input starting with '!' is sent as the whole authorization request
// instead (raw). Every input gets a reply {"Allow":bool[,"Msg":text]}; a
// denial says why; the response phase always allows; and bob is never
// allowed to remove alice's volume, however the URI is spelled.
#include <stdlib.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "plugin/authz.h"
#include "store/sqlite_store.h"
#include "tests/support/base64.h"

namespace {

using json = nlohmann::json;

[[noreturn]] void violated(const char* what, const std::string& detail) {
  std::fprintf(stderr, "invariant violated: %s: %s\n", what, detail.c_str());
  std::abort();
}

struct World {
  std::unique_ptr<tenantfs::SqliteStore> store;
  std::unique_ptr<tenantfs::Authorizer> authz;

  World() {
    char tmpl[] = "/tmp/tenantfs-fuzz-authz.XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) violated("setup", "mkdtemp");
    auto s = tenantfs::SqliteStore::Open(std::string(tmpl) + "/tenantfs.db");
    if (!s.ok()) violated("setup", s.status().ToString());
    store = std::move(s).value();
    tenantfs::VolumeBinding b;
    b.name = "data";
    b.tenant = "alice";
    b.identity.uid = b.present_uid = b.identity.gid = b.present_gid = 7001;
    b.backing_path = "/data/data";
    b.options = {{"tenant", "alice"}};
    if (!store->bind_volume(b).ok() || !store->allow_user("alice", "alice").ok() ||
        !store->add_admin("admin").ok()) {
      violated("setup", "store");
    }
    authz = std::make_unique<tenantfs::Authorizer>(*store, tenantfs::AuthzConfig{false, "alice"});
  }
  static World& instance() {
    static World* w = new World();  // never destroyed: libFuzzer exits from anywhere
    return *w;
  }
};

void check_reply(const tenantfs::AuthzReply& r, const std::string& input) {
  if (!r.body.is_object() || !r.body.contains("Allow") || !r.body["Allow"].is_boolean()) {
    violated("reply is {\"Allow\":bool}", r.body.dump());
  }
  if (r.body["Allow"].get<bool>() != r.allow) violated("reply matches decision", input);
  if (!r.allow && r.msg.empty()) violated("a denial says why", input);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  World& w = World::instance();
  const std::string input(reinterpret_cast<const char*>(data), size);
  if (!input.empty() && input[0] == '!') {
    check_reply(w.authz->handle(tenantfs::kAuthzRequestEndpoint, input.substr(1)), input);
    tenantfs::AuthzReply res = w.authz->handle(tenantfs::kAuthzResponseEndpoint, input.substr(1));
    if (!res.allow) violated("the response phase allows", input);
    return 0;
  }
  const size_t eol = input.find('\n');
  const std::string head = input.substr(0, eol);
  const std::string body = eol == std::string::npos ? "" : input.substr(eol + 1);
  const size_t s1 = head.find(' ');
  const size_t s2 = s1 == std::string::npos ? std::string::npos : head.find(' ', s1 + 1);
  if (s2 == std::string::npos) return 0;
  const std::string user = head.substr(0, s1);
  const std::string method = head.substr(s1 + 1, s2 - s1 - 1);
  const std::string uri = head.substr(s2 + 1);
  json req{{"User", user},
           {"UserAuthNMethod", "TLS"},
           {"RequestMethod", method},
           {"RequestURI", uri},
           {"RequestHeaders", {{"Content-Length", std::to_string(body.size())}}},
           {"RequestBody", tenantfs::testing::Base64(body)}};
  const std::string text = req.dump(-1, ' ', false, json::error_handler_t::replace);
  tenantfs::AuthzReply r = w.authz->handle(tenantfs::kAuthzRequestEndpoint, text);
  check_reply(r, input);
  // However spelled, a path Docker routes to DELETE /volumes/data.
  if (r.allow && user == "bob" && method == "DELETE" &&
      (uri == "/volumes/data" || uri == "/v1.41/volumes/data" || uri == "/v1.41/volumes/d%61ta")) {
    violated("bob may not remove alice's volume", input);
  }
  return 0;
}

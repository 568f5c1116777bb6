#include "store/binding_rules.h"

namespace tenantfs {
namespace {

// "with key=value" / "without key".
std::string describe_option(const std::map<std::string, std::string>& options,
                            const std::string& key) {
  auto it = options.find(key);
  return it == options.end() ? "without " + key : "with " + key + "=" + it->second;
}

// The first option, in name order, whose value differs between two option
// sets (present in one only counts as different); empty when they are equal.
std::string first_different_option(const std::map<std::string, std::string>& a,
                                   const std::map<std::string, std::string>& b) {
  auto ia = a.begin();
  auto ib = b.begin();
  while (ia != a.end() || ib != b.end()) {
    if (ib == b.end() || (ia != a.end() && ia->first < ib->first)) return ia->first;
    if (ia == a.end() || ib->first < ia->first) return ib->first;
    if (ia->second != ib->second) return ia->first;
    ++ia;
    ++ib;
  }
  return {};
}

}  // namespace

Status check_rebind(const std::string& volume, const std::map<std::string, std::string>& bound,
                    const std::map<std::string, std::string>& requested) {
  const std::string key = first_different_option(bound, requested);
  if (key.empty()) return Status::Ok();
  return Status::AlreadyExists("volume \"" + volume + "\" already exists " +
                               describe_option(bound, key) + "; it cannot be re-created " +
                               describe_option(requested, key) +
                               ": a binding never changes, so use the same options, or remove "
                               "the volume first with \"docker volume rm " +
                               volume + "\"");
}

Status check_unreferenced(const std::string& volume, int64_t references) {
  if (references <= 0) return Status::Ok();
  return Status::FailedPrecondition(
      "volume \"" + volume + "\" is in use (" + std::to_string(references) + " mount " +
      (references == 1 ? "reference" : "references") +
      "); stop and remove the containers using it first (docker ps -a --filter volume=" + volume +
      ")");
}

Status check_tenant_unbound(const std::string& tenant, const std::vector<std::string>& volumes,
                            int64_t total) {
  if (total <= 0) return Status::Ok();
  std::string list, names;
  for (const std::string& v : volumes) {
    list += (list.empty() ? "" : ", ") + v;
    names += " " + v;
  }
  const int64_t more = total - static_cast<int64_t>(volumes.size());
  if (more > 0) {
    list += " and " + std::to_string(more) + " more";
    names += " ...";
  }
  return Status::FailedPrecondition(
      "tenant \"" + tenant + "\" still has " + std::to_string(total) +
      (total == 1 ? " volume" : " volumes") + " bound: " + list + "; remove " +
      (total == 1 ? "it" : "them") + " first with \"docker volume rm" + names +
      "\" (\"tenantfs volume ls\" shows every volume and its tenant)");
}

}  // namespace tenantfs

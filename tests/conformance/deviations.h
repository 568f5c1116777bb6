// Comparing the battery's output through a mount with its native output, and
// checking every difference against the lists of accepted deviations.
//
// A list holds one deviation per line, fields separated by '|':
//   case | cache | caller | mount shows | reason
//   case         a case name, or "case@storage" for what root finds on the
//                storage after the case
//   cache        strict, exclusive or *
//   caller       root, user or *
//   mount shows  the mount's tokens that differ from native, exactly as the
//                report prints them
//   reason       why the identity model accepts it (or the issue fixing it)
// Blank lines and lines starting with '#' are ignored.
//
// The check is two-sided: a difference no entry names fails, and so does an
// entry that matches no difference for some cache mode and caller it covers,
// so the lists never name more than what happens.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

namespace tenantfs::conformance {

// Lines of one run, by case name (and "name@storage").
using Outputs = std::map<std::string, std::string>;

struct Difference {
  std::string key;     // case name or "name@storage"
  std::string caller;  // root, user
  std::string native;  // the whole native line
  std::string mount;   // the whole mount line
  std::string shown;   // differing_tokens(native, mount)
};

// The mount's tokens that differ from native, in native's order, then the
// mount's extra tokens; a label present natively but not on the mount shows
// as "-label". Tokens are "label=value", separated by single spaces.
std::string differing_tokens(const std::string& native, const std::string& mount);

// Every key whose lines differ between native and mount.
std::vector<Difference> compare(const Outputs& native, const Outputs& mount,
                                const std::string& caller);

struct ListEntry {
  std::string file;
  int line = 0;
  std::string key, cache, caller, shows, reason;
  std::string where() const { return file + ":" + std::to_string(line); }
};

// Parses one list; malformed lines are reported in `errors` and skipped.
std::vector<ListEntry> parse_list(const std::string& file, const std::string& text,
                                  std::vector<std::string>* errors);

struct Verdict {
  bool ok = true;
  std::vector<std::string> report;  // one line each, printed in this order
};

// Checks the differences of one run (one cache mode, the given callers)
// against `entries`. `cases` are the battery's case names: an entry naming
// anything else is an error.
Verdict check(const std::string& cache, const std::vector<std::string>& callers,
              const std::vector<Difference>& diffs, const std::vector<ListEntry>& entries,
              const std::set<std::string>& cases);

}  // namespace tenantfs::conformance

#include "tests/conformance/deviations.h"

#include <sstream>
#include <utility>

namespace tenantfs::conformance {
namespace {

// (label, token) pairs of a line; the label is the text before the first '='.
std::vector<std::pair<std::string, std::string>> tokens_of(const std::string& line) {
  std::vector<std::pair<std::string, std::string>> out;
  std::istringstream in(line);
  std::string token;
  while (in >> token) out.emplace_back(token.substr(0, token.find('=')), token);
  return out;
}

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return {};
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

std::vector<std::string> split_fields(const std::string& line) {
  std::vector<std::string> out;
  size_t at = 0;
  for (;;) {
    const size_t bar = line.find('|', at);
    out.push_back(trim(line.substr(at, bar == std::string::npos ? std::string::npos : bar - at)));
    if (bar == std::string::npos) return out;
    at = bar + 1;
  }
}

bool covers(const std::string& pattern, const std::string& value) {
  return pattern == "*" || pattern == value;
}

bool matches(const ListEntry& e, const std::string& cache, const Difference& d) {
  return e.key == d.key && covers(e.cache, cache) && covers(e.caller, d.caller) &&
         e.shows == d.shown;
}

std::string case_of(const std::string& key) { return key.substr(0, key.find('@')); }

}  // namespace

std::string differing_tokens(const std::string& native, const std::string& mount) {
  const auto n = tokens_of(native);
  const auto m = tokens_of(mount);
  std::map<std::string, std::string> mount_by_label;
  for (const auto& [label, token] : m) mount_by_label.emplace(label, token);
  std::set<std::string> native_labels;
  std::string out;
  auto add = [&out](const std::string& t) { out += (out.empty() ? "" : " ") + t; };
  for (const auto& [label, token] : n) {
    native_labels.insert(label);
    auto it = mount_by_label.find(label);
    if (it == mount_by_label.end()) {
      add("-" + label);
    } else if (it->second != token) {
      add(it->second);
    }
  }
  for (const auto& [label, token] : m)
    if (native_labels.count(label) == 0) add(token);
  return out;
}

std::vector<Difference> compare(const Outputs& native, const Outputs& mount,
                                const std::string& caller) {
  std::vector<Difference> out;
  for (const auto& [key, native_line] : native) {
    auto it = mount.find(key);
    const std::string mount_line = it == mount.end() ? "<not run>" : it->second;
    if (mount_line != native_line)
      out.push_back(
          {key, caller, native_line, mount_line, differing_tokens(native_line, mount_line)});
  }
  return out;
}

std::vector<ListEntry> parse_list(const std::string& file, const std::string& text,
                                  std::vector<std::string>* errors) {
  std::vector<ListEntry> out;
  std::istringstream in(text);
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    const std::string t = trim(line);
    if (t.empty() || t[0] == '#') continue;
    const std::vector<std::string> f = split_fields(t);
    ListEntry e;
    e.file = file;
    e.line = number;
    if (f.size() == 5) {
      e.key = f[0];
      e.cache = f[1];
      e.caller = f[2];
      e.shows = f[3];
      e.reason = f[4];
    }
    const bool cache_ok = e.cache == "*" || e.cache == "strict" || e.cache == "exclusive";
    const bool caller_ok = e.caller == "*" || e.caller == "root" || e.caller == "user";
    if (f.size() != 5 || e.key.empty() || e.shows.empty() || e.reason.empty() || !cache_ok ||
        !caller_ok) {
      errors->push_back(e.where() +
                        ": malformed, want \"case | strict|exclusive|* | root|user|* | "
                        "mount shows | reason\": " +
                        t);
      continue;
    }
    out.push_back(std::move(e));
  }
  return out;
}

Verdict check(const std::string& cache, const std::vector<std::string>& callers,
              const std::vector<Difference>& diffs, const std::vector<ListEntry>& entries,
              const std::set<std::string>& cases) {
  Verdict v;
  for (const ListEntry& e : entries) {
    if (cases.count(case_of(e.key)) == 0) {
      v.ok = false;
      v.report.push_back("UNKNOWN CASE " + e.where() + ": no case is named " + e.key);
    }
  }
  for (const Difference& d : diffs) {
    std::vector<const ListEntry*> hits;
    for (const ListEntry& e : entries)
      if (matches(e, cache, d)) hits.push_back(&e);
    std::string head =
        d.caller + "  " + d.key + ": native \"" + d.native + "\", mount shows \"" + d.shown + "\"";
    if (hits.empty()) {
      v.ok = false;
      v.report.push_back("NEW       " + head);
      v.report.push_back("          fix it, or list it with a reason: " + d.key + " | " + cache +
                         " | " + d.caller + " | " + d.shown + " | <reason>");
      continue;
    }
    if (hits.size() > 1) {
      v.ok = false;
      v.report.push_back("TWICE     " + head + ": listed at " + hits[0]->where() + " and " +
                         hits[1]->where());
      continue;
    }
    v.report.push_back("listed    " + head + "  (" + hits[0]->where() + ": " + hits[0]->reason +
                       ")");
  }
  for (const ListEntry& e : entries) {
    if (!covers(e.cache, cache)) continue;
    for (const std::string& caller : callers) {
      if (!covers(e.caller, caller)) continue;
      bool seen = false;
      for (const Difference& d : diffs) seen = seen || (d.caller == caller && matches(e, cache, d));
      if (!seen) {
        v.ok = false;
        v.report.push_back("GONE      " + e.where() + " no longer occurs for cache=" + cache +
                           " caller=" + caller + ": remove the line or narrow its cache/caller: " +
                           e.key + " | " + e.cache + " | " + e.caller + " | " + e.shows);
      }
    }
  }
  return v;
}

}  // namespace tenantfs::conformance

# shellcheck shell=bash
# Assertions for the bats files (tests/e2e, tests/admin) that say, when they
# fail, what was expected and what was seen:
#
#   #| FAIL: tenant in the status of v-bind
#   #| expected: 'alice'
#   #|   actual: 'bob'
#
# A multi-line value is printed one quoted line per row ("#|         > ...").
# Each assertion returns 1 after printing, which fails the test under bats
# (errexit); a script that sources this file decides for itself.
#
# DESCRIPTION names the value being checked. Without one, an assertion on
# $output names the last `run` command instead.
#
# EXPECTED is always compared as an exact string: `is` never reads `*`, `?`,
# `[` or `\` as a pattern, so a Docker message or a JSON value quoting them
# (`[7100]`, `\"bob\"`) is checked as written and an assertion cannot quietly
# become looser. Substrings and regular expressions have their own assertions.

# is ACTUAL EXPECTED [DESCRIPTION]: ACTUAL is exactly EXPECTED.
is() {
  [[ "$1" == "$2" ]] && return 0
  tfs_assertion_failed "$1" "" "$2" "${3:-}"
}

# is_not ACTUAL UNEXPECTED [DESCRIPTION]: ACTUAL is anything but UNEXPECTED.
is_not() {
  [[ "$1" != "$2" ]] && return 0
  tfs_assertion_failed "$1" "anything but " "$2" "${3:-}"
}

# assert_contains ACTUAL TEXT [DESCRIPTION]: TEXT occurs in ACTUAL, literally.
assert_contains() {
  [[ "$1" == *"$2"* ]] && return 0
  tfs_assertion_failed "$1" "containing " "$2" "${3:-}"
}

# assert_not_contains ACTUAL TEXT [DESCRIPTION]: TEXT occurs nowhere in ACTUAL.
assert_not_contains() {
  [[ "$1" != *"$2"* ]] && return 0
  tfs_assertion_failed "$1" "not containing " "$2" "${3:-}"
}

# assert_matches ACTUAL REGEX [DESCRIPTION]: ACTUAL matches the extended
# regular expression REGEX somewhere (bash `=~`: unanchored, `.` matches a
# newline too).
assert_matches() {
  [[ "$1" =~ $2 ]] && return 0
  tfs_assertion_failed "$1" "matching (regex) " "$2" "${3:-}"
}

# tfs_assertion_failed ACTUAL HOW EXPECTED DESCRIPTION: the failure report, on
# stderr; returns 1.
tfs_assertion_failed() {
  local actual="$1" how="$2" expected="$3" description="$4"
  if [[ -z "$description" ]]; then
    if [[ -n "${BATS_RUN_COMMAND:-}" && "$actual" == "${output-}" ]]; then
      description="output of \`$BATS_RUN_COMMAND\`"
    else
      description="(no description)"
    fi
  fi
  {
    printf '#| FAIL: %s\n' "$description"
    tfs_assertion_value "expected: $how" "$expected"
    tfs_assertion_value "  actual: " "$actual"
  } >&2
  return 1
}

# tfs_assertion_value LABEL VALUE: VALUE one quoted line per row, the first
# after LABEL, the others under it marked with '>'.
tfs_assertion_value() {
  local label="$1" line first=1
  local -a rows
  mapfile -t rows <<<"$2"
  for line in "${rows[@]}"; do
    if ((first)); then
      printf "#| %s'%s'\n" "$label" "$line"
      first=0
    else
      printf "#|         > '%s'\n" "$line"
    fi
  done
}

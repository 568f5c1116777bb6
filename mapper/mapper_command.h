// The `tenantfs mapper` subcommand: command-line flags to MapperConfig.
#pragma once

#include <CLI/CLI.hpp>

namespace tenantfs {

// Adds `mapper` to `app`. When the subcommand is chosen, its callback runs
// run_mapper() and exits the process with its code (the mapper is the whole
// process; nothing after it in main() is meant to run).
void register_mapper_command(CLI::App& app);

}  // namespace tenantfs

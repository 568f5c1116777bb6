// The `tenantfs mapper` subcommand: command-line flags to MapperConfig.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

#include "common/mapper_invocation.h"

namespace tenantfs {

// Adds `mapper` to `app`. When the subcommand is chosen, its callback runs
// run_mapper() and exits the process with its code (the mapper is the whole
// process; nothing after it in main() is meant to run).
void register_mapper_command(CLI::App& app);

// The same subcommand, with the same flags and checks, handing what it
// parsed to `run` instead: lets tests hold the command line against
// MapperInvocation::from_argv without starting a mapper.
void register_mapper_command(CLI::App& app, std::function<void(const MapperInvocation&)> run);

}  // namespace tenantfs

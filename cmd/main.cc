// tenantfs: one binary, one subcommand per role.
//   serve   the Docker VolumeDriver service (long-lived, root)
//   mapper  the FUSE identity mapper for one volume (started by serve)
//   tenant / volume   admin commands talking to a running serve
#include <CLI/CLI.hpp>
#include <cstdlib>
#include <iostream>

#include "mapper/mapper_command.h"
#include "admin/admin_cli.h"
#include "plugin/serve.h"

int main(int argc, char** argv) {
  CLI::App app{"tenantfs: Docker volumes that act as their tenant", "tenantfs"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("tenantfs 0.1.0"));

  // Each component registers its own subcommands here.
  tenantfs::register_admin_commands(app);
  tenantfs::register_mapper_command(app);
  tenantfs::register_serve_command(app);

  CLI11_PARSE(app, argc, argv);
  return EXIT_SUCCESS;
}

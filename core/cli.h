/* core/cli.h — the subcommands of the `agon` program (private to it). */
#ifndef AGON_CLI_H
#define AGON_CLI_H

#include "agon/plugin.h"

/* `agon show [--no-config] RUN.h5...`: argv[0] is "show".  Returns 0 or a
 * negative agon status (map it with agon_status_exit_code). */
int agon_cli_show(int argc, char **argv);

/* `agon plugins [NAME]`: argv[0] is "plugins", argv[1] the optional NAME
 * (options such as --plugin-path are consumed by main, which loads `reg`).
 * Without NAME prints the search path, then every plugin with its
 * components, kinds, versions and parameter schemas; with NAME only the
 * components of that name (or of the plugin of that name), in detail.
 * Returns 0 or a negative agon status (AGON_EUSAGE for an unknown NAME). */
int agon_cli_plugins(int argc, char **argv, agon_registry *reg);

#endif /* AGON_CLI_H */

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

/* `agon export RUN.h5 --png DIR [--steps all|last|LIST] [--cols N]
 * [--scale K]`: argv[0] is "export".  Draws the snapshots of /samples as
 * DIR/samples_step<STEP>.png (an image grid, or a scatter plot for 2-D
 * samples; docs/export.md) and prints the path of each file written.
 * Returns 0 or a negative agon status (AGON_EUSAGE for a bad command line
 * or a step that was not logged; AGON_EIO / AGON_EDATA for an unreadable
 * log, a log without usable samples, or a folder or file that cannot be
 * written). */
int agon_cli_export(int argc, char **argv);

/* `agon compare RUN.h5|DIR... --metric TABLE/COLUMN [--by KEYS] [--best
 * max|min] [--format text|csv|markdown]`: argv[0] is "compare".  Prints one
 * row per group of runs (the values of the --by config keys) with n, mean,
 * std, 95% confidence interval, min and max of each run's value (its last
 * row, or its best); runs without the value are named on stderr and left
 * out (docs/compare.md).  Returns 0 or a negative agon status. */
int agon_cli_compare(int argc, char **argv);

/* `agon report RUN.h5|DIR... -o REPORT.html [--by KEYS] [--steps
 * first,last|all|LIST] [--title TEXT]`: argv[0] is "report".  Writes one
 * self-contained HTML page (inline SVG, no network) about the runs,
 * grouped by the --by config keys (default: every key whose value differs
 * between them, except seed): curves per series with a min..max band over
 * the seeds, final values with 95% CIs as compare computes them, samples,
 * and config differences (docs/report.md); prints the path and a summary
 * line.  Files that are not run logs are named on stderr and skipped.
 * Returns 0 or a negative agon status (AGON_EUSAGE for a bad command line;
 * AGON_EIO / AGON_EDATA for a missing input, no usable run log, or a page
 * that cannot be written). */
int agon_cli_report(int argc, char **argv);

/* `agon sweep SWEEP.yaml [-j N] [-o DIR] [--set K=V]... [--dry-run]
 * [--backend local|slurm] [Slurm options] [--wait]`: argv[0] is "sweep".
 * Runs (or submits to Slurm) every run of the sweep file that is not done
 * yet, one `agon run` each, and reports each run's outcome
 * (docs/sweep.md).  Returns 0 when every run completed or diverged,
 * AGON_ERUNS when some failed, AGON_EINTERRUPTED after Ctrl-C, or another
 * negative agon status for a bad sweep file or command line. */
int agon_cli_sweep(int argc, char **argv);

/* The plugins of the search path (`dirs` first, as --plugin-path gives
 * them); every broken plugin file is reported on stderr, and then NULL is
 * returned. */
agon_registry *agon__cli_load_registry(const char *const *dirs, size_t n_dirs);

/* `agon classifier train FILE.yaml [-o OUT.h5] [--set K=V]... [--force]
 * [--plugin-path DIR]...` and `agon classifier show CLS.h5`: argv[0] is
 * "classifier".  train prints one line per epoch and a final line with the
 * test accuracy and the output path; show prints the file's network,
 * classes, test accuracy, SHA-256 and training configuration (see
 * docs/classifier.md).  Returns 0 or a negative agon status (AGON_EUSAGE
 * for a bad command line). */
int agon_cli_classifier(int argc, char **argv);

/* Prints text (lines ended by '\n', the last one maybe not) to stdout,
 * each non-empty line indented by two spaces: a stored config under a
 * "config:" heading (show and classifier show). */
void agon__cli_print_indented(const char *text);

#endif /* AGON_CLI_H */

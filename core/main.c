/* The agon command: dispatch to run, validate, plugins, show, export,
 * classifier. */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agon/agon.h"
#include "cli.h"

static const char usage_text[] =
    "usage: agon COMMAND [ARGS]\n"
    "\n"
    "commands:\n"
    "  run FILE.yaml [--set KEY.PATH=VALUE]... [-o OUT.h5] [--overwrite [--writer-gone]]\n"
    "                 [--quiet] [--progress tty|plain|none]\n"
    "                 train the experiment and write its HDF5 log\n"
    "                 (default log: log.output, else runs/<FILE name>.h5;\n"
    "                 an existing agon log is replaced only with --overwrite,\n"
    "                 and never while its writer runs)\n"
    "  run --resume RUN.h5 [FILE.yaml] [--set KEY.PATH=VALUE]... [--force] [--writer-gone]\n"
    "                 continue an interrupted or killed run from its latest\n"
    "                 checkpoint, with the log's own config (or FILE.yaml, which\n"
    "                 must resolve to the same config), the same kernels and the\n"
    "                 same plugin files, unless --force; --writer-gone: its\n"
    "                 writer on another host is known to be gone\n"
    "  validate FILE.yaml [--set KEY.PATH=VALUE]...\n"
    "                 check the experiment against the plugins' schemas and print\n"
    "                 the fully resolved configuration, or every error found\n"
    "  plugins [NAME] list the plugins found, their components and parameters\n"
    "  show RUN.h5 [--no-config] | show --follow [--wait SECONDS] RUN.h5\n"
    "                 summarise a run log: status, last losses and metrics, config\n"
    "  export RUN.h5 [--png DIR] [--csv DIR] [--steps all|last|S1,...] [--cols N] [--scale K]\n"
    "                 [--no-landscape]\n"
    "                 draw the logged generator samples, one PNG per step:\n"
    "                 an image grid, or a scatter plot for 2-D samples (over\n"
    "                 D's landscape when a d_landscape metric was logged)\n"
    "                 (agon export --help for details)\n"
    "  sweep SWEEP.yaml [-j N] [-o DIR] [--dry-run] [--backend local|slurm] [--wait]\n"
    "                 run the experiment once per combination of the sweep's axes\n"
    "                 (grid, zip, random, seeds), DIR/<run id>.h5 each; relaunching\n"
    "                 runs only what is not done (agon sweep --help for details)\n"
    "  compare RUN.h5|DIR... --metric TABLE/COLUMN [--by KEY[,KEY...]] [--best max|min]\n"
    "                 [--format text|csv|markdown]\n"
    "                 one row per group of runs (by config keys): n, mean, std,\n"
    "                 95% confidence interval, min, max of each run's final value\n"
    "  report RUN.h5|DIR... -o REPORT.html [--by KEY[,KEY...]] [--steps first,last|all|LIST]\n"
    "                 [--title TEXT]\n"
    "                 one self-contained HTML page about a sweep: curves per group\n"
    "                 (mean over seeds, min..max band), final values with 95% CIs,\n"
    "                 samples, config differences (agon report --help for details)\n"
    "  classifier train FILE.yaml [-o OUT.h5] [--set KEY.PATH=VALUE]... [--overwrite]\n"
    "                 train the domain classifier the image metrics use and write it\n"
    "                 to OUT.h5 (default: the file's output key; an existing file is\n"
    "                 replaced only with --overwrite)\n"
    "  classifier show CLS.h5\n"
    "                 describe a classifier file: network, classes, test accuracy,\n"
    "                 sha256, training configuration\n"
    "\n"
    "options for every command:\n"
    "  --plugin-path DIR   search DIR for plugins first (repeatable); then\n"
    "                      $AGON_PLUGIN_PATH, then the built-in plugin folder\n"
    "  -h, --help          this text;  --version  the version\n"
    "\n"
    "environment:\n"
    "  AGON_KERNELS        portable or native: the default of train.kernels, the\n"
    "                      OpenBLAS kernels (portable: the same bits on every\n"
    "                      x86-64 CPU with AVX2 and FMA; native: this CPU's own)\n";

/* The table is built from AGON_STATUS_MAP, so it cannot disagree with what
 * the program returns; statuses sharing an exit code share its line. */
static void print_exit_codes(FILE *out)
{
    static const struct {
        int exit_code;
        const char *text;
    } rows[] = {
#define AGON__EXIT_ROW(name, value, exit_code, text) {exit_code, text},
        AGON_STATUS_MAP(AGON__EXIT_ROW)
#undef AGON__EXIT_ROW
    };
    const size_t n = sizeof rows / sizeof rows[0];
    fprintf(out, "\nexit codes:\n");
    /* In increasing order of exit code (the map is in order of status). */
    int last = -1;
    for (;;) {
        size_t i = n;
        for (size_t j = 0; j < n; j++) {
            if (rows[j].exit_code > last && (i == n || rows[j].exit_code < rows[i].exit_code))
                i = j;
        }
        if (i == n)
            break;
        last = rows[i].exit_code;
        fprintf(out, "  %3d  %s", rows[i].exit_code, rows[i].text);
        for (size_t j = i + 1; j < n; j++) {
            if (rows[j].exit_code == rows[i].exit_code)
                fprintf(out, "; %s", rows[j].text);
        }
        fputc('\n', out);
    }
}

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "agon: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see agon --help)\n");
    return agon_status_exit_code(AGON_EUSAGE);
}

/* Arguments shared by the commands, collected in one pass. */
typedef struct cli_args {
    const char *plugin_dirs[64];
    size_t n_plugin_dirs;
    const char *sets[1024];
    size_t n_sets;
    const char *positional[8];
    size_t n_positional;
    const char *output;
    const char *progress;
    int quiet;
    int no_config;
    int overwrite;
    int help;
    const char *resume;
    int force;
    int writer_gone;
} cli_args;

/* Parses argv[first..]; returns 0 or an exit code after printing an error. */
static int parse_args(int argc, char **argv, int first, cli_args *a)
{
    for (int i = first; i < argc; i++) {
        const char *arg = argv[i];
        const char *value = NULL;
#define TAKE_VALUE()                                                                    \
    do {                                                                                \
        if (i + 1 >= argc)                                                              \
            return usage_error("option '%s' needs a value", arg);                      \
        value = argv[++i];                                                              \
    } while (0)
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            a->help = 1;
        } else if (strcmp(arg, "--plugin-path") == 0 || strncmp(arg, "--plugin-path=", 14) == 0) {
            if (arg[13] == '=')
                value = arg + 14;
            else
                TAKE_VALUE();
            if (!value[0])
                return usage_error("%s needs a directory, not an empty string", "--plugin-path");
            if (a->n_plugin_dirs == sizeof a->plugin_dirs / sizeof a->plugin_dirs[0])
                return usage_error("too many %s options", "--plugin-path");
            a->plugin_dirs[a->n_plugin_dirs++] = value;
        } else if (strcmp(arg, "--set") == 0 || strcmp(arg, "-s") == 0 ||
                   strncmp(arg, "--set=", 6) == 0) {
            if (arg[1] == '-' && arg[5] == '=')
                value = arg + 6;
            else
                TAKE_VALUE();
            const char *eq = strchr(value, '=');
            if (eq && eq[1] == '\0')
                return usage_error("--set %s needs a value after '='; to use the default, leave "
                                   "the --set out",
                                   value);
            if (a->n_sets == sizeof a->sets / sizeof a->sets[0])
                return usage_error("too many %s options", arg[1] == 's' ? "-s" : "--set");
            a->sets[a->n_sets++] = value;
        } else if (strcmp(arg, "-o") == 0 || strcmp(arg, "--output") == 0) {
            TAKE_VALUE();
            if (!value[0])
                return usage_error("%s needs a file name, not an empty string", arg);
            a->output = value;
        } else if (strcmp(arg, "--progress") == 0) {
            TAKE_VALUE();
            a->progress = value;
        } else if (strcmp(arg, "--quiet") == 0 || strcmp(arg, "-q") == 0) {
            a->quiet = 1;
        } else if (strcmp(arg, "--overwrite") == 0) {
            a->overwrite = 1;
        } else if (strcmp(arg, "--resume") == 0) {
            TAKE_VALUE();
            a->resume = value;
        } else if (strcmp(arg, "--force") == 0) {
            a->force = 1;
        } else if (strcmp(arg, "--writer-gone") == 0) {
            a->writer_gone = 1;
        } else if (strcmp(arg, "--no-config") == 0) {
            a->no_config = 1;
        } else if (arg[0] == '-' && arg[1] != '\0') {
            return usage_error("unknown option '%s'", arg);
        } else {
            if (a->n_positional == sizeof a->positional / sizeof a->positional[0])
                return usage_error("too many arguments ('%s')", arg);
            a->positional[a->n_positional++] = arg;
        }
#undef TAKE_VALUE
    }
    return 0;
}

/* Loads the plugin search path; every broken plugin file is reported.
 * With `tolerant`, the plugins that did load are kept (for listing), and
 * *exit_code still says that something failed. */
static agon_registry *load_registry_from(const char *const *dirs, size_t n_dirs, bool tolerant,
                                         int *exit_code)
{
    agon_error err = {0};
    agon_registry *reg = agon_registry_create(&err);
    if (!reg) {
        fprintf(stderr, "%s\n", err.message);
        *exit_code = agon_status_exit_code(err.code);
        return NULL;
    }
    agon_diag diag;
    agon_diag_init(&diag);
    agon_registry_load_search_path(reg, dirs, n_dirs, &diag);
    if (diag.count) {
        for (size_t i = 0; i < diag.count; i++)
            fprintf(stderr, "%s\n", diag.messages[i]);
        *exit_code = agon_status_exit_code(diag.code);
        agon_diag_fini(&diag);
        if (tolerant)
            return reg;
        agon_registry_destroy(reg);
        return NULL;
    }
    agon_diag_fini(&diag);
    return reg;
}

static agon_registry *load_registry(const cli_args *a, bool tolerant, int *exit_code)
{
    return load_registry_from(a->plugin_dirs, a->n_plugin_dirs, tolerant, exit_code);
}

agon_registry *agon__cli_load_registry(const char *const *dirs, size_t n_dirs)
{
    int exit_code = 0;
    return load_registry_from(dirs, n_dirs, false, &exit_code);
}

/* The experiment of the command line; for `run --resume RUN.h5` without a
 * file, the config the log was started with. */
static agon_experiment *load_experiment(agon_registry *reg, const cli_args *a, int *exit_code)
{
    agon_diag diag;
    agon_diag_init(&diag);
    agon_experiment *exp = NULL;
    if (a->n_positional == 0 && a->resume) {
        agon_log_summary sum;
        agon_error err = {0};
        if (agon_log_summarize(a->resume, &sum, &err) != 0) {
            fprintf(stderr, "%s\n", err.message);
            *exit_code = agon_status_exit_code(err.code);
            agon_diag_fini(&diag);
            return NULL;
        }
        char name[4200];
        snprintf(name, sizeof name, "%s:/config", a->resume);
        exp = agon_experiment_load_text(reg, name, sum.config, a->sets, a->n_sets, true, &diag);
        free(sum.config);
    } else {
        exp = agon_experiment_load(reg, a->positional[0], a->sets, a->n_sets, true, &diag);
    }
    if (!exp) {
        for (size_t i = 0; i < diag.count; i++)
            fprintf(stderr, "%s\n", diag.messages[i]);
        *exit_code = agon_status_exit_code(diag.code ? diag.code : AGON_ECONFIG);
    }
    agon_diag_fini(&diag);
    return exp;
}

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void join_command_line(int argc, char **argv, char *buf, size_t cap)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < argc && used + 1 < cap; i++) {
        int w = snprintf(buf + used, cap - used, "%s%s", i ? " " : "", argv[i]);
        if (w < 0)
            break;
        used += (size_t)w;
    }
}

static int cmd_run(int argc, char **argv, const cli_args *a)
{
    if (a->resume && a->n_positional > 1)
        return usage_error("%s takes at most one experiment file", "run --resume");
    if (!a->resume && a->n_positional != 1)
        return usage_error("%s needs exactly one experiment file", "run");
    if (a->resume && (a->output || a->overwrite))
        return usage_error("%s continues the log it names; it takes no -o or --overwrite",
                           "run --resume");
    if (!a->resume && a->force)
        return usage_error("%s only applies to run --resume", "--force");
    if (!a->resume && !a->overwrite && a->writer_gone)
        return usage_error("%s only applies to run --resume and run --overwrite",
                           "--writer-gone");
    agon_progress progress = AGON_PROGRESS_AUTO;
    if (a->quiet)
        progress = AGON_PROGRESS_NONE;
    else if (a->progress) {
        if (strcmp(a->progress, "tty") == 0)
            progress = AGON_PROGRESS_TTY;
        else if (strcmp(a->progress, "plain") == 0)
            progress = AGON_PROGRESS_PLAIN;
        else if (strcmp(a->progress, "none") == 0)
            progress = AGON_PROGRESS_NONE;
        else
            return usage_error("--progress takes tty, plain or none, not '%s'", a->progress);
    }
    int code = 0;
    agon_registry *reg = load_registry(a, false, &code);
    if (!reg)
        return code;
    agon_experiment *exp = load_experiment(reg, a, &code);
    if (!exp) {
        agon_registry_destroy(reg);
        return code;
    }
    char command[4096];
    join_command_line(argc, argv, command, sizeof command);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    /* A closed terminal or a closed pipe on stdout (agon run ... | head)
     * must not kill the run before its log is finished: SIGHUP stops it
     * like Ctrl-C, and writes to a closed pipe just fail. */
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    agon_run_options opts = {
        .output_path = a->resume ? a->resume : a->output,
        .progress = progress,
        .stop_flag = &stop_requested,
        .command_line = command,
        .overwrite = a->overwrite != 0,
        .resume = a->resume != NULL,
        .force = a->force != 0,
        .writer_gone = a->writer_gone != 0,
    };
    agon_run_result result;
    agon_error err = {0};
    int rc = agon_experiment_run(exp, &opts, &result, &err);
    if (rc != 0)
        fprintf(stderr, "%s\n", err.message);
    if (!a->quiet && result.output_path[0] && rc != AGON_ECONFIG && rc != AGON_EPLUGIN &&
        strcmp(result.status, "failed") != 0) {
        printf("%s: %s, %lld steps in %.1f s\n", result.output_path, result.status,
               (long long)result.steps_done, result.seconds);
    }
    agon_experiment_destroy(exp);
    agon_registry_destroy(reg);
    return agon_status_exit_code(rc);
}

static int cmd_validate(const cli_args *a)
{
    if (a->n_positional != 1)
        return usage_error("%s needs exactly one experiment file", "validate");
    int code = 0;
    agon_registry *reg = load_registry(a, false, &code);
    if (!reg)
        return code;
    agon_experiment *exp = load_experiment(reg, a, &code);
    if (exp) {
        fputs(agon_experiment_yaml(exp), stdout);
        /* A YAML comment: the output stays the resolved config. */
        char memory[256];
        const agon_memory_estimate *mem = agon_experiment_memory(exp);
        if (mem)
            printf("# memory: %s\n", agon_memory_describe(mem, memory, sizeof memory));
        agon_experiment_destroy(exp);
    }
    agon_registry_destroy(reg);
    return code;
}

/* Output that never reached its destination (a full disk, /dev/full) is a
 * failure like any other write. */
static int finish_stdout(int code)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "agon: cannot write the output: %s; check where standard output goes\n",
                strerror(errno));
        return code ? code : agon_status_exit_code(AGON_EIO);
    }
    return code;
}

static const char *const commands[] = {"run",    "validate",   "plugins", "show",
                                        "export", "compare",    "classifier", "sweep",
                                        "report", NULL};

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "agon: missing command (run, validate, plugins, show, export, compare, "
                        "report, sweep or classifier); see agon --help\n");
        return agon_status_exit_code(AGON_EUSAGE);
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        fputs(usage_text, stdout);
        print_exit_codes(stdout);
        return finish_stdout(0);
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("agon %s (%s)\n", agon_version(), agon_git_revision());
        return 0;
    }
    if (strcmp(cmd, "show") == 0)
        return finish_stdout(agon_status_exit_code(agon_cli_show(argc - 1, argv + 1)));
    if (strcmp(cmd, "export") == 0)
        return finish_stdout(agon_status_exit_code(agon_cli_export(argc - 1, argv + 1)));
    if (strcmp(cmd, "compare") == 0)
        return finish_stdout(agon_status_exit_code(agon_cli_compare(argc - 1, argv + 1)));
    if (strcmp(cmd, "report") == 0)
        return finish_stdout(agon_status_exit_code(agon_cli_report(argc - 1, argv + 1)));
    if (strcmp(cmd, "sweep") == 0)
        return finish_stdout(agon_status_exit_code(agon_cli_sweep(argc - 1, argv + 1)));
    if (strcmp(cmd, "classifier") == 0)
        return finish_stdout(agon_status_exit_code(agon_cli_classifier(argc - 1, argv + 1)));

    cli_args a;
    memset(&a, 0, sizeof a);
    int rc = parse_args(argc, argv, 2, &a);
    if (rc != 0)
        return rc;
    if (a.help) {
        fputs(usage_text, stdout);
        print_exit_codes(stdout);
        return finish_stdout(0);
    }
    if (strcmp(cmd, "run") == 0) {
        /* A run's stdout carries only progress: losing it (a closed pipe)
         * is not a failure of the run.  _exit: HDF5's exit handler must not
         * touch a log whose close already failed (a full disk); every log is
         * closed by now. */
        int code = cmd_run(argc, argv, &a);
        fflush(stdout);
        fflush(stderr);
        _exit(code);
    }
    if (strcmp(cmd, "validate") == 0)
        return finish_stdout(cmd_validate(&a));
    if (strcmp(cmd, "plugins") == 0) {
        /* Lists what loaded even when some plugin file is broken; the exit
         * code still reports the broken ones. */
        int code = 0;
        agon_registry *reg = load_registry(&a, true, &code);
        if (!reg)
            return code;
        /* The plugin command sees only its positional arguments. */
        char *pargv[1 + sizeof a.positional / sizeof a.positional[0]];
        pargv[0] = (char *)"plugins";
        for (size_t i = 0; i < a.n_positional; i++)
            pargv[i + 1] = (char *)a.positional[i];
        rc = agon_cli_plugins((int)a.n_positional + 1, pargv, reg);
        agon_registry_destroy(reg);
        return finish_stdout(rc != 0 ? agon_status_exit_code(rc) : code);
    }
    const char *close = agon_suggest(cmd, commands);
    if (close) {
        fprintf(stderr, "agon: unknown command '%s'; did you mean '%s'? (see agon --help)\n",
                cmd, close);
        return agon_status_exit_code(AGON_EUSAGE);
    }
    return usage_error("unknown command '%s'", cmd);
}

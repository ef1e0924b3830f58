/* `agon classifier train|show`: the domain classifier behind the image
 * metrics (agon/classifier.h, docs/classifier.md). */
#include "cli.h"
#include "cli_h5.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>

#include "agon/classifier.h"
#include "agon/error.h"

static const char classifier_usage[] =
    "usage: agon classifier train FILE.yaml [-o OUT.h5] [--set KEY.PATH=VALUE]... [--overwrite]\n"
    "                                       [--plugin-path DIR]...\n"
    "       agon classifier show CLS.h5\n"
    "\n"
    "  train  trains the classifier FILE.yaml describes and writes it to OUT.h5\n"
    "         (default: the file's `output` key); prints a line per epoch and the\n"
    "         final test accuracy; an existing OUT.h5 is replaced only with --overwrite\n"
    "  show   prints a classifier file's network, classes, test accuracy, SHA-256\n"
    "         and training configuration\n";

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "agon classifier: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see agon classifier --help)\n");
    return AGON_EUSAGE;
}

typedef struct train_args {
    const char *file;
    const char *output;
    const char *sets[1024];
    size_t n_sets;
    const char *plugin_dirs[64];
    size_t n_plugin_dirs;
    bool overwrite, help;
} train_args;

static int parse_train_args(int argc, char **argv, train_args *a)
{
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        const char *value = NULL;
#define TAKE_VALUE()                                                                     \
    do {                                                                                 \
        if (i + 1 >= argc)                                                               \
            return usage_error("option '%s' needs a value", arg);                       \
        value = argv[++i];                                                               \
    } while (0)
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            a->help = true;
        } else if (strcmp(arg, "--overwrite") == 0) {
            a->overwrite = true;
        } else if (strcmp(arg, "-o") == 0 || strcmp(arg, "--output") == 0) {
            TAKE_VALUE();
            if (!value[0])
                return usage_error("%s needs a file name, not an empty string", arg);
            a->output = value;
        } else if (strcmp(arg, "--set") == 0 || strcmp(arg, "-s") == 0 ||
                   strncmp(arg, "--set=", 6) == 0) {
            if (strncmp(arg, "--set=", 6) == 0)
                value = arg + 6;
            else
                TAKE_VALUE();
            const char *eq = strchr(value, '=');
            if (eq && eq[1] == '\0')
                return usage_error("--set %s needs a value after '='; to use the default, leave "
                                   "the --set out",
                                   value);
            if (a->n_sets == sizeof a->sets / sizeof a->sets[0])
                return usage_error("too many %s options", "--set");
            a->sets[a->n_sets++] = value;
        } else if (strcmp(arg, "--plugin-path") == 0 || strncmp(arg, "--plugin-path=", 14) == 0) {
            if (strncmp(arg, "--plugin-path=", 14) == 0)
                value = arg + 14;
            else
                TAKE_VALUE();
            if (!value[0])
                return usage_error("%s needs a directory, not an empty string", "--plugin-path");
            if (a->n_plugin_dirs == sizeof a->plugin_dirs / sizeof a->plugin_dirs[0])
                return usage_error("too many %s options", "--plugin-path");
            a->plugin_dirs[a->n_plugin_dirs++] = value;
        } else if (arg[0] == '-' && arg[1] != '\0') {
            return usage_error("unknown option '%s'", arg);
        } else {
            if (a->file)
                return usage_error("train takes one training file; '%s' is one too many", arg);
            a->file = arg;
        }
#undef TAKE_VALUE
    }
    return 0;
}

static void print_progress(const char *line, void *user)
{
    (void)user;
    printf("%s\n", line);
    fflush(stdout);
}

static int cmd_train(int argc, char **argv)
{
    train_args a;
    memset(&a, 0, sizeof a);
    int rc = parse_train_args(argc, argv, &a);
    if (rc != 0)
        return rc;
    if (a.help) {
        fputs(classifier_usage, stdout);
        return 0;
    }
    if (!a.file)
        return usage_error("%s needs a training file (e.g. experiments/classifiers/fmnist.yaml)",
                           "train");

    agon_error err = {0};
    agon_registry *reg = agon_registry_create(&err);
    if (!reg) {
        fprintf(stderr, "%s\n", err.message);
        return err.code;
    }
    agon_diag diag;
    agon_diag_init(&diag);
    agon_registry_load_search_path(reg, a.plugin_dirs, a.n_plugin_dirs, &diag);
    if (diag.count) {
        for (size_t i = 0; i < diag.count; i++)
            fprintf(stderr, "%s\n", diag.messages[i]);
        rc = diag.code;
        agon_diag_fini(&diag);
        agon_registry_destroy(reg);
        return rc;
    }
    agon_classifier_report report;
    rc = agon_classifier_train_file(reg, a.file, a.sets, a.n_sets, a.output, a.overwrite,
                                    print_progress, NULL, &report, &diag, &err);
    if (rc != 0) {
        for (size_t i = 0; i < diag.count; i++)
            fprintf(stderr, "%s\n", diag.messages[i]);
        if (diag.count == 0)
            fprintf(stderr, "%s\n", err.message);
    } else {
        printf("%s: test accuracy %.4f on %lld test samples, after %lld epochs on %lld "
               "training samples in %.1f s\n",
               report.output_path, report.test_accuracy, (long long)report.test_samples,
               (long long)report.epochs, (long long)report.train_samples, report.seconds);
    }
    agon_diag_fini(&diag);
    agon_registry_destroy(reg);
    return rc;
}

/* ---- show ---------------------------------------------------------------------- */

static int64_t attr_int_or(hid_t file, const char *name, int64_t def)
{
    int64_t v;
    return agon__h5_attr_int64(file, name, &v) == 1 ? v : def;
}

static int cmd_show(int argc, char **argv)
{
    const char *path = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(classifier_usage, stdout);
            return 0;
        }
        if (argv[i][0] == '-' && argv[i][1] != '\0')
            return usage_error("unknown option '%s'", argv[i]);
        if (path)
            return usage_error("show takes one classifier file; '%s' is one too many", argv[i]);
        path = argv[i];
    }
    if (!path)
        return usage_error("%s needs a classifier file (e.g. classifiers/fmnist.h5)", "show");

    agon_error err = {0};
    agon_classifier *cls = agon_classifier_load(path, 1, &err);
    if (!cls) {
        fprintf(stderr, "%s\n", err.message);
        return err.code;
    }
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0) {
        agon__h5_detail d;
        fprintf(stderr, "%s: cannot open the HDF5 file: %s\n", path, agon__h5_why(&d));
        agon_classifier_destroy(cls);
        return AGON_EIO;
    }
    const agon_shape *in = agon_classifier_input_shape(cls);
    const int64_t c1 = attr_int_or(file, "c1", 0), c2 = attr_int_or(file, "c2", 0);
    const int64_t f = agon_classifier_feature_dim(cls), k = agon_classifier_n_classes(cls);
    /* Each k4 s2 p1 convolution maps a side s to s/2 (floor((s - 2)/2) + 1). */
    const int64_t h2 = ((in->dim[1] - 2) / 2 + 1 - 2) / 2 + 1;
    const int64_t w2 = ((in->dim[2] - 2) / 2 + 1 - 2) / 2 + 1;
    double slope = 0.0;
    {
        agon__h5_attr at;
        if (agon__h5_attr_open(file, "slope", &at) == 1) {
            /* One number, read into one variable. */
            if (H5Sget_simple_extent_npoints(at.space) != 1 ||
                H5Aread(at.attr, H5T_NATIVE_DOUBLE, &slope) < 0)
                slope = 0.0;
            agon__h5_attr_close(&at);
        }
    }
    char shape[64];
    char *dataset = agon__h5_attr_string(file, "dataset");
    char *train_split = agon__h5_attr_string(file, "train_split");
    char *test_split = agon__h5_attr_string(file, "test_split");
    char *end_time = agon__h5_attr_string(file, "end_time");
    char *version = agon__h5_attr_string(file, "agon_version");
    char *config = agon__h5_read_string(file, "config");

    printf("%s\n", path);
    printf("  input           %s\n", agon_shape_format(in, shape, sizeof shape));
    printf("  network         conv 4x4/2 %lld->%lld, leaky ReLU %g; conv 4x4/2 %lld->%lld, "
           "batch norm, leaky ReLU; linear %lld->%lld, batch norm, leaky ReLU (features); "
           "linear %lld->%lld\n",
           (long long)in->dim[0], (long long)c1, slope, (long long)c1, (long long)c2,
           (long long)(c2 * h2 * w2), (long long)f, (long long)f, (long long)k);
    printf("  classes         %lld\n", (long long)k);
    printf("  features        %lld\n", (long long)f);
    printf("  test accuracy   %.4f (%lld test samples%s%s)\n",
           agon_classifier_test_accuracy(cls), (long long)attr_int_or(file, "test_samples", 0),
           test_split ? ", split " : "", test_split ? test_split : "");
    printf("  trained on      %s%s%s, %lld samples, %lld epochs, seed %lld\n",
           dataset ? dataset : "?", train_split ? " split " : "", train_split ? train_split : "",
           (long long)attr_int_or(file, "train_samples", 0),
           (long long)attr_int_or(file, "epochs", 0), (long long)attr_int_or(file, "seed", 0));
    printf("  sha256          %s\n", agon_classifier_sha256(cls));
    if (end_time)
        printf("  written         %s by agon %s\n", end_time, version ? version : "?");
    if (config) {
        printf("config:\n");
        agon__cli_print_indented(config);
    }
    free(dataset);
    free(train_split);
    free(test_split);
    free(end_time);
    free(version);
    free(config);
    H5Fclose(file);
    agon_classifier_destroy(cls);
    return 0;
}

int agon_cli_classifier(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "agon classifier: missing subcommand (train or show) (see agon "
                        "classifier --help)\n");
        return AGON_EUSAGE;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "-h") == 0 || strcmp(sub, "--help") == 0 || strcmp(sub, "help") == 0) {
        fputs(classifier_usage, stdout);
        return 0;
    }
    if (strcmp(sub, "train") == 0)
        return cmd_train(argc - 2, argv + 2);
    if (strcmp(sub, "show") == 0)
        return cmd_show(argc - 2, argv + 2);
    static const char *const subs[] = {"train", "show", NULL};
    const char *close = agon_suggest(sub, subs);
    if (close) {
        fprintf(stderr, "agon classifier: unknown subcommand '%s'; did you mean '%s'? (see agon "
                        "classifier --help)\n",
                sub, close);
        return AGON_EUSAGE;
    }
    return usage_error("unknown subcommand '%s'; use train or show", sub);
}

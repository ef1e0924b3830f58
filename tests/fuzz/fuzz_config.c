/* libFuzzer harness for everything agon does with an experiment file
 * before it trains: libyaml through agon's config tree (limits, positions,
 * UTF-8 and tab checks, base: composition), writing the tree back as YAML,
 * and the experiment loader's validation against every plugin's schema.
 *
 * Properties checked beyond "no crash, leak or hang" (the sanitizers and
 * libFuzzer's own limits find those):
 *   - a failed parse reports at least one diagnostic line, and every line
 *     is one line;
 *   - agon reads back what it writes: the resolved YAML of a parsed file
 *     parses again, and writes the same text a second time.
 *
 * Built by tools/fuzz.sh (clang, -DAGON_FUZZ=ON); not part of the normal
 * build.  Inputs are written to a private directory that is also the
 * working directory, so `base:` paths in an input stay inside it. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agon/agon.h"

static agon_registry *registry;
static char input_path[4096];

static void check_lines(const agon_diag *diag, int expect_some)
{
    if (expect_some && diag->count == 0) {
        fprintf(stderr, "a failed load reported nothing\n");
        abort();
    }
    for (size_t i = 0; i < diag->count; i++) {
        if (strchr(diag->messages[i], '\n')) {
            fprintf(stderr, "a diagnostic spans lines: %s\n", diag->messages[i]);
            abort();
        }
    }
}

static void setup(void)
{
    char dir[] = "/tmp/agon-fuzz-XXXXXX";
    if (!mkdtemp(dir) || chdir(dir) != 0)
        abort();
    snprintf(input_path, sizeof input_path, "%s/input.yaml", dir);
    agon_error err = {0};
    registry = agon_registry_create(&err);
    agon_diag diag;
    agon_diag_init(&diag);
    if (!registry || agon_registry_load_dir(registry, AGON_FUZZ_PLUGIN_DIR, true, &diag) != 0)
        abort();
    agon_diag_fini(&diag);
}

static void round_trip(const uint8_t *data, size_t size)
{
    agon_diag diag;
    agon_diag_init(&diag);
    agon_config *cfg = agon_config_parse((const char *)data, size, "input.yaml", &diag);
    check_lines(&diag, cfg == NULL);
    agon_diag_fini(&diag);
    if (!cfg)
        return;
    agon_error err = {0};
    char *text = agon_config_to_yaml(cfg, &err);
    agon_config_destroy(cfg);
    if (!text)
        return;     /* out of memory, reported in err */
    agon_diag_init(&diag);
    agon_config *again = agon_config_parse(text, strlen(text), "resolved.yaml", &diag);
    if (!again) {
        fprintf(stderr, "agon cannot read the YAML it wrote:\n%s\nfirst error: %s\n", text,
                diag.count ? diag.messages[0] : "(none)");
        abort();
    }
    char *text2 = agon_config_to_yaml(again, &err);
    if (text2 && strcmp(text, text2) != 0) {
        fprintf(stderr, "writing the tree again changed it:\n%s\n---\n%s\n", text, text2);
        abort();
    }
    free(text2);
    agon_config_destroy(again);
    agon_diag_fini(&diag);
    free(text);
}

static void load_experiment(const uint8_t *data, size_t size)
{
    FILE *f = fopen(input_path, "wb");
    if (!f)
        abort();
    if (size && fwrite(data, 1, size, f) != size)
        abort();
    fclose(f);
    agon_diag diag;
    agon_diag_init(&diag);
    agon_experiment *exp = agon_experiment_load(registry, input_path, NULL, 0, false, &diag);
    check_lines(&diag, exp == NULL);
    agon_experiment_destroy(exp);
    agon_diag_fini(&diag);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!registry)
        setup();
    round_trip(data, size);
    load_experiment(data, size);
    return 0;
}

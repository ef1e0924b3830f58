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
#include "fuzz_common.h"

static char input_path[4096];

static void round_trip(const uint8_t *data, size_t size)
{
    agon_diag diag;
    agon_diag_init(&diag);
    agon_config *cfg = agon_config_parse((const char *)data, size, "input.yaml", &diag);
    fuzz_check_diag(&diag, cfg == NULL);
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
        fuzz_fail("agon cannot read the YAML it wrote:\n%s\nfirst error: %s", text,
                  diag.count ? diag.messages[0] : "(none)");
    }
    char *text2 = agon_config_to_yaml(again, &err);
    if (text2 && strcmp(text, text2) != 0) {
        fuzz_fail("writing the tree again changed it:\n%s\n---\n%s", text, text2);
    }
    free(text2);
    agon_config_destroy(again);
    agon_diag_fini(&diag);
    free(text);
}

static void load_experiment(const uint8_t *data, size_t size)
{
    fuzz_write_file(input_path, data, size);
    agon_diag diag;
    agon_diag_init(&diag);
    agon_experiment *exp = agon_experiment_load(fuzz_registry(), input_path, NULL, 0, false, &diag);
    fuzz_check_diag(&diag, exp == NULL);
    agon_experiment_destroy(exp);
    agon_diag_fini(&diag);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!input_path[0]) {
        const char *dir = fuzz_private_dir("config");
        if (chdir(dir) != 0)
            abort();
        snprintf(input_path, sizeof input_path, "%s/input.yaml", dir);
    }
    round_trip(data, size);
    load_experiment(data, size);
    return 0;
}

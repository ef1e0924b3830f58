/* `agon plugins [NAME]`: what the plugin search path provides. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agon/agon.h"
#include "cli.h"

static const char *or_empty(const char *s)
{
    return s ? s : "";
}

/* Integer bounds print as integers (10000000, not 1e+07). */
static void format_bound(const agon_param_spec *p, double v, char *buf, size_t cap)
{
    bool integral = p->type == AGON_PARAM_INT || p->type == AGON_PARAM_INT_LIST;
    if (integral && v > -1e15 && v < 1e15)
        snprintf(buf, cap, "%.0f", v);
    else
        snprintf(buf, cap, "%g", v);
}

/* "[0, 1]" for a bounded number, "" when the spec has no range. */
static void format_range(const agon_param_spec *p, char *buf, size_t cap)
{
    buf[0] = '\0';
    if (p->min <= p->max) {
        char lo[40], hi[40];
        format_bound(p, p->min, lo, sizeof lo);
        format_bound(p, p->max, hi, sizeof hi);
        snprintf(buf, cap, "[%s, %s]", lo, hi);
    }
}

static const char *type_name(const agon_param_spec *p)
{
    const char *t = agon_param_type_name(p->type);
    return t ? t : "?";
}

static size_t count_params(const agon_param_spec *params)
{
    size_t n = 0;
    while (params && params[n].name)
        n++;
    return n;
}

/* One aligned line per parameter (the overview). */
static void print_param_table(const agon_param_spec *params, const char *indent)
{
    size_t n = count_params(params);
    if (n == 0) {
        printf("%s(no parameters)\n", indent);
        return;
    }
    int wname = 0, wtype = 0, wdef = 0, wrange = 0;
    char range[96];
    for (size_t i = 0; i < n; i++) {
        const agon_param_spec *p = &params[i];
        int len = (int)strlen(p->name);
        wname = len > wname ? len : wname;
        len = (int)strlen(type_name(p));
        wtype = len > wtype ? len : wtype;
        len = p->default_yaml ? (int)strlen(p->default_yaml) : (int)strlen("required");
        wdef = len > wdef ? len : wdef;
        format_range(p, range, sizeof range);
        len = (int)strlen(range);
        wrange = len > wrange ? len : wrange;
    }
    for (size_t i = 0; i < n; i++) {
        const agon_param_spec *p = &params[i];
        format_range(p, range, sizeof range);
        printf("%s%-*s  %-*s  %-*s  %-*s  %s", indent, wname, p->name, wtype,
               type_name(p), wdef, p->default_yaml ? p->default_yaml : "required",
               wrange, range, or_empty(p->doc));
        if (p->type == AGON_PARAM_CHOICE && p->choices)
            printf("; one of %s", p->choices);
        printf("\n");
    }
}

static void print_overview(const agon_registry *reg)
{
    size_t n_plugins = agon_registry_plugin_count(reg);
    size_t n_components = 0;
    for (size_t i = 0; i < n_plugins; i++)
        n_components += agon_registry_plugin(reg, i)->desc->n_components;
    printf("plugin search path:\n");
    for (size_t i = 0; i < agon_registry_dir_count(reg); i++)
        printf("  %s\n", agon_registry_dir(reg, i));
    printf("%zu plugin%s, %zu component%s\n", n_plugins, n_plugins == 1 ? "" : "s",
           n_components, n_components == 1 ? "" : "s");
    for (size_t i = 0; i < n_plugins; i++) {
        const agon_plugin_record *rec = agon_registry_plugin(reg, i);
        const agon_plugin_descriptor *d = rec->desc;
        printf("\n%s %s: %s\n", d->name, d->version, or_empty(d->summary));
        printf("  file: %s\n", rec->path);
        for (size_t c = 0; c < d->n_components; c++) {
            const agon_component *comp = &d->components[c];
            printf("  %s %s: %s\n", agon_kind_name(comp->kind), comp->name,
                   or_empty(comp->summary));
            print_param_table(comp->params, "      ");
        }
    }
}

/* Where a component goes in an experiment file, as a YAML snippet with
 * every parameter at its default. */
static void print_yaml_example(const agon_component *c)
{
    static const char *const section[AGON_KIND_COUNT] = {
        [AGON_KIND_LOSS] = "loss:",
        [AGON_KIND_MODEL] = "generator:      # or discriminator:",
        [AGON_KIND_DATASET] = "dataset:",
        [AGON_KIND_METRIC] = "metrics:",
        [AGON_KIND_OPTIMIZER] = "g_optimizer:    # or d_optimizer:",
    };
    bool listed = c->kind == AGON_KIND_METRIC;
    const char *first = listed ? "      - " : "      ";
    const char *rest = listed ? "        " : "      ";
    printf("  in an experiment file:\n    %s\n", section[c->kind]);
    printf("%splugin: %s\n", first, c->name);
    for (size_t i = 0; i < count_params(c->params); i++) {
        const agon_param_spec *p = &c->params[i];
        if (p->default_yaml)
            printf("%s%s: %s\n", rest, p->name, p->default_yaml);
        else
            printf("%s%s:    # required (%s)\n", rest, p->name, type_name(p));
    }
}

static void print_detail(const agon_component *c, const agon_plugin_record *rec)
{
    const agon_plugin_descriptor *d = rec->desc;
    printf("%s %s: %s\n", agon_kind_name(c->kind), c->name, or_empty(c->summary));
    printf("  plugin:  %s %s: %s\n", d->name, d->version, or_empty(d->summary));
    printf("  file:    %s\n", rec->path);
    printf("  sha256:  %s\n", rec->sha256);
    if (c->kind == AGON_KIND_OPTIMIZER) {
        const agon_optimizer_vtable *v = c->vtable;
        printf("  state:   %u tensor%s per parameter\n", (unsigned)v->n_state,
               v->n_state == 1 ? "" : "s");
    } else if (c->kind == AGON_KIND_METRIC) {
        const agon_metric_vtable *v = c->vtable;
        printf("  outputs:");
        for (size_t i = 0; v->outputs[i]; i++)
            printf("%s %s", i ? "," : "", v->outputs[i]);
        printf("\n");
    }
    size_t n = count_params(c->params);
    if (n == 0) {
        printf("  parameters: none\n");
    } else {
        printf("  parameters:\n");
        char range[96];
        for (size_t i = 0; i < n; i++) {
            const agon_param_spec *p = &c->params[i];
            format_range(p, range, sizeof range);
            printf("    %s: %s", p->name, type_name(p));
            if (p->type == AGON_PARAM_CHOICE && p->choices)
                printf(", one of %s", p->choices);
            if (p->default_yaml)
                printf(", default %s", p->default_yaml);
            else
                printf(", required");
            if (range[0])
                printf(", %s %s",
                       p->type == AGON_PARAM_INT_LIST || p->type == AGON_PARAM_FLOAT_LIST ||
                               p->type == AGON_PARAM_FLOAT_ROWS
                           ? "items in"
                           : "in",
                       range);
            printf("\n        %s\n", or_empty(p->doc));
        }
    }
    print_yaml_example(c);
}

int agon_cli_plugins(int argc, char **argv, agon_registry *reg)
{
    if (argc > 2) {
        fprintf(stderr, "agon plugins: takes at most one NAME, got '%s' and '%s' "
                        "(see agon --help)\n",
                argv[1], argv[2]);
        return AGON_EUSAGE;
    }
    if (argc < 2) {
        print_overview(reg);
        return 0;
    }

    const char *name = argv[1];
    size_t shown = 0;
    for (size_t i = 0; i < agon_registry_plugin_count(reg); i++) {
        const agon_plugin_record *rec = agon_registry_plugin(reg, i);
        const agon_plugin_descriptor *d = rec->desc;
        /* A plugin's own name shows all it provides. */
        bool whole = strcmp(d->name, name) == 0;
        for (size_t c = 0; c < d->n_components; c++) {
            if (whole || strcmp(d->components[c].name, name) == 0) {
                if (shown++)
                    printf("\n");
                print_detail(&d->components[c], rec);
            }
        }
    }
    if (shown)
        return 0;

    /* Every component and plugin name is a candidate for "did you mean". */
    size_t n = 0;
    for (size_t i = 0; i < agon_registry_plugin_count(reg); i++)
        n += 1 + agon_registry_plugin(reg, i)->desc->n_components;
    const char **names = malloc((n + 1) * sizeof *names);
    if (!names)
        return AGON_ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < agon_registry_plugin_count(reg); i++) {
        const agon_plugin_descriptor *d = agon_registry_plugin(reg, i)->desc;
        names[k++] = d->name;
        for (size_t c = 0; c < d->n_components; c++)
            names[k++] = d->components[c].name;
    }
    names[k] = NULL;
    const char *close = agon_suggest(name, names);
    free(names);
    if (close)
        fprintf(stderr, "agon plugins: no plugin or component named '%s'; did you mean "
                        "'%s'?\n",
                name, close);
    else
        fprintf(stderr, "agon plugins: no plugin or component named '%s'; run 'agon "
                        "plugins' to list them\n",
                name);
    return AGON_EUSAGE;
}

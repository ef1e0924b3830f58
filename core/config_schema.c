/* Typed access to config nodes and parameter schemas (see agon/config.h).
 *
 * Types come from the reader, not from YAML: a scalar is text until a
 * schema or an accessor asks for a number, and then the rules are strict
 * (a quoted "32" stays a string, "1e4" is not an integer) so that what
 * runs is what the file says. */
#include "config_int.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- scalar rules -----------------------------------------------------------*/

static bool parse_int(const char *s, int64_t *out, bool *overflow)
{
    *overflow = false;
    const char *p = s;
    if (*p == '+' || *p == '-')
        p++;
    if (*p == '\0')
        return false;
    for (const char *q = p; *q; q++) {
        if (*q < '0' || *q > '9')
            return false;
    }
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno == ERANGE) {
        *overflow = true;
        return false;
    }
    *out = (int64_t)v;
    return true;
}

static bool parse_float(const char *s, double *out)
{
    static const struct {
        const char *text;
        double value;
    } special[] = {
        {".inf", INFINITY}, {".Inf", INFINITY}, {".INF", INFINITY},
        {"+.inf", INFINITY}, {"+.Inf", INFINITY}, {"+.INF", INFINITY},
        {"-.inf", -INFINITY}, {"-.Inf", -INFINITY}, {"-.INF", -INFINITY},
        {".nan", NAN}, {".NaN", NAN}, {".NAN", NAN},
    };
    for (size_t i = 0; i < sizeof special / sizeof special[0]; i++) {
        if (strcmp(s, special[i].text) == 0) {
            *out = special[i].value;
            return true;
        }
    }
    /* strtod skips leading space; a value with spaces around it was quoted
     * or is not a number. */
    if (*s == '\0' || *s == ' ' || *s == '\t' || *s == '\n')
        return false;
    char *end;
    double v = strtod(s, &end);
    if (*end != '\0')
        return false;
    *out = v;
    return true;
}

static bool parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on"};
    static const char *const no[] = {"false", "no", "off"};
    for (size_t i = 0; i < 3; i++) {
        if (strcmp(s, yes[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcmp(s, no[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

/* "'wide'", "the quoted string '32'", "a map", ... for "got ..." */
static void describe(const agon_node *n, char *buf, size_t cap)
{
    switch (n->kind) {
    case AGON_NODE_MAP:
        snprintf(buf, cap, "a map");
        return;
    case AGON_NODE_SEQ:
        snprintf(buf, cap, "a list");
        return;
    case AGON_NODE_NULL:
        snprintf(buf, cap, "an empty value");
        return;
    default:
        break;
    }
    char clipped[72];
    size_t len = strlen(n->text);
    if (len < sizeof clipped) {
        memcpy(clipped, n->text, len + 1);
    } else {
        size_t keep = sizeof clipped - 4;
        while (keep > 0 && ((unsigned char)n->text[keep] & 0xC0) == 0x80)
            keep--;
        memcpy(clipped, n->text, keep);
        memcpy(clipped + keep, "...", 4);
    }
    snprintf(buf, cap, "%s'%s'", n->quoted ? "the quoted string " : "", clipped);
}

typedef enum scalar_type { S_INT, S_FLOAT, S_BOOL } scalar_type;

static const char *expected_phrase(scalar_type t)
{
    return t == S_INT ? "an integer" : t == S_FLOAT ? "a number" : "true or false";
}

typedef union scalar_value {
    int64_t i;
    double f;
    bool b;
} scalar_value;

static bool parse_as(scalar_type t, const char *s, scalar_value *v, bool *overflow)
{
    *overflow = false;
    switch (t) {
    case S_INT:
        return parse_int(s, &v->i, overflow);
    case S_FLOAT:
        return parse_float(s, &v->f);
    default:
        return parse_bool(s, &v->b);
    }
}

/* Converts a node; on failure writes the reason (no position) into why. */
static bool convert(const agon_node *n, scalar_type t, scalar_value *v, char *why, size_t cap)
{
    char got[128];
    bool overflow;
    if (n->kind == AGON_NODE_SCALAR && !n->quoted && parse_as(t, n->text, v, &overflow))
        return true;
    describe(n, got, sizeof got);
    if (n->kind == AGON_NODE_SCALAR && !n->quoted && overflow) {
        snprintf(why, cap, "%s does not fit in a 64-bit integer; use a smaller value", n->text);
        return false;
    }
    const char *hint = "";
    scalar_value probe;
    if (n->kind == AGON_NODE_SCALAR && n->quoted && parse_as(t, n->text, &probe, &overflow))
        hint = "; remove the quotes";
    double f;
    if (t == S_INT && n->kind == AGON_NODE_SCALAR && !n->quoted && parse_float(n->text, &f) &&
        isfinite(f) && f == floor(f) && fabs(f) < 1e15) {
        snprintf(why, cap, "expected %s, got %s; write it as %.0f", expected_phrase(t), got, f);
        return false;
    }
    snprintf(why, cap, "expected %s, got %s%s", expected_phrase(t), got, hint);
    return false;
}

static int convert_or_error(const agon_node *n, scalar_type t, scalar_value *v,
                            agon_error *err)
{
    char why[AGON_ERROR_MESSAGE_MAX];
    if (!n)
        return agon_error_set(err, AGON_ECONFIG, "expected %s, got nothing", expected_phrase(t));
    if (convert(n, t, v, why, sizeof why))
        return 0;
    return agon_node_error(err, AGON_ECONFIG, n, "%s", why);
}

int agon_node_to_int(const agon_node *node, int64_t *out, agon_error *err)
{
    scalar_value v;
    int rc = convert_or_error(node, S_INT, &v, err);
    if (rc == 0)
        *out = v.i;
    return rc;
}

int agon_node_to_float(const agon_node *node, double *out, agon_error *err)
{
    scalar_value v;
    int rc = convert_or_error(node, S_FLOAT, &v, err);
    if (rc == 0)
        *out = v.f;
    return rc;
}

int agon_node_to_bool(const agon_node *node, bool *out, agon_error *err)
{
    scalar_value v;
    int rc = convert_or_error(node, S_BOOL, &v, err);
    if (rc == 0)
        *out = v.b;
    return rc;
}

/* ---- require / opt accessors --------------------------------------------------*/

/* Finds map[key].  *out is NULL when the key is absent (or null and
 * optional); an absent required key is an error at the map. */
static int lookup(const agon_node *map, const char *key, bool required, const agon_node **out,
                  agon_error *err)
{
    *out = NULL;
    if (!map || map->kind == AGON_NODE_NULL) {
        if (required)
            return map ? agon_node_error(err, AGON_ECONFIG, map, "missing required key '%s'", key)
                       : agon_error_set(err, AGON_ECONFIG, "missing required key '%s'", key);
        return 0;
    }
    if (map->kind != AGON_NODE_MAP) {
        char got[128];
        describe(map, got, sizeof got);
        return agon_node_error(err, AGON_ECONFIG, map, "expected a map with key '%s', got %s",
                               key, got);
    }
    const agon_node *v = agon_node_get(map, key);
    if (!v) {
        if (required)
            return agon_node_error(err, AGON_ECONFIG, map, "missing required key '%s'", key);
        return 0;
    }
    if (v->kind == AGON_NODE_NULL && !required)
        return 0;
    *out = v;
    return 0;
}

static int get_scalar(const agon_node *map, const char *key, bool required, scalar_type t,
                      scalar_value *v, agon_error *err)
{
    const agon_node *n;
    int rc = lookup(map, key, required, &n, err);
    if (rc != 0 || !n)
        return rc;
    return convert_or_error(n, t, v, err);
}

int agon_cfg_require_int(const agon_node *map, const char *key, int64_t *out, agon_error *err)
{
    scalar_value v;
    int rc = get_scalar(map, key, true, S_INT, &v, err);
    if (rc == 0)
        *out = v.i;
    return rc;
}

int agon_cfg_opt_int(const agon_node *map, const char *key, int64_t def, int64_t *out,
                     agon_error *err)
{
    scalar_value v = {.i = def};
    int rc = get_scalar(map, key, false, S_INT, &v, err);
    if (rc == 0)
        *out = v.i;
    return rc;
}

int agon_cfg_require_float(const agon_node *map, const char *key, double *out, agon_error *err)
{
    scalar_value v;
    int rc = get_scalar(map, key, true, S_FLOAT, &v, err);
    if (rc == 0)
        *out = v.f;
    return rc;
}

int agon_cfg_opt_float(const agon_node *map, const char *key, double def, double *out,
                       agon_error *err)
{
    scalar_value v = {.f = def};
    int rc = get_scalar(map, key, false, S_FLOAT, &v, err);
    if (rc == 0)
        *out = v.f;
    return rc;
}

int agon_cfg_require_bool(const agon_node *map, const char *key, bool *out, agon_error *err)
{
    scalar_value v;
    int rc = get_scalar(map, key, true, S_BOOL, &v, err);
    if (rc == 0)
        *out = v.b;
    return rc;
}

int agon_cfg_opt_bool(const agon_node *map, const char *key, bool def, bool *out,
                      agon_error *err)
{
    scalar_value v = {.b = def};
    int rc = get_scalar(map, key, false, S_BOOL, &v, err);
    if (rc == 0)
        *out = v.b;
    return rc;
}

static int get_string(const agon_node *map, const char *key, bool required, const char *def,
                      const char **out, agon_error *err)
{
    const agon_node *n;
    int rc = lookup(map, key, required, &n, err);
    if (rc != 0)
        return rc;
    if (!n) {
        *out = def;
        return 0;
    }
    if (n->kind != AGON_NODE_SCALAR) {
        char got[128];
        describe(n, got, sizeof got);
        return agon_node_error(err, AGON_ECONFIG, n, "expected a string, got %s", got);
    }
    *out = n->text;
    return 0;
}

int agon_cfg_require_string(const agon_node *map, const char *key, const char **out,
                            agon_error *err)
{
    return get_string(map, key, true, NULL, out, err);
}

int agon_cfg_opt_string(const agon_node *map, const char *key, const char *def,
                        const char **out, agon_error *err)
{
    return get_string(map, key, false, def, out, err);
}

static int get_list(const agon_node *map, const char *key, bool required, scalar_type t,
                    void *out, size_t cap, size_t *n, agon_error *err)
{
    *n = 0;
    const agon_node *list;
    int rc = lookup(map, key, required, &list, err);
    if (rc != 0 || !list)
        return rc;
    if (list->kind != AGON_NODE_SEQ) {
        char got[128];
        describe(list, got, sizeof got);
        return agon_node_error(err, AGON_ECONFIG, list, "expected a list of %s, got %s",
                               t == S_INT ? "integers" : "numbers", got);
    }
    if (list->len > cap)
        return agon_node_error(err, AGON_ECONFIG, list,
                               "the list has %zu items, at most %zu are allowed; shorten it",
                               list->len, cap);
    for (size_t i = 0; i < list->len; i++) {
        scalar_value v;
        rc = convert_or_error(list->items[i].value, t, &v, err);
        if (rc != 0)
            return rc;
        if (t == S_INT)
            ((int64_t *)out)[i] = v.i;
        else
            ((double *)out)[i] = v.f;
    }
    *n = list->len;
    return 0;
}

int agon_cfg_require_int_list(const agon_node *map, const char *key, int64_t *out, size_t cap,
                              size_t *n, agon_error *err)
{
    return get_list(map, key, true, S_INT, out, cap, n, err);
}

int agon_cfg_opt_int_list(const agon_node *map, const char *key, int64_t *out, size_t cap,
                          size_t *n, agon_error *err)
{
    return get_list(map, key, false, S_INT, out, cap, n, err);
}

int agon_cfg_require_float_list(const agon_node *map, const char *key, double *out,
                                size_t cap, size_t *n, agon_error *err)
{
    return get_list(map, key, true, S_FLOAT, out, cap, n, err);
}

int agon_cfg_opt_float_list(const agon_node *map, const char *key, double *out, size_t cap,
                            size_t *n, agon_error *err)
{
    return get_list(map, key, false, S_FLOAT, out, cap, n, err);
}

static int get_map(const agon_node *map, const char *key, bool required,
                   const agon_node **out, agon_error *err)
{
    const agon_node *n;
    *out = NULL;
    int rc = lookup(map, key, required, &n, err);
    if (rc != 0 || !n)
        return rc;
    if (n->kind != AGON_NODE_MAP) {
        char got[128];
        describe(n, got, sizeof got);
        return agon_node_error(err, AGON_ECONFIG, n, "expected a map, got %s", got);
    }
    *out = n;
    return 0;
}

int agon_cfg_require_map(const agon_node *map, const char *key, const agon_node **out,
                         agon_error *err)
{
    return get_map(map, key, true, out, err);
}

int agon_cfg_opt_map(const agon_node *map, const char *key, const agon_node **out,
                     agon_error *err)
{
    return get_map(map, key, false, out, err);
}

/* ---- suggestions ------------------------------------------------------------*/

/* Optimal string alignment distance: a swapped pair ("d_stpes") is one
 * edit, the most common typo in a key. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t n = strlen(a), m = strlen(b);
    size_t *rows = malloc(3 * (m + 1) * sizeof *rows);
    if (!rows)
        return SIZE_MAX;
    size_t *prev2 = rows, *prev = rows + m + 1, *cur = rows + 2 * (m + 1);
    for (size_t j = 0; j <= m; j++)
        prev[j] = j;
    for (size_t i = 1; i <= n; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= m; j++) {
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            size_t best = prev[j] + 1;
            if (cur[j - 1] + 1 < best)
                best = cur[j - 1] + 1;
            if (prev[j - 1] + cost < best)
                best = prev[j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                prev2[j - 2] + 1 < best)
                best = prev2[j - 2] + 1;
            cur[j] = best;
        }
        size_t *t = prev2;
        prev2 = prev;
        prev = cur;
        cur = t;
    }
    size_t d = prev[m];
    free(rows);
    return d;
}

const char *agon_suggest(const char *word, const char *const *candidates)
{
    if (!word || !candidates)
        return NULL;
    size_t len = strlen(word);
    size_t limit = len / 3 > 2 ? len / 3 : 2;
    const char *best = NULL;
    size_t best_d = SIZE_MAX;
    for (size_t i = 0; candidates[i]; i++) {
        size_t d = edit_distance(word, candidates[i]);
        bool prefix = len > 0 && strncmp(word, candidates[i], len) == 0;
        if ((d <= limit || prefix) && d < best_d) {
            best = candidates[i];
            best_d = d;
        }
    }
    return best;
}

/* ---- schemas ------------------------------------------------------------------*/

const char *agon_param_type_name(agon_param_type type)
{
    switch (type) {
#define AGON__PT_NAME(e, s)                                                    \
    case AGON_PARAM_##e:                                                       \
        return s;
        AGON_PARAM_TYPE_MAP(AGON__PT_NAME)
#undef AGON__PT_NAME
    default:
        return "unknown";
    }
}

_Static_assert(AGON_PARAM_TYPE_COUNT ==
#define AGON__PT_ONE(e, s) +1
                   (0 AGON_PARAM_TYPE_MAP(AGON__PT_ONE)),
#undef AGON__PT_ONE
               "AGON_PARAM_TYPE_COUNT must match AGON_PARAM_TYPE_MAP");

/* Where validation problems go: positioned lines in a diag (schema_apply),
 * or "PATH: reason" lines for a default checked by schema_check. */
typedef struct vsink {
    agon_diag *diag;
    bool bare;
    int problems;
} vsink;

static void vreport(vsink *s, const agon_node *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void vreport(vsink *s, const agon_node *n, const char *fmt, ...)
{
    char msg[AGON_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    s->problems++;
    if (s->bare)
        agon_diag_add(s->diag, AGON_ECONFIG, "%s%s%s", n->path, n->path[0] ? ": " : "", msg);
    else
        agon_node_diag(s->diag, AGON_ECONFIG, n, "%s", msg);
}

static bool has_range(const agon_param_spec *spec)
{
    return spec->min <= spec->max;
}

/* Whole-number bounds print as integers ("[1, 1048576]", not
 * "[1, 1.04858e+06]"); others with enough digits to be exact enough. */
static void format_bound(double b, char *buf, size_t cap)
{
    if (isfinite(b) && b == floor(b) && fabs(b) < 1e16)
        snprintf(buf, cap, "%.0f", b);
    else
        snprintf(buf, cap, "%.6g", b);
}

static void check_number(vsink *s, const agon_node *n, const agon_param_spec *spec,
                         scalar_type t)
{
    scalar_value v;
    char why[AGON_ERROR_MESSAGE_MAX];
    if (!convert(n, t, &v, why, sizeof why)) {
        vreport(s, n, "%s", why);
        return;
    }
    double x = t == S_INT ? (double)v.i : v.f;
    /* Parameters end up in float32 tensors; beyond FLT_MAX they would turn
     * into inf and surface much later as a "diverged" run. */
    if (t != S_INT && isfinite(x) && fabs(x) > FLT_MAX) {
        vreport(s, n, "%s is too large for agon's 32-bit floats (at most 3.4e38 in magnitude)",
                n->text);
        return;
    }
    if (has_range(spec) && !(x >= spec->min && x <= spec->max)) {
        char lo[40], hi[40];
        format_bound(spec->min, lo, sizeof lo);
        format_bound(spec->max, hi, sizeof hi);
        if (isnan(x))
            vreport(s, n, "%s is not a number; use a value from %s to %s", n->text, lo, hi);
        else
            vreport(s, n, "%s is out of range [%s, %s]; use a value from %s to %s", n->text, lo,
                    hi, lo, hi);
    }
}

static void check_number_list(vsink *s, const agon_node *n, const agon_param_spec *spec,
                              scalar_type t, const char *what)
{
    if (n->kind != AGON_NODE_SEQ) {
        char got[128];
        describe(n, got, sizeof got);
        vreport(s, n, "expected a list of %s, got %s", what, got);
        return;
    }
    for (size_t i = 0; i < n->len; i++)
        check_number(s, n->items[i].value, spec, t);
}

/* "ring|grid" split into a NULL-terminated array of alternatives. */
typedef struct choices {
    char *buf;
    const char **items;
    size_t n;
} choices;

static bool choices_split(const char *spec, choices *c)
{
    c->n = 0;
    c->buf = strdup(spec ? spec : "");
    size_t count = 1;
    for (const char *p = spec ? spec : ""; *p; p++)
        count += *p == '|';
    c->items = calloc(count + 1, sizeof *c->items);
    if (!c->buf || !c->items) {
        free(c->buf);
        free(c->items);
        return false;
    }
    for (char *p = c->buf, *bar;; p = bar + 1) {
        bar = strchr(p, '|');
        if (bar)
            *bar = '\0';
        c->items[c->n++] = p;
        if (!bar)
            break;
    }
    return true;
}

static void choices_free(choices *c)
{
    free(c->buf);
    free(c->items);
}

/* "ring, grid, line" */
static void choices_list(const choices *c, char *buf, size_t cap)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < c->n && used < cap; i++)
        used += (size_t)snprintf(buf + used, cap - used, "%s%s", i ? ", " : "", c->items[i]);
}

static void check_choice(vsink *s, const agon_node *n, const agon_param_spec *spec)
{
    choices c;
    if (!choices_split(spec->choices, &c)) {
        vreport(s, n, "out of memory");
        return;
    }
    char list[512];
    choices_list(&c, list, sizeof list);
    if (n->kind != AGON_NODE_SCALAR) {
        char got[128];
        describe(n, got, sizeof got);
        vreport(s, n, "expected one of %s, got %s", list, got);
    } else {
        bool found = false;
        for (size_t i = 0; i < c.n && !found; i++)
            found = strcmp(c.items[i], n->text) == 0;
        if (!found) {
            const char *close = agon_suggest(n->text, c.items);
            char shown[128];
            describe(&(agon_node){.kind = AGON_NODE_SCALAR, .text = n->text}, shown,
                     sizeof shown);
            if (close)
                vreport(s, n, "%s is not one of %s; did you mean '%s'?", shown, list, close);
            else
                vreport(s, n, "%s is not one of %s", shown, list);
        }
    }
    choices_free(&c);
}

static void check_rows(vsink *s, const agon_node *n, const agon_param_spec *spec)
{
    if (n->kind != AGON_NODE_SEQ) {
        char got[128];
        describe(n, got, sizeof got);
        vreport(s, n, "expected a list of lists of numbers, got %s", got);
        return;
    }
    size_t width = 0;
    bool have_width = false;
    for (size_t i = 0; i < n->len; i++) {
        const agon_node *row = n->items[i].value;
        if (row->kind != AGON_NODE_SEQ) {
            char got[128];
            describe(row, got, sizeof got);
            vreport(s, row, "expected a list of numbers, got %s", got);
            continue;
        }
        if (!have_width) {
            width = row->len;
            have_width = true;
        } else if (row->len != width) {
            vreport(s, row,
                    "this row has %zu values but the first row has %zu; give every row the "
                    "same length",
                    row->len, width);
        }
        for (size_t j = 0; j < row->len; j++)
            check_number(s, row->items[j].value, spec, S_FLOAT);
    }
}

static void check_value(vsink *s, const agon_node *n, const agon_param_spec *spec)
{
    switch (spec->type) {
    case AGON_PARAM_INT:
        check_number(s, n, spec, S_INT);
        break;
    case AGON_PARAM_FLOAT:
        check_number(s, n, spec, S_FLOAT);
        break;
    case AGON_PARAM_BOOL: {
        scalar_value v;
        char why[AGON_ERROR_MESSAGE_MAX];
        if (!convert(n, S_BOOL, &v, why, sizeof why))
            vreport(s, n, "%s", why);
        break;
    }
    case AGON_PARAM_STRING:
        if (n->kind != AGON_NODE_SCALAR) {
            char got[128];
            describe(n, got, sizeof got);
            vreport(s, n, "expected a string, got %s", got);
        }
        break;
    case AGON_PARAM_CHOICE:
        check_choice(s, n, spec);
        break;
    case AGON_PARAM_INT_LIST:
        check_number_list(s, n, spec, S_INT, "integers");
        break;
    case AGON_PARAM_FLOAT_LIST:
        check_number_list(s, n, spec, S_FLOAT, "numbers");
        break;
    case AGON_PARAM_FLOAT_ROWS:
        check_rows(s, n, spec);
        break;
    default:
        vreport(s, n, "parameter type %d is not valid (a bug in the plugin's schema)",
                (int)spec->type);
        break;
    }
}

static bool name_ok(const char *name)
{
    if (!name[0])
        return false;
    for (const char *p = name; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
            return false;
    }
    return true;
}

static int check_default(const agon_param_spec *spec, agon_error *err)
{
    agon_error perr = {0};
    agon_node *def = agon__parse_value(spec->default_yaml, AGON__DEFAULT_FILE, 0, 0, spec->name,
                                       &perr);
    if (!def)
        return agon_error_set(err, AGON_EPLUGIN,
                              "parameter '%s': default '%s' is not a YAML value (%s); fix the "
                              "schema",
                              spec->name, spec->default_yaml, perr.message);
    agon_diag d;
    agon_diag_init(&d);
    vsink s = {.diag = &d, .bare = true};
    if (def->kind == AGON_NODE_NULL)
        vreport(&s, def, "a default cannot be empty; use NULL to make the parameter required");
    else
        check_value(&s, def, spec);
    int rc = 0;
    if (s.problems > 0)
        rc = agon_error_set(err, AGON_EPLUGIN,
                            "parameter '%s': default '%s' is invalid: %s; fix the schema",
                            spec->name, spec->default_yaml, d.count ? d.messages[0] : "");
    agon_diag_fini(&d);
    agon__node_free(def);
    return rc;
}

int agon_schema_check(const agon_param_spec *schema, agon_error *err)
{
    if (!schema)
        return 0;
    for (size_t i = 0; schema[i].name; i++) {
        const agon_param_spec *p = &schema[i];
        if (!name_ok(p->name))
            return agon_error_set(err, AGON_EPLUGIN,
                                  "parameter %zu ('%s'): a name must be made of a-z, 0-9 and _; "
                                  "rename it",
                                  i, p->name);
        for (size_t j = 0; j < i; j++) {
            if (strcmp(schema[j].name, p->name) == 0)
                return agon_error_set(err, AGON_EPLUGIN,
                                      "parameter '%s' is declared twice (entries %zu and %zu); "
                                      "remove one",
                                      p->name, j, i);
        }
        if ((int)p->type < 0 || p->type >= AGON_PARAM_TYPE_COUNT)
            return agon_error_set(err, AGON_EPLUGIN,
                                  "parameter '%s': type %d is not an agon_param_type; use one "
                                  "of AGON_PARAM_*",
                                  p->name, (int)p->type);
        if (p->type == AGON_PARAM_CHOICE) {
            if (!p->choices || !p->choices[0])
                return agon_error_set(err, AGON_EPLUGIN,
                                      "parameter '%s': a choice needs choices, e.g. \"a|b\"",
                                      p->name);
            choices c;
            if (!choices_split(p->choices, &c))
                return agon_error_set(err, AGON_ENOMEM, "out of memory");
            bool empty = false;
            for (size_t k = 0; k < c.n; k++)
                empty = empty || c.items[k][0] == '\0';
            choices_free(&c);
            if (empty)
                return agon_error_set(err, AGON_EPLUGIN,
                                      "parameter '%s': choices '%s' contain an empty "
                                      "alternative; remove the extra '|'",
                                      p->name, p->choices);
        }
        if (!p->doc || !p->doc[0])
            return agon_error_set(err, AGON_EPLUGIN,
                                  "parameter '%s': doc is missing; describe the parameter in "
                                  "one line",
                                  p->name);
        if (p->default_yaml) {
            int rc = check_default(p, err);
            if (rc != 0)
                return rc;
        }
    }
    return 0;
}

static const agon_param_spec *find_spec(const agon_param_spec *schema, const char *key)
{
    for (size_t i = 0; schema && schema[i].name; i++) {
        if (strcmp(schema[i].name, key) == 0)
            return &schema[i];
    }
    return NULL;
}

static bool is_host_key(const char *const *host_keys, const char *key)
{
    for (size_t i = 0; host_keys && host_keys[i]; i++) {
        if (strcmp(host_keys[i], key) == 0)
            return true;
    }
    return false;
}

static void report_unknown(agon_diag *diag, const agon__entry *e, const agon_param_spec *schema,
                           const char *const *host_keys, const char *what)
{
    size_t n = 0;
    for (size_t i = 0; schema && schema[i].name; i++)
        n++;
    for (size_t i = 0; host_keys && host_keys[i]; i++)
        n++;
    const char **known = calloc(n + 1, sizeof *known);
    char prefix[AGON_ERROR_MESSAGE_MAX];
    agon__pos_prefix(prefix, sizeof prefix, e->key_file, e->key_line, e->key_col,
                     e->value->path);
    if (!known) {
        agon_diag_add(diag, AGON_ECONFIG, "%sunknown key '%s' for %s", prefix, e->key, what);
        return;
    }
    size_t k = 0;
    for (size_t i = 0; schema && schema[i].name; i++)
        known[k++] = schema[i].name;
    for (size_t i = 0; host_keys && host_keys[i]; i++)
        known[k++] = host_keys[i];
    const char *close = agon_suggest(e->key, known);
    if (close) {
        agon_diag_add(diag, AGON_ECONFIG, "%sunknown key '%s' for %s; did you mean '%s'?",
                      prefix, e->key, what, close);
    } else if (k == 0) {
        agon_diag_add(diag, AGON_ECONFIG, "%sunknown key '%s' for %s; it takes no settings",
                      prefix, e->key, what);
    } else {
        char list[AGON_ERROR_MESSAGE_MAX];
        size_t used = 0;
        list[0] = '\0';
        for (size_t i = 0; i < k && used < sizeof list; i++)
            used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "",
                                     known[i]);
        agon_diag_add(diag, AGON_ECONFIG, "%sunknown key '%s' for %s; known keys: %s", prefix,
                      e->key, what, list);
    }
    free(known);
}

int agon_schema_apply(agon_config *cfg, const agon_node *section, const agon_param_spec *schema,
                      const char *const *host_keys, const char *what, agon_diag *diag)
{
    if (!agon__config_contains(cfg, section))
        return agon_diag_add(diag, AGON_EINTERNAL,
                             "agon_schema_apply: the section is not part of this config (a bug "
                             "in the caller; please report it)");
    /* The tree is read-only for plugins; the config's own mutators may
     * change it, and the check above made sure it is cfg's. */
    agon_node *sec = (agon_node *)section;
    char whatbuf[AGON_ERROR_MESSAGE_MAX];
    if (!what) {
        snprintf(whatbuf, sizeof whatbuf, "%s", sec->path[0] ? sec->path : "the top level");
        what = whatbuf;
    }
    if (sec->kind == AGON_NODE_NULL)
        sec->kind = AGON_NODE_MAP;
    if (sec->kind != AGON_NODE_MAP) {
        char got[128];
        describe(sec, got, sizeof got);
        return agon_node_diag(diag, AGON_ECONFIG, sec, "expected a map of settings for %s, got %s",
                              what, got);
    }
    int first = 0;
    vsink s = {.diag = diag};
    size_t present = sec->len;
    for (size_t i = 0; i < present; i++) {
        agon__entry *e = &sec->items[i];
        if (is_host_key(host_keys, e->key))
            continue;
        const agon_param_spec *spec = find_spec(schema, e->key);
        if (!spec) {
            report_unknown(diag, e, schema, host_keys, what);
            s.problems++;
            continue;
        }
        if (e->value->kind == AGON_NODE_NULL && spec->default_yaml) {
            /* "lr:" with nothing after it means "the default". */
            agon_error perr = {0};
            agon_node *def = agon__parse_value(spec->default_yaml, AGON__DEFAULT_FILE, 0, 0,
                                               e->value->path, &perr);
            if (!def) {
                if (!first)
                    first = perr.code == AGON_ENOMEM ? AGON_ENOMEM : AGON_EPLUGIN;
                agon_diag_add(diag, first, "%s: parameter '%s' has a default that is not valid "
                              "YAML (%s); the plugin's schema is broken",
                              what, spec->name, perr.message);
                continue;
            }
            agon__node_free(e->value);
            e->value = def;
            continue;
        }
        if (e->value->kind == AGON_NODE_NULL) {
            vreport(&s, e->value, "required key '%s' has no value; give it one", e->key);
            continue;
        }
        check_value(&s, e->value, spec);
    }
    for (size_t i = 0; schema && schema[i].name; i++) {
        const agon_param_spec *spec = &schema[i];
        if (agon__map_find(sec, spec->name) >= 0)
            continue;
        if (!spec->default_yaml) {
            agon_node_diag(diag, AGON_ECONFIG, sec, "missing required key '%s'", spec->name);
            s.problems++;
            continue;
        }
        char *path = NULL;
        size_t plen = strlen(sec->path) + strlen(spec->name) + 2;
        if ((path = malloc(plen)))
            snprintf(path, plen, "%s%s%s", sec->path, sec->path[0] ? "." : "", spec->name);
        agon_error perr = {0};
        agon_node *def = path ? agon__parse_value(spec->default_yaml, AGON__DEFAULT_FILE, 0, 0,
                                                  path, &perr)
                              : NULL;
        free(path);
        if (!def || agon__node_append(sec, spec->name, AGON__DEFAULT_FILE, 0, 0, def) != 0) {
            int code = !def && perr.code == AGON_ECONFIG ? AGON_EPLUGIN : AGON_ENOMEM;
            if (!first)
                first = code;
            if (code == AGON_EPLUGIN)
                agon_diag_add(diag, code, "%s: parameter '%s' has a default that is not valid "
                              "YAML (%s); the plugin's schema is broken",
                              what, spec->name, perr.message);
            else
                agon_diag_add(diag, code, "out of memory while filling in defaults");
            agon__node_free(def);
        }
    }
    if (first)
        return first;
    return s.problems > 0 ? AGON_ECONFIG : 0;
}

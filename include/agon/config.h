/* agon/config.h — experiment configuration: a read-only YAML tree whose
 * nodes remember where they came from, parameter schemas, and typed
 * accessors.
 *
 * libyaml is wrapped once (core/config.c); no libyaml type appears here.
 *
 * Positions.  Every node knows its origin: file, 1-based line and column
 * (columns count characters), and its key path from the root
 * ("train.d_steps", "metrics[0].every").  Nodes made by `--set` have the
 * file "--set", line = the 1-based index of that --set argument and
 * column 1.  Nodes filled in from a schema default have the file
 * "<default>", line 0, column 0.
 *
 * Every error message produced here reads
 *     FILE:LINE:COL: KEY.PATH: what is wrong; what to do
 * e.g.
 *     ring8.yaml:14:7: loss.plugin: unknown loss 'nonsaturatng'; did you mean 'nonsaturating'?
 *
 * Scalars.  YAML scalars are text; types come from the schema.  Integers are
 * decimal (optionally signed; "1e4" is not an integer), floats are anything
 * strtod accepts fully plus .inf/-.inf/.nan, booleans are true/false (also
 * yes/no/on/off), case-sensitive.  A quoted scalar is a string only: "32"
 * is not accepted where a number is expected.  An empty plain scalar or
 * "~"/"null" is null.
 */
#ifndef AGON_CONFIG_H
#define AGON_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agon/error.h"
#include "agon/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Loader limits (bounds against hostile input). */
#define AGON_CONFIG_MAX_BYTES (1u << 20)        /* per file */
#define AGON_CONFIG_MAX_NODES 100000            /* after alias expansion */
#define AGON_CONFIG_MAX_DEPTH 64                /* nesting */
#define AGON_CONFIG_MAX_BASE_DEPTH 16           /* base: chains */

typedef struct agon_config agon_config;   /* owns a tree */
typedef struct agon_node agon_node;       /* borrowed from its config */

typedef enum agon_node_kind {
    AGON_NODE_NULL,
    AGON_NODE_SCALAR,
    AGON_NODE_MAP,
    AGON_NODE_SEQ,
    AGON_NODE_KIND_COUNT
} agon_node_kind;

/* ---- loading -------------------------------------------------------------
 * agon_config_load reads `path`, then, if the root map has a `base:` key
 * (a string, or a list of strings, relative to the directory of the file
 * naming it), loads those first and merges this file over them: maps merge
 * key by key recursively, anything else (scalars, lists) is replaced by the
 * child's value.  The `base` key itself is removed from the result.
 * Cycles and chains deeper than AGON_CONFIG_MAX_BASE_DEPTH are errors.
 *
 * Errors (all that can be found, each a line in `diag`; code AGON_ECONFIG,
 * or AGON_EIO when a file cannot be read):
 *   syntax errors with libyaml's problem and position, duplicate keys
 *   (naming the first occurrence), non-string keys, tabs, invalid UTF-8
 *   (position computed from the byte offset), more than one document,
 *   documents over the limits above, a root that is not a map.
 * Returns NULL on failure. */
AGON_API agon_config *agon_config_load(const char *path, agon_diag *diag);

/* The same for text in memory; `name` is used as the file name in
 * positions, and relative `base:` paths are resolved against the current
 * directory. */
AGON_API agon_config *agon_config_parse(const char *text, size_t len,
                                        const char *name, agon_diag *diag);

/* Applies one "--set key.path=value" override (the text after --set).
 * `index` is the 1-based position of this --set on the command line (used
 * as the node's line).  Missing intermediate maps are created; the value is
 * parsed as a YAML flow value, so "3", "[128, 128]" and "{a: 1}" work; an
 * existing node at the path is replaced.  Path segments are map keys;
 * "metrics[1].every" indexes into an existing sequence.
 * Errors: no '=', empty key, a path through a scalar, an index out of range,
 * a value that does not parse.  Returns 0 or AGON_ECONFIG. */
AGON_API int agon_config_set(agon_config *cfg, const char *assignment, int index,
                             agon_error *err);

/* Frees the config and every node.  NULL is a no-op. */
AGON_API void agon_config_destroy(agon_config *cfg);

AGON_API const agon_node *agon_config_root(const agon_config *cfg);

/* Emits the tree as block-style YAML (keys in insertion order, strings
 * quoted when they would not read back as the same plain scalar, floats and
 * ints as written), deterministic for equal trees.  Returns a malloc'ed
 * NUL-terminated string the caller frees, or NULL (err set). */
AGON_API char *agon_config_to_yaml(const agon_config *cfg, agon_error *err);

/* ---- nodes ----------------------------------------------------------------*/
AGON_API agon_node_kind agon_node_kind_of(const agon_node *node);
AGON_API const char *agon_node_file(const agon_node *node);
AGON_API int agon_node_line(const agon_node *node);
AGON_API int agon_node_col(const agon_node *node);
/* Key path from the root, "" for the root. */
AGON_API const char *agon_node_path(const agon_node *node);
/* Scalar text (NULL for non-scalars; "" for null). */
AGON_API const char *agon_node_scalar(const agon_node *node);
/* True for a scalar that was quoted in the source. */
AGON_API bool agon_node_quoted(const agon_node *node);
/* Number of entries of a map or items of a sequence (0 otherwise). */
AGON_API size_t agon_node_len(const agon_node *node);
/* Item i of a sequence, or value i of a map (NULL when out of range). */
AGON_API const agon_node *agon_node_at(const agon_node *node, size_t i);
/* Key i of a map (NULL when out of range or not a map). */
AGON_API const char *agon_node_key_at(const agon_node *node, size_t i);
/* Value for `key` in a map, NULL when absent or not a map. */
AGON_API const agon_node *agon_node_get(const agon_node *map, const char *key);

/* Formats "FILE:LINE:COL: PATH: " + message into err and returns `code`.
 * With node == NULL the prefix is omitted.  The message should say what is
 * wrong and what to do. */
AGON_API int agon_node_error(agon_error *err, int code, const agon_node *node,
                             const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The same, appended to a diagnostic list. */
AGON_API int agon_node_diag(agon_diag *diag, int code, const agon_node *node,
                            const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- typed accessors (for plugins) ----------------------------------------
 * `map` is a map node (the plugin's own section).  require: the key must be
 * present.  opt: a missing key (or null value) yields `def`.  Wrong types
 * and unparsable values are errors positioned at the value, e.g.
 *   "x.yaml:3:9: generator.hidden[1]: expected an integer, got 'wide'".
 * Return 0 or AGON_ECONFIG. */
AGON_API int agon_cfg_require_int(const agon_node *map, const char *key,
                                  int64_t *out, agon_error *err);
AGON_API int agon_cfg_opt_int(const agon_node *map, const char *key, int64_t def,
                              int64_t *out, agon_error *err);
AGON_API int agon_cfg_require_float(const agon_node *map, const char *key,
                                    double *out, agon_error *err);
AGON_API int agon_cfg_opt_float(const agon_node *map, const char *key, double def,
                                double *out, agon_error *err);
AGON_API int agon_cfg_require_bool(const agon_node *map, const char *key,
                                   bool *out, agon_error *err);
AGON_API int agon_cfg_opt_bool(const agon_node *map, const char *key, bool def,
                               bool *out, agon_error *err);
/* Strings are borrowed from the config. */
AGON_API int agon_cfg_require_string(const agon_node *map, const char *key,
                                     const char **out, agon_error *err);
AGON_API int agon_cfg_opt_string(const agon_node *map, const char *key,
                                 const char *def, const char **out, agon_error *err);
/* Lists: a sequence of numbers.  Writes at most `cap` values into out and
 * the list length into *n; a list longer than cap is an error. A missing
 * key with opt yields *n = 0. */
AGON_API int agon_cfg_require_int_list(const agon_node *map, const char *key,
                                       int64_t *out, size_t cap, size_t *n,
                                       agon_error *err);
AGON_API int agon_cfg_opt_int_list(const agon_node *map, const char *key,
                                   int64_t *out, size_t cap, size_t *n,
                                   agon_error *err);
AGON_API int agon_cfg_require_float_list(const agon_node *map, const char *key,
                                         double *out, size_t cap, size_t *n,
                                         agon_error *err);
AGON_API int agon_cfg_opt_float_list(const agon_node *map, const char *key,
                                     double *out, size_t cap, size_t *n,
                                     agon_error *err);
/* Sub-maps (borrowed).  opt yields *out = NULL when missing. */
AGON_API int agon_cfg_require_map(const agon_node *map, const char *key,
                                  const agon_node **out, agon_error *err);
AGON_API int agon_cfg_opt_map(const agon_node *map, const char *key,
                              const agon_node **out, agon_error *err);
/* Scalar conversions on a node (same rules and messages as above). */
AGON_API int agon_node_to_int(const agon_node *node, int64_t *out, agon_error *err);
AGON_API int agon_node_to_float(const agon_node *node, double *out, agon_error *err);
AGON_API int agon_node_to_bool(const agon_node *node, bool *out, agon_error *err);

/* ---- parameter schemas ------------------------------------------------------
 * A schema is an array of agon_param_spec ended by an entry whose name is
 * NULL.  Every key has a default (YAML text, parsed like a --set value) or
 * is required (default NULL). */
#define AGON_PARAM_TYPE_MAP(X)                                                 \
    X(INT, "int")                                                              \
    X(FLOAT, "float")                                                          \
    X(BOOL, "bool")                                                            \
    X(STRING, "string")                                                        \
    X(CHOICE, "choice")                                                        \
    X(INT_LIST, "int list")                                                    \
    X(FLOAT_LIST, "float list")                                                \
    X(FLOAT_ROWS, "list of float lists")

typedef enum agon_param_type {
#define AGON__PT_ENUM(e, s) AGON_PARAM_##e,
    AGON_PARAM_TYPE_MAP(AGON__PT_ENUM)
#undef AGON__PT_ENUM
    AGON_PARAM_TYPE_COUNT
} agon_param_type;

AGON_API const char *agon_param_type_name(agon_param_type type);

typedef struct agon_param_spec {
    const char *name;           /* key; NULL ends the schema */
    agon_param_type type;
    const char *default_yaml;   /* NULL: required */
    double min, max;            /* inclusive bounds for numbers (and list
                                   items); ignored when min > max */
    const char *choices;        /* CHOICE: "ring|grid|line|explicit" */
    const char *doc;            /* one line */
} agon_param_spec;

/* Convenience initialisers. */
#define AGON_NO_RANGE 1.0, 0.0
#define AGON_PARAM_END {NULL, AGON_PARAM_INT, NULL, AGON_NO_RANGE, NULL, NULL}

/* Checks that a schema is well formed: names present, unique and made of
 * [a-z0-9_]; types in range; CHOICE has choices and its default is one of
 * them; every default parses as its type and lies within its bounds; doc
 * present.  Returns 0 or AGON_EPLUGIN with a message naming the parameter. */
AGON_API int agon_schema_check(const agon_param_spec *schema, agon_error *err);

/* Validates the map `section` against `schema` and fills in defaults.
 * Keys listed in `host_keys` (NULL-terminated array, may be NULL) are
 * skipped (they belong to the host, e.g. "plugin", "every").  Reports, each
 * as one line in diag, positioned at the offending node:
 *   unknown key (with "did you mean 'x'?" when a schema key is within edit
 *   distance 2 or a prefix), wrong type, out-of-range value, value not
 *   among the choices (listing them), missing required key (positioned at
 *   the section).
 * `what` names the section's owner in messages (e.g. "loss 'minimax'").
 * Returns 0 or AGON_ECONFIG. */
AGON_API int agon_schema_apply(agon_config *cfg, const agon_node *section,
                               const agon_param_spec *schema,
                               const char *const *host_keys, const char *what,
                               agon_diag *diag);

/* Ensures `path` ("train", "log") exists as a map under the root (creating
 * an empty map with a "<default>" origin) and returns it. NULL if a
 * non-map value is there already (err set). */
AGON_API const agon_node *agon_config_ensure_map(agon_config *cfg, const char *path,
                                                 agon_error *err);

/* Closest candidate to `word` among `candidates` (NULL-terminated), when it
 * is within edit distance 2 (or max(2, len/3)) or `word` is a prefix of it;
 * else NULL. Used for "did you mean". */
AGON_API const char *agon_suggest(const char *word, const char *const *candidates);

#ifdef __cplusplus
}
#endif

#endif /* AGON_CONFIG_H */

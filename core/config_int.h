/* Private to core/config.c and core/config_schema.c: the node tree behind
 * agon/config.h.  Never installed. */
#ifndef AGON_CONFIG_INT_H
#define AGON_CONFIG_INT_H

#include "agon/config.h"

/* Origins of nodes that do not come from a file (see agon/config.h). */
#define AGON__SET_FILE "--set"
#define AGON__DEFAULT_FILE "<default>"

/* One map entry or sequence item.  The key keeps its own position because
 * "unknown key" is reported where the key is written, and a --set may
 * replace the value while the key stays where the file put it. */
typedef struct agon__entry {
    char *key;              /* owned; NULL in a sequence */
    const char *key_file;   /* borrowed, like agon_node.file */
    int key_line, key_col;
    agon_node *value;       /* owned */
} agon__entry;

struct agon_node {
    agon_node_kind kind;
    bool quoted;            /* scalar written quoted, as a block scalar or as !!str */
    const char *file;       /* borrowed: interned by the config, or a literal */
    int line, col;          /* 1-based; 0 for "<default>" */
    char *path;             /* owned key path from the root, "" for the root */
    char *text;             /* owned scalar text; NULL unless AGON_NODE_SCALAR */
    agon__entry *items;     /* map entries or sequence items, in order */
    size_t len, cap;
};

struct agon_config {
    agon_node *root;        /* always a map */
    char **names;           /* interned file names that nodes point into */
    size_t n_names;
};

/* A detached node (path "") or NULL when out of memory. */
agon_node *agon__node_new(agon_node_kind kind, const char *file, int line, int col);
/* Frees a node and everything below it; NULL is a no-op. */
void agon__node_free(agon_node *node);
/* Sets the key path of `node` to `path` and renumbers everything below it.
 * Returns 0 or AGON_ENOMEM. */
int agon__node_set_path(agon_node *node, const char *path);
/* Appends key/value to a map (key NULL: an item to a sequence), taking
 * ownership of `value`.  Returns 0 or AGON_ENOMEM (value not taken). */
int agon__node_append(agon_node *node, const char *key, const char *key_file, int key_line,
                      int key_col, agon_node *value);
/* Index of `key` in a map, or -1. */
long agon__map_find(const agon_node *map, const char *key);

/* Parses `text` as one YAML flow value ("3", "[64, 64]", "{a: 1}", "" for
 * null) into a detached tree whose every node has the origin (file, line,
 * col) and whose key path is `path`.  On failure returns NULL and sets err
 * to the reason alone, without position (e.g. "did not find expected ','
 * or ']'"); the caller adds the context. */
agon_node *agon__parse_value(const char *text, const char *file, int line, int col,
                             const char *path, agon_error *err);

/* True when `node` is part of cfg's tree (the mutators check this before
 * casting away const). */
bool agon__config_contains(const agon_config *cfg, const agon_node *node);

/* Writes the "FILE:LINE:COL: PATH: " prefix of messages about a node at
 * this origin (line 0: "FILE: PATH: "; empty path: no "PATH: "). */
void agon__pos_prefix(char *buf, size_t cap, const char *file, int line, int col,
                      const char *path);

#endif /* AGON_CONFIG_INT_H */

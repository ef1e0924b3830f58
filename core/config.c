/* Experiment configuration: libyaml events -> a tree of positioned nodes,
 * base: composition, --set overrides and YAML output (see agon/config.h).
 * Typed access and schemas live in config_schema.c.
 *
 * The event API is used rather than yaml_parser_load: it reports an alias
 * where it is written (the document API only knows the anchor), and it lets
 * the builder stop at the node and depth limits before anything large is
 * allocated. */
#include "config_int.h"

#include <errno.h>
#include <unistd.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

/* ---- small string helpers ------------------------------------------------ */

static char *fmt_alloc(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *fmt_alloc(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *s = malloc((size_t)n + 1);
    if (!s)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

static char *path_key(const char *parent, const char *key)
{
    return parent[0] ? fmt_alloc("%s.%s", parent, key) : strdup(key);
}

static char *path_index(const char *parent, size_t i)
{
    return fmt_alloc("%s[%zu]", parent, i);
}

/* Scalars quoted into messages are cut so that one bad value cannot turn a
 * diagnostic into a page. */
static void clip(char *dst, size_t cap, const char *s)
{
    size_t n = strlen(s);
    if (n < cap) {
        memcpy(dst, s, n + 1);
        return;
    }
    size_t keep = cap > 4 ? cap - 4 : 0;
    while (keep > 0 && ((unsigned char)s[keep] & 0xC0) == 0x80)
        keep--;     /* do not cut a UTF-8 sequence in half */
    memcpy(dst, s, keep);
    memcpy(dst + keep, "...", 4);
}

/* ---- nodes ----------------------------------------------------------------*/

agon_node *agon__node_new(agon_node_kind kind, const char *file, int line, int col)
{
    agon_node *n = calloc(1, sizeof *n);
    if (!n)
        return NULL;
    n->path = strdup("");
    if (!n->path) {
        free(n);
        return NULL;
    }
    n->kind = kind;
    n->file = file;
    n->line = line;
    n->col = col;
    return n;
}

void agon__node_free(agon_node *node)
{
    if (!node)
        return;
    for (size_t i = 0; i < node->len; i++) {
        free(node->items[i].key);
        agon__node_free(node->items[i].value);
    }
    free(node->items);
    free(node->path);
    free(node->text);
    free(node);
}

int agon__node_set_path(agon_node *node, const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return AGON_ENOMEM;
    free(node->path);
    node->path = copy;
    for (size_t i = 0; i < node->len; i++) {
        agon__entry *e = &node->items[i];
        char *child = e->key ? path_key(path, e->key) : path_index(path, i);
        if (!child)
            return AGON_ENOMEM;
        int rc = agon__node_set_path(e->value, child);
        free(child);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int append_owned_key(agon_node *node, char *key, const char *key_file, int key_line,
                            int key_col, agon_node *value)
{
    if (node->len == node->cap) {
        size_t cap = node->cap ? node->cap * 2 : 4;
        agon__entry *grown = realloc(node->items, cap * sizeof *grown);
        if (!grown)
            return AGON_ENOMEM;
        node->items = grown;
        node->cap = cap;
    }
    node->items[node->len++] = (agon__entry){key, key_file, key_line, key_col, value};
    return 0;
}

int agon__node_append(agon_node *node, const char *key, const char *key_file, int key_line,
                      int key_col, agon_node *value)
{
    char *copy = NULL;
    if (key && !(copy = strdup(key)))
        return AGON_ENOMEM;
    int rc = append_owned_key(node, copy, key_file, key_line, key_col, value);
    if (rc != 0)
        free(copy);
    return rc;
}

long agon__map_find(const agon_node *map, const char *key)
{
    if (!map || map->kind != AGON_NODE_MAP)
        return -1;
    for (size_t i = 0; i < map->len; i++) {
        if (strcmp(map->items[i].key, key) == 0)
            return (long)i;
    }
    return -1;
}

/* Large maps (a flat list of thousands of keys) must not make duplicate
 * detection or base merging quadratic, so key lookups during those go
 * through a small open-addressing index over the entries. */
typedef struct keyindex {
    size_t *slots;      /* entry index + 1; 0 = empty */
    size_t cap;         /* power of two */
} keyindex;

static uint64_t hash_key(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ull;
    }
    return h;
}

static void ki_place(keyindex *ki, const agon_node *map, size_t idx)
{
    size_t mask = ki->cap - 1;
    size_t h = (size_t)hash_key(map->items[idx].key) & mask;
    while (ki->slots[h])
        h = (h + 1) & mask;
    ki->slots[h] = idx + 1;
}

static bool ki_reserve(keyindex *ki, const agon_node *map, size_t n)
{
    if (ki->cap >= 2 * n + 2)
        return true;
    size_t cap = 16;
    while (cap < 4 * n + 4)
        cap *= 2;
    size_t *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return false;
    free(ki->slots);
    ki->slots = slots;
    ki->cap = cap;
    for (size_t i = 0; i < map->len; i++) {
        if (map->items[i].key)
            ki_place(ki, map, i);
    }
    return true;
}

static long ki_find(const keyindex *ki, const agon_node *map, const char *key)
{
    if (ki->cap == 0)
        return -1;
    size_t mask = ki->cap - 1;
    for (size_t h = (size_t)hash_key(key) & mask; ki->slots[h]; h = (h + 1) & mask) {
        size_t idx = ki->slots[h] - 1;
        if (strcmp(map->items[idx].key, key) == 0)
            return (long)idx;
    }
    return -1;
}

/* Registers the last entry of `map`; false when out of memory. */
static bool ki_add_last(keyindex *ki, const agon_node *map)
{
    if (!ki_reserve(ki, map, map->len))
        return false;
    ki_place(ki, map, map->len - 1);
    return true;
}

/* ---- positions --------------------------------------------------------------*/

void agon__pos_prefix(char *buf, size_t cap, const char *file, int line, int col,
                      const char *path)
{
    const char *sep = path && path[0] ? ": " : "";
    if (!path)
        path = "";
    if (line > 0)
        snprintf(buf, cap, "%s:%d:%d: %s%s", file, line, col, path, sep);
    else
        snprintf(buf, cap, "%s: %s%s", file, path, sep);
}

static void node_prefix(char *buf, size_t cap, const agon_node *node)
{
    if (!node)
        buf[0] = '\0';
    else
        agon__pos_prefix(buf, cap, node->file, node->line, node->col, node->path);
}

int agon_node_error(agon_error *err, int code, const agon_node *node, const char *fmt, ...)
{
    char prefix[AGON_ERROR_MESSAGE_MAX], msg[AGON_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    node_prefix(prefix, sizeof prefix, node);
    return agon_error_set(err, code, "%s%s", prefix, msg);
}

int agon_node_diag(agon_diag *diag, int code, const agon_node *node, const char *fmt, ...)
{
    char prefix[AGON_ERROR_MESSAGE_MAX], msg[AGON_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    node_prefix(prefix, sizeof prefix, node);
    return agon_diag_add(diag, code, "%s%s", prefix, msg);
}

/* libyaml reports invalid UTF-8 only as a byte offset; people need a line
 * and a column counted in characters like every other position. */
static void offset_to_pos(const char *text, size_t len, size_t off, int *line, int *col)
{
    *line = 1;
    *col = 1;
    size_t i = 0;
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
        i = 3;      /* libyaml does not count a byte order mark as a column */
    for (; i < off && i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == '\n' || (c == '\r' && (i + 1 >= len || text[i + 1] != '\n'))) {
            (*line)++;
            *col = 1;
        } else if (c != '\r' && (c & 0xC0) != 0x80) {
            (*col)++;
        }
    }
}

/* The inverse, for a 0-based libyaml mark; returns len when out of range. */
static size_t mark_to_offset(const char *text, size_t len, size_t line0, size_t col0)
{
    size_t i = 0, line = 0;
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
        i = 3;
    while (i < len && line < line0) {
        if (text[i] == '\n' || (text[i] == '\r' && (i + 1 >= len || text[i + 1] != '\n')))
            line++;
        i++;
    }
    for (size_t c = 0; i < len && c < col0; c++) {
        i++;
        while (i < len && ((unsigned char)text[i] & 0xC0) == 0x80)
            i++;
    }
    return i;
}

/* ---- building a tree from libyaml events -----------------------------------*/

typedef struct anchor {
    char *name;
    const agon_node *node;
} anchor;

typedef struct builder {
    yaml_parser_t parser;
    const char *file;       /* interned name the nodes point to */
    const char *text;       /* the input, for positions libyaml cannot give */
    size_t len;
    /* Fragment mode (--set values, schema defaults): every node gets the
     * fixed origin and problems are one bare reason in frag_err. */
    bool fragment;
    int fixed_line, fixed_col;
    agon_error *frag_err;
    agon_diag *diag;        /* file mode */
    size_t nodes;
    anchor *anchors;
    size_t n_anchors, cap_anchors;
    /* Nodes that are not in the tree (duplicate keys, collection keys) but
     * may still be the target of an alias: freed with the builder. */
    agon_node **junk;
    size_t n_junk, cap_junk;
    int problems;
    bool fatal;
} builder;

static void report(builder *b, int code, const yaml_mark_t *mark, const char *path,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void report(builder *b, int code, const yaml_mark_t *mark, const char *path,
                   const char *fmt, ...)
{
    char msg[AGON_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    b->problems++;
    if (b->fragment) {
        agon_error_set(b->frag_err, code, "%s", msg);
        return;
    }
    char prefix[AGON_ERROR_MESSAGE_MAX];
    agon__pos_prefix(prefix, sizeof prefix, b->file, mark ? (int)mark->line + 1 : 1,
                     mark ? (int)mark->column + 1 : 1, path);
    agon_diag_add(b->diag, code, "%s%s", prefix, msg);
}

static void report_oom(builder *b)
{
    if (!b->fatal)
        report(b, AGON_ENOMEM, NULL, NULL, "out of memory while reading the config");
    b->fatal = true;
}

/* Tab indentation is the one libyaml error people hit most, and its own
 * text ("found character that cannot start any token") does not say so.
 * Lines after the failing one cannot be parsed, so every later line indented
 * with a tab is listed too: one edit pass fixes them all. */
static bool report_tabs(builder *b, size_t off)
{
    if (off >= b->len || b->text[off] != '\t')
        return false;
    int line, col;
    offset_to_pos(b->text, b->len, off, &line, &col);
    yaml_mark_t m = {.line = (size_t)line - 1, .column = (size_t)col - 1};
    report(b, AGON_ECONFIG, &m, NULL, "tab character in indentation; indent with spaces");
    size_t i = off;
    while (i < b->len && b->text[i] != '\n')
        i++;
    while (i < b->len) {
        i++;    /* past the newline */
        line++;
        size_t start = i, tab = SIZE_MAX;
        while (i < b->len && (b->text[i] == ' ' || b->text[i] == '\t')) {
            if (b->text[i] == '\t' && tab == SIZE_MAX)
                tab = i;
            i++;
        }
        bool content = i < b->len && b->text[i] != '\n' && b->text[i] != '\r';
        if (tab != SIZE_MAX && content) {
            m.line = (size_t)line - 1;
            m.column = tab - start;
            report(b, AGON_ECONFIG, &m, NULL, "tab character in indentation; indent with spaces");
        }
        while (i < b->len && b->text[i] != '\n')
            i++;
    }
    return true;
}

/* The line starting at offset `start` as a clipped, trimmed copy, for
 * quoting it in a hint. */
static void line_excerpt(const builder *b, size_t start, char *dst, size_t cap)
{
    size_t end = start;
    while (end < b->len && b->text[end] != '\n' && b->text[end] != '\r')
        end++;
    while (start < end && (b->text[start] == ' ' || b->text[start] == '\t'))
        start++;
    while (end > start && (b->text[end - 1] == ' ' || b->text[end - 1] == '\t'))
        end--;
    char line[256];
    size_t n = end - start < sizeof line ? end - start : sizeof line - 1;
    memcpy(line, b->text + start, n);
    line[n] = '\0';
    clip(dst, cap, line);
}

/* Columns of leading blanks of the line starting at offset `i`, or -1
 * when it holds nothing but blanks or a comment. */
static int line_indent(const builder *b, size_t i)
{
    int indent = 0;
    while (i < b->len && b->text[i] == ' ') {
        i++;
        indent++;
    }
    bool empty = i >= b->len || b->text[i] == '\n' || b->text[i] == '\r' || b->text[i] == '#';
    return empty ? -1 : indent;
}

/* The nearest line above the one starting at offset `start` (0-based
 * number line0) that holds more than blanks or a comment: its number, and
 * its first byte in *above; -1 when there is none.  Walks back from
 * `start`, so a file of many blank lines costs one pass. */
static long content_line_above(const builder *b, size_t start, size_t line0, size_t *above)
{
    const size_t first = b->len >= 3 && memcmp(b->text, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
    long line = (long)line0;
    while (start > first) {
        size_t end = start - 1;     /* the line break ending the line above */
        if (b->text[end] == '\n' && end > first && b->text[end - 1] == '\r')
            end--;
        while (end > first && b->text[end - 1] != '\n' && b->text[end - 1] != '\r')
            end--;
        start = end;
        line--;
        if (line_indent(b, start) >= 0) {
            *above = start;
            return line;
        }
    }
    return -1;
}

/* libyaml names the rule a file broke, not the slip that broke it.  For
 * its common problems this reads the slip off the text around the
 * position and writes "; what to do" into hint ("" when nothing fits). */
static void syntax_hint(const builder *b, char *hint, size_t cap)
{
    const yaml_parser_t *p = &b->parser;
    const char *problem = p->problem ? p->problem : "";
    const yaml_mark_t *at = &p->problem_mark;
    size_t line_start = mark_to_offset(b->text, b->len, at->line, 0);
    size_t off = mark_to_offset(b->text, b->len, at->line, at->column);
    const char c = off < b->len ? b->text[off] : '\0';
    bool first_on_line = true, colon_before = false;
    for (size_t i = line_start; i < off; i++) {
        first_on_line = first_on_line && (b->text[i] == ' ' || b->text[i] == '\t');
        colon_before = colon_before || (b->text[i] == ':' && i + 1 < b->len &&
                                        (b->text[i + 1] == ' ' || b->text[i + 1] == '\t'));
    }
    /* A quote or bracket that ends a value just before the position. */
    size_t last = off;
    while (last > line_start && (b->text[last - 1] == ' ' || b->text[last - 1] == '\t'))
        last--;
    const char closer = last > line_start && b->text[last - 1] != '\0' &&
                                strchr("\"']}", b->text[last - 1])
                            ? b->text[last - 1]
                            : '\0';
    size_t above_start = 0;
    const long above = content_line_above(b, line_start, at->line, &above_start);
    char excerpt[64] = "";
    hint[0] = '\0';

    if (strcmp(problem, "mapping values are not allowed in this context") == 0) {
        bool above_has_colon = false;
        if (above >= 0) {
            line_excerpt(b, above_start, excerpt, sizeof excerpt);
            above_has_colon = strchr(excerpt, ':') != NULL;
        }
        /* YAML's limit on a key written "key: value". */
        size_t key_start = line_start;
        while (key_start < off && (b->text[key_start] == ' ' || b->text[key_start] == '\t'))
            key_start++;
        if (!colon_before && off - key_start > 1024)
            snprintf(hint, cap, "; a key written 'key: value' is at most 1024 characters long, "
                                "and this one has %zu; shorten it",
                     off - key_start);
        else if (colon_before)
            snprintf(hint, cap, "; a plain value cannot contain ': ': quote it (key: \"a: b\"), "
                                "or start the next key on a line of its own");
        else if (above >= 0 && !above_has_colon)
            snprintf(hint, cap, "; line %ld ('%s') has no ':' after its key; add it, or remove "
                                "the line",
                     above + 1, excerpt);
        else if (above >= 0 && line_indent(b, line_start) > line_indent(b, above_start))
            snprintf(hint, cap, "; this key is indented under line %ld, whose value is a "
                                "scalar; indent it like the keys beside it, or empty line "
                                "%ld's value to start a map there",
                     above + 1, above + 1);
        else
            snprintf(hint, cap, "; quote a value that contains ': ', and give every key a line "
                                "of its own");
    } else if (strcmp(problem, "did not find expected key") == 0) {
        if (first_on_line && c == '-')
            snprintf(hint, cap, "; a '- ' list item cannot stand among the keys of a map: put "
                                "the list under a key that ends in ':', indented below it");
        else if (first_on_line)
            snprintf(hint, cap, "; this line is indented to column %zu, which matches no map "
                                "above it; indent it like the keys it belongs with",
                     at->column + 1);
        else if (closer)
            snprintf(hint, cap, "; text follows the value that the '%c' before it closes; quote "
                                "the whole value or remove the extra text",
                     closer);
    } else if (strcmp(problem, "did not find expected '-' indicator") == 0 && first_on_line) {
        snprintf(hint, cap, "; this line is indented like the '- ' items of the list above it, "
                            "so it must be one; start it with '- ', or indent it like the keys "
                            "of the map it belongs to");
    } else if (strcmp(problem, "found character that cannot start any token") == 0) {
        if (c > ' ' && c < 0x7F)
            snprintf(hint, cap, "; YAML reserves '%c' at the start of a plain value; quote the "
                                "value (\"%c...\")",
                     c, c);
        else
            snprintf(hint, cap, "; quote the value that starts here");
    } else if (strcmp(problem, "could not find expected ':'") == 0) {
        line_excerpt(b, mark_to_offset(b->text, b->len, p->context_mark.line, 0), excerpt,
                     sizeof excerpt);
        snprintf(hint, cap, "; line %zu ('%s') is neither 'key: value' nor a '- ' item: add the "
                            "':' after its key, or indent it under the value it continues",
                 p->context_mark.line + 1, excerpt);
    } else if (strcmp(problem, "found undefined tag handle") == 0) {
        snprintf(hint, cap, "; a value that starts with '!' is read as a YAML tag; quote it "
                            "(\"!...\")");
    } else if (strcmp(problem, "block sequence entries are not allowed in this context") == 0) {
        snprintf(hint, cap, "; a '- ' list item starts a line of its own below its key (or "
                            "write the list as [a, b])");
    } else if (strcmp(problem, "found unexpected end of stream") == 0 && p->context &&
               strstr(p->context, "quoted scalar")) {
        snprintf(hint, cap, "; the quote opened there is never closed; close it");
    } else if (strcmp(problem, "found unknown escape character") == 0) {
        snprintf(hint, cap, "; in double quotes '\\' starts an escape: write '\\\\' for a "
                            "backslash, or use single quotes ('C:\\data')");
    } else if (strcmp(problem, "did not find expected ',' or ']'") == 0) {
        snprintf(hint, cap, "; close the list with ']' and separate its items with ','");
    } else if (strcmp(problem, "did not find expected ',' or '}'") == 0) {
        snprintf(hint, cap, "; close the map with '}' and separate its entries with ','");
    }
}

static void report_parser_error(builder *b)
{
    yaml_parser_t *p = &b->parser;
    b->fatal = true;
    if (p->error == YAML_MEMORY_ERROR) {
        report_oom(b);
        return;
    }
    const char *problem = p->problem ? p->problem : "unknown syntax error";
    if (p->error == YAML_READER_ERROR) {
        bool utf8 = strstr(problem, "UTF-8") != NULL;
        char value[16] = "";
        if (p->problem_value >= 0)
            snprintf(value, sizeof value, " 0x%02X", (unsigned)p->problem_value & 0xFFu);
        if (b->fragment) {
            report(b, AGON_ECONFIG, NULL, NULL, "%s%s", problem, value);
            return;
        }
        int line, col;
        offset_to_pos(b->text, b->len, p->problem_offset, &line, &col);
        yaml_mark_t m = {.line = (size_t)line - 1, .column = (size_t)col - 1};
        if (utf8)
            report(b, AGON_ECONFIG, &m, NULL,
                   "invalid UTF-8 (%s%s); save the file with UTF-8 encoding", problem, value);
        else
            report(b, AGON_ECONFIG, &m, NULL, "%s (character%s); remove it", problem, value);
        return;
    }
    if (b->fragment) {
        report(b, AGON_ECONFIG, NULL, NULL, "%s", problem);
        return;
    }
    if (report_tabs(b, mark_to_offset(b->text, b->len, p->problem_mark.line,
                                      p->problem_mark.column)))
        return;
    char hint[AGON_ERROR_MESSAGE_MAX / 2];
    syntax_hint(b, hint, sizeof hint);
    if (p->context)
        report(b, AGON_ECONFIG, &p->problem_mark, NULL, "%s (%s at %zu:%zu)%s", problem,
               p->context, p->context_mark.line + 1, p->context_mark.column + 1, hint);
    else
        report(b, AGON_ECONFIG, &p->problem_mark, NULL, "%s%s", problem, hint);
}

static bool next_event(builder *b, yaml_event_t *ev)
{
    if (yaml_parser_parse(&b->parser, ev))
        return true;
    report_parser_error(b);
    return false;
}

static bool count_node(builder *b, const yaml_mark_t *mark, const char *path)
{
    if (++b->nodes <= AGON_CONFIG_MAX_NODES)
        return true;
    if (!b->fatal)
        report(b, AGON_ECONFIG, mark, path,
               "the document has more than %d nodes after expanding aliases (each '*name' "
               "copies its anchor, so nested aliases multiply); simplify the config",
               AGON_CONFIG_MAX_NODES);
    b->fatal = true;
    return false;
}

static void report_depth(builder *b, const yaml_mark_t *mark)
{
    if (!b->fatal)
        report(b, AGON_ECONFIG, mark, NULL,
               "nesting is deeper than %d levels; flatten the config", AGON_CONFIG_MAX_DEPTH);
    b->fatal = true;
}

static agon_node *make_node(builder *b, agon_node_kind kind, const yaml_mark_t *mark,
                            const char *path)
{
    if (!count_node(b, mark, path))
        return NULL;
    int line = b->fragment ? b->fixed_line : (int)mark->line + 1;
    int col = b->fragment ? b->fixed_col : (int)mark->column + 1;
    agon_node *n = agon__node_new(kind, b->file, line, col);
    if (n) {
        free(n->path);
        n->path = strdup(path);
    }
    if (!n || !n->path) {
        agon__node_free(n);
        report_oom(b);
        return NULL;
    }
    return n;
}

static bool add_anchor(builder *b, const yaml_char_t *name, const agon_node *node)
{
    if (!name)
        return true;
    if (b->n_anchors == b->cap_anchors) {
        size_t cap = b->cap_anchors ? b->cap_anchors * 2 : 8;
        anchor *grown = realloc(b->anchors, cap * sizeof *grown);
        if (!grown)
            return false;
        b->anchors = grown;
        b->cap_anchors = cap;
    }
    char *copy = strdup((const char *)name);
    if (!copy)
        return false;
    b->anchors[b->n_anchors++] = (anchor){copy, node};
    return true;
}

/* A later anchor with the same name shadows an earlier one (YAML 1.2). */
static const agon_node *find_anchor(const builder *b, const char *name)
{
    for (size_t i = b->n_anchors; i-- > 0;) {
        if (strcmp(b->anchors[i].name, name) == 0)
            return b->anchors[i].node;
    }
    return NULL;
}

static bool add_junk(builder *b, agon_node *n)
{
    if (!n)
        return true;
    if (b->n_junk == b->cap_junk) {
        size_t cap = b->cap_junk ? b->cap_junk * 2 : 8;
        agon_node **grown = realloc(b->junk, cap * sizeof *grown);
        if (!grown) {
            agon__node_free(n);
            return false;
        }
        b->junk = grown;
        b->cap_junk = cap;
    }
    b->junk[b->n_junk++] = n;
    return true;
}

static const char *kind_phrase(agon_node_kind kind)
{
    switch (kind) {
    case AGON_NODE_MAP:
        return "a map";
    case AGON_NODE_SEQ:
        return "a list";
    case AGON_NODE_NULL:
        return "an empty value";
    default:
        return "a scalar";
    }
}

/* Expands an alias: a deep copy of the anchored node at its new path,
 * counted against the node limit as it goes, so that a "billion laughs"
 * document stops after AGON_CONFIG_MAX_NODES copies. */
static agon_node *expand_alias(builder *b, const agon_node *src, const char *path, int depth,
                               const yaml_mark_t *site, const char *site_path, bool at_site)
{
    if (src->kind == AGON_NODE_MAP || src->kind == AGON_NODE_SEQ) {
        if (depth >= AGON_CONFIG_MAX_DEPTH) {
            report_depth(b, site);
            return NULL;
        }
    }
    if (!count_node(b, site, site_path))
        return NULL;
    int line = at_site ? (b->fragment ? b->fixed_line : (int)site->line + 1) : src->line;
    int col = at_site ? (b->fragment ? b->fixed_col : (int)site->column + 1) : src->col;
    agon_node *n = agon__node_new(src->kind, src->file, line, col);
    char *copy_path = strdup(path);
    char *copy_text = src->text ? strdup(src->text) : NULL;
    if (!n || !copy_path || (src->text && !copy_text)) {
        free(copy_path);
        free(copy_text);
        agon__node_free(n);
        report_oom(b);
        return NULL;
    }
    free(n->path);
    n->path = copy_path;
    n->text = copy_text;
    n->quoted = src->quoted;
    for (size_t i = 0; i < src->len; i++) {
        const agon__entry *e = &src->items[i];
        if (e->key && !count_node(b, site, site_path))
            break;
        char *child_path = e->key ? path_key(path, e->key) : path_index(path, i);
        agon_node *v = child_path ? expand_alias(b, e->value, child_path, depth + 1, site,
                                                 site_path, false)
                                  : NULL;
        free(child_path);
        if (!v || agon__node_append(n, e->key, e->key_file, e->key_line, e->key_col, v) != 0) {
            if (v)
                agon__node_free(v);
            if (!b->fatal)
                report_oom(b);
            break;
        }
    }
    if (b->fatal) {
        agon__node_free(n);
        return NULL;
    }
    return n;
}

static agon_node *build(builder *b, yaml_event_t *ev, const char *path, int depth);

/* The first code point of the (valid UTF-8) text that libyaml would write
 * back raw although YAML does not allow it raw in a file: the C1 controls
 * U+0080-U+009F other than U+0085, and U+FFFE and U+FFFF.  Such characters
 * can only come from escapes in double-quoted strings ("\u0099").  Other
 * controls (tab, "\x01", DEL) are written back as escapes and stay
 * allowed.  Refusing these keeps the promise that agon reads back every
 * config it writes (a log's resolved config is what a rerun reads).
 * Returns 0 when there is none, and 0x110000 for NUL, which has its own
 * message. */
static uint32_t first_unwritable(const unsigned char *t, size_t len)
{
    for (size_t i = 0; i < len;) {
        uint32_t c = t[i];
        size_t n = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
        if (i + n > len)
            return 0;   /* libyaml hands out valid UTF-8 only */
        for (size_t k = 1; k < n; k++)
            c = (c << 6) | (t[i + k] & 0x3F);
        c &= n == 1 ? 0x7F : n == 2 ? 0x7FF : n == 3 ? 0xFFFF : 0x1FFFFF;
        if (c == 0)
            return 0x110000;
        if ((c >= 0x80 && c <= 0x9F && c != 0x85) || c == 0xFFFE || c == 0xFFFF)
            return c;
        i += n;
    }
    return 0;
}

static agon_node *build_scalar(builder *b, yaml_event_t *ev, const char *path)
{
    const char *value = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    const char *tag = (const char *)ev->data.scalar.tag;
    /* "!!str 32" is as much a string as "'32'". */
    bool plain = (ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE ||
                  ev->data.scalar.style == YAML_ANY_SCALAR_STYLE) &&
                 !(tag && strcmp(tag, YAML_STR_TAG) == 0);
    bool is_null = plain && (len == 0 || strcmp(value, "~") == 0 || strcmp(value, "null") == 0);
    agon_node *n = make_node(b, is_null ? AGON_NODE_NULL : AGON_NODE_SCALAR,
                             &ev->start_mark, path);
    if (!n)
        return NULL;
    /* agon's strings end at a NUL; a value that holds one would be read
     * as a shorter value than the file says. */
    uint32_t bad = is_null ? 0 : first_unwritable((const unsigned char *)value, len);
    if (bad == 0x110000)
        report(b, AGON_ECONFIG, &ev->start_mark, path,
               "the value contains a NUL character (\\0 in a double-quoted string); "
               "remove it");
    else if (bad)
        report(b, AGON_ECONFIG, &ev->start_mark, path,
               "the value contains the character U+%04X (an escape in a double-quoted string), "
               "which a YAML file cannot hold; remove it",
               (unsigned)bad);
    if (!is_null) {
        n->quoted = !plain;
        n->text = malloc(len + 1);
        if (!n->text) {
            agon__node_free(n);
            report_oom(b);
            return NULL;
        }
        memcpy(n->text, value, len);
        n->text[len] = '\0';
    }
    if (!add_anchor(b, ev->data.scalar.anchor, n)) {
        agon__node_free(n);
        report_oom(b);
        return NULL;
    }
    return n;
}

static agon_node *build_alias(builder *b, yaml_event_t *ev, const char *path, int depth)
{
    const char *name = (const char *)ev->data.alias.anchor;
    const agon_node *target = find_anchor(b, name);
    if (!target) {
        /* An anchor that is still open (an alias inside its own anchored
         * collection) is not registered yet and lands here too. */
        report(b, AGON_ECONFIG, &ev->start_mark, path,
               "alias '*%s' does not refer to an anchor '&%s' defined before it; define the "
               "anchor first",
               name, name);
        return make_node(b, AGON_NODE_NULL, &ev->start_mark, path);
    }
    return expand_alias(b, target, path, depth, &ev->start_mark, path, true);
}

static agon_node *build_seq(builder *b, yaml_event_t *ev, const char *path, int depth)
{
    if (depth >= AGON_CONFIG_MAX_DEPTH) {
        report_depth(b, &ev->start_mark);
        return NULL;
    }
    agon_node *n = make_node(b, AGON_NODE_SEQ, &ev->start_mark, path);
    if (!n)
        return NULL;
    for (;;) {
        yaml_event_t item;
        if (!next_event(b, &item))
            goto fail;
        if (item.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&item);
            break;
        }
        char *child_path = path_index(path, n->len);
        if (!child_path) {
            yaml_event_delete(&item);
            report_oom(b);
            goto fail;
        }
        agon_node *v = build(b, &item, child_path, depth + 1);
        free(child_path);
        if (!v)
            goto fail;
        if (agon__node_append(n, NULL, NULL, 0, 0, v) != 0) {
            agon__node_free(v);
            report_oom(b);
            goto fail;
        }
    }
    if (!add_anchor(b, ev->data.sequence_start.anchor, n)) {
        report_oom(b);
        goto fail;
    }
    return n;
fail:
    agon__node_free(n);
    return NULL;
}

/* Reads one key event; returns the key text (owned) or NULL when the key
 * is not usable (the problem is reported, the key's subtree is junked). */
static char *build_key(builder *b, yaml_event_t *kev, const char *path, int depth, bool *ok,
                       bool *plain)
{
    *ok = true;
    *plain = false;
    if (kev->type == YAML_SCALAR_EVENT) {
        char *key = NULL;
        *plain = kev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && !kev->data.scalar.tag;
        if (!count_node(b, &kev->start_mark, path)) {
            *ok = false;
        } else if (kev->data.scalar.length == 0) {
            report(b, AGON_ECONFIG, &kev->start_mark, path, "empty key; give the key a name");
        } else if (memchr(kev->data.scalar.value, '\0', kev->data.scalar.length)) {
            report(b, AGON_ECONFIG, &kev->start_mark, path,
                   "the key contains a NUL character (\\0 in a double-quoted string); "
                   "remove it");
        } else if (first_unwritable(kev->data.scalar.value, kev->data.scalar.length)) {
            report(b, AGON_ECONFIG, &kev->start_mark, path,
                   "the key contains the character U+%04X (an escape in a double-quoted "
                   "string), which a YAML file cannot hold; remove it",
                   (unsigned)first_unwritable(kev->data.scalar.value,
                                               kev->data.scalar.length));
        } else if (!(key = strdup((const char *)kev->data.scalar.value))) {
            report_oom(b);
            *ok = false;
        } else if (kev->data.scalar.anchor) {
            /* An anchored key can be the target of an alias later on. */
            b->nodes--;
            agon_node *k = build_scalar(b, kev, path);
            if (!k || !add_junk(b, k)) {
                if (!b->fatal)
                    report_oom(b);
                free(key);
                key = NULL;
                *ok = false;
            }
        }
        yaml_event_delete(kev);
        return key;
    }
    if (kev->type == YAML_ALIAS_EVENT) {
        const agon_node *target = find_anchor(b, (const char *)kev->data.alias.anchor);
        char *key = NULL;
        if (target && target->kind == AGON_NODE_SCALAR) {
            if (!(key = strdup(target->text))) {
                report_oom(b);
                *ok = false;
            }
        } else if (target) {
            report(b, AGON_ECONFIG, &kev->start_mark, path,
                   "a key must be a string, found %s; write keys as plain names",
                   kind_phrase(target->kind));
        } else {
            report(b, AGON_ECONFIG, &kev->start_mark, path,
                   "alias '*%s' does not refer to an anchor defined before it; define the "
                   "anchor first",
                   (const char *)kev->data.alias.anchor);
        }
        yaml_event_delete(kev);
        return key;
    }
    yaml_mark_t mark = kev->start_mark;
    agon_node *k = build(b, kev, path, depth + 1);
    if (!k) {
        *ok = false;
        return NULL;
    }
    report(b, AGON_ECONFIG, &mark, path,
           "a key must be a string, found %s; write keys as plain names", kind_phrase(k->kind));
    if (!add_junk(b, k)) {
        report_oom(b);
        *ok = false;
    }
    return NULL;
}

static bool is_merge_source(const agon_node *v)
{
    if (v->kind == AGON_NODE_MAP)
        return true;
    if (v->kind != AGON_NODE_SEQ || v->len == 0)
        return false;
    for (size_t i = 0; i < v->len; i++) {
        if (v->items[i].value->kind != AGON_NODE_MAP)
            return false;
    }
    return true;
}

/* YAML merge keys ("<<: *defaults"), which libyaml leaves to the
 * application: keys written in the map win over merged ones wherever they
 * appear, earlier maps in "<<: [*a, *b]" win over later ones, and the merged
 * entries take the place of the '<<' line.  Values are copies that keep the
 * position where their text is written. */
static bool apply_merge(builder *b, agon_node *n, keyindex *ki, const agon_node *merge,
                        size_t merge_at, int depth, const yaml_mark_t *mark)
{
    size_t before = n->len;
    size_t n_src = merge->kind == AGON_NODE_MAP ? 1 : merge->len;
    for (size_t s = 0; s < n_src; s++) {
        const agon_node *src = merge->kind == AGON_NODE_MAP ? merge : merge->items[s].value;
        for (size_t i = 0; i < src->len; i++) {
            const agon__entry *e = &src->items[i];
            if (ki_find(ki, n, e->key) >= 0)
                continue;
            char *child_path = path_key(n->path, e->key);
            agon_node *v = child_path ? expand_alias(b, e->value, child_path, depth + 1, mark,
                                                     n->path, false)
                                      : NULL;
            free(child_path);
            if (!v)
                return false;
            if (agon__node_append(n, e->key, e->key_file, e->key_line, e->key_col, v) != 0) {
                agon__node_free(v);
                return false;
            }
            if (!ki_add_last(ki, n))
                return false;
        }
    }
    size_t added = n->len - before;
    if (added == 0 || merge_at == before)
        return true;
    agon__entry *moved = malloc(added * sizeof *moved);
    if (!moved)
        return false;
    memcpy(moved, &n->items[before], added * sizeof *moved);
    memmove(&n->items[merge_at + added], &n->items[merge_at],
            (before - merge_at) * sizeof *moved);
    memcpy(&n->items[merge_at], moved, added * sizeof *moved);
    free(moved);
    return true;
}

static agon_node *build_map(builder *b, yaml_event_t *ev, const char *path, int depth)
{
    if (depth >= AGON_CONFIG_MAX_DEPTH) {
        report_depth(b, &ev->start_mark);
        return NULL;
    }
    agon_node *n = make_node(b, AGON_NODE_MAP, &ev->start_mark, path);
    if (!n)
        return NULL;
    keyindex ki = {0};
    agon_node *merge = NULL;    /* the value of a '<<' key, merged at the end */
    size_t merge_at = 0;
    for (;;) {
        yaml_event_t kev;
        if (!next_event(b, &kev))
            goto fail;
        if (kev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&kev);
            break;
        }
        yaml_mark_t kmark = kev.start_mark;
        bool ok, plain;
        char *key = build_key(b, &kev, path, depth, &ok, &plain);
        if (!ok)
            goto fail;
        yaml_event_t vev;
        if (!next_event(b, &vev)) {
            free(key);
            goto fail;
        }
        char *child_path = key ? path_key(path, key) : strdup(path);
        if (!child_path) {
            free(key);
            yaml_event_delete(&vev);
            report_oom(b);
            goto fail;
        }
        agon_node *v = build(b, &vev, child_path, depth + 1);
        if (!v) {
            free(key);
            free(child_path);
            goto fail;
        }
        if (key && plain && strcmp(key, "<<") == 0) {
            free(key);
            free(child_path);
            if (!merge && is_merge_source(v)) {
                merge = v;
                merge_at = n->len;
            } else {
                report(b, AGON_ECONFIG, &kmark, path,
                       merge ? "a second merge key '<<' in one map; list the maps to merge as "
                               "<<: [*a, *b]"
                             : "a merge key '<<' takes a map or a list of maps (usually an "
                               "alias like *defaults), not %s",
                       kind_phrase(v->kind));
                if (!add_junk(b, v)) {
                    report_oom(b);
                    goto fail;
                }
            }
            continue;
        }
        long first = key ? ki_find(&ki, n, key) : -1;
        if (key && first >= 0) {
            if (b->fragment)
                report(b, AGON_ECONFIG, &kmark, child_path, "duplicate key '%s'", key);
            else
                report(b, AGON_ECONFIG, &kmark, child_path,
                       "duplicate key '%s' (first at line %d); remove one of them", key,
                       n->items[first].key_line);
        }
        free(child_path);
        int line = b->fragment ? b->fixed_line : (int)kmark.line + 1;
        int col = b->fragment ? b->fixed_col : (int)kmark.column + 1;
        if (!key || first >= 0) {
            free(key);
            if (!add_junk(b, v)) {
                report_oom(b);
                goto fail;
            }
        } else if (append_owned_key(n, key, b->file, line, col, v) != 0 || !ki_add_last(&ki, n)) {
            if (n->len == 0 || n->items[n->len - 1].value != v) {
                free(key);
                agon__node_free(v);
            }
            report_oom(b);
            goto fail;
        }
    }
    if (merge) {
        bool merged = apply_merge(b, n, &ki, merge, merge_at, depth, &ev->start_mark);
        /* Kept until the builder ends: an anchor may point into it. */
        bool kept = add_junk(b, merge);
        merge = NULL;
        if (!merged || !kept) {
            if (!b->fatal)
                report_oom(b);
            goto fail;
        }
    }
    free(ki.slots);
    if (!add_anchor(b, ev->data.mapping_start.anchor, n)) {
        report_oom(b);
        agon__node_free(n);
        return NULL;
    }
    return n;
fail:
    agon__node_free(merge);
    free(ki.slots);
    agon__node_free(n);
    return NULL;
}

/* Builds the node that starts with *ev (consumed). NULL after a fatal
 * problem; other problems are counted and building goes on so that one
 * pass reports them all. */
static agon_node *build(builder *b, yaml_event_t *ev, const char *path, int depth)
{
    agon_node *n = NULL;
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        n = build_scalar(b, ev, path);
        break;
    case YAML_ALIAS_EVENT:
        n = build_alias(b, ev, path, depth);
        break;
    case YAML_SEQUENCE_START_EVENT:
        n = build_seq(b, ev, path, depth);
        break;
    case YAML_MAPPING_START_EVENT:
        n = build_map(b, ev, path, depth);
        break;
    default:
        report(b, AGON_EINTERNAL, &ev->start_mark, path,
               "unexpected YAML event %d (a bug in agon; please report it)", (int)ev->type);
        b->fatal = true;
        break;
    }
    yaml_event_delete(ev);
    return n;
}

static void builder_init(builder *b, const char *text, size_t len, const char *file)
{
    memset(b, 0, sizeof *b);
    yaml_parser_initialize(&b->parser);
    yaml_parser_set_input_string(&b->parser, (const unsigned char *)text, len);
    b->file = file;
    b->text = text;
    b->len = len;
}

static void builder_fini(builder *b)
{
    yaml_parser_delete(&b->parser);
    for (size_t i = 0; i < b->n_anchors; i++)
        free(b->anchors[i].name);
    free(b->anchors);
    for (size_t i = 0; i < b->n_junk; i++)
        agon__node_free(b->junk[i]);
    free(b->junk);
}

/* Parses a stream of at most one document.  Returns its root node (or NULL
 * with *empty set when there is no document / no content); NULL with
 * problems reported otherwise. */
static agon_node *parse_stream(builder *b, bool *empty, yaml_mark_t *root_mark)
{
    *empty = false;
    memset(root_mark, 0, sizeof *root_mark);
    yaml_event_t ev;
    if (!next_event(b, &ev))
        return NULL;
    yaml_event_delete(&ev);     /* STREAM-START */
    if (!next_event(b, &ev))
        return NULL;
    if (ev.type == YAML_STREAM_END_EVENT) {
        yaml_event_delete(&ev);
        *empty = true;
        return NULL;
    }
    yaml_event_delete(&ev);     /* DOCUMENT-START */
    if (!next_event(b, &ev))
        return NULL;
    *root_mark = ev.start_mark;
    agon_node *root = build(b, &ev, "", 0);
    if (!root)
        return NULL;
    if (!next_event(b, &ev))    /* DOCUMENT-END */
        goto fail;
    yaml_event_delete(&ev);
    if (!next_event(b, &ev))
        goto fail;
    if (ev.type == YAML_DOCUMENT_START_EVENT) {
        report(b, AGON_ECONFIG, &ev.start_mark, NULL,
               "a second YAML document starts here; a config file holds one document, so "
               "remove the '---' and what follows or split the file");
        yaml_event_delete(&ev);
        goto fail;
    }
    yaml_event_delete(&ev);
    if (root->kind == AGON_NODE_NULL) {
        agon__node_free(root);
        *empty = true;
        return NULL;
    }
    return root;
fail:
    agon__node_free(root);
    return NULL;
}

/* Parses one file's text into a root map; NULL with problems in diag. */
static agon_node *parse_text(const char *text, size_t len, const char *file, agon_diag *diag)
{
    if (len > AGON_CONFIG_MAX_BYTES) {
        agon_diag_add(diag, AGON_ECONFIG,
                      "%s: the config is larger than %u bytes; split it or shorten it", file,
                      (unsigned)AGON_CONFIG_MAX_BYTES);
        return NULL;
    }
    builder b;
    builder_init(&b, text, len, file);
    b.diag = diag;
    bool empty;
    yaml_mark_t root_mark;
    agon_node *root = parse_stream(&b, &empty, &root_mark);
    if (empty && !b.fatal) {
        agon_diag_add(diag, AGON_ECONFIG,
                      "%s:1:1: the config is empty; write it as a map of 'key: value' lines",
                      file);
        b.problems++;
    } else if (root && root->kind != AGON_NODE_MAP) {
        char shown[64] = "";
        if (root->kind == AGON_NODE_SCALAR) {
            char clipped[48];
            clip(clipped, sizeof clipped, root->text);
            snprintf(shown, sizeof shown, " ('%s')", clipped);
        }
        report(&b, AGON_ECONFIG, &root_mark, NULL,
               "the top level is %s%s, but a config must be a map of 'key: value' lines",
               root->kind == AGON_NODE_SEQ ? "a list" : "a scalar", shown);
    }
    if (b.problems > 0 || b.fatal) {
        agon__node_free(root);
        root = NULL;
    }
    builder_fini(&b);
    return root;
}

agon_node *agon__parse_value(const char *text, const char *file, int line, int col,
                             const char *path, agon_error *err)
{
    /* Wrapping the text in a flow sequence makes it a flow value whatever it
     * looks like ("a: b" is a one-pair map, "- x" an error).  The newline
     * keeps a trailing comment from swallowing the closing bracket. */
    char *wrapped = fmt_alloc("[%s\n]", text);
    if (!wrapped) {
        agon_error_set(err, AGON_ENOMEM, "out of memory");
        return NULL;
    }
    builder b;
    builder_init(&b, wrapped, strlen(wrapped), file);
    b.fragment = true;
    b.fixed_line = line;
    b.fixed_col = col;
    b.frag_err = err;
    bool empty;
    yaml_mark_t root_mark;
    agon_node *list = parse_stream(&b, &empty, &root_mark);
    agon_node *value = NULL;
    if (list && b.problems == 0) {
        if (list->kind != AGON_NODE_SEQ) {
            agon_error_set(err, AGON_ECONFIG, "not a single YAML value");
        } else if (list->len > 1) {
            agon_error_set(err, AGON_ECONFIG, "it is %zu comma-separated values", list->len);
        } else if (list->len == 1) {
            value = list->items[0].value;
            list->len = 0;
        } else {
            value = agon__node_new(AGON_NODE_NULL, file, line, col);
            if (!value)
                agon_error_set(err, AGON_ENOMEM, "out of memory");
        }
    } else if (empty || (!list && b.problems == 0 && !b.fatal)) {
        agon_error_set(err, AGON_ECONFIG, "not a single YAML value");
    }
    agon__node_free(list);
    builder_fini(&b);
    free(wrapped);
    if (value && agon__node_set_path(value, path) != 0) {
        agon__node_free(value);
        agon_error_set(err, AGON_ENOMEM, "out of memory");
        return NULL;
    }
    return value;
}

/* ---- loading files and base: composition -----------------------------------*/

typedef struct loader {
    agon_config *cfg;
    agon_diag *diag;
    /* The chain of files being loaded, for cycle detection. */
    char *real[AGON_CONFIG_MAX_BASE_DEPTH + 2];
    const char *shown[AGON_CONFIG_MAX_BASE_DEPTH + 2];
    int depth;
} loader;

static const char *intern(agon_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_names; i++) {
        if (strcmp(cfg->names[i], name) == 0)
            return cfg->names[i];
    }
    char **grown = realloc(cfg->names, (cfg->n_names + 1) * sizeof *grown);
    if (!grown)
        return NULL;
    cfg->names = grown;
    char *copy = strdup(name);
    if (!copy)
        return NULL;
    cfg->names[cfg->n_names++] = copy;
    return copy;
}

/* read_bounded's answer for a path that is not a regular file. */
#define NOT_REGULAR_FILE (-1)

/* Reads at most AGON_CONFIG_MAX_BYTES + 1 bytes so that a huge (or endless)
 * file is rejected without being read whole.  Only regular files are read:
 * opening a FIFO would block until a writer came.  Returns 0, an errno, or
 * NOT_REGULAR_FILE. */
static int read_bounded(const char *path, char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return errno ? errno : EIO;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        int e = S_ISDIR(st.st_mode) ? EISDIR : NOT_REGULAR_FILE;
        close(fd);
        return e;
    }
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        int e = errno ? errno : EIO;
        close(fd);
        return e;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    int rc = 0;
    while (buf) {
        if (n == cap) {
            if (cap > AGON_CONFIG_MAX_BYTES)
                break;
            cap *= 2;
            char *grown = realloc(buf, cap + 1);
            if (!grown) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = grown;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f))
                rc = errno ? errno : EIO;
            break;
        }
    }
    fclose(f);
    if (!buf)
        return ENOMEM;
    if (rc != 0) {
        free(buf);
        return rc;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

static void report_at(loader *L, int code, const agon_node *site, const char *file,
                      const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Problems with a base file are positioned at the `base:` entry naming it;
 * problems with the top file at the file itself. */
static void report_at(loader *L, int code, const agon_node *site, const char *file,
                      const char *fmt, ...)
{
    char msg[AGON_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (site)
        agon_node_diag(L->diag, code, site, "%s", msg);
    else
        agon_diag_add(L->diag, code, "%s: %s", file, msg);
}

static agon_node *load_file(loader *L, const char *path, const agon_node *site, int depth);

static int merge_maps(agon_node *dst, agon_node *src);

static char *join_dir(const char *dir, const char *name)
{
    if (name[0] == '/' || !dir[0])
        return strdup(name);
    return fmt_alloc("%s%s", dir, name);
}

static char *dir_of(const char *file)
{
    const char *slash = strrchr(file, '/');
    size_t n = slash ? (size_t)(slash - file) + 1 : 0;
    char *dir = malloc(n + 1);
    if (dir) {
        memcpy(dir, file, n);
        dir[n] = '\0';
    }
    return dir;
}

/* Resolves the root's `base:` entry: loads every base file (reporting
 * every failure), merges them in order and this file over them.  Consumes
 * root; returns the merged root or NULL. */
static agon_node *apply_bases(loader *L, agon_node *root, const char *dir, int depth)
{
    long at = agon__map_find(root, "base");
    if (at < 0)
        return root;
    agon_node *spec = root->items[at].value;
    free(root->items[at].key);
    memmove(&root->items[at], &root->items[at + 1],
            (root->len - (size_t)at - 1) * sizeof root->items[0]);
    root->len--;

    const agon_node *single[1] = {spec};
    const agon_node *const *names = single;
    size_t n_names = 1;
    agon_node **items = NULL;
    bool failed = false;
    if (spec->kind == AGON_NODE_NULL) {
        n_names = 0;
    } else if (spec->kind == AGON_NODE_SEQ) {
        items = malloc((spec->len ? spec->len : 1) * sizeof *items);
        if (!items) {
            agon_diag_add(L->diag, AGON_ENOMEM, "out of memory while loading base files");
            failed = true;
            n_names = 0;
        } else {
            for (size_t i = 0; i < spec->len; i++)
                items[i] = spec->items[i].value;
            names = (const agon_node *const *)items;
            n_names = spec->len;
        }
    } else if (spec->kind == AGON_NODE_MAP) {
        agon_node_diag(L->diag, AGON_ECONFIG, spec,
                       "expected a file name or a list of file names, got a map");
        failed = true;
        n_names = 0;
    }

    agon_node *merged = NULL;
    for (size_t i = 0; i < n_names; i++) {
        const agon_node *name = names[i];
        if (name->kind != AGON_NODE_SCALAR || name->text[0] == '\0') {
            agon_node_diag(L->diag, AGON_ECONFIG, name, "expected a file name, got %s",
                           name->kind == AGON_NODE_SCALAR ? "an empty string"
                                                          : kind_phrase(name->kind));
            failed = true;
            continue;
        }
        char *path = join_dir(dir, name->text);
        agon_node *base = path ? load_file(L, path, name, depth + 1) : NULL;
        if (!path)
            agon_diag_add(L->diag, AGON_ENOMEM, "out of memory while loading base files");
        free(path);
        if (!base) {
            failed = true;
        } else if (!merged) {
            merged = base;
        } else if (merge_maps(merged, base) != 0) {
            agon_diag_add(L->diag, AGON_ENOMEM, "out of memory while merging base files");
            failed = true;
        }
    }
    free(items);
    agon__node_free(spec);
    if (failed) {
        agon__node_free(merged);
        agon__node_free(root);
        return NULL;
    }
    if (!merged)
        return root;
    if (merge_maps(merged, root) != 0) {
        agon_diag_add(L->diag, AGON_ENOMEM, "out of memory while merging base files");
        agon__node_free(merged);
        return NULL;
    }
    return merged;
}

static agon_node *load_file(loader *L, const char *path, const agon_node *site, int depth)
{
    if (depth > AGON_CONFIG_MAX_BASE_DEPTH) {
        report_at(L, AGON_ECONFIG, site, path,
                  "base files are nested more than %d levels deep; shorten the chain of "
                  "base: files",
                  AGON_CONFIG_MAX_BASE_DEPTH);
        return NULL;
    }
    char *real = realpath(path, NULL);
    for (int i = 0; real && i < L->depth; i++) {
        if (strcmp(L->real[i], real) == 0) {
            char chain[AGON_ERROR_MESSAGE_MAX] = "";
            size_t used = 0;
            for (int j = i; j < L->depth && used < sizeof chain; j++)
                used += (size_t)snprintf(chain + used, sizeof chain - used, "%s -> ",
                                         L->shown[j]);
            if (used < sizeof chain)
                snprintf(chain + used, sizeof chain - used, "%s", path);
            report_at(L, AGON_ECONFIG, site, path,
                      "base file '%s' includes itself (%s); remove the cycle", path, chain);
            free(real);
            return NULL;
        }
    }
    char *text;
    size_t len;
    int rc = read_bounded(path, &text, &len);
    if (rc != 0) {
        const char *why = rc == NOT_REGULAR_FILE ? "not a regular file (a FIFO, device or socket)"
                                                 : strerror(rc);
        if (site)
            agon_node_diag(L->diag, AGON_EIO, site, "cannot read file '%s': %s; check the path",
                           path, why);
        else
            agon_diag_add(L->diag, AGON_EIO, "%s: cannot read file: %s; check the path", path,
                          why);
        free(real);
        return NULL;
    }
    const char *name = intern(L->cfg, path);
    agon_node *root = name ? parse_text(text, len, name, L->diag) : NULL;
    if (!name)
        agon_diag_add(L->diag, AGON_ENOMEM, "out of memory while loading '%s'", path);
    free(text);
    char *dir = dir_of(path);
    if (!root || !dir) {
        if (root)
            agon_diag_add(L->diag, AGON_ENOMEM, "out of memory while loading '%s'", path);
        agon__node_free(root);
        free(dir);
        free(real);
        return NULL;
    }
    L->real[L->depth] = real ? real : strdup("");
    L->shown[L->depth] = name;
    L->depth++;
    root = apply_bases(L, root, dir, depth);
    L->depth--;
    free(L->real[L->depth]);
    free(dir);
    return root;
}

/* Child-wins merge of two maps: src's entries go over dst's (recursively
 * for map-into-map, replacing anything else); keys new to dst are appended
 * so that the base's order comes first.  Consumes src. */
static int merge_maps(agon_node *dst, agon_node *src)
{
    int rc = 0;
    keyindex ki = {0};
    if (!ki_reserve(&ki, dst, dst->len + src->len))
        rc = AGON_ENOMEM;
    dst->file = src->file;
    dst->line = src->line;
    dst->col = src->col;
    for (size_t i = 0; i < src->len; i++) {
        agon__entry *e = &src->items[i];
        if (rc != 0) {
            free(e->key);
            agon__node_free(e->value);
            continue;
        }
        long j = ki_find(&ki, dst, e->key);
        if (j < 0) {
            if (append_owned_key(dst, e->key, e->key_file, e->key_line, e->key_col, e->value) !=
                    0 ||
                !ki_add_last(&ki, dst)) {
                if (dst->len == 0 || dst->items[dst->len - 1].value != e->value) {
                    free(e->key);
                    agon__node_free(e->value);
                }
                rc = AGON_ENOMEM;
            }
            continue;
        }
        agon__entry *d = &dst->items[j];
        d->key_file = e->key_file;
        d->key_line = e->key_line;
        d->key_col = e->key_col;
        free(e->key);
        if (d->value->kind == AGON_NODE_MAP && e->value->kind == AGON_NODE_MAP) {
            rc = merge_maps(d->value, e->value);
        } else {
            agon__node_free(d->value);
            d->value = e->value;
        }
    }
    free(ki.slots);
    src->len = 0;
    agon__node_free(src);
    return rc;
}

agon_config *agon_config_load(const char *path, agon_diag *diag)
{
    agon_config *cfg = calloc(1, sizeof *cfg);
    if (!cfg) {
        agon_diag_add(diag, AGON_ENOMEM, "%s: out of memory", path);
        return NULL;
    }
    loader L = {.cfg = cfg, .diag = diag};
    cfg->root = load_file(&L, path, NULL, 0);
    if (!cfg->root) {
        agon_config_destroy(cfg);
        return NULL;
    }
    return cfg;
}

agon_config *agon_config_parse(const char *text, size_t len, const char *name, agon_diag *diag)
{
    if (!name)
        name = "<string>";
    agon_config *cfg = calloc(1, sizeof *cfg);
    const char *file = cfg ? intern(cfg, name) : NULL;
    if (!file) {
        agon_diag_add(diag, AGON_ENOMEM, "%s: out of memory", name);
        agon_config_destroy(cfg);
        return NULL;
    }
    loader L = {.cfg = cfg, .diag = diag};
    agon_node *root = parse_text(text, len, file, diag);
    if (root)
        root = apply_bases(&L, root, "", 0);
    if (!root) {
        agon_config_destroy(cfg);
        return NULL;
    }
    cfg->root = root;
    return cfg;
}

void agon_config_destroy(agon_config *cfg)
{
    if (!cfg)
        return;
    agon__node_free(cfg->root);
    for (size_t i = 0; i < cfg->n_names; i++)
        free(cfg->names[i]);
    free(cfg->names);
    free(cfg);
}

const agon_node *agon_config_root(const agon_config *cfg)
{
    return cfg ? cfg->root : NULL;
}

static bool contains(const agon_node *tree, const agon_node *node)
{
    if (tree == node)
        return true;
    for (size_t i = 0; i < tree->len; i++) {
        if (contains(tree->items[i].value, node))
            return true;
    }
    return false;
}

bool agon__config_contains(const agon_config *cfg, const agon_node *node)
{
    return cfg && cfg->root && node && contains(cfg->root, node);
}

/* ---- node accessors -----------------------------------------------------*/

agon_node_kind agon_node_kind_of(const agon_node *node)
{
    return node ? node->kind : AGON_NODE_NULL;
}

const char *agon_node_file(const agon_node *node)
{
    return node ? node->file : NULL;
}

int agon_node_line(const agon_node *node)
{
    return node ? node->line : 0;
}

int agon_node_col(const agon_node *node)
{
    return node ? node->col : 0;
}

const char *agon_node_path(const agon_node *node)
{
    return node ? node->path : NULL;
}

const char *agon_node_scalar(const agon_node *node)
{
    if (!node)
        return NULL;
    if (node->kind == AGON_NODE_NULL)
        return "";
    return node->kind == AGON_NODE_SCALAR ? node->text : NULL;
}

bool agon_node_quoted(const agon_node *node)
{
    return node && node->kind == AGON_NODE_SCALAR && node->quoted;
}

size_t agon_node_len(const agon_node *node)
{
    return node && (node->kind == AGON_NODE_MAP || node->kind == AGON_NODE_SEQ) ? node->len : 0;
}

const agon_node *agon_node_at(const agon_node *node, size_t i)
{
    return i < agon_node_len(node) ? node->items[i].value : NULL;
}

const char *agon_node_key_at(const agon_node *node, size_t i)
{
    return node && node->kind == AGON_NODE_MAP && i < node->len ? node->items[i].key : NULL;
}

const agon_node *agon_node_get(const agon_node *map, const char *key)
{
    long i = key ? agon__map_find(map, key) : -1;
    return i >= 0 ? map->items[i].value : NULL;
}

/* ---- --set ----------------------------------------------------------------*/

typedef struct segment {
    char *key;          /* NULL for an index */
    size_t index;
} segment;

static void free_segments(segment *segs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(segs[i].key);
    free(segs);
}

/* "a.b[2].c" -> [a, b, [2], c].  Returns NULL with a reason in why. */
static segment *parse_keypath(const char *s, size_t *count, const char **why)
{
    size_t n = 0, cap = 4;
    segment *segs = malloc(cap * sizeof *segs);
    *why = "out of memory";
    if (!segs)
        return NULL;
    const char *p = s;
    for (;;) {
        size_t klen = strcspn(p, ".[]");
        if (klen == 0) {
            *why = *p == '[' || *p == ']' ? "a list index must follow a key, as in metrics[0]"
                                          : "it has an empty key between dots";
            goto fail;
        }
        for (;;) {
            if (n + 1 >= cap) {
                segment *grown = realloc(segs, 2 * cap * sizeof *segs);
                if (!grown)
                    goto fail;
                segs = grown;
                cap *= 2;
            }
            if (klen > 0) {
                segs[n].key = strndup(p, klen);
                segs[n].index = 0;
                if (!segs[n].key)
                    goto fail;
                n++;
                p += klen;
                klen = 0;
                continue;
            }
            if (*p != '[')
                break;
            char *end;
            if (p[1] < '0' || p[1] > '9') {
                *why = "a list index must be a number in brackets, as in metrics[0]";
                goto fail;
            }
            errno = 0;
            unsigned long long idx = strtoull(p + 1, &end, 10);
            if (*end != ']' || errno != 0 || idx > SIZE_MAX / 2) {
                *why = "a list index must be a number in brackets, as in metrics[0]";
                goto fail;
            }
            segs[n].key = NULL;
            segs[n].index = (size_t)idx;
            n++;
            p = end + 1;
        }
        if (*p == '\0')
            break;
        if (*p != '.') {
            *why = "a ']' or text follows an index where a '.' is expected";
            goto fail;
        }
        p++;
    }
    *count = n;
    return segs;
fail:
    free_segments(segs, n);
    return NULL;
}

static char *trimmed(const char *s, size_t n)
{
    while (n > 0 && (*s == ' ' || *s == '\t')) {
        s++;
        n--;
    }
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    return strndup(s, n);
}

static const char *shown_path(const agon_node *n)
{
    return n->path[0] ? n->path : "the top level";
}

/* Walks the path; with apply == false only checks that the assignment can
 * be made (so that a failing --set leaves the tree untouched). */
static int set_walk(agon_config *cfg, const segment *segs, size_t n, agon_node *value,
                    bool apply, int index, const char *keytext, agon_error *err)
{
    agon_node *cur = cfg->root;
    bool virtual_map = false;   /* dry run: below a map that does not exist yet */
    char pos[64];
    snprintf(pos, sizeof pos, "--set:%d:1", index);
    for (size_t s = 0; s < n; s++) {
        const segment *seg = &segs[s];
        bool last = s + 1 == n;
        if (virtual_map) {
            if (!seg->key)
                return agon_error_set(err, AGON_ECONFIG,
                                      "%s: %s: cannot index into a list that does not exist; "
                                      "set the whole list instead",
                                      pos, keytext);
            continue;
        }
        if (!seg->key) {
            if (cur->kind != AGON_NODE_SEQ)
                return agon_error_set(err, AGON_ECONFIG,
                                      "%s: %s: %s is %s, not a list; remove the [%zu]", pos,
                                      keytext, shown_path(cur), kind_phrase(cur->kind),
                                      seg->index);
            if (seg->index >= cur->len) {
                if (cur->len == 0)
                    return agon_error_set(err, AGON_ECONFIG,
                                          "%s: %s: index %zu is out of range, %s is empty; "
                                          "set the whole list instead",
                                          pos, keytext, seg->index, cur->path);
                return agon_error_set(err, AGON_ECONFIG,
                                      "%s: %s: index %zu is out of range, %s has %zu items; use "
                                      "an index from 0 to %zu",
                                      pos, keytext, seg->index, cur->path, cur->len,
                                      cur->len - 1);
            }
            if (last && apply) {
                char *path = path_index(cur->path, seg->index);
                if (!path || agon__node_set_path(value, path) != 0) {
                    free(path);
                    return agon_error_set(err, AGON_ENOMEM, "out of memory");
                }
                free(path);
                agon__node_free(cur->items[seg->index].value);
                cur->items[seg->index].value = value;
                return 0;
            }
            cur = cur->items[seg->index].value;
            continue;
        }
        if (cur->kind == AGON_NODE_NULL) {
            /* "generator:" left empty: setting a key in it makes it a map. */
            if (!apply) {
                virtual_map = !last;
                continue;
            }
            cur->kind = AGON_NODE_MAP;
        }
        if (cur->kind == AGON_NODE_SCALAR)
            return agon_error_set(err, AGON_ECONFIG,
                                  "%s: %s: %s is a scalar (%s:%d:%d), not a map; fix the key "
                                  "path",
                                  pos, keytext, cur->path, cur->file, cur->line, cur->col);
        if (cur->kind == AGON_NODE_SEQ)
            return agon_error_set(err, AGON_ECONFIG,
                                  "%s: %s: %s is a list, not a map; index it as %s[N]", pos,
                                  keytext, shown_path(cur), cur->path);
        long j = agon__map_find(cur, seg->key);
        if (last) {
            if (!apply)
                return 0;
            char *path = path_key(cur->path, seg->key);
            if (!path || agon__node_set_path(value, path) != 0) {
                free(path);
                return agon_error_set(err, AGON_ENOMEM, "out of memory");
            }
            free(path);
            if (j >= 0) {
                agon__node_free(cur->items[j].value);
                cur->items[j].value = value;
                return 0;
            }
            if (agon__node_append(cur, seg->key, AGON__SET_FILE, index, 1, value) != 0)
                return agon_error_set(err, AGON_ENOMEM, "out of memory");
            return 0;
        }
        if (j >= 0) {
            cur = cur->items[j].value;
            continue;
        }
        if (!apply) {
            virtual_map = true;
            continue;
        }
        agon_node *map = agon__node_new(AGON_NODE_MAP, AGON__SET_FILE, index, 1);
        char *path = path_key(cur->path, seg->key);
        if (!map || !path || agon__node_set_path(map, path) != 0 ||
            agon__node_append(cur, seg->key, AGON__SET_FILE, index, 1, map) != 0) {
            free(path);
            agon__node_free(map);
            return agon_error_set(err, AGON_ENOMEM, "out of memory");
        }
        free(path);
        cur = map;
    }
    return 0;
}

int agon_config_set(agon_config *cfg, const char *assignment, int index, agon_error *err)
{
    const char *eq = strchr(assignment, '=');
    if (!eq)
        return agon_error_set(err, AGON_ECONFIG,
                              "--set:%d:1: '%s' has no '='; write --set key.path=value", index,
                              assignment);
    char *key = trimmed(assignment, (size_t)(eq - assignment));
    if (!key)
        return agon_error_set(err, AGON_ENOMEM, "out of memory");
    if (key[0] == '\0') {
        free(key);
        return agon_error_set(err, AGON_ECONFIG,
                              "--set:%d:1: '%s' has an empty key; write --set key.path=value",
                              index, assignment);
    }
    size_t n;
    const char *why;
    segment *segs = parse_keypath(key, &n, &why);
    if (!segs) {
        int rc = agon_error_set(err, AGON_ECONFIG,
                                "--set:%d:1: bad key path '%s': %s; write keys separated by "
                                "'.' and list indices as [N]",
                                index, key, why);
        free(key);
        return rc;
    }
    int rc = set_walk(cfg, segs, n, NULL, false, index, key, err);
    agon_node *value = NULL;
    if (rc == 0) {
        agon_error perr = {0};
        value = agon__parse_value(eq + 1, AGON__SET_FILE, index, 1, "", &perr);
        if (!value) {
            char shown[128];
            clip(shown, sizeof shown, eq + 1);
            rc = agon_error_set(err, perr.code ? perr.code : AGON_ECONFIG,
                                "--set:%d:1: %s: cannot parse value '%s': %s; quote the value "
                                "or fix its YAML syntax",
                                index, key, shown, perr.message);
        }
    }
    if (rc == 0) {
        rc = set_walk(cfg, segs, n, value, true, index, key, err);
        if (rc != 0)
            agon__node_free(value);
    }
    free_segments(segs, n);
    free(key);
    return rc;
}

const agon_node *agon_config_ensure_map(agon_config *cfg, const char *path, agon_error *err)
{
    agon_node *cur = cfg->root;
    const char *p = path;
    while (*p) {
        size_t klen = strcspn(p, ".");
        char *key = strndup(p, klen);
        if (!key) {
            agon_error_set(err, AGON_ENOMEM, "out of memory");
            return NULL;
        }
        p += klen;
        if (*p == '.')
            p++;
        if (cur->kind == AGON_NODE_NULL)
            cur->kind = AGON_NODE_MAP;
        if (cur->kind != AGON_NODE_MAP) {
            agon_node_error(err, AGON_ECONFIG, cur, "expected a map, got %s; write %s as "
                            "'key: value' lines",
                            kind_phrase(cur->kind), shown_path(cur));
            free(key);
            return NULL;
        }
        long j = agon__map_find(cur, key);
        if (j >= 0) {
            cur = cur->items[j].value;
        } else {
            agon_node *map = agon__node_new(AGON_NODE_MAP, AGON__DEFAULT_FILE, 0, 0);
            char *child = path_key(cur->path, key);
            if (!map || !child || agon__node_set_path(map, child) != 0 ||
                agon__node_append(cur, key, AGON__DEFAULT_FILE, 0, 0, map) != 0) {
                agon__node_free(map);
                free(child);
                free(key);
                agon_error_set(err, AGON_ENOMEM, "out of memory");
                return NULL;
            }
            free(child);
            cur = map;
        }
        free(key);
    }
    if (cur->kind == AGON_NODE_NULL)
        cur->kind = AGON_NODE_MAP;
    if (cur->kind != AGON_NODE_MAP) {
        char shown[64] = "";
        if (cur->kind == AGON_NODE_SCALAR) {
            char clipped[48];
            clip(clipped, sizeof clipped, cur->text);
            snprintf(shown, sizeof shown, " '%s'", clipped);
        }
        agon_node_error(err, AGON_ECONFIG, cur, "expected a map, got %s%s; write %s as "
                        "'key: value' lines",
                        kind_phrase(cur->kind), shown, shown_path(cur));
        return NULL;
    }
    return cur;
}

/* ---- YAML output ------------------------------------------------------------*/

typedef struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
} sbuf;

static void sb_put(sbuf *sb, const char *s, size_t n)
{
    if (sb->oom)
        return;
    if (sb->len + n + 1 > sb->cap) {
        size_t cap = sb->cap ? sb->cap : 256;
        while (sb->len + n + 1 > cap)
            cap *= 2;
        char *grown = realloc(sb->p, cap);
        if (!grown) {
            sb->oom = true;
            return;
        }
        sb->p = grown;
        sb->cap = cap;
    }
    memcpy(sb->p + sb->len, s, n);
    sb->len += n;
    sb->p[sb->len] = '\0';
}

static void sb_puts(sbuf *sb, const char *s)
{
    sb_put(sb, s, strlen(s));
}

static void sb_indent(sbuf *sb, int n)
{
    for (int i = 0; i < n; i++)
        sb_put(sb, " ", 1);
}

/* Characters libyaml treats as line breaks or strips: never plain. */
static bool has_special_unicode(const char *s)
{
    return strstr(s, "\xC2\x85") || strstr(s, "\xE2\x80\xA8") || strstr(s, "\xE2\x80\xA9") ||
           strstr(s, "\xEF\xBB\xBF");
}

/* True when `s` written plain in block context reads back as the same
 * text (typing aside: callers quote text that was quoted). */
static bool plain_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || s[0] == ' ' || s[n - 1] == ' ' || s[n - 1] == ':')
        return false;
    if (strchr("[]{},#&*!|>'\"%@`", s[0]))
        return false;
    if (strchr("-?:", s[0]) && (n == 1 || s[1] == ' '))
        return false;
    if (strncmp(s, "---", 3) == 0 || strncmp(s, "...", 3) == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7F)
            return false;
        if ((c == ':' && s[i + 1] == ' ') || (c == ' ' && s[i + 1] == '#'))
            return false;
    }
    return !has_special_unicode(s);
}

static void put_quoted(sbuf *sb, const char *s)
{
    sb_put(sb, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        const char *out = NULL;
        switch (*p) {
        case '"': out = "\\\""; break;
        case '\\': out = "\\\\"; break;
        case '\n': out = "\\n"; break;
        case '\t': out = "\\t"; break;
        case '\r': out = "\\r"; break;
        default:
            if (*p < 0x20 || *p == 0x7F) {
                snprintf(esc, sizeof esc, "\\x%02X", *p);
                out = esc;
            } else if (p[0] == 0xC2 && p[1] == 0x85) {
                out = "\\N";
                p += 1;
            } else if (p[0] == 0xE2 && p[1] == 0x80 && (p[2] == 0xA8 || p[2] == 0xA9)) {
                out = p[2] == 0xA8 ? "\\L" : "\\P";
                p += 2;
            } else if (p[0] == 0xEF && p[1] == 0xBB && p[2] == 0xBF) {
                out = "\\uFEFF";
                p += 2;
            }
        }
        if (out)
            sb_puts(sb, out);
        else
            sb_put(sb, (const char *)p, 1);
    }
    sb_put(sb, "\"", 1);
}

/* YAML limits an implicit key ("key: value") to 1024 characters as
 * written; a longer one (a long key, or one that quoting made longer) is
 * written as an explicit key ("? key" and ":" on the next line). */
enum { YAML_IMPLICIT_KEY_MAX = 1024 };

static void put_key(sbuf *sb, const char *key, int indent)
{
    sbuf k = {0};
    /* A plain "<<" would read back as a merge key. */
    if (plain_ok(key) && strcmp(key, "<<") != 0)
        sb_puts(&k, key);
    else
        put_quoted(&k, key);
    if (k.oom) {
        sb->oom = true;
    } else if (k.len > YAML_IMPLICIT_KEY_MAX) {
        sb_puts(sb, "? ");
        sb_put(sb, k.p, k.len);
        sb_puts(sb, "\n");
        sb_indent(sb, indent);
    } else {
        sb_put(sb, k.p, k.len);
    }
    free(k.p);
}

static void put_scalar(sbuf *sb, const agon_node *n)
{
    if (n->kind == AGON_NODE_NULL)
        sb_puts(sb, "null");
    else if (!n->quoted && plain_ok(n->text))
        sb_puts(sb, n->text);
    else
        put_quoted(sb, n->text);
}

static void emit_block(sbuf *sb, const agon_node *n, int indent, bool inline_first);

/* Writes a value after "key:" or "- ". */
static void emit_value(sbuf *sb, const agon_node *v, int indent, bool after_dash)
{
    if ((v->kind == AGON_NODE_MAP || v->kind == AGON_NODE_SEQ) && v->len > 0) {
        if (after_dash) {
            emit_block(sb, v, indent, true);
        } else {
            sb_puts(sb, "\n");
            emit_block(sb, v, indent, false);
        }
        return;
    }
    if (!after_dash)
        sb_puts(sb, " ");
    if (v->kind == AGON_NODE_MAP)
        sb_puts(sb, "{}");
    else if (v->kind == AGON_NODE_SEQ)
        sb_puts(sb, "[]");
    else
        put_scalar(sb, v);
    sb_puts(sb, "\n");
}

/* A non-empty collection at `indent`; with inline_first the cursor is
 * already on the line (after "- ") and the first line is not indented. */
static void emit_block(sbuf *sb, const agon_node *n, int indent, bool inline_first)
{
    for (size_t i = 0; i < n->len; i++) {
        if (i > 0 || !inline_first)
            sb_indent(sb, indent);
        const agon__entry *e = &n->items[i];
        if (n->kind == AGON_NODE_MAP) {
            put_key(sb, e->key, indent);
            sb_puts(sb, ":");
            emit_value(sb, e->value, indent + 2, false);
        } else {
            sb_puts(sb, "- ");
            emit_value(sb, e->value, indent + 2, true);
        }
    }
}

char *agon_config_to_yaml(const agon_config *cfg, agon_error *err)
{
    sbuf sb = {0};
    if (!cfg || !cfg->root || cfg->root->len == 0)
        sb_puts(&sb, "{}\n");
    else
        emit_block(&sb, cfg->root, 0, false);
    if (sb.oom) {
        free(sb.p);
        agon_error_set(err, AGON_ENOMEM, "out of memory while writing the config as YAML");
        return NULL;
    }
    return sb.p;
}

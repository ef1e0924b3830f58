/* The host side of the plugin ABI: loading, checking and looking up
 * components (see agon/plugin.h). */

/* dladdr and Dl_info are GNU extensions of <dlfcn.h>. */
#define _GNU_SOURCE

#include "agon/plugin.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "elf_check.h"
#include "sha256_int.h"

#if !defined(AGON_BUILD_LIBDIR) || !defined(AGON_BUILD_PLUGIN_DIR) ||              \
    !defined(AGON_INSTALL_PLUGIN_DIR)
#error "core/CMakeLists.txt must define the AGON_*_DIR locations"
#endif

/* ---- names ---------------------------------------------------------------- */

static const char *const kind_names[] = {
#define AGON__KIND_NAME(e, s) s,
    AGON_KIND_MAP(AGON__KIND_NAME)
#undef AGON__KIND_NAME
};
_Static_assert(sizeof kind_names / sizeof kind_names[0] == AGON_KIND_COUNT,
               "kind_names must cover AGON_KIND_MAP");

const char *agon_kind_name(agon_kind kind)
{
    if ((unsigned)kind >= AGON_KIND_COUNT)
        return NULL;
    return kind_names[kind];
}

static const char *const role_names[] = {"generator", "discriminator"};
_Static_assert(sizeof role_names / sizeof role_names[0] == AGON_ROLE_COUNT,
               "role_names must cover agon_role");

const char *agon_role_name(agon_role role)
{
    if ((unsigned)role >= AGON_ROLE_COUNT)
        return NULL;
    return role_names[role];
}

/* Per kind: the vtable's C name (for messages) and the size the host was
 * compiled with, which a plugin's vtable must match exactly. */
static const struct {
    const char *type;
    size_t size;
} vtable_info[] = {
    [AGON_KIND_LOSS] = {"agon_loss_vtable", sizeof(agon_loss_vtable)},
    [AGON_KIND_MODEL] = {"agon_model_vtable", sizeof(agon_model_vtable)},
    [AGON_KIND_DATASET] = {"agon_dataset_vtable", sizeof(agon_dataset_vtable)},
    [AGON_KIND_METRIC] = {"agon_metric_vtable", sizeof(agon_metric_vtable)},
    [AGON_KIND_OPTIMIZER] = {"agon_optimizer_vtable", sizeof(agon_optimizer_vtable)},
};
_Static_assert(sizeof vtable_info / sizeof vtable_info[0] == AGON_KIND_COUNT,
               "vtable_info must cover AGON_KIND_MAP");

/* ---- the registry ----------------------------------------------------------- */

typedef struct plugin {
    agon_plugin_record rec;     /* rec.path owned */
    char *real;                 /* owned: canonical path, to spot a second load */
    void *handle;
} plugin;

struct agon_registry {
    plugin *plugins;            /* in load order */
    size_t n_plugins, cap_plugins;
    char **dirs;                /* directories searched, as given */
    char **dir_reals;           /* their canonical paths (NULL if missing) */
    size_t n_dirs;
};

agon_registry *agon_registry_create(agon_error *err)
{
    agon_registry *reg = calloc(1, sizeof *reg);
    if (!reg)
        agon_error_set(err, AGON_ENOMEM, "out of memory creating the plugin registry");
    return reg;
}

void agon_registry_destroy(agon_registry *reg)
{
    if (!reg)
        return;
    /* Reverse order: a later plugin may use what an earlier one set up. */
    for (size_t i = reg->n_plugins; i-- > 0;) {
        plugin *p = &reg->plugins[i];
        if (p->rec.desc->fini)
            p->rec.desc->fini();
        dlclose(p->handle);
        free((char *)p->rec.path);
        free(p->real);
    }
    free(reg->plugins);
    for (size_t i = 0; i < reg->n_dirs; i++) {
        free(reg->dirs[i]);
        free(reg->dir_reals[i]);
    }
    free(reg->dirs);
    free(reg->dir_reals);
    free(reg);
}

size_t agon_registry_plugin_count(const agon_registry *reg)
{
    return reg ? reg->n_plugins : 0;
}

const agon_plugin_record *agon_registry_plugin(const agon_registry *reg, size_t i)
{
    if (!reg || i >= reg->n_plugins)
        return NULL;
    return &reg->plugins[i].rec;
}

size_t agon_registry_dir_count(const agon_registry *reg)
{
    return reg ? reg->n_dirs : 0;
}

const char *agon_registry_dir(const agon_registry *reg, size_t i)
{
    if (!reg || i >= reg->n_dirs)
        return NULL;
    return reg->dirs[i];
}

const agon_component *agon_registry_find(const agon_registry *reg, agon_kind kind,
                                         const char *name,
                                         const agon_plugin_record **owner)
{
    if (owner)
        *owner = NULL;
    if (!reg || !name)
        return NULL;
    for (size_t p = 0; p < reg->n_plugins; p++) {
        const agon_plugin_descriptor *d = reg->plugins[p].rec.desc;
        for (size_t c = 0; c < d->n_components; c++) {
            const agon_component *comp = &d->components[c];
            if (comp->kind == kind && strcmp(comp->name, name) == 0) {
                if (owner)
                    *owner = &reg->plugins[p].rec;
                return comp;
            }
        }
    }
    return NULL;
}

const char *agon_registry_suggest(const agon_registry *reg, agon_kind kind,
                                  const char *name)
{
    if (!reg || !name)
        return NULL;
    size_t n = 0;
    for (size_t p = 0; p < reg->n_plugins; p++)
        n += reg->plugins[p].rec.desc->n_components;
    const char **names = malloc((n + 1) * sizeof *names);
    if (!names)
        return NULL;
    size_t k = 0;
    for (size_t p = 0; p < reg->n_plugins; p++) {
        const agon_plugin_descriptor *d = reg->plugins[p].rec.desc;
        for (size_t c = 0; c < d->n_components; c++) {
            if (d->components[c].kind == kind)
                names[k++] = d->components[c].name;
        }
    }
    names[k] = NULL;
    /* The answer points into a plugin's static data, not into `names`. */
    const char *best = agon_suggest(name, names);
    free(names);
    return best;
}

/* ---- checking one file ------------------------------------------------------ */

/* Formats "PATH: plugin STEP failed: REASON" into err; returns `code`. */
static int plugin_fail_code(agon_error *err, int code, const char *path,
                            const char *step, const char *fmt, va_list ap)
{
    char reason[AGON_ERROR_MESSAGE_MAX];
    vsnprintf(reason, sizeof reason, fmt, ap);
    return agon_error_set(err, code, "%s: plugin %s failed: %s", path, step, reason);
}

static int plugin_fail(agon_error *err, const char *path, const char *step,
                       const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int plugin_fail(agon_error *err, const char *path, const char *step,
                       const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = plugin_fail_code(err, AGON_EPLUGIN, path, step, fmt, ap);
    va_end(ap);
    return rc;
}

static int init_fail(agon_error *err, int code, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int init_fail(agon_error *err, int code, const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = plugin_fail_code(err, code, path, "init", fmt, ap);
    va_end(ap);
    return rc;
}

static bool valid_name(const char *s)
{
    if (!s || !*s)
        return false;
    for (; *s; s++) {
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return false;
    }
    return true;
}

/* Checks the outputs list of a metric; writes the reason into why. */
static bool check_outputs(const char *const *outputs, bool declares, char *why,
                          size_t cap)
{
    /* A metric with only tensor outputs declares them at run time. */
    if (!outputs || (!outputs[0] && !declares)) {
        snprintf(why, cap, "agon_metric_vtable.outputs is empty and declare is NULL; "
                           "list the names the metric emits, ended by NULL, or "
                           "declare tensor outputs");
        return false;
    }
    for (size_t i = 0; outputs[i]; i++) {
        if (!valid_name(outputs[i])) {
            snprintf(why, cap, "output %zu ('%s') is not made of [a-z0-9_]; use "
                               "lowercase letters, digits and '_'",
                     i + 1, outputs[i]);
            return false;
        }
        /* The metric's log table stores its step index in a column "step". */
        if (strcmp(outputs[i], "step") == 0) {
            snprintf(why, cap, "output 'step' clashes with the step column of the "
                               "metric's log table; rename the output");
            return false;
        }
        /* Tensor outputs live in the metric's subgroup "tensors". */
        if (strcmp(outputs[i], "tensors") == 0) {
            snprintf(why, cap, "output 'tensors' clashes with the group of the "
                               "metric's tensor outputs; rename the output");
            return false;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(outputs[i], outputs[j]) == 0) {
                snprintf(why, cap, "output '%s' is listed twice; each output "
                                   "needs its own name",
                         outputs[i]);
                return false;
            }
        }
    }
    return true;
}

/* The function pointers a kind cannot work without; writes the reason
 * into why when one is missing. */
static bool check_functions(const agon_component *c, char *why, size_t cap)
{
    const char *missing = NULL, *needed = NULL;
    switch (c->kind) {
    case AGON_KIND_LOSS: {
        const agon_loss_vtable *v = c->vtable;
        needed = "d_loss and g_loss";
        missing = !v->d_loss ? "d_loss" : !v->g_loss ? "g_loss" : NULL;
        break;
    }
    case AGON_KIND_MODEL: {
        const agon_model_vtable *v = c->vtable;
        needed = "build";
        missing = !v->build ? "build" : NULL;
        break;
    }
    case AGON_KIND_DATASET: {
        const agon_dataset_vtable *v = c->vtable;
        needed = "create, destroy and next_batch";
        missing = !v->create ? "create" : !v->destroy ? "destroy"
                : !v->next_batch ? "next_batch" : NULL;
        break;
    }
    case AGON_KIND_METRIC: {
        const agon_metric_vtable *v = c->vtable;
        needed = "create, destroy and evaluate";
        missing = !v->create ? "create" : !v->destroy ? "destroy"
                : !v->evaluate ? "evaluate" : NULL;
        if (!missing && !check_outputs(v->outputs, v->declare != NULL, why, cap))
            return false;
        break;
    }
    case AGON_KIND_OPTIMIZER: {
        const agon_optimizer_vtable *v = c->vtable;
        needed = "create, destroy and step";
        missing = !v->create ? "create" : !v->destroy ? "destroy"
                : !v->step ? "step" : NULL;
        if (!missing && v->n_state > AGON_OPTIM_MAX_STATE) {
            snprintf(why, cap, "n_state is %u, more than AGON_OPTIM_MAX_STATE (%d); "
                               "an optimizer may keep at most %d state tensors per "
                               "parameter",
                     (unsigned)v->n_state, AGON_OPTIM_MAX_STATE, AGON_OPTIM_MAX_STATE);
            return false;
        }
        break;
    }
    default:
        break;
    }
    if (missing) {
        snprintf(why, cap, "%s.%s is NULL; a %s must implement %s",
                 vtable_info[c->kind].type, missing, kind_names[c->kind], needed);
        return false;
    }
    return true;
}

/* Component i (0-based) of desc; messages count from 1 like a reader
 * counting the entries of AGON_PLUGIN(...). */
static int check_component(const agon_plugin_descriptor *desc, size_t i,
                           const char *path, agon_error *err)
{
    const agon_component *c = &desc->components[i];
    size_t no = i + 1;
    /* Nothing else of a component can be read safely until its size is known. */
    if (c->struct_size != sizeof(agon_component)) {
        return plugin_fail(err, path, "component",
                           "component %zu: agon_component struct_size is %u, this "
                           "agon expects %zu; rebuild the plugin against this "
                           "agon's headers",
                           no, (unsigned)c->struct_size, sizeof(agon_component));
    }
    if (!c->name || !*c->name) {
        return plugin_fail(err, path, "component",
                           "component %zu: the name is missing; name every "
                           "component with [a-z0-9_]",
                           no);
    }
    if (!valid_name(c->name)) {
        return plugin_fail(err, path, "component",
                           "component %zu ('%s'): the name is not made of "
                           "[a-z0-9_]; use lowercase letters, digits and '_'",
                           no, c->name);
    }
    if ((unsigned)c->kind >= AGON_KIND_COUNT) {
        return plugin_fail(err, path, "component",
                           "component %zu ('%s'): unknown kind %d (this agon knows "
                           "0 to %d); rebuild the plugin against this agon's headers",
                           no, c->name, (int)c->kind, AGON_KIND_COUNT - 1);
    }
    const char *type = vtable_info[c->kind].type;
    if (!c->vtable) {
        return plugin_fail(err, path, "component",
                           "component %zu ('%s'): the vtable is NULL; point the "
                           "component at its %s",
                           no, c->name, type);
    }
    /* Every vtable starts with its uint32_t struct_size. */
    uint32_t vsize;
    memcpy(&vsize, c->vtable, sizeof vsize);
    if (vsize != vtable_info[c->kind].size) {
        return plugin_fail(err, path, "component",
                           "component %zu ('%s'): %s struct_size is %u, this agon "
                           "expects %zu; set it to sizeof(%s) and rebuild against "
                           "this agon's headers",
                           no, c->name, type, (unsigned)vsize,
                           vtable_info[c->kind].size, type);
    }
    char why[512];
    if (!check_functions(c, why, sizeof why))
        return plugin_fail(err, path, "component", "component %zu ('%s'): %s", no,
                           c->name, why);
    if (c->params) {
        agon_error serr = {0};
        if (agon_schema_check(c->params, &serr) != 0) {
            return plugin_fail(err, path, "component", "component %zu ('%s'): %s", no,
                               c->name, serr.message);
        }
    }
    return 0;
}

static int check_descriptor(const agon_plugin_descriptor *d, const char *path,
                            agon_error *err)
{
    /* Only the first three fields are read before they are validated: they
     * sit at the same offsets in every version of the descriptor. */
    if (d->abi_version != AGON_ABI_VERSION) {
        return plugin_fail(err, path, "abi",
                           "built for agon plugin ABI %u, this agon has ABI %d; "
                           "rebuild the plugin against this agon's headers",
                           (unsigned)d->abi_version, AGON_ABI_VERSION);
    }
    if (d->struct_size != sizeof(agon_plugin_descriptor)) {
        return plugin_fail(err, path, "abi",
                           "the descriptor is %u bytes, this agon expects %zu; "
                           "rebuild the plugin against this agon's headers",
                           (unsigned)d->struct_size, sizeof(agon_plugin_descriptor));
    }
    if (d->float_size != sizeof(float)) {
        return plugin_fail(err, path, "abi",
                           "built with %u-byte floats, this agon uses %zu-byte "
                           "floats; rebuild the plugin for this machine",
                           (unsigned)d->float_size, sizeof(float));
    }
    if (!d->name || !*d->name || !d->version || !*d->version) {
        return plugin_fail(err, path, "descriptor",
                           "the plugin has no %s; declare it with "
                           "AGON_PLUGIN(name, version, summary, ...)",
                           (!d->name || !*d->name) ? "name" : "version");
    }
    if (d->n_components == 0 || !d->components) {
        return plugin_fail(err, path, "descriptor",
                           "the plugin provides no components; list at least one "
                           "in AGON_PLUGIN");
    }
    for (size_t i = 0; i < d->n_components; i++) {
        int rc = check_component(d, i, path, err);
        if (rc)
            return rc;
    }
    return 0;
}

static int check_duplicates(const agon_registry *reg, const agon_plugin_descriptor *d,
                            const char *path, agon_error *err)
{
    for (size_t i = 0; i < d->n_components; i++) {
        const agon_component *c = &d->components[i];
        for (size_t j = 0; j < i; j++) {
            if (d->components[j].kind == c->kind &&
                strcmp(d->components[j].name, c->name) == 0) {
                return plugin_fail(err, path, "duplicate",
                                   "%s '%s' is provided twice by this file "
                                   "(components %zu and %zu); rename one of them",
                                   kind_names[c->kind], c->name, j + 1, i + 1);
            }
        }
        const agon_plugin_record *other;
        if (agon_registry_find(reg, c->kind, c->name, &other)) {
            return plugin_fail(err, path, "duplicate",
                               "%s '%s' is also provided by %s; remove one from the "
                               "plugin search path or rename it",
                               kind_names[c->kind], c->name, other->path);
        }
    }
    return 0;
}

/* dlerror() texts start with the file name given to dlopen; the message
 * already starts with it. */
static const char *strip_path(const char *msg, const char *path)
{
    size_t n = strlen(path);
    if (strncmp(msg, path, n) == 0 && msg[n] == ':' && msg[n + 1] == ' ')
        return msg + n + 2;
    return msg;
}

/* Who may change a file or directory without being the one running agon:
 * anyone when it is world-writable, the group's other members when it is
 * group-writable (a user's private group, named as the user and with no
 * other member, counts as the user), its owner when that is neither this
 * user nor root.  Returns NULL when no one else can, or what makes it
 * unsafe. */
static const char *who_else_can_write(const struct stat *st, bool is_dir, char *buf,
                                      size_t cap)
{
    if ((st->st_mode & S_IWOTH) && !(is_dir && (st->st_mode & S_ISVTX)))
        return "every user";
    if (st->st_uid != 0 && st->st_uid != geteuid()) {
        struct passwd *pw = getpwuid(st->st_uid);
        if (pw)
            snprintf(buf, cap, "its owner %s", pw->pw_name);
        else
            snprintf(buf, cap, "its owner (uid %u)", (unsigned)st->st_uid);
        return buf;
    }
    if ((st->st_mode & S_IWGRP) && !(is_dir && (st->st_mode & S_ISVTX))) {
        struct group *gr = getgrgid(st->st_gid);
        struct passwd *owner = getpwuid(st->st_uid);
        bool private_group = gr && owner && strcmp(gr->gr_name, owner->pw_name) == 0;
        for (char **m = gr ? gr->gr_mem : NULL; private_group && m && *m; m++)
            private_group = strcmp(*m, owner->pw_name) == 0;
        if (!private_group) {
            if (gr)
                snprintf(buf, cap, "the members of group %s", gr->gr_name);
            else
                snprintf(buf, cap, "the members of group %u", (unsigned)st->st_gid);
            return buf;
        }
    }
    return NULL;
}

/* The largest plugin file read into memory for its checks. */
#define PLUGIN_MAX_BYTES ((size_t)1 << 30)

/* The trust, ELF and hash checks of one plugin file (see
 * agon_registry_load_file); `real` is its resolved path. */
static int check_file(const char *path, char *real, char sha256[65], agon_error *err)
{
    int fd = open(real, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return plugin_fail(err, path, "open", "%s; check the path and its permissions",
                           strerror(errno));
    struct stat st;
    char who[160];
    const char *other = NULL;
    int rc = 0;
    if (fstat(fd, &st) != 0) {
        rc = plugin_fail(err, path, "open", "%s", strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
        rc = plugin_fail(err, path, "open", "not a regular file; give the path of a plugin "
                                            "(.so)");
    } else if ((other = who_else_can_write(&st, false, who, sizeof who)) != NULL) {
        rc = plugin_fail(err, path, "trust",
                         "the file (mode %04o) can be changed by %s, so someone else could "
                         "change the code agon would run; make it yours and private (chown, "
                         "chmod go-w) or copy it to a folder of your own",
                         (unsigned)(st.st_mode & 07777), other);
    } else if ((size_t)st.st_size > PLUGIN_MAX_BYTES) {
        rc = plugin_fail(err, path, "open", "%lld bytes, more than the %zu a plugin may have",
                         (long long)st.st_size, PLUGIN_MAX_BYTES);
    }
    char *slash = rc == 0 ? strrchr(real, '/') : NULL;
    if (slash) {
        *slash = '\0';
        const char *dir = real[0] ? real : "/";
        struct stat dst;
        if (stat(dir, &dst) == 0 && (other = who_else_can_write(&dst, true, who, sizeof who)))
            rc = plugin_fail(err, path, "trust",
                             "its directory %s (mode %04o) can be changed by %s, so someone "
                             "else could replace the file; move the plugin to a folder of "
                             "your own or make the directory private (chmod go-w)",
                             dir, (unsigned)(dst.st_mode & 07777), other);
        *slash = '/';
    }
    unsigned char *image = NULL;
    size_t size = rc == 0 ? (size_t)st.st_size : 0;
    if (rc == 0 && !(image = malloc(size ? size : 1)))
        rc = agon_error_set(err, AGON_ENOMEM, "%s: out of memory reading the plugin", path);
    for (size_t got = 0; rc == 0 && got < size;) {
        ssize_t n = read(fd, image + got, size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = plugin_fail(err, path, "open", "cannot read the file: %s; check it",
                             n < 0 ? strerror(errno) : "it became shorter while read");
            break;
        }
        got += (size_t)n;
    }
    char why[AGON_ERROR_MESSAGE_MAX / 2];
    if (rc == 0 && !agon__elf_check(image, size, why, sizeof why))
        rc = plugin_fail(err, path, "open", "%s", why);
    if (rc == 0)
        agon__sha256_hex(image, size, sha256);
    free(image);
    close(fd);
    return rc;
}

int agon_registry_load_file(agon_registry *reg, const char *path, agon_error *err)
{
    /* The same file reached twice (a symlink, a directory listed under two
     * names) is one plugin: dlopen would hand back the same handle and
     * every component would clash with itself. */
    char *real = realpath(path, NULL);
    if (real) {
        for (size_t i = 0; i < reg->n_plugins; i++) {
            if (strcmp(reg->plugins[i].real, real) == 0) {
                free(real);
                return 0;
            }
        }
    }
    if (!real) {
        return plugin_fail(err, path, "open", "%s; check the path", strerror(errno));
    }
    /* dlopen runs the plugin's constructors, so a file that someone else
     * can change is refused before it is opened (file_trusted), and so is
     * a file whose bytes would make the loader touch past its end (an
     * interrupted copy: SIGBUS, no message).  Both checks look at the
     * opened file, and the hash is taken of the bytes checked.  (A file
     * replaced between here and dlopen is beyond what a check can catch;
     * the directory rule narrows that window to people who may write
     * there anyway.) */
    char sha256[65];
    int rc = check_file(path, real, sha256, err);
    if (rc != 0) {
        free(real);
        return rc;
    }

    char *path_copy = strdup(path);
    if (reg->n_plugins == reg->cap_plugins) {
        size_t cap = reg->cap_plugins ? 2 * reg->cap_plugins : 16;
        plugin *grown = realloc(reg->plugins, cap * sizeof *grown);
        if (grown) {
            reg->plugins = grown;
            reg->cap_plugins = cap;
        }
    }
    if (!path_copy || reg->n_plugins == reg->cap_plugins) {
        free(path_copy);
        free(real);
        return agon_error_set(err, AGON_ENOMEM, "%s: out of memory loading the plugin",
                              path);
    }

    /* Without a '/', dlopen would search the library path instead of
     * opening the file the user named. */
    char local[PATH_MAX + 3];
    const char *open_path = path;
    if (!strchr(path, '/')) {
        snprintf(local, sizeof local, "./%s", path);
        open_path = local;
    }

    plugin p = {.real = real};
    memcpy(p.rec.sha256, sha256, sizeof sha256);
    p.rec.path = path_copy;
    dlerror();
    p.handle = dlopen(open_path, RTLD_NOW | RTLD_LOCAL);
    if (!p.handle) {
        const char *why = dlerror();
        rc = plugin_fail(err, path, "open",
                         "%s; check that the file is an agon plugin built for this "
                         "machine",
                         why ? strip_path(why, open_path) : "unknown dlopen error");
        goto fail;
    }
    void *sym = dlsym(p.handle, AGON_PLUGIN_ENTRY_NAME);
    if (!sym) {
        rc = plugin_fail(err, path, "symbol",
                         "no " AGON_PLUGIN_ENTRY_NAME " symbol; is this an agon "
                         "plugin (declared with AGON_PLUGIN)?");
        goto fail;
    }
    /* POSIX guarantees a data pointer from dlsym converts to a function
     * pointer; the copy keeps ISO C's object/function pointer rule quiet. */
    const agon_plugin_descriptor *(*entry)(void);
    memcpy(&entry, &sym, sizeof entry);
    p.rec.desc = entry();
    if (!p.rec.desc) {
        rc = plugin_fail(err, path, "descriptor",
                         AGON_PLUGIN_ENTRY_NAME " returned NULL; declare the plugin "
                         "with AGON_PLUGIN");
        goto fail;
    }
    rc = check_descriptor(p.rec.desc, path, err);
    if (rc)
        goto fail;
    rc = check_duplicates(reg, p.rec.desc, path, err);
    if (rc)
        goto fail;

    if (p.rec.desc->init) {
        agon_error ierr = {0};
        int irc = p.rec.desc->init(&ierr);
        if (irc != 0) {
            int code = irc == AGON_ENOMEM ? AGON_ENOMEM : AGON_EPLUGIN;
            if (ierr.code != 0)
                rc = init_fail(err, code, path, "%s", ierr.message);
            else
                rc = init_fail(err, code, path,
                               "init returned %d without a message; the plugin "
                               "should say why with agon_error_set",
                               irc);
            goto fail;
        }
    }
    reg->plugins[reg->n_plugins++] = p;
    return 0;

fail:
    if (p.handle)
        dlclose(p.handle);
    free(path_copy);
    free(real);
    return rc;
}

/* ---- directories ------------------------------------------------------------ */

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool has_so_suffix(const char *name)
{
    size_t n = strlen(name);
    return n > 3 && strcmp(name + n - 3, ".so") == 0;
}

/* Remembers `dir` as searched; returns 1 when it was searched before,
 * 0 when it is new, AGON_ENOMEM on failure. */
static int remember_dir(agon_registry *reg, const char *dir)
{
    char *real = realpath(dir, NULL);
    for (size_t i = 0; i < reg->n_dirs; i++) {
        bool same = real && reg->dir_reals[i] ? strcmp(real, reg->dir_reals[i]) == 0
                                              : strcmp(dir, reg->dirs[i]) == 0;
        if (same) {
            free(real);
            return 1;
        }
    }
    char **dirs = realloc(reg->dirs, (reg->n_dirs + 1) * sizeof *dirs);
    if (dirs)
        reg->dirs = dirs;
    char **reals = realloc(reg->dir_reals, (reg->n_dirs + 1) * sizeof *reals);
    if (reals)
        reg->dir_reals = reals;
    char *copy = strdup(dir);
    if (!dirs || !reals || !copy) {
        free(copy);
        free(real);
        return AGON_ENOMEM;
    }
    reg->dirs[reg->n_dirs] = copy;
    reg->dir_reals[reg->n_dirs] = real;
    reg->n_dirs++;
    return 0;
}

int agon_registry_load_dir(agon_registry *reg, const char *dir, bool must_exist,
                           agon_diag *diag)
{
    int seen = remember_dir(reg, dir);
    if (seen == 1)
        return 0;
    if (seen < 0)
        return agon_diag_add(diag, AGON_ENOMEM,
                             "%s: out of memory searching the plugin directory", dir);

    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT) {
            if (!must_exist)
                return 0;
            return agon_diag_add(diag, AGON_EPLUGIN,
                                 "%s: plugin directory does not exist", dir);
        }
        return agon_diag_add(diag, AGON_EPLUGIN,
                             "%s: plugin directory cannot be read: %s; give a "
                             "readable directory of plugin .so files",
                             dir, strerror(errno));
    }

    size_t dlen = strlen(dir);
    const char *sep = (dlen > 0 && dir[dlen - 1] == '/') ? "" : "/";
    char **files = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL) {
        if (!has_so_suffix(ent->d_name))
            continue;
        size_t len = dlen + strlen(sep) + strlen(ent->d_name) + 1;
        char *full = malloc(len);
        if (full)
            snprintf(full, len, "%s%s%s", dir, sep, ent->d_name);
        /* A directory or a dangling link named *.so is not a plugin file. */
        struct stat st;
        if (full && (stat(full, &st) != 0 || !S_ISREG(st.st_mode))) {
            free(full);
            continue;
        }
        if (full && n == cap) {
            size_t ncap = cap ? 2 * cap : 16;
            char **grown = realloc(files, ncap * sizeof *grown);
            if (grown) {
                files = grown;
                cap = ncap;
            }
        }
        if (!full || n == cap) {
            free(full);
            rc = agon_diag_add(diag, AGON_ENOMEM,
                               "%s: out of memory listing the plugin directory", dir);
            break;
        }
        files[n++] = full;
    }
    closedir(d);

    if (rc == 0) {
        /* Load order decides which of two same-named components wins; sort
         * so that it does not depend on the file system's order. */
        if (n > 1)
            qsort(files, n, sizeof *files, cmp_names);
        for (size_t i = 0; i < n; i++) {
            agon_error err = {0};
            int frc = agon_registry_load_file(reg, files[i], &err);
            if (frc != 0) {
                agon_diag_add_error(diag, &err);
                if (rc == 0)
                    rc = frc;
            }
        }
    }
    for (size_t i = 0; i < n; i++)
        free(files[i]);
    free(files);
    return rc;
}

/* The default plugin folder: the build tree's when the running libagon is
 * the build tree's, otherwise the installation's.  The installation's is
 * found next to the running libagon (<libdir>/agon/plugins, the layout the
 * top-level CMakeLists.txt installs) so that an installation moved with
 * `cmake --install --prefix` still finds its plugins. */
static char *default_plugin_dir(void)
{
    static const char anchor = 0;
    Dl_info info;
    if (!dladdr(&anchor, &info) || !info.dli_fname)
        return strdup(AGON_INSTALL_PLUGIN_DIR);
    char *lib = realpath(info.dli_fname, NULL);
    if (!lib)
        return strdup(AGON_INSTALL_PLUGIN_DIR);
    char *slash = strrchr(lib, '/');
    if (slash)
        *slash = '\0';
    char *build = realpath(AGON_BUILD_LIBDIR, NULL);
    char *dir;
    if (build && strcmp(build, lib) == 0) {
        dir = strdup(AGON_BUILD_PLUGIN_DIR);
    } else {
        size_t len = strlen(lib) + sizeof "/agon/plugins";
        dir = malloc(len);
        if (dir)
            snprintf(dir, len, "%s/agon/plugins", lib);
    }
    free(build);
    free(lib);
    return dir;
}

int agon_registry_load_search_path(agon_registry *reg, const char *const *explicit_dirs,
                                   size_t n_explicit, agon_diag *diag)
{
    int rc = 0;
    for (size_t i = 0; i < n_explicit; i++) {
        int drc = agon_registry_load_dir(reg, explicit_dirs[i], true, diag);
        if (rc == 0)
            rc = drc;
    }

    const char *env = getenv("AGON_PLUGIN_PATH");
    if (env && *env) {
        char *copy = strdup(env);
        if (!copy)
            return agon_diag_add(diag, AGON_ENOMEM,
                                 "out of memory reading AGON_PLUGIN_PATH");
        /* Like PATH: empty entries are skipped, and so are directories that
         * do not exist (the variable is often set once for many machines). */
        char *save = NULL;
        for (char *tok = strtok_r(copy, ":", &save); tok;
             tok = strtok_r(NULL, ":", &save)) {
            int drc = agon_registry_load_dir(reg, tok, false, diag);
            if (rc == 0)
                rc = drc;
        }
        free(copy);
    }

    char *def = default_plugin_dir();
    if (!def)
        return agon_diag_add(diag, AGON_ENOMEM,
                             "out of memory finding the default plugin directory");
    int drc = agon_registry_load_dir(reg, def, false, diag);
    if (rc == 0)
        rc = drc;
    free(def);
    return rc;
}

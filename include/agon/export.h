/* agon/export.h — symbol visibility.  libagon and plugins are built with
 * hidden visibility; only what is marked AGON_API (libagon) or
 * AGON_PLUGIN_EXPORT (a plugin's entry point) is exported. */
#ifndef AGON_EXPORT_H
#define AGON_EXPORT_H

#define AGON_API __attribute__((visibility("default")))
#define AGON_PLUGIN_EXPORT __attribute__((visibility("default")))

#endif /* AGON_EXPORT_H */

/* core/sha256_int.h — SHA-256 (FIPS 180-4) for plugin file hashes and run
 * ids.  Private to libagon; never installed. */
#ifndef AGON_SHA256_INT_H
#define AGON_SHA256_INT_H

#include <stddef.h>
#include <stdint.h>

typedef struct agon__sha256 {
    uint32_t h[8];          /* chaining state */
    uint64_t n_bytes;       /* message length so far */
    unsigned char buf[64];  /* partial block */
    size_t n_buf;           /* bytes used in buf */
} agon__sha256;

/* Incremental use: init, any number of updates, final (which writes the
 * lowercase hex digest and its NUL into hex). */
void agon__sha256_init(agon__sha256 *ctx);
void agon__sha256_update(agon__sha256 *ctx, const void *data, size_t n);
void agon__sha256_final(agon__sha256 *ctx, char hex[65]);

/* Hex digest of data[0..n). */
void agon__sha256_hex(const void *data, size_t n, char hex[65]);

/* Hex digest of the file at `path`.  Returns 0, or AGON_EIO with errno set
 * by the failing call (hex is then the empty string). */
int agon__sha256_file(const char *path, char hex[65]);

#endif /* AGON_SHA256_INT_H */

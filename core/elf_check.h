/* core/elf_check.h — what agon checks in a plugin file before dlopen.
 * Private to libagon; never installed.
 *
 * dlopen maps a shared object's segments as its program headers describe
 * them, and touching a mapped page beyond the end of a file raises SIGBUS:
 * a plugin cut short by an interrupted copy would kill agon with no
 * message.  So the file's bytes are checked first: an ELF shared object
 * of this machine's kind (64-bit, little-endian, this CPU architecture),
 * whose header, program and section header tables and every segment lie
 * inside the file. */
#ifndef AGON_ELF_CHECK_H
#define AGON_ELF_CHECK_H

#include <stdbool.h>
#include <stddef.h>

/* Returns true when image[0..size) is such a file; otherwise false with
 * why (cap bytes, NUL-terminated) saying what is wrong and what to do,
 * as the tail of one message line. */
bool agon__elf_check(const unsigned char *image, size_t size, char *why, size_t cap);

#endif /* AGON_ELF_CHECK_H */

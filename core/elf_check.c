/* The bounds check of a plugin file before dlopen (see elf_check.h). */
#include "elf_check.h"

#include <elf.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#if defined(__x86_64__)
#define HOST_MACHINE EM_X86_64
#define HOST_MACHINE_NAME "x86-64"
#elif defined(__aarch64__)
#define HOST_MACHINE EM_AARCH64
#define HOST_MACHINE_NAME "AArch64"
#else
#error "agon__elf_check: add this architecture's e_machine"
#endif

/* Whether [offset, offset + length) lies inside a file of `size` bytes,
 * without overflowing. */
static bool inside(uint64_t offset, uint64_t length, size_t size)
{
    return offset <= size && length <= size - offset;
}

static bool fail(char *why, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static bool fail(char *why, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, cap, fmt, ap);
    va_end(ap);
    return false;
}

#define RECOPY "; copy the plugin again (an interrupted copy leaves such a file) or rebuild it"

bool agon__elf_check(const unsigned char *image, size_t size, char *why, size_t cap)
{
    Elf64_Ehdr eh;
    if (size < SELFMAG || memcmp(image, ELFMAG, SELFMAG) != 0)
        return fail(why, cap, "not an ELF shared object (%zu bytes, no ELF header); give the "
                              "path of a plugin built with agon_add_plugin", size);
    if (size < sizeof eh)
        return fail(why, cap, "truncated: %zu bytes, shorter than an ELF header" RECOPY, size);
    memcpy(&eh, image, sizeof eh);
    if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB ||
        eh.e_machine != HOST_MACHINE)
        return fail(why, cap, "built for another machine (ELF class %u, data %u, machine %u), "
                              "not 64-bit little-endian " HOST_MACHINE_NAME "; rebuild it "
                              "on this machine",
                    eh.e_ident[EI_CLASS], eh.e_ident[EI_DATA], (unsigned)eh.e_machine);
    if (eh.e_type != ET_DYN)
        return fail(why, cap, "an ELF file of type %u, not a shared object; build the plugin "
                              "as a shared library (agon_add_plugin)",
                    (unsigned)eh.e_type);
    if (eh.e_ehsize != sizeof eh || eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 ||
        eh.e_phnum == PN_XNUM || (eh.e_shnum > 0 && eh.e_shentsize != sizeof(Elf64_Shdr)))
        return fail(why, cap, "damaged ELF header (header or table entry sizes are wrong)"
                              RECOPY);
    if (!inside(eh.e_phoff, (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr), size))
        return fail(why, cap, "truncated: its program headers end past its %zu bytes" RECOPY,
                    size);
    if (eh.e_shnum > 0 && !inside(eh.e_shoff, (uint64_t)eh.e_shnum * sizeof(Elf64_Shdr), size))
        return fail(why, cap, "truncated: its section headers (at byte %llu) end past its %zu "
                              "bytes" RECOPY,
                    (unsigned long long)eh.e_shoff, size);
    size_t n_load = 0, n_dynamic = 0;
    for (size_t i = 0; i < eh.e_phnum; i++) {
        Elf64_Phdr ph;
        memcpy(&ph, image + eh.e_phoff + i * sizeof ph, sizeof ph);
        if (ph.p_type != PT_LOAD && ph.p_type != PT_DYNAMIC)
            continue;
        if (ph.p_filesz > ph.p_memsz && ph.p_type == PT_LOAD)
            return fail(why, cap, "damaged: segment %zu holds more bytes in the file than in "
                                  "memory" RECOPY, i);
        if (!inside(ph.p_offset, ph.p_filesz, size))
            return fail(why, cap, "truncated: segment %zu ends at byte %llu but the file has "
                                  "%zu bytes" RECOPY,
                        i, (unsigned long long)ph.p_offset + ph.p_filesz, size);
        n_load += ph.p_type == PT_LOAD;
        n_dynamic += ph.p_type == PT_DYNAMIC;
    }
    if (n_load == 0 || n_dynamic != 1)
        return fail(why, cap, "damaged: %zu loadable and %zu dynamic segments, where a shared "
                              "object has at least one and exactly one" RECOPY,
                    n_load, n_dynamic);
    return true;
}

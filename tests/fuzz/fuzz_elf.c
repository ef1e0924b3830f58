/* libFuzzer harness for the plugin loader's check of a file's bytes before
 * dlopen (core/elf_check.c): the ELF header, the program and section
 * header tables and every loadable and dynamic segment must lie inside
 * the file.  The corpus holds agon's own plugins, so mutations keep most
 * of a real shared object.
 *
 * Properties checked beyond "no crash, leak or hang" (ASan sees every
 * read the check makes of the input):
 *   - a refusal says why in one non-empty line;
 *   - the answer depends on the bytes alone (asked twice, the same);
 *   - a file the check accepts does not kill dlopen with SIGBUS, the
 *     failure the check exists for (mapping a segment past the end of
 *     the file).  dlopen runs in a child process; other ways the child
 *     may die (a mutated relocation or constructor crashing inside
 *     glibc's loader, which trusts a well-formed file's contents) are not
 *     the check's business and are not findings.
 *
 * Built by tools/fuzz.sh (clang, -DAGON_FUZZ=ON); not part of the normal
 * build.  The accepted inputs are written to a private directory. */
#include <dlfcn.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "elf_check.h"

static char input_path[4096];

static void setup(void)
{
    char dir[] = "/tmp/agon-fuzz-elf-XXXXXX";
    if (!mkdtemp(dir))
        abort();
    snprintf(input_path, sizeof input_path, "%s/input.so", dir);
}

/* dlopen of an accepted file, in a child: SIGBUS there is a finding. */
static void open_in_child(const uint8_t *data, size_t size)
{
    FILE *f = fopen(input_path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size))
        abort();
    fclose(f);
    pid_t pid = fork();
    if (pid < 0)
        abort();
    if (pid == 0) {
        /* The sanitizer's handlers would turn SIGBUS into an abort: the
         * child dies of the signal itself, quietly. */
        signal(SIGBUS, SIG_DFL);
        signal(SIGSEGV, SIG_DFL);
        signal(SIGALRM, SIG_DFL);   /* libFuzzer's timer handler would keep it alive */
        int null_fd = open("/dev/null", O_WRONLY);
        if (null_fd >= 0)
            dup2(null_fd, STDERR_FILENO);
        alarm(5);
        /* Only the mapping is under test: RTLD_LAZY binds no symbol, and
         * the child exits without running the object's finalisers. */
        dlopen(input_path, RTLD_LAZY | RTLD_LOCAL);
        _exit(0);
    }
    /* A constructor that never returns is the object's business, not the
     * check's: the child is ended after a bound. */
    int status = 0;
    for (int waited_ms = 0; waitpid(pid, &status, WNOHANG) == 0; waited_ms += 5) {
        if (waited_ms >= 6000) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return;
        }
        usleep(5000);
    }
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS) {
        fprintf(stderr, "dlopen died of SIGBUS on a file the ELF check accepted\n");
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!input_path[0])
        setup();
    char why[512] = "", again[512] = "";
    bool ok = agon__elf_check(data, size, why, sizeof why);
    if (ok != agon__elf_check(data, size, again, sizeof again) || strcmp(why, again) != 0) {
        fprintf(stderr, "the check gave two answers for one file\n");
        abort();
    }
    if (!ok && (!why[0] || strchr(why, '\n'))) {
        fprintf(stderr, "a refusal without a one-line reason: '%s'\n", why);
        abort();
    }
    if (ok)
        open_in_child(data, size);
    return 0;
}

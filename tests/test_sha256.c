/* SHA-256 against the FIPS 180-2 test vectors (appendix B) and against
 * coreutils' sha256sum on files of every padding case. */
#include "test_util.h"

/* The hashing helpers are internal to libagon (hidden symbols), so the
 * test compiles its own copy of the one file they live in. */
#include "sha256.c"

static void test_fips_vectors(void **state)
{
    char hex[65];
    /* B.1: one block. */
    agon__sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    /* B.2: 448 bits, so the padding needs a second block. */
    const char *m448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    assert_int_equal(strlen(m448), 56);
    agon__sha256_hex(m448, 56, hex);
    assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    /* B.3: one million 'a', fed in uneven pieces through the incremental
     * interface. */
    static char a[1000000];
    memset(a, 'a', sizeof a);
    agon__sha256 ctx;
    agon__sha256_init(&ctx);
    size_t done = 0, piece = 1;
    while (done < sizeof a) {
        size_t n = piece < sizeof a - done ? piece : sizeof a - done;
        agon__sha256_update(&ctx, a + done, n);
        done += n;
        piece = piece * 3 + 1;
        if (piece > 70000)
            piece = 7;
    }
    agon__sha256_final(&ctx, hex);
    assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    /* The empty message. */
    agon__sha256_hex("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void sha256sum(const char *path, char hex[65])
{
    char cmd[1200], out[512];
    snprintf(cmd, sizeof cmd, "sha256sum '%s'", path);
    assert_int_equal(agon_test_run(cmd, out, sizeof out, NULL, 0), 0);
    memcpy(hex, out, 64);
    hex[64] = '\0';
}

static void test_files_against_sha256sum(void **state)
{
    const char *dir = agon_test_tmpdir("sha256");
    /* Lengths around the block (64) and padding (56) boundaries, and one
     * larger than the file reader's buffer. */
    static const size_t lengths[] = {0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 128, 100003};
    static unsigned char data[100003];
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < sizeof data; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data[i] = (unsigned char)x;
    }
    for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++) {
        char path[600];
        snprintf(path, sizeof path, "%s/f%zu.bin", dir, lengths[i]);
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(data, 1, lengths[i], f), lengths[i]);
        assert_int_equal(fclose(f), 0);

        char expected[65], from_file[65], from_memory[65];
        sha256sum(path, expected);
        assert_int_equal(agon__sha256_file(path, from_file), 0);
        assert_string_equal(from_file, expected);
        agon__sha256_hex(data, lengths[i], from_memory);
        assert_string_equal(from_memory, expected);
    }
}

static void test_missing_file(void **state)
{
    char hex[65] = "not touched";
    assert_int_equal(agon__sha256_file("tmp_sha256_no_such_file.bin", hex), AGON_EIO);
    assert_string_equal(hex, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fips_vectors),
        cmocka_unit_test(test_files_against_sha256sum),
        cmocka_unit_test(test_missing_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

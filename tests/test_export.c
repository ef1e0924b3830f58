/* Tests of `agon export RUN.h5 --png DIR` (core/cli_export.c, described in
 * docs/export.md).  Small logs are written with the plain HDF5 C API, the
 * program is run as a subprocess, and every PNG is decoded with libpng and
 * checked pixel by pixel against hand-computed values. */
#include "test_util.h"

#include <math.h>
#include <stdbool.h>

#include <hdf5.h>
#include <png.h>

#define USAGE                                                                                      \
    "usage: agon export RUN.h5 [--png DIR] [--csv DIR] [--steps all|last|S1,S2,...] [--cols N]\n" \
    "                   [--scale K] [--no-landscape]"

/* ---- writing logs -------------------------------------------------------- */

static void put_attr_i64(hid_t obj, const char *name, int64_t v)
{
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(a >= 0);
    assert_true(H5Awrite(a, H5T_NATIVE_INT64, &v) >= 0);
    H5Aclose(a);
    H5Sclose(sp);
}

static void put_dataset(hid_t loc, const char *name, hid_t file_type, hid_t mem_type, int rank,
                        const hsize_t *dims, const void *data)
{
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t ds = H5Dcreate2(loc, name, file_type, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(ds >= 0);
    assert_true(H5Dwrite(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
    H5Dclose(ds);
    H5Sclose(sp);
}

/* A log as agon writes it, reduced to what export reads: /samples with
 * step [T] int64 and x [T, N, sample dims...] float32; grid_cols is
 * written when it is not 0. */
static void write_log(const char *path, const int64_t *steps, hsize_t n_steps, int x_rank,
                      const hsize_t *x_dims, const float *x, int64_t grid_cols)
{
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(f >= 0);
    put_attr_i64(f, "format_version", 1);
    hid_t g = H5Gcreate2(f, "samples", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(g >= 0);
    put_dataset(g, "step", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, &n_steps, steps);
    put_dataset(g, "x", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, x_rank, x_dims, x);
    if (grid_cols != 0)
        put_attr_i64(g, "grid_cols", grid_cols);
    H5Gclose(g);
    H5Fclose(f);
}

/* ---- reading PNG files ------------------------------------------------------ */

typedef struct png_pic {
    uint32_t w, h;
    int color_type, bit_depth, channels;
    uint8_t *pix;
} png_pic;

static void load_png(const char *path, png_pic *p)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("%s: not written", path);
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    assert_non_null(info);
    if (setjmp(png_jmpbuf(png)))
        fail_msg("%s: libpng cannot decode it", path);
    png_init_io(png, f);
    png_read_info(png, info);
    p->w = png_get_image_width(png, info);
    p->h = png_get_image_height(png, info);
    p->color_type = png_get_color_type(png, info);
    p->bit_depth = png_get_bit_depth(png, info);
    p->channels = png_get_channels(png, info);
    size_t stride = png_get_rowbytes(png, info);
    p->pix = malloc(stride * p->h);
    png_bytep *rows = malloc(p->h * sizeof *rows);
    assert_non_null(p->pix);
    assert_non_null(rows);
    for (uint32_t y = 0; y < p->h; y++)
        rows[y] = p->pix + y * stride;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    free(rows);
    fclose(f);
}

static int px(const png_pic *p, uint32_t x, uint32_t y, int ch)
{
    assert_true(x < p->w && y < p->h && ch < p->channels);
    return p->pix[((size_t)y * p->w + x) * (size_t)p->channels + (size_t)ch];
}

static void expect_format(const png_pic *p, uint32_t w, uint32_t h, int color_type)
{
    assert_int_equal(p->w, w);
    assert_int_equal(p->h, h);
    assert_int_equal(p->color_type, color_type);
    assert_int_equal(p->bit_depth, 8);
}

/* ---- running the program ------------------------------------------------------ */

typedef struct result {
    int code;
    char out[8192], err[4096];
} result;

static void run_export(result *r, const char *args)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' export %s", AGON_CLI_PATH, args);
    r->code = agon_test_run(cmd, r->out, sizeof r->out, r->err, sizeof r->err);
}

static void expect_ok(const result *r, const char *stdout_text)
{
    if (r->code != 0)
        fail_msg("exit %d, stderr: %s", r->code, r->err);
    assert_string_equal(r->err, "");
    assert_string_equal(r->out, stdout_text);
}

/* An error: exit code, one line on stderr word for word, nothing on stdout. */
static void expect_error(const char *args, int code, const char *line)
{
    result r;
    run_export(&r, args);
    char want[2048];
    snprintf(want, sizeof want, "%s\n", line);
    if (r.code != code || strcmp(r.err, want) != 0)
        fail_msg("agon export %s: exit %d (expected %d), stderr:\n%s\nexpected:\n%s", args, r.code,
                 code, r.err, want);
    assert_string_equal(r.out, "");
}

/* The sorted names in a folder, comma-separated. */
static void list_dir(const char *dir, char *buf, size_t cap)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "LC_ALL=C ls -A '%s' | paste -sd, -", dir);
    assert_int_equal(agon_test_run(cmd, buf, cap, NULL, 0), 0);
}

static char *tmpdir(const char *tag)
{
    char *d = strdup(agon_test_tmpdir(tag));
    assert_non_null(d);
    return d;
}

/* ---- grey image grids --------------------------------------------------------- */

/* x [2, 5, 1, 4, 4]: snapshot t, sample i is filled with -1 + 0.25 i + 0.5 t,
 * except the first rows of sample 0 of snapshot 0, which hold the edge
 * cases of the value mapping. */
static const int64_t grey_steps[2] = {0, 150};
static const hsize_t grey_dims[5] = {2, 5, 1, 4, 4};

static void grey_values(float *x)
{
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < 5; i++)
            for (int k = 0; k < 16; k++)
                x[(t * 5 + i) * 16 + k] = -1.0f + 0.25f * (float)i + 0.5f * (float)t;
    const float edge[10] = {-1.0f, 1.0f, 0.0f, 0.5f, 2.0f, -3.0f, NAN, -0.5f, INFINITY, -INFINITY};
    memcpy(x, edge, sizeof edge);
}

/* The bytes of the edge values, by hand: round((v + 1) * 127.5) with
 * halves rounded up, clamped, NaN as 0. */
static const int edge_bytes[10] = {0, 255, 128, 191, 255, 0, 0, 64, 255, 0};
/* The fill of each sample, by hand: -1 -> 0, -0.75 -> 31.875 -> 32, -0.5 ->
 * 63.75 -> 64, -0.25 -> 95.625 -> 96, 0 -> 127.5 -> 128, 0.25 -> 159.375 ->
 * 159, 0.5 -> 191.25 -> 191. */
static const int fill_bytes[2][5] = {{0, 32, 64, 96, 128}, {64, 96, 128, 159, 191}};

/* Checks the tile of sample i at origin (x0, y0), each source pixel drawn
 * as a scale x scale block. */
static void expect_grey_tile(const png_pic *p, int t, int i, uint32_t x0, uint32_t y0, int scale)
{
    for (int k = 0; k < 16; k++) {
        int want = fill_bytes[t][i];
        if (t == 0 && i == 0 && k < 10)
            want = edge_bytes[k];
        for (int dy = 0; dy < scale; dy++)
            for (int dx = 0; dx < scale; dx++) {
                uint32_t x = x0 + (uint32_t)((k % 4) * scale + dx);
                uint32_t y = y0 + (uint32_t)((k / 4) * scale + dy);
                if (px(p, x, y, 0) != want)
                    fail_msg("step index %d sample %d pixel %d at (%u, %u): %d, expected %d", t, i,
                             k, x, y, px(p, x, y, 0), want);
            }
    }
}

static void test_grey_grid(void **state)
{
    char *dir = tmpdir("export_grey");
    char log[600], args[1400], want[2048], names[1024];
    snprintf(log, sizeof log, "%s/grey.h5", dir);
    float x[2 * 5 * 16];
    grey_values(x);
    write_log(log, grey_steps, 2, 5, grey_dims, x, 0);

    /* Default: every step, ceil(sqrt(5)) = 3 columns, 2 rows, scale 1; the
     * folder (two levels) is created; names padded to 3 digits ("150"). */
    result r;
    snprintf(args, sizeof args, "'%s' --png '%s/out/grids/'", log, dir);
    run_export(&r, args);
    snprintf(want, sizeof want,
             "%s/out/grids/samples_step000.png\n%s/out/grids/samples_step150.png\n", dir, dir);
    expect_ok(&r, want);
    char sub[700];
    snprintf(sub, sizeof sub, "%s/out/grids", dir);
    list_dir(sub, names, sizeof names);
    assert_string_equal(names, "samples_step000.png,samples_step150.png\n");

    for (int t = 0; t < 2; t++) {
        char png[800];
        snprintf(png, sizeof png, "%s/samples_step%03d.png", sub, (int)grey_steps[t]);
        png_pic p;
        load_png(png, &p);
        /* 3 tiles of 4 and 4 paddings of 2 across, 2 tiles and 3 paddings down. */
        expect_format(&p, 3 * 4 + 4 * 2, 2 * 4 + 3 * 2, PNG_COLOR_TYPE_GRAY);
        for (int i = 0; i < 5; i++)
            expect_grey_tile(&p, t, i, 2 + (uint32_t)(i % 3) * 6, 2 + (uint32_t)(i / 3) * 6, 1);
        /* Padding and the empty sixth cell are white. */
        const uint32_t white[][2] = {{0, 0},   {1, 13}, {6, 2},  {7, 5},
                                     {19, 13}, {2, 6},  {14, 8}, {17, 11}};
        for (size_t k = 0; k < sizeof white / sizeof white[0]; k++)
            assert_int_equal(px(&p, white[k][0], white[k][1], 0), 255);
        free(p.pix);
    }
    free(dir);
}

static void test_grey_options(void **state)
{
    char *dir = tmpdir("export_grey_opts");
    char log[600], args[1400], want[2048], names[1024];
    snprintf(log, sizeof log, "%s/grey.h5", dir);
    float x[2 * 5 * 16];
    grey_values(x);
    write_log(log, grey_steps, 2, 5, grey_dims, x, 0);
    result r;

    /* --steps with one step, --scale 2, --cols 2: 3 rows of 2 tiles of 8. */
    snprintf(args, sizeof args, "'%s' --png '%s/a' --steps 0 --scale 2 --cols 2", log, dir);
    run_export(&r, args);
    snprintf(want, sizeof want, "%s/a/samples_step000.png\n", dir);
    expect_ok(&r, want);
    char png[800];
    snprintf(png, sizeof png, "%s/a/samples_step000.png", dir);
    png_pic p;
    load_png(png, &p);
    expect_format(&p, 2 * 8 + 3 * 2, 3 * 8 + 4 * 2, PNG_COLOR_TYPE_GRAY);
    for (int i = 0; i < 5; i++)
        expect_grey_tile(&p, 0, i, 2 + (uint32_t)(i % 2) * 10, 2 + (uint32_t)(i / 2) * 10, 2);
    free(p.pix);

    /* last, a list in any order, the = forms; --cols wider than N is N. */
    snprintf(args, sizeof args, "'%s' --png='%s/b' --steps=last --cols=9", log, dir);
    run_export(&r, args);
    snprintf(want, sizeof want, "%s/b/samples_step150.png\n", dir);
    expect_ok(&r, want);
    snprintf(png, sizeof png, "%s/b/samples_step150.png", dir);
    load_png(png, &p);
    expect_format(&p, 5 * 4 + 6 * 2, 4 + 2 * 2, PNG_COLOR_TYPE_GRAY);
    for (int i = 0; i < 5; i++)
        expect_grey_tile(&p, 1, i, 2 + (uint32_t)i * 6, 2, 1);
    free(p.pix);

    snprintf(args, sizeof args, "--steps 150,0 '%s' --png '%s/c'", log, dir);
    run_export(&r, args);
    snprintf(want, sizeof want, "%s/c/samples_step150.png\n%s/c/samples_step000.png\n", dir, dir);
    expect_ok(&r, want);
    snprintf(args, sizeof args, "%s/c", dir);
    list_dir(args, names, sizeof names);
    assert_string_equal(names, "samples_step000.png,samples_step150.png\n");
    free(dir);
}

/* Existing pictures are replaced; a symbolic link in their place is
 * replaced too, never written through; nothing else in the folder changes. */
static void test_replace(void **state)
{
    char *dir = tmpdir("export_replace");
    char log[600], args[1400], path[800], names[1024];
    snprintf(log, sizeof log, "%s/grey.h5", dir);
    float x[2 * 5 * 16];
    grey_values(x);
    write_log(log, grey_steps, 2, 5, grey_dims, x, 0);
    snprintf(path, sizeof path, "%s/out", dir);
    assert_int_equal(mkdir(path, 0777), 0);
    snprintf(path, sizeof path, "%s/victim.txt", dir);
    agon_test_write_file(path, "precious\n");
    snprintf(path, sizeof path, "%s/out/samples_step000.png", dir);
    agon_test_write_file(path, "old picture\n");
    snprintf(path, sizeof path, "%s/out/samples_step150.png", dir);
    assert_int_equal(symlink("../victim.txt", path), 0);
    snprintf(path, sizeof path, "%s/out/keep.txt", dir);
    agon_test_write_file(path, "mine\n");

    result r;
    snprintf(args, sizeof args, "'%s' --png '%s/out'", log, dir);
    run_export(&r, args);
    assert_int_equal(r.code, 0);

    snprintf(path, sizeof path, "%s/victim.txt", dir);
    char *text = agon_test_read_file(path);
    assert_string_equal(text, "precious\n");
    free(text);
    snprintf(path, sizeof path, "%s/out/keep.txt", dir);
    text = agon_test_read_file(path);
    assert_string_equal(text, "mine\n");
    free(text);
    for (int t = 0; t < 2; t++) {
        struct stat st;
        snprintf(path, sizeof path, "%s/out/samples_step%03d.png", dir, (int)grey_steps[t]);
        assert_int_equal(lstat(path, &st), 0);
        assert_true(S_ISREG(st.st_mode));
        png_pic p;
        load_png(path, &p);
        expect_grey_tile(&p, t, 4, 8, 8, 1);
        free(p.pix);
    }
    snprintf(path, sizeof path, "%s/out", dir);
    list_dir(path, names, sizeof names);
    assert_string_equal(names, "keep.txt,samples_step000.png,samples_step150.png\n");
    free(dir);
}

/* ---- RGB grids and grid_cols ----------------------------------------------------- */

/* x [1, 4, 3, 2, 3] (H = 2, W = 3: a transposition would show): the value
 * of sample i, channel c, pixel (y, x) is k / 127.5 - 1 with
 * k = 60 i + 20 c + 3 y + x, so its byte is k. */
static void rgb_log(const char *path, int64_t grid_cols)
{
    const int64_t steps[1] = {7};
    const hsize_t dims[5] = {1, 4, 3, 2, 3};
    float x[4 * 3 * 2 * 3];
    for (int i = 0; i < 4; i++)
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < 2; y++)
                for (int xx = 0; xx < 3; xx++)
                    x[((i * 3 + c) * 2 + y) * 3 + xx] =
                        (float)(60 * i + 20 * c + 3 * y + xx) / 127.5f - 1.0f;
    write_log(path, steps, 1, 5, dims, x, grid_cols);
}

static void expect_rgb_tile(const png_pic *p, int i, uint32_t x0, uint32_t y0)
{
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < 2; y++)
            for (int xx = 0; xx < 3; xx++)
                assert_int_equal(px(p, x0 + (uint32_t)xx, y0 + (uint32_t)y, c),
                                 60 * i + 20 * c + 3 * y + xx);
}

static void test_rgb_grid_cols(void **state)
{
    char *dir = tmpdir("export_rgb");
    char log[600], args[1400], want[2048], png[800];
    snprintf(log, sizeof log, "%s/rgb.h5", dir);
    rgb_log(log, 1);
    result r;
    png_pic p;

    /* grid_cols = 1 (one row per class): a column of 4 tiles of 3x2. */
    snprintf(args, sizeof args, "'%s' --png '%s/a'", log, dir);
    run_export(&r, args);
    snprintf(want, sizeof want, "%s/a/samples_step7.png\n", dir);
    expect_ok(&r, want);
    snprintf(png, sizeof png, "%s/a/samples_step7.png", dir);
    load_png(png, &p);
    expect_format(&p, 3 + 2 * 2, 4 * 2 + 5 * 2, PNG_COLOR_TYPE_RGB);
    for (int i = 0; i < 4; i++)
        expect_rgb_tile(&p, i, 2, 2 + (uint32_t)i * 4);
    for (int c = 0; c < 3; c++) {
        assert_int_equal(px(&p, 0, 0, c), 255);
        assert_int_equal(px(&p, 5, 3, c), 255);
        assert_int_equal(px(&p, 3, 4, c), 255);
    }
    free(p.pix);

    /* An explicit --cols wins over the log's grid_cols. */
    snprintf(args, sizeof args, "'%s' --png '%s/b' --cols 2", log, dir);
    run_export(&r, args);
    snprintf(want, sizeof want, "%s/b/samples_step7.png\n", dir);
    expect_ok(&r, want);
    snprintf(png, sizeof png, "%s/b/samples_step7.png", dir);
    load_png(png, &p);
    expect_format(&p, 2 * 3 + 3 * 2, 2 * 2 + 3 * 2, PNG_COLOR_TYPE_RGB);
    for (int i = 0; i < 4; i++)
        expect_rgb_tile(&p, i, 2 + (uint32_t)(i % 2) * 5, 2 + (uint32_t)(i / 2) * 4);
    free(p.pix);

    /* Without grid_cols: ceil(sqrt(4)) = 2 columns as well. */
    snprintf(log, sizeof log, "%s/rgb_plain.h5", dir);
    rgb_log(log, 0);
    snprintf(args, sizeof args, "'%s' --png '%s/c'", log, dir);
    run_export(&r, args);
    assert_int_equal(r.code, 0);
    snprintf(png, sizeof png, "%s/c/samples_step7.png", dir);
    load_png(png, &p);
    expect_format(&p, 12, 10, PNG_COLOR_TYPE_RGB);
    expect_rgb_tile(&p, 3, 7, 6);
    free(p.pix);

    /* A broken grid_cols is an error, and --cols is the way around it. */
    snprintf(log, sizeof log, "%s/rgb_bad.h5", dir);
    rgb_log(log, -3);
    snprintf(args, sizeof args, "'%s' --png '%s/d'", log, dir);
    snprintf(want, sizeof want,
             "%s: /samples: attribute grid_cols is not a positive integer; "
             "pass --cols N to choose the grid width",
             log);
    expect_error(args, 5, want);
    snprintf(args, sizeof args, "'%s' --png '%s/d' --cols 4", log, dir);
    run_export(&r, args);
    snprintf(want, sizeof want, "%s/d/samples_step7.png\n", dir);
    expect_ok(&r, want);
    free(dir);
}

/* ---- 2-D scatter plots ------------------------------------------------------------ */

/* Three snapshots of 4 points.  The finite points of all snapshots span
 * [-2, 2] on both axes, so every frame shows [-2.2, 2.2] (5% margin) on
 * 512 pixels: column floor((v + 2.2) / 4.4 * 512) and row 511 minus that
 * for y.  By hand: -2 -> 23, -1 -> 139, 0 -> 256, 0.5 -> 314, 1 -> 372,
 * 2 -> 488. */
static void test_points(void **state)
{
    char *dir = tmpdir("export_points");
    char log[600], args[1400], want[2048], png[800];
    snprintf(log, sizeof log, "%s/ring.h5", dir);
    const int64_t steps[3] = {0, 10, 20};
    const hsize_t dims[3] = {3, 4, 2};
    const float x[3 * 4 * 2] = {
        0, 0,  2,  2, -2,   -2,   NAN,      1,  /* step 0; the NaN point is not drawn */
        1, 0,  0,  1, -1,   0,    0,        -1, /* step 10: the unit circle */
        2, -2, -2, 2, 0.5f, 0.5f, INFINITY, 0,  /* step 20 */
    };
    write_log(log, steps, 3, 3, dims, x, 0);
    result r;
    snprintf(args, sizeof args, "'%s' --png '%s'", log, dir);
    run_export(&r, args);
    snprintf(want, sizeof want,
             "%s/samples_step00.png\n%s/samples_step10.png\n%s/samples_step20.png\n", dir, dir,
             dir);
    expect_ok(&r, want);

    png_pic p[3];
    for (int t = 0; t < 3; t++) {
        snprintf(png, sizeof png, "%s/samples_step%02d.png", dir, (int)steps[t]);
        load_png(png, &p[t]);
        expect_format(&p[t], 512, 512, PNG_COLOR_TYPE_GRAY);
        /* White background, light grey axes through 0 (column 256, row 255). */
        assert_int_equal(px(&p[t], 100, 400, 0), 255);
        assert_int_equal(px(&p[t], 0, 0, 0), 255);
        assert_int_equal(px(&p[t], 511, 511, 0), 255);
        assert_int_equal(px(&p[t], 256, 450, 0), 200);
        assert_int_equal(px(&p[t], 50, 255, 0), 200);
    }
    /* Each point is a black 3x3 dot centred on its pixel: (column, row). */
    const uint32_t dots[3][4][2] = {
        {{256, 255}, {488, 23}, {23, 488}, {0, 0}},
        {{372, 255}, {256, 139}, {139, 255}, {256, 372}},
        {{488, 488}, {23, 23}, {314, 197}, {0, 0}},
    };
    const int n_dots[3] = {3, 4, 3};
    for (int t = 0; t < 3; t++) {
        for (int k = 0; k < n_dots[t]; k++) {
            uint32_t cx = dots[t][k][0], cy = dots[t][k][1];
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++)
                    assert_int_equal(px(&p[t], cx + (uint32_t)dx, cy + (uint32_t)dy, 0), 0);
            /* Just outside the dot: background or axis, not ink. */
            assert_true(px(&p[t], cx + 2, cy, 0) != 0 || cx + 2 == 256);
            /* The other frames do not have this point. */
            for (int u = 0; u < 3; u++) {
                bool has = false;
                for (int j = 0; j < n_dots[u]; j++)
                    has = has || (dots[u][j][0] == cx && dots[u][j][1] == cy);
                if (!has)
                    assert_true(px(&p[u], cx, cy, 0) != 0);
            }
        }
    }
    /* The NaN point (x NaN, y 1) and the infinite one left no ink. */
    assert_int_equal(px(&p[0], 256, 139, 0), 200);
    assert_int_equal(px(&p[2], 511, 255, 0), 200);
    for (int t = 0; t < 3; t++)
        free(p[t].pix);

    /* --scale enlarges the plot; --cols does not apply to it. */
    snprintf(args, sizeof args, "'%s' --png '%s/big' --scale 2 --cols 3 --steps 10", log, dir);
    run_export(&r, args);
    snprintf(want, sizeof want, "%s/big/samples_step10.png\n", dir);
    expect_ok(&r, want);
    snprintf(png, sizeof png, "%s/big/samples_step10.png", dir);
    load_png(png, &p[0]);
    expect_format(&p[0], 1024, 1024, PNG_COLOR_TYPE_GRAY);
    /* (1, 0): column floor(3.2 / 4.4 * 1024) = 744, row 1023 - 512 = 511;
     * the dot is 5x5. */
    assert_int_equal(px(&p[0], 744 + 2, 511 - 2, 0), 0);
    assert_int_equal(px(&p[0], 744 + 3, 511 - 2, 0), 255);
    free(p[0].pix);
    free(dir);
}

static void put_attr_f64(hid_t obj, const char *name, double v)
{
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(a >= 0);
    assert_true(H5Awrite(a, H5T_NATIVE_DOUBLE, &v) >= 0);
    H5Aclose(a);
    H5Sclose(sp);
}

static void put_attr_str(hid_t obj, const char *name, const char *v)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(a >= 0);
    assert_true(H5Awrite(a, t, &v) >= 0);
    H5Aclose(a);
    H5Sclose(sp);
    H5Tclose(t);
}

/* A d_landscape metric group as agon writes it (docs/metrics.md): a 2x2
 * grid over [-2, 2]^2, d[i0][i1] with i0 the x cell and i1 the y cell,
 * evaluated at step 10 only.  `per_axis` is the attribute's value, so a
 * group that disagrees with its tensor can be written too. */
static void add_landscape(const char *path, const char *name, double per_axis)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t m = H5Lexists(f, "metrics", H5P_DEFAULT) > 0
                  ? H5Gopen2(f, "metrics", H5P_DEFAULT)
                  : H5Gcreate2(f, "metrics", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t g = H5Gcreate2(m, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(g >= 0);
    put_attr_str(g, "plugin", "d_landscape");
    put_attr_f64(g, "grid_per_axis", per_axis);
    put_attr_f64(g, "lo_0", -2.0);
    put_attr_f64(g, "hi_0", 2.0);
    put_attr_f64(g, "lo_1", -2.0);
    put_attr_f64(g, "hi_1", 2.0);
    hid_t t = H5Gcreate2(g, "tensors", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    const int64_t step = 10;
    const hsize_t one = 1, dims[3] = {1, 2, 2};
    const float d[4] = {0.0f, 0.25f, 0.5f, 1.0f};
    put_dataset(t, "step", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, &one, &step);
    put_dataset(t, "d", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 3, dims, d);
    H5Gclose(t);
    H5Gclose(g);
    H5Gclose(m);
    H5Fclose(f);
}

/* D's landscape under the scatter: the points of test_points on [-2.2,
 * 2.2]^2, the landscape's box [-2, 2]^2 in four cells, each shaded
 * 255 - round(D * 96): D 0 -> 255, 0.25 -> 231, 0.5 -> 207, 1 -> 159.
 * Pixel (100, 100) lies at (-1.34, 1.34): cell (0, 1); (400, 100) at
 * (1.24, 1.34): cell (1, 1); (400, 400) cell (1, 0); (100, 400) cell
 * (0, 0); (5, 5) at (-2.16, 2.16) is outside the box. */
static void test_landscape(void **state)
{
    (void)state;
    char *dir = tmpdir("export_landscape");
    char log[600], args[1400], want[2048], png[800];
    snprintf(log, sizeof log, "%s/ring.h5", dir);
    const int64_t steps[3] = {0, 10, 20};
    const hsize_t dims[3] = {3, 4, 2};
    const float x[3 * 4 * 2] = {0, 0, 2, 2, -2, -2, NAN, 1, 1, 0, 0, 1, -1, 0, 0, -1,
                                2, -2, -2, 2, 0.5f, 0.5f, INFINITY, 0};
    write_log(log, steps, 3, 3, dims, x, 0);
    /* A malformed group sorts first and is passed over. */
    add_landscape(log, "a_broken", 3.0);
    add_landscape(log, "land", 2.0);
    result r;
    snprintf(args, sizeof args, "'%s' --png '%s'", log, dir);
    run_export(&r, args);
    snprintf(want, sizeof want,
             "%s/samples_step00.png\n%s/samples_step10.png\n%s/samples_step20.png\n", dir, dir,
             dir);
    expect_ok(&r, want);
    png_pic p[3];
    for (int t = 0; t < 3; t++) {
        snprintf(png, sizeof png, "%s/samples_step%02d.png", dir, (int)steps[t]);
        load_png(png, &p[t]);
        expect_format(&p[t], 512, 512, PNG_COLOR_TYPE_GRAY);
    }
    /* Step 0 comes before the first evaluation: no landscape. */
    assert_int_equal(px(&p[0], 400, 100, 0), 255);
    assert_int_equal(px(&p[0], 100, 100, 0), 255);
    /* Steps 10 and 20 show the evaluation of step 10. */
    for (int t = 1; t < 3; t++) {
        assert_int_equal(px(&p[t], 100, 400, 0), 255);
        assert_int_equal(px(&p[t], 100, 100, 0), 231);
        assert_int_equal(px(&p[t], 400, 400, 0), 207);
        assert_int_equal(px(&p[t], 400, 100, 0), 159);
        assert_int_equal(px(&p[t], 5, 5, 0), 255);
        /* Axes and dots are drawn over it. */
        assert_int_equal(px(&p[t], 256, 450, 0), 200);
        assert_int_equal(px(&p[t], 400, 255, 0), 200);
    }
    assert_int_equal(px(&p[1], 372, 255, 0), 0);
    assert_int_equal(px(&p[2], 488, 488, 0), 0);
    for (int t = 0; t < 3; t++)
        free(p[t].pix);

    snprintf(args, sizeof args, "'%s' --png '%s/plain' --steps 20 --no-landscape", log, dir);
    run_export(&r, args);
    snprintf(want, sizeof want, "%s/plain/samples_step20.png\n", dir);
    expect_ok(&r, want);
    snprintf(png, sizeof png, "%s/plain/samples_step20.png", dir);
    load_png(png, &p[0]);
    assert_int_equal(px(&p[0], 400, 100, 0), 255);
    assert_int_equal(px(&p[0], 100, 100, 0), 255);
    free(p[0].pix);
    free(dir);
}

/* ---- a log still being written ---------------------------------------------------- */

/* The writer keeps the file open in SWMR mode, as a running `agon run`
 * does; a plain read-only open fails on such a file. */
static void test_live_log(void **state)
{
    char *dir = tmpdir("export_live");
    char log[600], args[1400], want[2048], png[800];
    snprintf(log, sizeof log, "%s/live.h5", dir);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    assert_true(H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST) >= 0);
    hid_t f = H5Fcreate(log, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    assert_true(f >= 0);
    /* A run of 1000 planned steps: names are padded to 4 digits already. */
    put_attr_i64(f, "steps_planned", 1000);
    hid_t g = H5Gcreate2(f, "samples", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    const hsize_t zero[5] = {0, 5, 1, 4, 4}, unlimited[5] = {H5S_UNLIMITED, 5, 1, 4, 4};
    const hsize_t chunk[5] = {1, 5, 1, 4, 4};
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hid_t sp = H5Screate_simple(1, zero, unlimited);
    H5Pset_chunk(dcpl, 1, chunk);
    hid_t step_ds = H5Dcreate2(g, "step", H5T_STD_I64LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Sclose(sp);
    H5Pclose(dcpl);
    dcpl = H5Pcreate(H5P_DATASET_CREATE);
    sp = H5Screate_simple(5, zero, unlimited);
    H5Pset_chunk(dcpl, 5, chunk);
    hid_t x_ds = H5Dcreate2(g, "x", H5T_IEEE_F32LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Sclose(sp);
    H5Pclose(dcpl);
    assert_true(step_ds >= 0 && x_ds >= 0);
    assert_true(H5Fstart_swmr_write(f) >= 0);

    float x[2 * 5 * 16];
    grey_values(x);
    const hsize_t two[5] = {2, 5, 1, 4, 4};
    assert_true(H5Dset_extent(step_ds, two) >= 0);
    assert_true(H5Dwrite(step_ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, grey_steps) >=
                0);
    assert_true(H5Dset_extent(x_ds, two) >= 0);
    assert_true(H5Dwrite(x_ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x) >= 0);
    assert_true(H5Dflush(step_ds) >= 0 && H5Dflush(x_ds) >= 0);

    /* Tools that open plainly refuse the file while it is being written. */
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "h5ls '%s'", log);
    assert_int_not_equal(agon_test_run(cmd, NULL, 0, NULL, 0), 0);

    result r;
    snprintf(args, sizeof args, "'%s' --png '%s/out' --steps last", log, dir);
    run_export(&r, args);
    snprintf(want, sizeof want, "%s/out/samples_step0150.png\n", dir);
    expect_ok(&r, want);
    snprintf(png, sizeof png, "%s/out/samples_step0150.png", dir);
    png_pic p;
    load_png(png, &p);
    expect_format(&p, 20, 14, PNG_COLOR_TYPE_GRAY);
    for (int i = 0; i < 5; i++)
        expect_grey_tile(&p, 1, i, 2 + (uint32_t)(i % 3) * 6, 2 + (uint32_t)(i / 3) * 6, 1);
    free(p.pix);

    H5Dclose(x_ds);
    H5Dclose(step_ds);
    H5Gclose(g);
    H5Fclose(f);
    H5Pclose(fapl);
    free(dir);
}

/* ---- errors ----------------------------------------------------------------------------- */

static void test_usage_errors(void **state)
{
    char *dir = tmpdir("export_usage");
    char log[600], args[1400], want[2048];
    snprintf(log, sizeof log, "%s/grey.h5", dir);
    float x[2 * 5 * 16];
    grey_values(x);
    write_log(log, grey_steps, 2, 5, grey_dims, x, 0);

    snprintf(args, sizeof args, "'%s' --png '%s/o' --frob", log, dir);
    expect_error(args, 2, "agon export: unknown option '--frob'; " USAGE);
    snprintf(args, sizeof args, "'%s'", log);
    expect_error(args, 2,
                 "agon export: give --png DIR (sample pictures) or --csv DIR (tables), or both; "
                 USAGE);
    expect_error("--png out", 2, "agon export: no run log given; " USAGE);
    snprintf(args, sizeof args, "'%s' other.h5 --png o", log);
    expect_error(args, 2, "agon export: give one run log; 'other.h5' is a second one; " USAGE);
    snprintf(args, sizeof args, "'%s' --png", log);
    expect_error(args, 2, "agon export: option '--png' needs a value; " USAGE);
    snprintf(args, sizeof args, "'%s' --png ''", log);
    expect_error(args, 2, "agon export: --png needs a folder name, not an empty string; " USAGE);
    snprintf(args, sizeof args, "'%s' --png o --steps 1,,2", log);
    expect_error(args, 2,
                 "agon export: --steps takes all, last or a comma-separated list of steps "
                 "(integers >= 0), not '1,,2'; " USAGE);
    snprintf(args, sizeof args, "'%s' --png o --steps -5", log);
    expect_error(args, 2,
                 "agon export: --steps takes all, last or a comma-separated list of steps "
                 "(integers >= 0), not '-5'; " USAGE);
    snprintf(args, sizeof args, "'%s' --png o --scale 0", log);
    expect_error(args, 2,
                 "agon export: --scale takes a whole number from 1 to 64, not '0'; " USAGE);
    snprintf(args, sizeof args, "'%s' --png o --cols 2x", log);
    expect_error(args, 2,
                 "agon export: --cols takes a whole number from 1 to 65535, not '2x'; " USAGE);
    snprintf(args, sizeof args, "'%s' --png '%s/o' --steps 0,7", log, dir);
    snprintf(want, sizeof want, "%s: /samples has no snapshot at step 7; logged steps: 0, 150",
             log);
    expect_error(args, 2, want);

    /* Nothing was created by any of these. */
    char names[1024];
    list_dir(dir, names, sizeof names);
    assert_string_equal(names, "grey.h5\n");

    result r;
    run_export(&r, "--help");
    assert_int_equal(r.code, 0);
    assert_true(strncmp(r.out, USAGE "\n", strlen(USAGE) + 1) == 0);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' --help", AGON_CLI_PATH);
    assert_int_equal(agon_test_run(cmd, r.out, sizeof r.out, NULL, 0), 0);
    assert_non_null(strstr(r.out, "\n  export RUN.h5 [--png DIR] [--csv DIR] "
                                  "[--steps all|last|S1,...] [--cols N] [--scale K]\n"));
    snprintf(cmd, sizeof cmd, "'%s' exprt", AGON_CLI_PATH);
    assert_int_equal(agon_test_run(cmd, NULL, 0, r.err, sizeof r.err), 2);
    assert_string_equal(
        r.err, "agon: unknown command 'exprt'; did you mean 'export'? (see agon --help)\n");
    free(dir);
}

static void test_file_errors(void **state)
{
    char *dir = tmpdir("export_files");
    char path[600], args[1400], want[2048];

    snprintf(path, sizeof path, "%s/nope.h5", dir);
    snprintf(args, sizeof args, "'%s' --png '%s/o'", path, dir);
    snprintf(want, sizeof want,
             "%s: cannot open run log: No such file or directory; check the path", path);
    expect_error(args, 5, want);

    snprintf(args, sizeof args, "'%s' --png '%s/o'", dir, dir);
    snprintf(want, sizeof want, "%s: not a regular file; give the path of a run log (.h5)", dir);
    expect_error(args, 5, want);

    snprintf(path, sizeof path, "%s/notes.txt", dir);
    agon_test_write_file(path, "not a log\n");
    snprintf(args, sizeof args, "'%s' --png '%s/o'", path, dir);
    snprintf(want, sizeof want,
             "%s: not an HDF5 file, so not an agon run log; give the .h5 file "
             "that agon run wrote",
             path);
    expect_error(args, 5, want);

    /* A log without samples (log.samples_every: 0). */
    snprintf(path, sizeof path, "%s/nosamples.h5", dir);
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    put_attr_i64(f, "format_version", 1);
    H5Fclose(f);
    snprintf(args, sizeof args, "'%s' --png '%s/o'", path, dir);
    snprintf(want, sizeof want,
             "%s: no /samples in this log; run the experiment with "
             "log.samples_every > 0 (the default is 1000) to log generator samples",
             path);
    expect_error(args, 5, want);

    /* Sample shapes export cannot draw. */
    const int64_t steps[2] = {0, 5};
    float x[2 * 3 * 16] = {0};
    const hsize_t square[4] = {2, 3, 4, 4}, two_channels[5] = {2, 3, 2, 2, 2}, one_d[3] = {2, 3, 1};
    struct {
        int rank;
        const hsize_t *dims;
        const char *shape;
    } shapes[] = {{4, square, "[4, 4]"}, {5, two_channels, "[2, 2, 2]"}, {3, one_d, "[1]"}};
    for (size_t k = 0; k < 3; k++) {
        snprintf(path, sizeof path, "%s/shape%zu.h5", dir, k);
        write_log(path, steps, 2, shapes[k].rank, shapes[k].dims, x, 0);
        snprintf(args, sizeof args, "'%s' --png '%s/o'", path, dir);
        snprintf(want, sizeof want,
                 "%s: /samples/x: samples of shape %s cannot be drawn; export "
                 "draws images [1, H, W] or [3, H, W] and 2-D points [2]",
                 path, shapes[k].shape);
        expect_error(args, 5, want);
    }

    /* No snapshot yet (a run that has just started). */
    const hsize_t empty[5] = {0, 3, 1, 4, 4};
    snprintf(path, sizeof path, "%s/empty.h5", dir);
    write_log(path, steps, 0, 5, empty, x, 0);
    snprintf(args, sizeof args, "'%s' --png '%s/o'", path, dir);
    snprintf(want, sizeof want,
             "%s: /samples holds no snapshot yet; export again once the run "
             "has logged one (at step 0 and every log.samples_every steps)",
             path);
    expect_error(args, 5, want);

    /* A picture too large to write. */
    const hsize_t wide[5] = {1, 2, 1, 1, 2000};
    float *wx = calloc(2 * 2000, sizeof *wx);
    snprintf(path, sizeof path, "%s/wide.h5", dir);
    write_log(path, steps, 1, 5, wide, wx, 0);
    free(wx);
    snprintf(args, sizeof args, "'%s' --png '%s/o' --scale 64", path, dir);
    snprintf(want, sizeof want,
             "%s: the picture of one snapshot would exceed 65535 pixels a side "
             "or 2^27 pixels; lower --scale or choose --cols",
             path);
    expect_error(args, 5, want);

    /* None of these created the folder. */
    char names[1024];
    list_dir(dir, names, sizeof names);
    assert_string_equal(names,
                        "empty.h5,nosamples.h5,notes.txt,shape0.h5,shape1.h5,shape2.h5,wide.h5\n");

    /* Folders that cannot be made. */
    const hsize_t ok_dims[5] = {2, 3, 1, 4, 4};
    snprintf(path, sizeof path, "%s/good.h5", dir);
    write_log(path, steps, 2, 5, ok_dims, x, 0);
    snprintf(args, sizeof args, "'%s' --png '%s/notes.txt'", path, dir);
    snprintf(want, sizeof want,
             "%s/notes.txt: exists and is not a folder; give --png a folder (it "
             "is created if missing)",
             dir);
    expect_error(args, 5, want);
    snprintf(args, sizeof args, "'%s' --png '%s/notes.txt/out'", path, dir);
    snprintf(want, sizeof want,
             "%s/notes.txt/out: cannot create the --png folder: Not a directory; "
             "choose another folder",
             dir);
    expect_error(args, 5, want);
    free(dir);
}

/* Files of the wrong layout: one error line each, never a crash. */
static void test_malformed(void **state)
{
    char *dir = tmpdir("export_malformed");
    char path[600], args[1400], want[2048];
    const int64_t steps[4] = {0, 1, 2, 3};
    const float x[2 * 3 * 16] = {0};
    const hsize_t step2d[2] = {2, 2}, xdims[5] = {2, 3, 1, 4, 4}, x1d[1] = {4};
    enum {
        SAMPLES_DATASET,
        NO_STEP,
        NO_X,
        STEP_2D,
        STEP_FLOAT,
        X_1D,
        X_STRING,
        NEGATIVE_STEP,
        N_CASES
    };
    const char *what[N_CASES] = {
        NULL,
        "step is missing",
        "x is missing",
        "step is not a 1-D integer dataset",
        "step is not a 1-D integer dataset",
        "x is not a numeric dataset [T, N, sample dims...]",
        "x is not a numeric dataset [T, N, sample dims...]",
        "step: entry 1 is -4, but steps are never negative",
    };
    for (int c = 0; c < N_CASES; c++) {
        snprintf(path, sizeof path, "%s/m%d.h5", dir, c);
        hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
        assert_true(f >= 0);
        if (c == SAMPLES_DATASET) {
            put_dataset(f, "samples", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, xdims, steps);
            H5Fclose(f);
            snprintf(args, sizeof args, "'%s' --png '%s/o'", path, dir);
            snprintf(want, sizeof want,
                     "%s: /samples is not a group; this log does not follow "
                     "the agon layout (docs/hdf5-layout.md), so there is nothing to export",
                     path);
            expect_error(args, 5, want);
            continue;
        }
        hid_t g = H5Gcreate2(f, "samples", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        const int64_t negative[2] = {0, -4};
        if (c == STEP_2D)
            put_dataset(g, "step", H5T_STD_I64LE, H5T_NATIVE_INT64, 2, step2d, steps);
        else if (c == STEP_FLOAT)
            put_dataset(g, "step", H5T_IEEE_F64LE, H5T_NATIVE_INT64, 1, xdims, steps);
        else if (c == NEGATIVE_STEP)
            put_dataset(g, "step", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, xdims, negative);
        else if (c != NO_STEP)
            put_dataset(g, "step", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, xdims, steps);
        if (c == X_1D) {
            put_dataset(g, "x", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, x1d, x);
        } else if (c == X_STRING) {
            hid_t st = H5Tcopy(H5T_C_S1);
            H5Tset_size(st, 4);
            put_dataset(g, "x", st, st, 1, x1d, "abcdefghijklmnop");
            H5Tclose(st);
        } else if (c != NO_X) {
            put_dataset(g, "x", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 5, xdims, x);
        }
        H5Gclose(g);
        H5Fclose(f);
        snprintf(args, sizeof args, "'%s' --png '%s/o'", path, dir);
        snprintf(want, sizeof want,
                 "%s: /samples/%s; this log does not follow the agon layout "
                 "(docs/hdf5-layout.md), so there is nothing to export",
                 path, what[c]);
        expect_error(args, 5, want);
    }
    /* A truncated HDF5 file. */
    snprintf(path, sizeof path, "%s/m%d.h5", dir, STEP_2D);
    char cut[700];
    snprintf(cut, sizeof cut, "%s/cut.h5", dir);
    snprintf(args, sizeof args, "head -c 600 '%s' > '%s'", path, cut);
    assert_int_equal(system(args), 0);
    snprintf(args, sizeof args, "'%s' --png '%s/o'", cut, dir);
    result r;
    run_export(&r, args);
    assert_int_equal(r.code, 5);
    snprintf(want, sizeof want, "%s: cannot open HDF5 file (HDF5: truncated file: ", cut);
    assert_true(strncmp(r.err, want, strlen(want)) == 0);
    assert_non_null(strchr(r.err, '\n'));
    assert_string_equal(strchr(r.err, '\n'), "\n");
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grey_grid),    cmocka_unit_test(test_grey_options),
        cmocka_unit_test(test_replace),      cmocka_unit_test(test_rgb_grid_cols),
        cmocka_unit_test(test_points),       cmocka_unit_test(test_landscape),
        cmocka_unit_test(test_live_log),
        cmocka_unit_test(test_usage_errors), cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests_name("export", tests, NULL, NULL);
}

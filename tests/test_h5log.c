/* Tests of the HDF5 run log (core/h5log.c) and `agon show` (core/cli_show.c).
 * Everything written is read back with the plain HDF5 C API, h5dump and,
 * when available, h5py; the crash test kills a writer with SIGKILL. */
#include "test_util.h"

#include <fcntl.h>
#include <signal.h>

#include <hdf5.h>

#include "agon/log.h"
#include "agon/version.h"

/* agon_cli_show lives in the agon program, not in libagon: compile it
 * (with the log-reading helpers it shares with export) into this test so
 * that it can be called in-process. */
#include "cli_h5.c"
#include "cli_show.c"

#define TABLE_COLUMNS 6
static const char *const scalar_columns[TABLE_COLUMNS] = {
    "loss_d", "loss_g", "d_real", "d_fake", "grad_norm_d", "grad_norm_g"};

static const char config_text[] = "seed: 42\nsteps: 2500\nmodel:\n  hidden: 128\n  name: \"g\xc3\xa9n\"\n";

/* Exactly representable in float64 so that reads compare with ==. */
static double row_value(int64_t step, size_t c)
{
    return (double)step * 0.25 + (double)c - 3.0;
}

static float sample_value(int64_t snap, size_t i)
{
    return (float)snap + (float)i * 0.5f;
}

/* ---- reading helpers (plain HDF5) ------------------------------------- */

static char *t_attr_str(hid_t file, const char *obj, const char *name)
{
    hid_t a = H5Aopen_by_name(file, obj, name, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(a >= 0);
    hid_t ft = H5Aget_type(a);
    /* The contract: variable-length UTF-8 strings. */
    assert_int_equal(H5Tget_class(ft), H5T_STRING);
    assert_true(H5Tis_variable_str(ft) > 0);
    assert_int_equal(H5Tget_cset(ft), H5T_CSET_UTF8);
    hid_t mt = H5Tcopy(H5T_C_S1);
    H5Tset_size(mt, H5T_VARIABLE);
    H5Tset_cset(mt, H5T_CSET_UTF8);
    char *p = NULL;
    assert_true(H5Aread(a, mt, &p) >= 0);
    char *copy = strdup(p);
    H5free_memory(p);
    H5Tclose(mt);
    H5Tclose(ft);
    H5Aclose(a);
    return copy;
}

static void t_check_attr_str(hid_t file, const char *obj, const char *name, const char *want)
{
    char *got = t_attr_str(file, obj, name);
    assert_string_equal(got, want);
    free(got);
}

static int64_t t_attr_i64(hid_t file, const char *obj, const char *name)
{
    hid_t a = H5Aopen_by_name(file, obj, name, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(a >= 0);
    hid_t ft = H5Aget_type(a);
    assert_int_equal(H5Tget_class(ft), H5T_INTEGER);
    assert_int_equal(H5Tget_size(ft), 8);
    int64_t v = 0;
    assert_true(H5Aread(a, H5T_NATIVE_INT64, &v) >= 0);
    H5Tclose(ft);
    H5Aclose(a);
    return v;
}

static double t_attr_f64(hid_t file, const char *obj, const char *name)
{
    hid_t a = H5Aopen_by_name(file, obj, name, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(a >= 0);
    double v = 0;
    assert_true(H5Aread(a, H5T_NATIVE_DOUBLE, &v) >= 0);
    H5Aclose(a);
    return v;
}

/* Dimensions of a dataset; returns its rank. */
static int t_dims(hid_t file, const char *path, hsize_t *dims)
{
    hid_t ds = H5Dopen2(file, path, H5P_DEFAULT);
    assert_true(ds >= 0);
    hid_t sp = H5Dget_space(ds);
    int rank = H5Sget_simple_extent_ndims(sp);
    H5Sget_simple_extent_dims(sp, dims, NULL);
    H5Sclose(sp);
    H5Dclose(ds);
    return rank;
}

/* Reads the first `n` elements along dim 0 (whole trailing dims). */
static void t_read_rows(hid_t file, const char *path, hsize_t n, hid_t mem_type, void *out)
{
    hid_t ds = H5Dopen2(file, path, H5P_DEFAULT);
    assert_true(ds >= 0);
    hid_t fs = H5Dget_space(ds);
    int rank = H5Sget_simple_extent_ndims(fs);
    hsize_t dims[8], start[8] = {0};
    H5Sget_simple_extent_dims(fs, dims, NULL);
    assert_true(dims[0] >= n);
    dims[0] = n;
    assert_true(H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, dims, NULL) >= 0);
    hid_t ms = H5Screate_simple(rank, dims, NULL);
    assert_true(H5Dread(ds, mem_type, ms, fs, H5P_DEFAULT, out) >= 0);
    H5Sclose(ms);
    H5Sclose(fs);
    H5Dclose(ds);
}

static int t_nfilters(hid_t file, const char *path, hsize_t *chunk, int *chunk_rank)
{
    hid_t ds = H5Dopen2(file, path, H5P_DEFAULT);
    assert_true(ds >= 0);
    hid_t dcpl = H5Dget_create_plist(ds);
    int n = H5Pget_nfilters(dcpl);
    *chunk_rank = H5Pget_layout(dcpl) == H5D_CHUNKED ? H5Pget_chunk(dcpl, 8, chunk) : 0;
    H5Pclose(dcpl);
    H5Dclose(ds);
    return n;
}

static bool t_has_h5py(void)
{
    static int cached = -1;
    if (cached < 0)
        cached = agon_test_run("/usr/bin/python3 -c 'import h5py'", NULL, 0, NULL, 0) == 0;
    if (!cached)
        printf("[ SKIPPED  ] h5py check: /usr/bin/python3 cannot import h5py\n");
    return cached;
}

static void t_capture_show(int argc, char **argv, int *rc, char **out, char **errtext)
{
    fflush(stdout);
    fflush(stderr);
    int saved_out = dup(1), saved_err = dup(2);
    int fo = open("show.out", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int fe = open("show.err", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(saved_out >= 0 && saved_err >= 0 && fo >= 0 && fe >= 0);
    dup2(fo, 1);
    dup2(fe, 2);
    close(fo);
    close(fe);
    *rc = agon_cli_show(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(saved_out);
    close(saved_err);
    *out = agon_test_read_file("show.out");
    *errtext = agon_test_read_file("show.err");
    assert_non_null(*out);
    assert_non_null(*errtext);
}

static void t_check_h5dump(const char *path, const char *must_contain)
{
    char cmd[1024], out[65536], errb[4096];
    snprintf(cmd, sizeof cmd, "h5dump -H '%s'", path);
    int rc = agon_test_run(cmd, out, sizeof out, errb, sizeof errb);
    if (rc != 0)
        fail_msg("h5dump -H %s failed (%d): %s", path, rc, errb);
    assert_non_null(strstr(out, must_contain));
}

/* ---- the full round trip --------------------------------------------- */

enum { RT_ROWS = 2500, RT_SNAP_EVERY = 100, RT_N = 8, RT_DIM = 2 };

static void write_roundtrip_log(const char *path)
{
    agon_error err = {0};
    agon_log *log = agon_log_create(path, &err);
    if (!log)
        fail_msg("%s", err.message);
    assert_string_equal(agon_log_path(log), path);
    assert_int_equal(agon_log_attr_int(log, "/", "seed", 42, &err), 0);
    assert_int_equal(agon_log_attr_string(log, "/", "host", "n\xc3\xb6" "de-1", &err), 0);
    assert_int_equal(agon_log_attr_double(log, "/", "lr", 2e-4, &err), 0);
    assert_int_equal(agon_log_attr_int(log, "/", "seed", 7, &err), 0); /* replaces */
    assert_int_equal(agon_log_attr_string(log, "/provenance/plugins/ring8", "sha256",
                                          "ab12", &err), 0);
    assert_int_equal(agon_log_write_string(log, "/config", config_text, &err), 0);

    float small[12], big[50 * 40];
    for (int i = 0; i < 12; i++)
        small[i] = (float)i - 5.5f;
    for (int i = 0; i < 2000; i++)
        big[i] = (float)(i % 97) * 0.125f;
    float scalar = 3.75f;
    agon_tensor ts = {small, {2, {3, 4}}};
    agon_tensor tb = {big, {2, {50, 40}}};
    agon_tensor t0 = {&scalar, {0, {0}}};
    assert_int_equal(agon_log_write_tensor(log, "/init/w", &ts, &err), 0);
    assert_int_equal(agon_log_write_tensor(log, "/init/big", &tb, &err), 0);
    assert_int_equal(agon_log_write_tensor(log, "/init/s", &t0, &err), 0);

    agon_log_table *scalars =
        agon_log_table_create(log, "/scalars", scalar_columns, TABLE_COLUMNS, &err);
    if (!scalars)
        fail_msg("%s", err.message);
    const char *mc_cols[] = {"modes", "high_quality", "kl"};
    agon_log_table *mc = agon_log_table_create(log, "/metrics/mode_coverage", mc_cols, 3, &err);
    assert_non_null(mc);
    assert_int_equal(agon_log_attr_string(log, "/metrics/mode_coverage", "plugin", "ring8",
                                          &err), 0);
    assert_int_equal(agon_log_attr_int(log, "/metrics/mode_coverage", "n_samples", 2500, &err),
                     0);
    const char *x_col[] = {"x"};
    agon_shape x_shape = {2, {RT_N, RT_DIM}};
    agon_log_series *samples = agon_log_series_create(log, "/samples", x_col, &x_shape, 1, &err);
    if (!samples)
        fail_msg("%s", err.message);
    const char *p_cols[] = {"0.weight", "0.bias"};
    agon_shape p_shapes[] = {{2, {4, 3}}, {1, {4}}};
    agon_log_series *params =
        agon_log_series_create(log, "/params/generator", p_cols, p_shapes, 2, &err);
    assert_non_null(params);

    assert_int_equal(agon_log_start(log, &err), 0);
    for (int64_t step = 0; step < RT_ROWS; step++) {
        double v[TABLE_COLUMNS];
        for (size_t c = 0; c < TABLE_COLUMNS; c++)
            v[c] = row_value(step, c);
        assert_int_equal(agon_log_table_append(scalars, step, v, &err), 0);
        if (step % RT_SNAP_EVERY == RT_SNAP_EVERY - 1) {
            int64_t snap = step / RT_SNAP_EVERY;
            float x[RT_N * RT_DIM], w[12], b[4];
            for (size_t i = 0; i < RT_N * RT_DIM; i++)
                x[i] = sample_value(snap, i);
            for (size_t i = 0; i < 12; i++)
                w[i] = -sample_value(snap, i);
            for (size_t i = 0; i < 4; i++)
                b[i] = sample_value(snap, i) * 2.0f;
            const float *xs[] = {x};
            const float *ps[] = {w, b};
            assert_int_equal(agon_log_series_append(samples, step, xs, &err), 0);
            assert_int_equal(agon_log_series_append(params, step, ps, &err), 0);
        }
        if (step == 1500)
            assert_int_equal(agon_log_flush(log, &err), 0);
    }
    double m1[3] = {7, 88.5, 0.5}, m2[3] = {8, 93.125, 0.0625};
    assert_int_equal(agon_log_table_append(mc, 1000, m1, &err), 0);
    assert_int_equal(agon_log_table_append(mc, 2500, m2, &err), 0);
    assert_int_equal(agon_log_flush(log, &err), 0);
    assert_int_equal(agon_log_finish(log, "completed", "", &err), 0);

    float fw[12];
    for (int i = 0; i < 12; i++)
        fw[i] = (float)i * 1.5f;
    agon_tensor tf = {fw, {2, {4, 3}}};
    assert_int_equal(agon_log_write_tensor(log, "/final/generator/0.weight", &tf, &err), 0);
    assert_int_equal(agon_log_attr_int(log, "/", "steps_done", RT_ROWS, &err), 0);
    assert_int_equal(agon_log_close(log, &err), 0);
    assert_int_equal(err.code, 0);
}

static void test_roundtrip(void **state)
{
    const char *dir = agon_test_tmpdir("h5log_rt");
    char path[512];
    snprintf(path, sizeof path, "%s/run.h5", dir);
    write_roundtrip_log(path);

    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    assert_int_equal(t_attr_i64(f, "/", "format_version"), AGON_LOG_FORMAT_VERSION);
    t_check_attr_str(f, "/", "agon_version", agon_version());
    t_check_attr_str(f, "/", "git_revision", agon_git_revision());
    t_check_attr_str(f, "/", "status", "completed");
    t_check_attr_str(f, "/", "status_message", "");
    t_check_attr_str(f, "/", "host", "n\xc3\xb6" "de-1");
    t_check_attr_str(f, "/provenance/plugins/ring8", "sha256", "ab12");
    assert_int_equal(t_attr_i64(f, "/", "seed"), 7);
    assert_int_equal(t_attr_i64(f, "/", "steps_done"), RT_ROWS);
    assert_true(t_attr_f64(f, "/", "lr") == 2e-4);
    const char *times[] = {"start_time", "end_time"};
    for (int i = 0; i < 2; i++) {
        char *t = t_attr_str(f, "/", times[i]);
        int y, mo, d, h, mi, s;
        char z = 0;
        assert_int_equal(strlen(t), 20);
        assert_int_equal(sscanf(t, "%4d-%2d-%2dT%2d:%2d:%2d%c", &y, &mo, &d, &h, &mi, &s, &z), 7);
        assert_int_equal(z, 'Z');
        assert_true(y >= 2024);
        free(t);
    }

    /* /config: a scalar variable-length UTF-8 string dataset. */
    hid_t ds = H5Dopen2(f, "/config", H5P_DEFAULT);
    hid_t mt = H5Tcopy(H5T_C_S1);
    H5Tset_size(mt, H5T_VARIABLE);
    H5Tset_cset(mt, H5T_CSET_UTF8);
    char *cfg = NULL;
    assert_true(H5Dread(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, &cfg) >= 0);
    assert_string_equal(cfg, config_text);
    H5free_memory(cfg);
    H5Tclose(mt);
    H5Dclose(ds);

    hsize_t dims[8], chunk[8];
    int crank;
    float got[2000];
    assert_int_equal(t_dims(f, "/init/w", dims), 2);
    assert_int_equal(dims[0], 3);
    assert_int_equal(dims[1], 4);
    t_read_rows(f, "/init/w", 3, H5T_NATIVE_FLOAT, got);
    for (int i = 0; i < 12; i++)
        assert_true(got[i] == (float)i - 5.5f);
    assert_int_equal(t_nfilters(f, "/init/w", chunk, &crank), 0);
    t_read_rows(f, "/init/big", 50, H5T_NATIVE_FLOAT, got);
    for (int i = 0; i < 2000; i++)
        assert_true(got[i] == (float)(i % 97) * 0.125f);
    assert_int_equal(t_nfilters(f, "/init/big", chunk, &crank), 2); /* shuffle + deflate */
    assert_int_equal(crank, 2);
    assert_int_equal(t_dims(f, "/init/s", dims), 0);
    hid_t sds = H5Dopen2(f, "/init/s", H5P_DEFAULT);
    float s = 0;
    assert_true(H5Dread(sds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, &s) >= 0);
    assert_true(s == 3.75f);
    H5Dclose(sds);

    /* /scalars: step plus one float64 column each, all RT_ROWS long. */
    t_check_attr_str(f, "/scalars", "columns",
                     "loss_d,loss_g,d_real,d_fake,grad_norm_d,grad_norm_g");
    static int64_t steps[RT_ROWS];
    static double vals[RT_ROWS];
    assert_int_equal(t_dims(f, "/scalars/step", dims), 1);
    assert_int_equal(dims[0], RT_ROWS);
    t_read_rows(f, "/scalars/step", RT_ROWS, H5T_NATIVE_INT64, steps);
    for (int64_t i = 0; i < RT_ROWS; i++)
        assert_int_equal(steps[i], i);
    for (size_t c = 0; c < TABLE_COLUMNS; c++) {
        char p[128];
        snprintf(p, sizeof p, "/scalars/%s", scalar_columns[c]);
        assert_int_equal(t_dims(f, p, dims), 1);
        assert_int_equal(dims[0], RT_ROWS);
        hid_t d = H5Dopen2(f, p, H5P_DEFAULT);
        hid_t ty = H5Dget_type(d);
        assert_int_equal(H5Tget_class(ty), H5T_FLOAT);
        assert_int_equal(H5Tget_size(ty), 8);
        assert_int_equal(H5Aget_num_attrs(d), 0);
        H5Tclose(ty);
        H5Dclose(d);
        assert_int_equal(t_nfilters(f, p, chunk, &crank), 0);
        assert_int_equal(crank, 1);
        assert_int_equal(chunk[0], 1024);
        t_read_rows(f, p, RT_ROWS, H5T_NATIVE_DOUBLE, vals);
        for (int64_t i = 0; i < RT_ROWS; i++) {
            if (vals[i] != row_value(i, c))
                fail_msg("%s[%lld] = %g, expected %g", p, (long long)i, vals[i],
                         row_value(i, c));
        }
    }

    t_check_attr_str(f, "/metrics/mode_coverage", "columns", "modes,high_quality,kl");
    t_check_attr_str(f, "/metrics/mode_coverage", "plugin", "ring8");
    assert_int_equal(t_attr_i64(f, "/metrics/mode_coverage", "n_samples"), 2500);
    t_read_rows(f, "/metrics/mode_coverage/step", 2, H5T_NATIVE_INT64, steps);
    assert_int_equal(steps[0], 1000);
    assert_int_equal(steps[1], 2500);
    t_read_rows(f, "/metrics/mode_coverage/high_quality", 2, H5T_NATIVE_DOUBLE, vals);
    assert_true(vals[0] == 88.5 && vals[1] == 93.125);

    /* /samples/x: [T, N, dim], one deflated chunk per snapshot. */
    int n_snaps = RT_ROWS / RT_SNAP_EVERY;
    assert_int_equal(t_dims(f, "/samples/x", dims), 3);
    assert_int_equal(dims[0], n_snaps);
    assert_int_equal(dims[1], RT_N);
    assert_int_equal(dims[2], RT_DIM);
    assert_int_equal(t_nfilters(f, "/samples/x", chunk, &crank), 2);
    assert_int_equal(crank, 3);
    assert_int_equal(chunk[0], 1);
    assert_int_equal(chunk[1], RT_N);
    assert_int_equal(chunk[2], RT_DIM);
    t_check_attr_str(f, "/samples", "columns", "x");
    static float xs[RT_ROWS / RT_SNAP_EVERY * RT_N * RT_DIM];
    t_read_rows(f, "/samples/x", (hsize_t)n_snaps, H5T_NATIVE_FLOAT, xs);
    t_read_rows(f, "/samples/step", (hsize_t)n_snaps, H5T_NATIVE_INT64, steps);
    for (int j = 0; j < n_snaps; j++) {
        assert_int_equal(steps[j], (int64_t)j * RT_SNAP_EVERY + RT_SNAP_EVERY - 1);
        for (size_t i = 0; i < RT_N * RT_DIM; i++)
            assert_true(xs[(size_t)j * RT_N * RT_DIM + i] == sample_value(j, i));
    }
    assert_int_equal(t_dims(f, "/params/generator/0.bias", dims), 2);
    assert_int_equal(dims[0], n_snaps);
    assert_int_equal(dims[1], 4);
    t_read_rows(f, "/params/generator/0.bias", (hsize_t)n_snaps, H5T_NATIVE_FLOAT, xs);
    assert_true(xs[4 * 24 + 3] == sample_value(24, 3) * 2.0f);
    t_read_rows(f, "/params/generator/0.weight", (hsize_t)n_snaps, H5T_NATIVE_FLOAT, xs);
    assert_true(xs[12 * 5 + 7] == -sample_value(5, 7));

    t_read_rows(f, "/final/generator/0.weight", 4, H5T_NATIVE_FLOAT, got);
    for (int i = 0; i < 12; i++)
        assert_true(got[i] == (float)i * 1.5f);
    assert_int_equal(H5Fclose(f), 0);

    t_check_h5dump(path, "GROUP \"scalars\"");

    if (t_has_h5py()) {
        char script[512], cmd[2048], out[4096], errb[4096];
        snprintf(script, sizeof script, "%s/check.py", dir);
        agon_test_write_file(
            script,
            "import sys, h5py, numpy as np\n"
            "f = h5py.File(sys.argv[1], 'r')\n"
            "a = f.attrs\n"
            "assert a['status'] == 'completed', a['status']\n"
            "assert int(a['format_version']) == 1\n"
            "assert int(a['seed']) == 7\n"
            "cols = f['scalars'].attrs['columns'].split(',')\n"
            "assert cols[:2] == ['loss_d', 'loss_g'], cols\n"
            "step = f['scalars/step'][:]\n"
            "assert (step == np.arange(2500)).all()\n"
            "assert (f['scalars/loss_g'][:] == step * 0.25 + 1 - 3).all()\n"
            "cfg = open(sys.argv[2], encoding='utf-8').read()\n"
            "assert f['config'].asstr()[()] == cfg, f['config'].asstr()[()]\n"
            "x = f['samples/x']\n"
            "assert x.shape == (25, 8, 2), x.shape\n"
            "assert x[3, 1, 1] == 3 + 3 * 0.5\n"
            "assert f['metrics/mode_coverage/kl'][-1] == 0.0625\n"
            "print('ok', len(step))\n");
        char cfg_path[512];
        snprintf(cfg_path, sizeof cfg_path, "%s/config.yaml", dir);
        agon_test_write_file(cfg_path, config_text);
        snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s %s %s", script, path, cfg_path);
        int rc = agon_test_run(cmd, out, sizeof out, errb, sizeof errb);
        if (rc != 0)
            fail_msg("h5py check failed (%d): %s", rc, errb);
        assert_string_equal(out, "ok 2500\n");
    }
}

/* A log closed without agon_log_finish keeps its rows and "running". */
static void test_close_unfinished(void **state)
{
    const char *dir = agon_test_tmpdir("h5log_unfinished");
    char path[512];
    snprintf(path, sizeof path, "%s/run.h5", dir);
    agon_error err = {0};
    agon_log *log = agon_log_create(path, &err);
    assert_non_null(log);
    const char *cols[] = {"a"};
    agon_log_table *t = agon_log_table_create(log, "/t", cols, 1, &err);
    assert_non_null(t);
    for (int64_t i = 0; i < 300; i++) { /* buffered during SETUP too */
        double v = (double)i;
        assert_int_equal(agon_log_table_append(t, i, &v, &err), 0);
    }
    assert_int_equal(agon_log_start(log, &err), 0);
    for (int64_t i = 300; i < 1500; i++) {
        double v = (double)i;
        assert_int_equal(agon_log_table_append(t, i, &v, &err), 0);
    }
    assert_int_equal(agon_log_close(log, &err), 0);
    assert_int_equal(agon_log_close(NULL, &err), 0);

    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    t_check_attr_str(f, "/", "status", "running");
    assert_int_equal(H5Aexists(f, "end_time"), 0);
    hsize_t dims[2];
    assert_int_equal(t_dims(f, "/t/a", dims), 1);
    assert_int_equal(dims[0], 1500);
    static double v[1500];
    static int64_t s[1500];
    t_read_rows(f, "/t/a", 1500, H5T_NATIVE_DOUBLE, v);
    t_read_rows(f, "/t/step", 1500, H5T_NATIVE_INT64, s);
    for (int i = 0; i < 1500; i++) {
        assert_true(v[i] == (double)i);
        assert_int_equal(s[i], i);
    }
    H5Fclose(f);
    t_check_h5dump(path, "DATASET \"step\"");
}

static void expect_create_error(const char *path, const char *message)
{
    agon_error err = {0};
    agon_log *log = agon_log_create(path, &err);
    assert_null(log);
    assert_int_equal(err.code, AGON_EIO);
    assert_string_equal(err.message, message);
}

static void test_create_errors(void **state)
{
    const char *dir = agon_test_tmpdir("h5log_err");
    char path[512], msg[1024], file[512];
    snprintf(path, sizeof path, "%s/missing/x.h5", dir);
    snprintf(msg, sizeof msg,
             "%s: cannot create log file: No such file or directory; create the directory or "
             "choose another -o path", path);
    expect_create_error(path, msg);

    snprintf(file, sizeof file, "%s/plain", dir);
    agon_test_write_file(file, "not a directory\n");
    snprintf(path, sizeof path, "%s/plain/x.h5", dir);
    snprintf(msg, sizeof msg,
             "%s: cannot create log file: Not a directory; create the directory or choose "
             "another -o path", path);
    expect_create_error(path, msg);

    snprintf(msg, sizeof msg, "%s: cannot create log file: Is a directory; choose another -o path",
             dir);
    expect_create_error(dir, msg);

    if (getuid() != 0) {
        char ro[256];
        snprintf(ro, sizeof ro, "%s/ro", dir);
        assert_int_equal(mkdir(ro, 0555), 0);
        snprintf(path, sizeof path, "%s/x.h5", ro);
        snprintf(msg, sizeof msg,
                 "%s: cannot create log file: Permission denied; make the directory writable "
                 "or choose another -o path", path);
        expect_create_error(path, msg);
        chmod(ro, 0755);
    } else {
        printf("[ SKIPPED  ] unwritable-directory case: running as root, which may write "
               "anywhere\n");
    }
}

static void expect_error(int rc, const agon_error *err, int code, const char *path,
                         const char *rest)
{
    char want[1024];
    snprintf(want, sizeof want, "%s: %s", path, rest);
    assert_int_equal(rc, code);
    assert_int_equal(err->code, code);
    assert_string_equal(err->message, want);
}

static void test_phase_errors(void **state)
{
    const char *dir = agon_test_tmpdir("h5log_phase");
    char path[512];
    snprintf(path, sizeof path, "%s/run.h5", dir);
    agon_error err = {0};
    agon_log *log = agon_log_create(path, &err);
    assert_non_null(log);

    const char *dup_cols[] = {"a", "b", "a"};
    assert_null(agon_log_table_create(log, "/t", dup_cols, 3, &err));
    expect_error(err.code, &err, AGON_EINTERNAL, path, "/t: column 'a' appears twice");
    agon_error_clear(&err);
    const char *step_cols[] = {"step"};
    assert_null(agon_log_table_create(log, "/t", step_cols, 1, &err));
    expect_error(err.code, &err, AGON_EINTERNAL, path,
                 "/t: column name 'step' is reserved for the step index");
    agon_error_clear(&err);
    const char *comma_cols[] = {"a,b"};
    assert_null(agon_log_table_create(log, "/t", comma_cols, 1, &err));
    expect_error(err.code, &err, AGON_EINTERNAL, path,
                 "/t: column name 'a,b' is not allowed (no '/', ',', '.' or '..')");
    agon_error_clear(&err);
    const char *cols[] = {"a"};
    assert_null(agon_log_table_create(log, "scalars", cols, 1, &err));
    expect_error(err.code, &err, AGON_EINTERNAL, path,
                 "scalars: not an absolute HDF5 path (expected e.g. \"/metrics/name\")");
    agon_error_clear(&err);

    agon_log_table *t = agon_log_table_create(log, "/t", cols, 1, &err);
    assert_non_null(t);
    assert_null(agon_log_table_create(log, "/t", cols, 1, &err));
    expect_error(err.code, &err, AGON_EINTERNAL, path,
                 "/t: already exists; a table or series needs a new group");
    agon_error_clear(&err);
    float x = 1;
    agon_tensor tx = {&x, {0, {0}}};
    expect_error(agon_log_write_tensor(log, "/t", &tx, &err), &err, AGON_EINTERNAL, path,
                 "/t: a group exists at this path; choose another dataset name");
    agon_error_clear(&err);

    assert_int_equal(agon_log_start(log, &err), 0);
    expect_error(agon_log_attr_int(log, "/", "seed", 1, &err), &err, AGON_EINTERNAL, path,
                 "/: cannot write while the log is live (SWMR writing); create objects and "
                 "attributes before agon_log_start or after agon_log_finish");
    agon_error_clear(&err);
    expect_error(agon_log_write_tensor(log, "/late", &tx, &err), &err, AGON_EINTERNAL, path,
                 "/late: cannot write while the log is live (SWMR writing); create objects "
                 "and attributes before agon_log_start or after agon_log_finish");
    agon_error_clear(&err);
    assert_null(agon_log_table_create(log, "/late", cols, 1, &err));
    expect_error(err.code, &err, AGON_EINTERNAL, path,
                 "/late: tables and series can only be declared before agon_log_start");
    agon_error_clear(&err);
    expect_error(agon_log_start(log, &err), &err, AGON_EINTERNAL, path,
                 "agon_log_start called twice or after agon_log_finish");
    agon_error_clear(&err);

    double v = 1.0;
    assert_int_equal(agon_log_table_append(t, 0, &v, &err), 0);
    expect_error(agon_log_finish(log, "done", NULL, &err), &err, AGON_EINTERNAL, path,
                 "/: invalid final status 'done' (expected completed, diverged, failed or "
                 "interrupted)");
    agon_error_clear(&err);
    assert_int_equal(agon_log_finish(log, "diverged", "loss_d is NaN at step 0", &err), 0);
    expect_error(agon_log_table_append(t, 1, &v, &err), &err, AGON_EINTERNAL, path,
                 "/t: table no longer accepts rows (the log was finished or the table could "
                 "not be created)");
    agon_error_clear(&err);
    expect_error(agon_log_finish(log, "completed", NULL, &err), &err, AGON_EINTERNAL, path,
                 "agon_log_finish called twice");
    agon_error_clear(&err);
    /* FINAL allows attributes again, including on new groups. */
    assert_int_equal(agon_log_attr_int(log, "/diverged", "step", 0, &err), 0);
    assert_int_equal(agon_log_attr_string(log, "/diverged", "series", "loss_d", &err), 0);
    assert_int_equal(agon_log_close(log, &err), 0);

    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    t_check_attr_str(f, "/", "status", "diverged");
    t_check_attr_str(f, "/", "status_message", "loss_d is NaN at step 0");
    t_check_attr_str(f, "/diverged", "series", "loss_d");
    assert_int_equal(t_attr_i64(f, "/diverged", "step"), 0);
    hsize_t dims[1];
    t_dims(f, "/t/a", dims);
    assert_int_equal(dims[0], 1);
    H5Fclose(f);
}

/* A SWMR reader in another process (a live plot, `agon show`) still has the
 * file open when training ends: the final status must reach the file. */
static void test_finish_with_reader(void **state)
{
    const char *dir = agon_test_tmpdir("h5log_reader");
    char path[512];
    snprintf(path, sizeof path, "%s/run.h5", dir);
    int to_child[2], to_parent[2];
    assert_int_equal(pipe(to_child), 0);
    assert_int_equal(pipe(to_parent), 0);
    fflush(stdout);
    fflush(stderr);
    /* Forked before the log exists: a child must not inherit open HDF5
     * files from the parent's library state. */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(to_child[1]);
        close(to_parent[0]);
        char c;
        if (read(to_child[0], &c, 1) != 1)
            _exit(2);
        hid_t f = H5Fopen(path, H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, H5P_DEFAULT);
        char ok = f >= 0 ? 'o' : 'x';
        if (write(to_parent[1], &ok, 1) != 1 || read(to_child[0], &c, 1) != 1)
            _exit(3);
        H5Fclose(f);
        _exit(0);
    }
    close(to_child[0]);
    close(to_parent[1]);
    agon_error err = {0};
    agon_log *log = agon_log_create(path, &err);
    assert_non_null(log);
    const char *cols[] = {"a"};
    agon_log_table *t = agon_log_table_create(log, "/t", cols, 1, &err);
    assert_non_null(t);
    assert_int_equal(agon_log_start(log, &err), 0);
    double v = 0.5;
    assert_int_equal(agon_log_table_append(t, 0, &v, &err), 0);
    assert_int_equal(agon_log_flush(log, &err), 0);
    char c = 'g';
    assert_int_equal(write(to_child[1], &c, 1), 1);
    assert_int_equal(read(to_parent[0], &c, 1), 1);
    assert_int_equal(c, 'o');
    int rc = agon_log_finish(log, "completed", "", &err);
    if (rc) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        fail_msg("%s", err.message);
    }
    assert_int_equal(agon_log_attr_int(log, "/", "steps_done", 1, &err), 0);
    assert_int_equal(agon_log_close(log, &err), 0);
    assert_int_equal(write(to_child[1], &c, 1), 1);
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    close(to_child[1]);
    close(to_parent[0]);

    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    t_check_attr_str(f, "/", "status", "completed");
    assert_int_equal(t_attr_i64(f, "/", "steps_done"), 1);
    H5Fclose(f);
}

/* ---- agon show ---------------------------------------------------------- */

static void write_show_log(const char *path, const char *status, const char *message)
{
    agon_error err = {0};
    agon_log *log = agon_log_create(path, &err);
    assert_non_null(log);
    assert_int_equal(agon_log_attr_string(log, "/", "run_id", "3f2a9c0d1e2b4a5f", &err), 0);
    assert_int_equal(agon_log_attr_int(log, "/", "seed", 0, &err), 0);
    assert_int_equal(agon_log_attr_int(log, "/", "steps_planned", 10000, &err), 0);
    assert_int_equal(agon_log_attr_int(log, "/", "steps_done", 0, &err), 0);
    assert_int_equal(agon_log_write_string(log, "/config", "seed: 0\nmodel:\n  hidden: 128\n",
                                           &err), 0);
    agon_log_table *sc = agon_log_table_create(log, "/scalars", scalar_columns, 6, &err);
    const char *mc_cols[] = {"modes", "high_quality", "kl"};
    agon_log_table *mc = agon_log_table_create(log, "/metrics/mode_coverage", mc_cols, 3, &err);
    const char *fid_cols[] = {"fid"};
    agon_log_table *fid = agon_log_table_create(log, "/metrics/frechet", fid_cols, 1, &err);
    assert_true(sc && mc && fid);
    assert_int_equal(agon_log_start(log, &err), 0);
    /* As core/train.c logs: step s is written after s training steps. */
    for (int64_t s = 1; s <= 10000; s++) {
        double v[6] = {2.0, 2.0, 0.5, 0.5, 1.0, 1.0};
        if (s == 10000) {
            double last[6] = {1.2312, 0.7741, 0.512, 0.481, 0.0541, 0.0312};
            memcpy(v, last, sizeof v);
        }
        assert_int_equal(agon_log_table_append(sc, s, v, &err), 0);
    }
    double m1[3] = {5, 50.0, 1.0}, m2[3] = {8, 93.1, 0.0123};
    assert_int_equal(agon_log_table_append(mc, 5000, m1, &err), 0);
    assert_int_equal(agon_log_table_append(mc, 10000, m2, &err), 0);
    if (status) {
        assert_int_equal(agon_log_finish(log, status, message, &err), 0);
        assert_int_equal(agon_log_attr_int(log, "/", "steps_done", 10000, &err), 0);
        assert_int_equal(agon_log_attr_string(log, "/", "git_revision", "abc123", &err), 0);
        assert_int_equal(agon_log_attr_string(log, "/", "start_time", "2026-11-22T22:49:47Z",
                                              &err), 0);
        assert_int_equal(agon_log_attr_string(log, "/", "end_time", "2026-11-22T23:51:52Z",
                                              &err), 0);
    }
    assert_int_equal(agon_log_close(log, &err), 0);
}

static void test_show_finished(void **state)
{
    const char *dir = agon_test_tmpdir("h5log_show");
    char path[512], want[4096];
    snprintf(path, sizeof path, "%s/r.h5", dir);
    write_show_log(path, "completed", "");

    char *argv[] = {"show", path, NULL};
    int rc;
    char *out, *errtext;
    t_capture_show(2, argv, &rc, &out, &errtext);
    snprintf(want, sizeof want,
             "%s: completed, 10000/10000 steps, 3725 s (1:02:05)\n"
             "run 3f2a9c0d1e2b4a5f  seed 0  agon %s (rev abc123)  started 2026-11-22T22:49:47Z\n"
             "last step 10000: loss_d 1.2312  loss_g 0.7741  D(x) 0.512  D(G(z)) 0.481  "
             "|grad G| 0.0312  |grad D| 0.0541\n"
             "metric frechet: no values yet\n"
             "metric mode_coverage @ step 10000: modes 8  high_quality 93.1  kl 0.0123\n"
             "config:\n"
             "  seed: 0\n"
             "  model:\n"
             "    hidden: 128\n",
             path, agon_version());
    assert_int_equal(rc, 0);
    assert_string_equal(out, want);
    assert_string_equal(errtext, "");
    free(out);
    free(errtext);

    char *argv2[] = {"show", "--no-config", path, NULL};
    t_capture_show(3, argv2, &rc, &out, &errtext);
    assert_int_equal(rc, 0);
    assert_null(strstr(out, "config:"));
    assert_non_null(strstr(out, "metric mode_coverage @ step 10000"));
    free(out);
    free(errtext);

    snprintf(path, sizeof path, "%s/d.h5", dir);
    write_show_log(path, "diverged", "loss_d is not finite at step 10000");
    char *argv3[] = {"show", "--no-config", path, NULL};
    t_capture_show(3, argv3, &rc, &out, &errtext);
    assert_int_equal(rc, 0);
    snprintf(want, sizeof want,
             "%s: diverged (loss_d is not finite at step 10000), 10000/10000 steps, 3725 s "
             "(1:02:05)\n", path);
    assert_memory_equal(out, want, strlen(want));
    free(out);
    free(errtext);

    snprintf(path, sizeof path, "%s/u.h5", dir);
    write_show_log(path, NULL, NULL);
    char *argv4[] = {"show", "--no-config", path, NULL};
    t_capture_show(3, argv4, &rc, &out, &errtext);
    assert_int_equal(rc, 0);
    snprintf(want, sizeof want, "%s: running (or interrupted), 10000 steps so far\n", path);
    assert_memory_equal(out, want, strlen(want));
    free(out);
    free(errtext);
}

/* Writes a finished show log at DIR/NAME (path receives it) whose
 * /config is an array of two strings, as another tool may write it, and
 * returns the file open read-write. */
static hid_t log_with_two_configs(const char *dir, const char *name, char *path, size_t cap)
{
    snprintf(path, cap, "%s/%s", dir, name);
    write_show_log(path, "completed", "");
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    assert_int_equal(H5Ldelete(f, "config", H5P_DEFAULT), 0);
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    hsize_t two = 2;
    hid_t s = H5Screate_simple(1, &two, NULL);
    hid_t d = H5Dcreate2(f, "config", t, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    const char *texts[2] = {"seed: 1\n", "seed: 2\n"};
    assert_true(d >= 0);
    assert_true(H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, texts) >= 0);
    H5Dclose(d);
    H5Sclose(s);
    H5Tclose(t);
    return f;
}

/* A /config that is not one string is no config: show prints none, where
 * it read both strings into one pointer (found by tests/fuzz/fuzz_log). */
static void test_show_config_not_one_string(void **state)
{
    char path[512];
    hid_t f = log_with_two_configs(agon_test_tmpdir("h5log_show_cfg"), "two.h5", path,
                                   sizeof path);
    assert_null(agon__h5_read_string(f, "config"));
    assert_int_equal(H5Fclose(f), 0);

    char *argv[] = {"show", path, NULL};
    int rc;
    char *out, *errtext;
    t_capture_show(2, argv, &rc, &out, &errtext);
    assert_int_equal(rc, 0);
    assert_null(strstr(out, "config:"));
    assert_non_null(strstr(out, "metric mode_coverage @ step 10000"));
    assert_string_equal(errtext, "");
    free(out);
    free(errtext);
}

/* The summary behind --resume, --overwrite and sweeps reads the same
 * values into single variables: an array where agon writes a scalar
 * (/config of two strings, a pid of three numbers, a status of two
 * strings) reads as absent, never into memory past the variable. */
static void test_summary_arrays_for_scalars(void **state)
{
    char path[512];
    hid_t f = log_with_two_configs(agon_test_tmpdir("h5log_sum_arrays"), "arrays.h5", path,
                                   sizeof path);
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    hsize_t two = 2, three = 3;
    hid_t s2 = H5Screate_simple(1, &two, NULL), s3 = H5Screate_simple(1, &three, NULL);
    const int64_t pids[3] = {1, 2, 3};
    if (H5Aexists(f, "pid") > 0)
        assert_int_equal(H5Adelete(f, "pid"), 0);
    hid_t a = H5Acreate2(f, "pid", H5T_NATIVE_INT64, s3, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(a >= 0 && H5Awrite(a, H5T_NATIVE_INT64, pids) >= 0);
    H5Aclose(a);
    assert_int_equal(H5Adelete(f, "status"), 0);
    a = H5Acreate2(f, "status", t, s2, H5P_DEFAULT, H5P_DEFAULT);
    const char *statuses[2] = {"completed", "running"};
    assert_true(a >= 0 && H5Awrite(a, t, statuses) >= 0);
    H5Aclose(a);
    H5Sclose(s2);
    H5Sclose(s3);
    H5Tclose(t);
    assert_int_equal(H5Fclose(f), 0);

    agon_log_summary sum;
    agon_error err = {0};
    assert_int_equal(agon_log_summarize(path, &sum, &err), AGON_EDATA);
    char want[700];
    snprintf(want, sizeof want, "%s: /config cannot be read; the log is damaged", path);
    assert_string_equal(err.message, want);
    assert_string_equal(sum.status, "");
    assert_int_equal(sum.pid, 0);
    free(sum.config);

    /* agon show reads its numbers the same way (an array steps_done or
     * pid was read into one int64: a fuzz_log finding). */
    char *argv[] = {"show", "--no-config", path, NULL};
    int rc;
    char *out, *errtext;
    t_capture_show(3, argv, &rc, &out, &errtext);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "metric mode_coverage @ step 10000"));
    free(out);
    free(errtext);
}

static void expect_show_error(char *path, int code, const char *message)
{
    char *argv[] = {"show", path, NULL};
    int rc;
    char *out, *errtext;
    t_capture_show(2, argv, &rc, &out, &errtext);
    assert_int_equal(rc, code);
    assert_string_equal(out, "");
    assert_string_equal(errtext, message);
    free(out);
    free(errtext);
}

static void test_show_errors(void **state)
{
    const char *dir = agon_test_tmpdir("h5log_show_err");
    char path[512], msg[1024];

    snprintf(path, sizeof path, "%s/notes.txt", dir);
    agon_test_write_file(path, "this is not HDF5\n");
    snprintf(msg, sizeof msg, "%s: not an HDF5 file, so not an agon run log; give the .h5 file "
             "that agon run wrote\n",
             path);
    expect_show_error(path, AGON_EDATA, msg);

    snprintf(path, sizeof path, "%s/other.h5", dir);
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(f >= 0);
    H5Fclose(f);
    snprintf(msg, sizeof msg, "%s: not an agon run log (no format_version attribute); give the .h5 "
             "file that agon run wrote\n",
             path);
    expect_show_error(path, AGON_EDATA, msg);

    snprintf(path, sizeof path, "%s/absent.h5", dir);
    snprintf(msg, sizeof msg, "%s: cannot open run log: No such file or directory\n", path);
    expect_show_error(path, AGON_EIO, msg);

    snprintf(path, sizeof path, "%s", dir);
    snprintf(msg, sizeof msg, "%s: not a regular file; give the path of a run log (.h5)\n",
             path);
    expect_show_error(path, AGON_EIO, msg);

    char *argv[] = {"show", "--bogus", NULL};
    int rc;
    char *out, *errtext;
    t_capture_show(2, argv, &rc, &out, &errtext);
    assert_int_equal(rc, AGON_EUSAGE);
    assert_string_equal(errtext, "agon show: unknown option '--bogus'; usage: agon show "
                                 "[--no-config] RUN.h5... | agon show --follow [--wait SECONDS] RUN.h5\n");
    free(out);
    free(errtext);
    char *argv2[] = {"show", NULL};
    t_capture_show(1, argv2, &rc, &out, &errtext);
    assert_int_equal(rc, AGON_EUSAGE);
    assert_string_equal(errtext, "agon show: no run log given; usage: agon show [--no-config] "
                                 "RUN.h5... | agon show --follow [--wait SECONDS] RUN.h5\n");
    free(out);
    free(errtext);
}

/* ---- crash safety --------------------------------------------------------- */

enum { CRASH_FLUSH_EVERY = 700, CRASH_SNAP_EVERY = 100, CRASH_N = 16 };
static const char *const crash_cols[] = {"a", "b", "c"};

static double crash_value(int64_t step, size_t c)
{
    return (double)step * 0.5 + (double)c * 1000.0;
}

/* The writer: appends rows forever, flushing every CRASH_FLUSH_EVERY rows
 * and then reporting the number of rows flushed on `fd`. */
static void crash_writer(const char *path, int fd)
{
    agon_error err = {0};
    agon_log *log = agon_log_create(path, &err);
    if (!log)
        _exit(2);
    agon_shape shape = {2, {CRASH_N, 2}};
    const char *x_col[] = {"x"};
    agon_log_table *t = agon_log_table_create(log, "/scalars", crash_cols, 3, &err);
    agon_log_series *s = agon_log_series_create(log, "/samples", x_col, &shape, 1, &err);
    if (!t || !s || agon_log_start(log, &err))
        _exit(3);
    float x[CRASH_N * 2];
    const float *xs[] = {x};
    for (int64_t step = 0; step < 20000000; step++) {
        double v[3] = {crash_value(step, 0), crash_value(step, 1), crash_value(step, 2)};
        if (agon_log_table_append(t, step, v, &err))
            _exit(4);
        if (step % CRASH_SNAP_EVERY == CRASH_SNAP_EVERY - 1) {
            for (size_t i = 0; i < CRASH_N * 2; i++)
                x[i] = (float)step + (float)i;
            if (agon_log_series_append(s, step, xs, &err))
                _exit(5);
        }
        if ((step + 1) % CRASH_FLUSH_EVERY == 0) {
            if (agon_log_flush(log, &err))
                _exit(6);
            int64_t n = step + 1;
            if (write(fd, &n, sizeof n) != (ssize_t)sizeof n)
                _exit(7);
        }
    }
    agon_log_close(log, &err);
    _exit(0);
}

/* Every row below `rows` (and every snapshot taken before it) is present
 * and exact in a file opened for SWMR reading. */
static void check_crashed_rows(const char *path, int64_t rows)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, H5P_DEFAULT);
    if (f < 0)
        fail_msg("%s: cannot open with SWMR read after %lld flushed rows", path,
                 (long long)rows);
    hsize_t dims[4];
    int64_t *steps = malloc((size_t)rows * sizeof *steps);
    double *vals = malloc((size_t)rows * sizeof *vals);
    assert_true(steps && vals);
    t_dims(f, "/scalars/step", dims);
    if ((int64_t)dims[0] < rows)
        fail_msg("/scalars/step has %llu rows, %lld were flushed", (unsigned long long)dims[0],
                 (long long)rows);
    t_read_rows(f, "/scalars/step", (hsize_t)rows, H5T_NATIVE_INT64, steps);
    for (int64_t i = 0; i < rows; i++)
        assert_int_equal(steps[i], i);
    for (size_t c = 0; c < 3; c++) {
        char p[64];
        snprintf(p, sizeof p, "/scalars/%s", crash_cols[c]);
        t_read_rows(f, p, (hsize_t)rows, H5T_NATIVE_DOUBLE, vals);
        for (int64_t i = 0; i < rows; i++) {
            if (vals[i] != crash_value(i, c))
                fail_msg("%s[%lld] = %g after the crash, expected %g", p, (long long)i, vals[i],
                         crash_value(i, c));
        }
    }
    int64_t snaps = rows / CRASH_SNAP_EVERY;
    float *x = malloc((size_t)snaps * CRASH_N * 2 * sizeof *x);
    assert_non_null(x);
    t_read_rows(f, "/samples/step", (hsize_t)snaps, H5T_NATIVE_INT64, steps);
    t_read_rows(f, "/samples/x", (hsize_t)snaps, H5T_NATIVE_FLOAT, x);
    for (int64_t j = 0; j < snaps; j++) {
        int64_t step = j * CRASH_SNAP_EVERY + CRASH_SNAP_EVERY - 1;
        assert_int_equal(steps[j], step);
        for (size_t i = 0; i < CRASH_N * 2; i++)
            assert_true(x[j * CRASH_N * 2 + (int64_t)i] == (float)step + (float)i);
    }
    free(x);
    free(steps);
    free(vals);
    assert_int_equal(H5Fclose(f), 0);
}

static int64_t read_report(int fd)
{
    int64_t n;
    ssize_t got = read(fd, &n, sizeof n);
    return got == (ssize_t)sizeof n ? n : -1;
}

/* The running writer, killed by the teardown when an assertion fails
 * before the test's own kill. */
static pid_t crash_child = -1;

static int kill_crash_child(void **state)
{
    if (crash_child > 0) {
        kill(crash_child, SIGKILL);
        waitpid(crash_child, NULL, 0);
    }
    crash_child = -1;
    return 0;
}

static void crash_trial(const char *dir, int trial, int reports_before_kill)
{
    char path[512];
    snprintf(path, sizeof path, "%s/crash%d.h5", dir, trial);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        crash_writer(path, fds[1]);
    }
    crash_child = pid;
    close(fds[1]);
    int64_t last = 0;
    for (int r = 0; r < reports_before_kill; r++) {
        int64_t n = read_report(fds[0]);
        if (n < 0)
            fail_msg("crash writer stopped before its report %d", r);
        last = n;
        /* Halfway, read the live file while the writer keeps going. */
        if (r == reports_before_kill / 2)
            check_crashed_rows(path, last);
    }
    assert_int_equal(kill(pid, SIGKILL), 0);
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    crash_child = -1;
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    for (int64_t n; (n = read_report(fds[0])) >= 0;)
        last = n;
    close(fds[0]);
    check_crashed_rows(path, last);

    /* `agon show` reads the crashed log too. */
    char *argv[] = {"show", "--no-config", path, NULL};
    int rc;
    char *out, *errtext;
    t_capture_show(3, argv, &rc, &out, &errtext);
    assert_int_equal(rc, 0);
    char prefix[600];
    snprintf(prefix, sizeof prefix, "%s: running (or interrupted), ", path);
    assert_memory_equal(out, prefix, strlen(prefix));
    /* This writer numbers its rows from step 0. */
    long long so_far = atoll(out + strlen(prefix));
    assert_true(so_far >= last - 1);
    free(out);
    free(errtext);

    if (trial == 0 && t_has_h5py()) {
        char cmd[1200], pyout[256], errb[4096];
        snprintf(cmd, sizeof cmd,
                 "/usr/bin/python3 -c \"import sys, h5py, numpy as np\n"
                 "f = h5py.File(sys.argv[1], 'r', swmr=True)\n"
                 "n = int(sys.argv[2])\n"
                 "assert (f['scalars/step'][:n] == np.arange(n)).all()\n"
                 "assert (f['scalars/b'][:n] == np.arange(n) * 0.5 + 1000).all()\n"
                 "print('ok')\" '%s' %lld", path, (long long)last);
        int prc = agon_test_run(cmd, pyout, sizeof pyout, errb, sizeof errb);
        if (prc != 0)
            fail_msg("h5py swmr=True read of the crashed log failed (%d): %s", prc, errb);
        assert_string_equal(pyout, "ok\n");
    }
}

static void test_crash_kill9(void **state)
{
    const char *dir = agon_test_tmpdir("h5log_crash");
    const int kills_after[] = {4, 17, 45};
    for (int i = 0; i < 3; i++)
        crash_trial(dir, i, kills_after[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),     cmocka_unit_test(test_close_unfinished),
        cmocka_unit_test(test_create_errors), cmocka_unit_test(test_phase_errors),
        cmocka_unit_test(test_finish_with_reader),
        cmocka_unit_test(test_show_finished), cmocka_unit_test(test_show_errors),
        cmocka_unit_test(test_show_config_not_one_string),
        cmocka_unit_test(test_summary_arrays_for_scalars),
        cmocka_unit_test_teardown(test_crash_kill9, kill_crash_child),
    };
    return cmocka_run_group_tests_name("h5log", tests, NULL, NULL);
}

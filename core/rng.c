/* Named random streams: xoshiro256** seeded by splitmix64 (see agon/rng.h). */
#include "agon/rng.h"

#include <math.h>
#include <pthread.h>

uint64_t agon_hash_fnv1a64(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ull;
    }
    return h;
}

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void agon_rng_seed(agon_rng *rng, uint64_t seed, const char *name)
{
    /* Mixing the seed through splitmix64 before combining it with the name's
     * hash keeps streams of neighbouring seeds unrelated. */
    uint64_t mix = seed;
    uint64_t x = splitmix64(&mix) ^ agon_hash_fnv1a64(name);
    for (int i = 0; i < 4; i++) {
        rng->s[i] = splitmix64(&x);
        rng->epoch_origin[i] = 0;
    }
    rng->epoch_size = 0;
    rng->epoch_pos = 0;
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t agon_rng_u64(agon_rng *rng)
{
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double agon_rng_uniform(agon_rng *rng)
{
    return (double)(agon_rng_u64(rng) >> 11) * 0x1.0p-53;
}

uint64_t agon_rng_below(agon_rng *rng, uint64_t n)
{
    /* Rejection keeps every residue equally likely. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t r;
    do {
        r = agon_rng_u64(rng);
    } while (r >= limit);
    return r % n;
}

/* Normals use Marsaglia and Tsang's ziggurat (2000) with 256 layers: almost
 * every draw is one 64-bit number, a table lookup and a multiply, where the
 * Box-Muller transform needs a log, a square root and a sine/cosine pair.
 * The training step draws a latent batch twice per step, so this matters.
 * Layer i spans [0, zig_x[i]); zig_x[0] is the base strip's width, which
 * includes the tail beyond zig_r. */
enum { ZIG_LAYERS = 256 };
static const double zig_r = 3.6541528853610088;
static const double zig_area = 4.92867323399e-3;
static double zig_x[ZIG_LAYERS + 1];
static double zig_f[ZIG_LAYERS + 1];
static pthread_once_t zig_once = PTHREAD_ONCE_INIT;

static void zig_init(void)
{
    double f_r = exp(-0.5 * zig_r * zig_r);
    zig_x[0] = zig_area / f_r;
    zig_x[1] = zig_r;
    for (int i = 1; i < ZIG_LAYERS - 1; i++) {
        double fx = exp(-0.5 * zig_x[i] * zig_x[i]);
        zig_x[i + 1] = sqrt(-2.0 * log(zig_area / zig_x[i] + fx));
    }
    zig_x[ZIG_LAYERS] = 0.0;
    for (int i = 0; i <= ZIG_LAYERS; i++)
        zig_f[i] = exp(-0.5 * zig_x[i] * zig_x[i]);
}

/* The tables must be ready (zig_init ran). */
static inline double zig_normal(agon_rng *rng)
{
    for (;;) {
        uint64_t u = agon_rng_u64(rng);
        int layer = (int)(u & (ZIG_LAYERS - 1));
        double sign = (u & ZIG_LAYERS) ? -1.0 : 1.0;
        double x = (double)(u >> 11) * 0x1.0p-53 * zig_x[layer];
        if (x < zig_x[layer + 1])
            return sign * x;
        if (layer == 0) {
            /* The tail beyond r, by Marsaglia's exponential rejection. */
            double a, b;
            do {
                a = -log(1.0 - agon_rng_uniform(rng)) / zig_r;
                b = -log(1.0 - agon_rng_uniform(rng));
            } while (2.0 * b < a * a);
            return sign * (zig_r + a);
        }
        double y = zig_f[layer] + agon_rng_uniform(rng) * (zig_f[layer + 1] - zig_f[layer]);
        if (y < exp(-0.5 * x * x))
            return sign * x;
    }
}

double agon_rng_normal(agon_rng *rng)
{
    pthread_once(&zig_once, zig_init);
    return zig_normal(rng);
}

void agon_rng_fill_normal(agon_rng *rng, float *x, size_t n, float mean, float std)
{
    pthread_once(&zig_once, zig_init);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(mean + std * zig_normal(rng));
}

void agon_rng_fill_uniform(agon_rng *rng, float *x, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(lo + (hi - lo) * agon_rng_uniform(rng));
}

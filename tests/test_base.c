/* Tests for src/base: f16/bf16 conversion (exhaustive round trips, round-to-nearest-even on
 * midpoints, subnormals, inf, nan), Philox normals (determinism, piecewise generation, moments),
 * arena mark/reset, thread pool (every ith runs once) and range splitting. */
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/arena.h"
#include "base/numeric.h"
#include "base/rng.h"
#include "base/threadpool.h"
#include "test_util.h"

static uint32_t f2u(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static float u2f(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void test_f16(void) {
    int bad_rt = 0, bad_mid = 0, bad_row = 0;
    float row[65536];
    uint16_t all[65536];
    for (uint32_t h = 0; h < 65536; h++) all[h] = (uint16_t)h;
    tdm_f16_to_f32_row(all, row, 65536);
    for (uint32_t h = 0; h < 65536; h++) {
        float f = tdm_f16_to_f32((uint16_t)h);
        int is_nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
        if (is_nan) {
            bad_rt += !isnan(f) || !isnan(tdm_f16_to_f32(tdm_f32_to_f16(f)));
            bad_row += !isnan(row[h]);
            continue;
        }
        bad_rt += tdm_f32_to_f16(f) != h;
        bad_row += f2u(row[h]) != f2u(f); /* F16C path == scalar */
        /* midpoint to the next value up in magnitude: ties go to the even mantissa */
        uint32_t next = h + 1;
        if ((h & 0x7fff) < 0x7bff) { /* both finite */
            float a = f, b = tdm_f16_to_f32((uint16_t)next);
            float mid = (a + b) / 2; /* exact in f32 */
            uint16_t even = (h & 1) ? (uint16_t)next : (uint16_t)h;
            bad_mid += tdm_f32_to_f16(mid) != even;
            bad_mid += tdm_f32_to_f16(nextafterf(mid, 2 * b)) != next; /* just above: away from a */
            bad_mid += tdm_f32_to_f16(nextafterf(mid, 0.0f * a)) != h;  /* just below: toward a */
        }
    }
    CHECK_MSG(bad_rt == 0, "f16 round trip failures %d", bad_rt);
    CHECK_MSG(bad_mid == 0, "f16 rounding failures %d", bad_mid);
    CHECK_MSG(bad_row == 0, "f16 row (F16C) mismatches %d", bad_row);
    /* specific values */
    CHECK(tdm_f16_to_f32(0x0001) == ldexpf(1, -24)); /* smallest subnormal */
    CHECK(tdm_f16_to_f32(0x03ff) == ldexpf(1023, -24));
    CHECK(tdm_f16_to_f32(0x7bff) == 65504.0f);
    CHECK(tdm_f32_to_f16(65519.0f) == 0x7bff);
    CHECK(tdm_f32_to_f16(65520.0f) == 0x7c00); /* tie with 65536 -> inf */
    CHECK(tdm_f32_to_f16(INFINITY) == 0x7c00 && tdm_f32_to_f16(-INFINITY) == 0xfc00);
    CHECK(tdm_f32_to_f16(1e10f) == 0x7c00);
    CHECK(tdm_f32_to_f16(ldexpf(1, -25)) == 0x0000);                  /* tie with 0 -> 0 (even) */
    CHECK(tdm_f32_to_f16(nextafterf(ldexpf(1, -25), 1)) == 0x0001);   /* above the tie */
    CHECK(tdm_f32_to_f16(ldexpf(3, -25)) == 0x0002);                  /* 1.5 ulp -> 2 (even) */
    CHECK(tdm_f32_to_f16(-0.0f) == 0x8000 && tdm_f32_to_f16(1e-30f) == 0);
    CHECK(tdm_f32_to_f16(ldexpf(1023.5f, -24)) == 0x0400);            /* rounds up into the normals */
    uint16_t hn = tdm_f32_to_f16(NAN);
    CHECK((hn & 0x7c00) == 0x7c00 && (hn & 0x3ff) != 0);
    CHECK(isnan(tdm_f16_to_f32(0x7e00)) && isinf(tdm_f16_to_f32(0xfc00)) && tdm_f16_to_f32(0xfc00) < 0);
}

static void test_bf16(void) {
    int bad_rt = 0, bad_mid = 0;
    float row[65536];
    uint16_t all[65536];
    for (uint32_t h = 0; h < 65536; h++) all[h] = (uint16_t)h;
    tdm_bf16_to_f32_row(all, row, 65536);
    for (uint32_t h = 0; h < 65536; h++) {
        float f = tdm_bf16_to_f32((uint16_t)h);
        CHECK(f2u(row[h]) == f2u(f));
        if (isnan(f)) {
            bad_rt += !isnan(tdm_bf16_to_f32(tdm_f32_to_bf16(f)));
            continue;
        }
        bad_rt += tdm_f32_to_bf16(f) != h;
        if ((h & 0x7fff) < 0x7f7f) { /* next value up in magnitude is finite */
            uint32_t next = h + 1;
            float mid = u2f(f2u(f) | 0x8000); /* exact midpoint of f and the next value */
            uint16_t even = (h & 1) ? (uint16_t)next : (uint16_t)h;
            bad_mid += tdm_f32_to_bf16(mid) != even;
            bad_mid += tdm_f32_to_bf16(u2f(f2u(mid) + 1)) != next;
            bad_mid += tdm_f32_to_bf16(u2f(f2u(mid) - 1)) != h;
        }
    }
    CHECK_MSG(bad_rt == 0, "bf16 round trip failures %d", bad_rt);
    CHECK_MSG(bad_mid == 0, "bf16 rounding failures %d", bad_mid);
    CHECK(tdm_f32_to_bf16(INFINITY) == 0x7f80 && tdm_f32_to_bf16(-INFINITY) == 0xff80);
    CHECK(tdm_f32_to_bf16(u2f(0x7f7fffff)) == 0x7f80); /* FLT_MAX rounds to inf */
    CHECK(isnan(tdm_bf16_to_f32(tdm_f32_to_bf16(u2f(0x7f800001))))); /* nan with payload only in low bits */
    CHECK(tdm_f32_to_bf16(u2f(0x00000001)) == 0x0000);                 /* f32 subnormal tie-free: rounds to 0 */
    CHECK(tdm_f32_to_bf16(u2f(0x00008000)) == 0x0000);                 /* tie -> even (0) */
    CHECK(tdm_f32_to_bf16(u2f(0x00018000)) == 0x0002);                 /* tie -> even (2) */
}

static void test_rng(void) {
    enum { n = 23 };
    float a[n], b[n], c[n];
    tdm_randn(a, n, 42, 7, 5);
    tdm_randn(b, n, 42, 7, 5);
    CHECK(memcmp(a, b, sizeof a) == 0);
    /* [5, 28) in pieces [5, 15) + [15, 28) (offsets not multiples of 4) */
    tdm_randn(c, 10, 42, 7, 5);
    tdm_randn(c + 10, n - 10, 42, 7, 15);
    CHECK(memcmp(a, c, sizeof a) == 0);
    /* one element at a time */
    for (int i = 0; i < n; i++) tdm_randn(c + i, 1, 42, 7, 5 + (uint64_t)i);
    CHECK(memcmp(a, c, sizeof a) == 0);
    /* other stream / seed differ */
    tdm_randn(b, n, 42, 8, 5);
    CHECK(memcmp(a, b, sizeof a) != 0);
    tdm_randn(b, n, 43, 7, 5);
    CHECK(memcmp(a, b, sizeof a) != 0);
    /* moments of 1e6 normals */
    size_t N = 1000000;
    float *z = malloc(N * sizeof(float));
    tdm_randn(z, N, 1, 0, 0);
    double s = 0, s2 = 0, s4 = 0;
    for (size_t i = 0; i < N; i++) {
        s += z[i];
        s2 += (double)z[i] * z[i];
        s4 += (double)z[i] * z[i] * z[i] * z[i];
        if (!isfinite(z[i])) s = NAN;
    }
    double mean = s / N, var = s2 / N - mean * mean, kurt = s4 / N;
    CHECK_MSG(fabs(mean) < 0.005 && fabs(var - 1) < 0.01 && fabs(kurt - 3) < 0.05, "mean %g var %g E[z^4] %g", mean,
              var, kurt);
    tdm_randu(z, N, 1, 0, 0);
    s = 0;
    int out_of_range = 0;
    for (size_t i = 0; i < N; i++) {
        s += z[i];
        out_of_range += !(z[i] >= 0.0f && z[i] < 1.0f);
    }
    CHECK(out_of_range == 0 && fabs(s / N - 0.5) < 0.005);
    free(z);
}

static void test_arena(void) {
    tdm_arena a;
    tdm_arena_init(&a, 4096);
    char *p1 = tdm_arena_alloc(&a, 100);
    CHECK(p1 && ((uintptr_t)p1 & 63) == 0);
    memset(p1, 1, 100);
    tdm_arena_mark m = tdm_arena_get_mark(&a);
    size_t in_use = a.in_use;
    for (int i = 0; i < 50; i++) { /* spills into several new chunks, one larger than chunk_size */
        char *p = tdm_arena_alloc(&a, i == 25 ? 10000 : 1000);
        CHECK(p && ((uintptr_t)p & 63) == 0);
        if (p) memset(p, 2, i == 25 ? 10000 : 1000);
    }
    CHECK(a.in_use > in_use && a.peak >= a.in_use);
    tdm_arena_reset(&a, m);
    CHECK(a.in_use == in_use);
    char *p2 = tdm_arena_alloc(&a, 64);
    CHECK(p2 == p1 + 128); /* the space after the mark is reused */
    CHECK(p1[99] == 1);
    int *z = tdm_arena_calloc(&a, 100, sizeof(int));
    int zero = 1;
    for (int i = 0; z && i < 100; i++) zero &= z[i] == 0;
    CHECK(z && zero);
    CHECK(tdm_arena_alloc(&a, SIZE_MAX - 10) == NULL);
    CHECK(tdm_arena_calloc(&a, SIZE_MAX / 2, 4) == NULL);
    tdm_arena_reset(&a, (tdm_arena_mark){NULL, 0, 0}); /* release everything */
    CHECK(a.in_use == 0 && a.head == NULL);
    tdm_arena_free(&a);
}

typedef struct {
    atomic_int count[8];
    atomic_int bad_nth;
    int expect_nth;
} pool_ctx;

static void pool_fn(void *ctx_, int ith, int nth) {
    pool_ctx *c = ctx_;
    if (nth != c->expect_nth || ith < 0 || ith >= nth) atomic_fetch_add(&c->bad_nth, 1);
    else atomic_fetch_add(&c->count[ith], 1);
}

static void test_pool(void) {
    for (int n = 1; n <= 5; n++) {
        tdm_pool *p;
        tdm_status st;
        CHECK(tdm_pool_create(&p, n, &st) == TDM_OK);
        CHECK(tdm_pool_size(p) == n);
        pool_ctx c;
        memset(&c, 0, sizeof c);
        c.expect_nth = n;
        for (int r = 0; r < 200; r++) tdm_pool_run(p, pool_fn, &c);
        CHECK(atomic_load(&c.bad_nth) == 0);
        for (int i = 0; i < n; i++) CHECK_MSG(atomic_load(&c.count[i]) == 200, "n %d ith %d ran %d", n, i, c.count[i]);
        tdm_pool_free(p);
    }
    pool_ctx c;
    memset(&c, 0, sizeof c);
    c.expect_nth = 1;
    tdm_pool_run(NULL, pool_fn, &c);
    CHECK(atomic_load(&c.count[0]) == 1 && tdm_pool_size(NULL) == 1);
    /* split_range covers [0, n) contiguously */
    for (long n = 0; n < 20; n++)
        for (int nth = 1; nth <= 6; nth++) {
            long expect = 0;
            for (int i = 0; i < nth; i++) {
                long b, e;
                tdm_split_range(n, i, nth, &b, &e);
                CHECK(b == expect && e >= b);
                expect = e;
            }
            CHECK(expect == n);
        }
}

int main(void) {
    test_f16();
    test_bf16();
    test_rng();
    test_arena();
    test_pool();
    return tdm_test_result();
}

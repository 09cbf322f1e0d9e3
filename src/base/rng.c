#include "base/rng.h"

#include <math.h>

void tdm_philox4x32(uint64_t key, const uint32_t counter[4], uint32_t out[4]) {
    const uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u, W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    uint32_t c0 = counter[0], c1 = counter[1], c2 = counter[2], c3 = counter[3];
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)M0 * c0, p1 = (uint64_t)M1 * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n1 = (uint32_t)p1;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        uint32_t n3 = (uint32_t)p0;
        c0 = n0;
        c1 = n1;
        c2 = n2;
        c3 = n3;
        k0 += W0;
        k1 += W1;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

static void philox_block(uint64_t seed, uint64_t stream, uint64_t block, uint32_t out[4]) {
    uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), (uint32_t)stream, (uint32_t)(stream >> 32)};
    tdm_philox4x32(seed, ctr, out);
}

void tdm_randn(float *out, size_t n, uint64_t seed, uint64_t stream, uint64_t offset) {
    const double two_pi = 6.283185307179586476925286766559;
    for (size_t j = 0; j < n;) {
        uint64_t i = offset + j;
        uint64_t block = i / 4;
        uint32_t x[4];
        philox_block(seed, stream, block, x);
        double z[4];
        for (int p = 0; p < 2; p++) {
            double u0 = ((double)x[2 * p] + 0.5) / 4294967296.0;
            double u1 = ((double)x[2 * p + 1] + 0.5) / 4294967296.0;
            double r = sqrt(-2.0 * log(u0));
            z[2 * p] = r * cos(two_pi * u1);
            z[2 * p + 1] = r * sin(two_pi * u1);
        }
        for (unsigned k = (unsigned)(i % 4); k < 4 && j < n; k++, j++) out[j] = (float)z[k];
    }
}

void tdm_randu(float *out, size_t n, uint64_t seed, uint64_t stream, uint64_t offset) {
    for (size_t j = 0; j < n;) {
        uint64_t i = offset + j;
        uint32_t x[4];
        philox_block(seed, stream ^ 0x8000000000000000ull, i / 4, x);
        for (unsigned k = (unsigned)(i % 4); k < 4 && j < n; k++, j++)
            out[j] = (float)((double)(x[k] >> 8) / 16777216.0);
    }
}

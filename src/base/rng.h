/* Seeded, counter-based random numbers (Philox4x32-10, Salmon et al. SC'11).
 * Value i of stream s under seed k is a pure function of (k, s, i): the same seed gives the same
 * noise whatever the thread count or the order of generation.
 * Normals: Box-Muller on consecutive uniform pairs: block b = i/4 gives 4 normals from
 * philox(key=seed, counter={b_lo, b_hi, stream_lo, stream_hi}); u = (x + 0.5) / 2^32 in (0,1);
 * z0 = sqrt(-2 ln u0) cos(2 pi u1), z1 = sqrt(-2 ln u0) sin(2 pi u1) (likewise u2,u3 -> z2,z3).
 * Computed in double precision and rounded to float. */
#ifndef TDM_BASE_RNG_H
#define TDM_BASE_RNG_H

#include <stddef.h>
#include <stdint.h>

void tdm_philox4x32(uint64_t key, const uint32_t counter[4], uint32_t out[4]);

/* out[j] = normal number (offset + j) of stream `stream`. */
void tdm_randn(float *out, size_t n, uint64_t seed, uint64_t stream, uint64_t offset);

/* out[j] = uniform in [0,1) number (offset + j) of stream `stream`. */
void tdm_randu(float *out, size_t n, uint64_t seed, uint64_t stream, uint64_t offset);

#endif

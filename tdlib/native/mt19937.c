/* MT19937 draws that replay numpy's RandomState and CPython's random.Random value for value.
 *
 * Both libraries run the reference MT19937 (624-word state, twist when the position reaches 624).
 * On top of the 32-bit words:
 *   tdlib_doubles  numpy's random_sample: (a >> 5) * 2^26 + (b >> 6), scaled by 2^-53
 *   tdlib_gauss    numpy's legacy standard_normal: the polar method on those doubles, one spare
 *                  value kept between calls (has_gauss / gauss), libm's log and sqrt as numpy's
 *   tdlib_shuffle  CPython's Random.shuffle: j = _randbelow(i + 1) for i = n-1 .. 1, where
 *                  _randbelow(m) draws getrandbits(m.bit_length()) = word >> (32 - k) until < m
 * The state is (key[624], pos); the caller converts it from and to the library's own objects.
 */
#include <math.h>
#include <stdint.h>

#define N 624
#define M 397
#define MATRIX_A 0x9908b0dfU
#define UPPER 0x80000000U
#define LOWER 0x7fffffffU

static void twist(uint32_t *key) {
    uint32_t y;
    int i;
    for (i = 0; i < N - M; i++) {
        y = (key[i] & UPPER) | (key[i + 1] & LOWER);
        key[i] = key[i + M] ^ (y >> 1) ^ (-(y & 1U) & MATRIX_A);
    }
    for (; i < N - 1; i++) {
        y = (key[i] & UPPER) | (key[i + 1] & LOWER);
        key[i] = key[i + (M - N)] ^ (y >> 1) ^ (-(y & 1U) & MATRIX_A);
    }
    y = (key[N - 1] & UPPER) | (key[0] & LOWER);
    key[N - 1] = key[M - 1] ^ (y >> 1) ^ (-(y & 1U) & MATRIX_A);
}

static inline uint32_t temper(uint32_t y) {
    y ^= (y >> 11);
    y ^= (y << 7) & 0x9d2c5680U;
    y ^= (y << 15) & 0xefc60000U;
    y ^= (y >> 18);
    return y;
}

static inline uint32_t next32(uint32_t *key, int32_t *pos) {
    if (*pos >= N) {
        twist(key);
        *pos = 0;
    }
    return temper(key[(*pos)++]);
}

static inline double to_double(uint32_t a, uint32_t b) {
    return ((a >> 5) * 67108864.0 + (b >> 6)) / 9007199254740992.0;
}

void tdlib_doubles(uint32_t *key, int32_t *pos, double *out, int64_t n) {
    int32_t p = *pos;
    int64_t i = 0;
    while (i < n) {
        if (p >= N) {
            twist(key);
            p = 0;
        }
        if (p <= N - 2) {  /* whole pairs inside this block: a loop the compiler vectorises */
            int64_t pairs = (N - p) / 2;
            if (pairs > n - i) pairs = n - i;
            const uint32_t *k = key + p;
            double *o = out + i;
            for (int64_t j = 0; j < pairs; j++) o[j] = to_double(temper(k[2 * j]), temper(k[2 * j + 1]));
            i += pairs;
            p += (int32_t)(2 * pairs);
        } else {  /* a pair across the twist */
            uint32_t a = temper(key[p]);
            twist(key);
            p = 0;
            out[i++] = to_double(a, temper(key[p++]));
        }
    }
    *pos = p;
}

void tdlib_gauss(uint32_t *key, int32_t *pos, int32_t *has_gauss, double *gauss, double *out, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        if (*has_gauss) {
            out[i] = *gauss;
            *has_gauss = 0;
            *gauss = 0.0;
            continue;
        }
        double x1, x2, r2;
        do {
            uint32_t a = next32(key, pos), b = next32(key, pos);
            x1 = 2.0 * to_double(a, b) - 1.0;
            a = next32(key, pos);
            b = next32(key, pos);
            x2 = 2.0 * to_double(a, b) - 1.0;
            r2 = x1 * x1 + x2 * x2;
        } while (r2 >= 1.0 || r2 == 0.0);
        double f = sqrt(-2.0 * log(r2) / r2);
        *gauss = f * x1;
        *has_gauss = 1;
        out[i] = f * x2;
    }
}

void tdlib_shuffle(uint32_t *key, int32_t *pos, int64_t *x, int64_t n) {
    for (int64_t i = n - 1; i >= 1; i--) {
        uint64_t m = (uint64_t)i + 1;
        int k = 64 - __builtin_clzll(m);  /* m.bit_length(), at most 32 here */
        uint64_t r;
        do {
            r = next32(key, pos) >> (32 - k);
        } while (r >= m);
        int64_t t = x[i];
        x[i] = x[r];
        x[r] = t;
    }
}

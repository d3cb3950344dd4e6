/* Direct NCHW convolutions for narrow layers at small resolutions (the attack query graphs).
 *
 * oneDNN runs convolutions with a handful of channels (LeNetFC's full-resolution level: 1 -> 6,
 * 6 -> 6, at 28 x 28) far below the machine's speed: its kernels vectorise over channels. This one
 * vectorises over the pixels of an output row instead: for every row it keeps CB output channels
 * x (ROW / VL) vectors of accumulators in registers and adds weight x input-row products, so each
 * loaded input vector feeds CB fused multiply-adds.
 *
 *   tdlib_conv_nchw  y = [relu](conv(x, w) + b), stride 1, zero padding k // 2 (odd k), rows up
 *                    to ROW pixels wide. x (n, ci, h, w) and y (n, co, h, w) are C-contiguous
 *                    float32; the weights come packed in blocks of CB output channels,
 *                    wpk[block][ci][k][k][CB] (zero-padded), and the bias as bpk[block * CB + j].
 *                    `phases` (or NULL), added before the ReLU: a tensor (n, 4 co, h / 2, w / 2)
 *                    with element strides ps[0..3], whose channel 4 o + 2 di + dj holds output
 *                    phase (di, dj) of channel o (a polyphase convolution of an upsampled stream).
 *                    Returns 0, or 1 where the scratch image could not be allocated.
 *   tdlib_conv1x1_nchw  the 1x1 case: each image one row of h * w pixels, no padding, no packing.
 *
 * The sums run in another order than oneDNN's: results agree to float rounding, not bit for bit.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__AVX512F__)
#define VL 16 /* floats per vector */
#define CB 6  /* output channels per block: CB x ROW / VL accumulators */
#elif defined(__AVX__)
#define VL 8
#define CB 3
#else
#define VL 4
#define CB 2
#endif
#define ROW 32
#define VW (ROW / VL)

typedef float vec __attribute__((vector_size(VL * sizeof(float))));
typedef int32_t veci __attribute__((vector_size(VL * sizeof(float))));

int32_t tdlib_conv_block(void) { return CB; }
int32_t tdlib_conv_lanes(void) { return VL; }
int32_t tdlib_conv_max_width(void) { return ROW; }

static inline vec loadv(const float *p) {
    vec v;
    memcpy(&v, p, sizeof v);
    return v;
}

int32_t tdlib_conv_nchw(const float *x, int64_t n, int64_t ci, int64_t h, int64_t w, const float *wpk,
                        int64_t co, int64_t k, const float *bpk, const float *phases, const int64_t *ps,
                        int32_t relu, float *y) {
    const int64_t r = k / 2, hp = h + 2 * r, wp = ROW + 2 * r;
    /* one zero-padded image: the border stays zero, each image overwrites the interior */
    const size_t bytes = ((size_t)(ci * hp * wp) * sizeof(float) + 63) / 64 * 64;
    float *xp = aligned_alloc(64, bytes);
    if (!xp) return 1; /* out of memory: nothing written */
    memset(xp, 0, bytes);
    const int64_t blocks = (co + CB - 1) / CB;
    for (int64_t img = 0; img < n; img++) {
        const float *xi = x + img * ci * h * w;
        for (int64_t c = 0; c < ci; c++)
            for (int64_t i = 0; i < h; i++)
                memcpy(xp + (c * hp + i + r) * wp + r, xi + (c * h + i) * w, (size_t)w * sizeof(float));
        float *yi = y + img * co * h * w;
        for (int64_t blk = 0; blk < blocks; blk++) {
            const int64_t o0 = blk * CB, nb = co - o0 < CB ? co - o0 : CB;
            for (int64_t i = 0; i < h; i++) {
                vec acc[CB][VW];
                for (int j = 0; j < CB; j++)
                    for (int v = 0; v < VW; v++) acc[j][v] = (vec){0} + bpk[o0 + j];
                const float *wq = wpk + blk * ci * k * k * CB;
                for (int64_t c = 0; c < ci; c++)
                    for (int64_t ky = 0; ky < k; ky++) {
                        const float *row = xp + (c * hp + i + ky) * wp;
                        for (int64_t kx = 0; kx < k; kx++, wq += CB) {
                            vec s[VW];
                            for (int v = 0; v < VW; v++) s[v] = loadv(row + kx + VL * v);
                            for (int j = 0; j < CB; j++)
                                for (int v = 0; v < VW; v++) acc[j][v] += wq[j] * s[v];
                        }
                    }
                for (int j = 0; j < nb; j++) {
                    float out[ROW];
                    memcpy(out, acc[j], sizeof out);
                    if (phases) { /* + the phase (i % 2, x % 2) of channel o at (i / 2, x / 2) */
                        const float *p0 = phases + img * ps[0] + (4 * (o0 + j) + 2 * (i & 1)) * ps[1] + (i >> 1) * ps[2];
                        const float *p1 = p0 + ps[1];
                        for (int64_t x = 0; x < w / 2; x++) {
                            out[2 * x] += p0[x * ps[3]];
                            out[2 * x + 1] += p1[x * ps[3]];
                        }
                    }
                    if (relu)
                        for (int x = 0; x < ROW; x++) out[x] = out[x] > 0.0f ? out[x] : 0.0f;
                    memcpy(yi + ((o0 + j) * h + i) * w, out, (size_t)w * sizeof(float));
                }
            }
        }
    }
    free(xp);
    return 0;
}

/* A 1x1 convolution (wt (co, ci) as given, bias b or NULL) of x (n, ci, hw) C-contiguous, with an
 * optional ReLU: every image is one row of hw pixels, taken VL at a time (no padding needed). */
void tdlib_conv1x1_nchw(const float *x, int64_t n, int64_t ci, int64_t hw, const float *wt, int64_t co,
                        const float *b, int32_t relu, float *y) {
    for (int64_t img = 0; img < n; img++) {
        const float *xi = x + img * ci * hw;
        float *yi = y + img * co * hw;
        int64_t p = 0;
        for (; p + VL <= hw; p += VL) {
            for (int64_t o = 0; o < co; o++) {
                vec acc = (vec){0} + (b ? b[o] : 0.0f);
                for (int64_t c = 0; c < ci; c++) acc += wt[o * ci + c] * loadv(xi + c * hw + p);
                if (relu) acc = (vec)((veci)acc & (acc > (vec){0}));
                memcpy(yi + o * hw + p, &acc, sizeof acc);
            }
        }
        for (; p < hw; p++)
            for (int64_t o = 0; o < co; o++) {
                float acc = b ? b[o] : 0.0f;
                for (int64_t c = 0; c < ci; c++) acc += wt[o * ci + c] * xi[c * hw + p];
                yi[o * hw + p] = relu && acc < 0.0f ? 0.0f : acc;
            }
    }
}

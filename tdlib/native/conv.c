/* Direct convolutions for narrow layers at small resolutions (the attack query graphs).
 *
 * oneDNN runs convolutions with a handful of channels (LeNetFC's full-resolution level: 1 -> 6,
 * 6 -> 6, at 28 x 28) far below the machine's speed: its kernels vectorise over channels. This one
 * vectorises over the pixels of an output row instead: for every row it keeps CB output channels
 * x VW vectors of accumulators in registers and adds weight x input-row products, so each loaded
 * input vector feeds CB fused multiply-adds (rows up to ROW pixels: VW = ROW / VL vectors). oneDNN
 * stays faster from 16 channels on (LeNetFC's 14 x 14 merge, 32 -> 16 channels, 512 images: 10.6 ms
 * against 13.8 for a one-vector-per-row variant of this loop, one AMD EPYC thread).
 *
 *   tdlib_conv_nchw  y = [relu](conv([x, up2(u)], w) + b), stride 1, zero padding k // 2 (odd
 *                    k), rows up to ROW pixels wide. x (n, ci, h, w) has element strides xs[0..3]
 *                    (any layout), y (n, co, h, w) is C-contiguous float32; `u` (or NULL) is a
 *                    second input of cu channels at half the resolution, (n, cu, h / 2, w / 2)
 *                    with element strides us[0..3], which enters nearest-upsampled x2 as input
 *                    channels ci .. ci + cu - 1 (the main stream of a top-down merge, upsampled
 *                    in the padded scratch image only). The weights come packed in blocks of
 *                    CB = tdlib_conv_block() output channels over all ci + cu inputs,
 *                    wpk[block][ci + cu][k][k][CB] (zero-padded), and the bias as
 *                    bpk[block * CB + j]. Returns 0, or 1 where the scratch image could not be
 *                    allocated.
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

/* One image's output rows, block by block; `k` is a literal at the calls below, so that the tap
 * loops unroll for the common kernel sizes. */
static inline __attribute__((always_inline)) void conv_image(const float *xp, int64_t cin, int64_t hp, int64_t wp,
                                                            int64_t h, int64_t w, const float *wpk, int64_t co,
                                                            const int64_t k, const float *bpk, int32_t relu,
                                                            float *yi) {
    const int64_t blocks = (co + CB - 1) / CB;
    for (int64_t blk = 0; blk < blocks; blk++) {
        const int64_t o0 = blk * CB, nb = co - o0 < CB ? co - o0 : CB;
        for (int64_t i = 0; i < h; i++) {
            vec acc[CB][VW];
            for (int j = 0; j < CB; j++)
                for (int v = 0; v < VW; v++) acc[j][v] = (vec){0} + bpk[o0 + j];
            const float *wq = wpk + blk * cin * k * k * CB;
            for (int64_t c = 0; c < cin; c++)
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
                for (int v = 0; v < VW; v++) {
                    vec a = acc[j][v];
                    if (relu) a = (vec)((veci)a & (a > (vec){0}));
                    memcpy(out + v * VL, &a, sizeof a);
                }
                memcpy(yi + ((o0 + j) * h + i) * w, out, (size_t)w * sizeof(float));
            }
        }
    }
}

int32_t tdlib_conv_nchw(const float *x, const int64_t *xs, int64_t n, int64_t ci, int64_t h, int64_t w,
                        const float *u, const int64_t *us, int64_t cu, const float *wpk, int64_t co, int64_t k,
                        const float *bpk, int32_t relu, float *y) {
    const int64_t r = k / 2, hp = h + 2 * r, wp = ROW + 2 * r;
    if (!u) cu = 0;
    const int64_t cin = ci + cu; /* input channels of the scratch image and the weights */
    /* one zero-padded image: the border stays zero, each image overwrites the interior */
    const size_t bytes = ((size_t)(cin * hp * wp) * sizeof(float) + 63) / 64 * 64;
    float *xp = aligned_alloc(64, bytes);
    if (!xp) return 1; /* out of memory: nothing written */
    memset(xp, 0, bytes);
    for (int64_t img = 0; img < n; img++) {
        for (int64_t c = 0; c < ci; c++)
            for (int64_t i = 0; i < h; i++) {
                const float *src = x + img * xs[0] + c * xs[1] + i * xs[2];
                float *dst = xp + (c * hp + i + r) * wp + r;
                if (xs[3] == 1)
                    memcpy(dst, src, (size_t)w * sizeof(float));
                else
                    for (int64_t q = 0; q < w; q++) dst[q] = src[q * xs[3]];
            }
        for (int64_t c = 0; c < cu; c++) /* up2(u): each low-resolution row fills two rows */
            for (int64_t i = 0; i < h; i += 2) {
                const float *src = u + img * us[0] + c * us[1] + (i >> 1) * us[2];
                float *dst = xp + ((ci + c) * hp + i + r) * wp + r;
                for (int64_t q = 0; q < w; q++) dst[q] = src[(q >> 1) * us[3]];
                memcpy(dst + wp, dst, (size_t)w * sizeof(float));
            }
        float *yi = y + img * co * h * w;
        switch (k) {
        case 3: conv_image(xp, cin, hp, wp, h, w, wpk, co, 3, bpk, relu, yi); break;
        case 5: conv_image(xp, cin, hp, wp, h, w, wpk, co, 5, bpk, relu, yi); break;
        default: conv_image(xp, cin, hp, wp, h, w, wpk, co, k, bpk, relu, yi);
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

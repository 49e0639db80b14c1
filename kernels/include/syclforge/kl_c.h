/* syclforge kernel library: the C ABI (for Python and other languages).
 *
 * Conventions
 * - Every op is enqueued on the runtime's in-order queue and returns at once;
 *   kl_wait() blocks until all enqueued work is done and reports device
 *   errors. Ops return 0, or -1 with kl_last_error() set (bad arguments are
 *   caught before anything is enqueued).
 * - Tensors are dense, row-major fp32 device allocations from kl_alloc()
 *   unless said otherwise. Sizes are element counts. Zero-sized inputs are
 *   valid and do nothing.
 * - NaN and Inf propagate as IEEE arithmetic says; reductions follow NumPy
 *   (max of a row holding NaN is NaN; argmax returns the first NaN's index).
 * - Threads may share a kl_runtime: its calls take a lock per runtime, so
 *   they run one at a time (kl_wait holds it until the device is done).
 *   Threads that should run ops at the same time create one each.
 */
#ifndef SYCLFORGE_KL_C_H
#define SYCLFORGE_KL_C_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kl_runtime kl_runtime;

/* image: NULL or "" = the loader's choice (else as SYCLFORGE_IMAGE).
 * Returns NULL on failure; kl_last_error() says why. */
kl_runtime *kl_create(const char *image);
void kl_destroy(kl_runtime *rt);
const char *kl_last_error(void);            /* thread-local, "" when none */
const char *kl_device_name(kl_runtime *rt);
const char *kl_image(kl_runtime *rt);       /* chosen image id */
unsigned long long kl_launches(kl_runtime *rt); /* ops launched so far on rt (0 if rt is NULL) */
const char *kl_target(void);                /* targets.yaml name */
const char *kl_toolchain(void);
/* The test-only faults a process may switch on with KL_FAULTS=name,... (the
 * mutation tests): one "name<TAB>defect" line each. Never set in production. */
const char *kl_faults(void);

void *kl_alloc(kl_runtime *rt, size_t bytes);   /* device memory; NULL on failure */
void kl_free(kl_runtime *rt, void *p);
int kl_to_device(kl_runtime *rt, void *dst, const void *host_src, size_t bytes);
int kl_to_host(kl_runtime *rt, void *host_dst, const void *src, size_t bytes);
int kl_wait(kl_runtime *rt);

/* y[M,N] = x[M,K] . w[N,K]^T  (w row-major [out, in], as a Hugging Face Linear) */
int kl_gemm(kl_runtime *rt, const float *x, const float *w, float *y, size_t M, size_t N, size_t K);
/* y[N] = w[N,K] . x[K]  (one-token decode) */
int kl_gemv(kl_runtime *rt, const float *x, const float *w, float *y, size_t N, size_t K);
/* y[N] = residual[N] + w[N,K] . x[K]  (decode's projection and the residual add
   after it, in one launch; residual may be y, x and w must not overlap y) */
int kl_gemv_add(kl_runtime *rt, const float *x, const float *w, const float *residual, float *y, size_t N,
                size_t K);
/* y[N] = w[N,K] . rmsnorm(x[K]; norm_weight[K], eps)  (decode's norm and the
   GEMV after it, in one launch; kl_rmsnorm's result, not stored; y must not
   overlap the inputs) */
int kl_rmsnorm_gemv(kl_runtime *rt, const float *x, const float *norm_weight, const float *w, float *y, size_t N,
                    size_t K, float eps);
/* y[N] = silu(g) * u, g = w[0:N,K] . h, u = w[N:2N,K] . h, h = rmsnorm(x[K];
   norm_weight[K], eps)  (decode's norm, gate/up GEMV and SwiGLU in one launch;
   w holds the gate rows then the up rows; y must not overlap the inputs) */
int kl_rmsnorm_gemv_swiglu(kl_runtime *rt, const float *x, const float *norm_weight, const float *w, float *y,
                           size_t N, size_t K, float eps);

/* per row of x[rows, dim]: y = x / sqrt(mean(x^2) + eps) * weight */
int kl_rmsnorm(kl_runtime *rt, const float *x, const float *weight, float *y, size_t rows, size_t dim, float eps);
/* per row: y = (x - mean) / sqrt(var + eps) * weight + bias  (biased variance) */
int kl_layernorm(kl_runtime *rt, const float *x, const float *weight, const float *bias, float *y,
                 size_t rows, size_t dim, float eps);

/* row-wise softmax of x[rows, cols] / temperature (temperature > 0).
 * causal != 0: row r sees columns c <= pos0 + r only (the rest get 0). */
int kl_softmax(kl_runtime *rt, const float *x, float *y, size_t rows, size_t cols, int causal, size_t pos0,
               float temperature);

/* RoPE in place on x[tokens, heads, head_dim] (head_dim even), Hugging Face
 * Llama rotate-half convention: token t is at position pos0 + t,
 * inv_freq[i] = theta^(-2i/head_dim), i < head_dim/2;
 * x = x * cos(pos*inv_freq) + rotate_half(x) * sin(pos*inv_freq),
 * rotate_half(x) = concat(-x[half:], x[:half]). */
int kl_rope(kl_runtime *rt, float *x, size_t tokens, size_t heads, size_t head_dim, size_t pos0, float theta);
/* Decode's RoPE and KV-cache store in one launch. qkv[tokens, n_heads +
 * 2 n_kv_heads, head_dim] (q | k | v heads, as one stacked projection):
 * q is rotated in place (kl_rope's rotation); k rotated and v copied into
 * rows pos0 .. pos0 + tokens - 1 of k_cache, v_cache[max_seq, n_kv_heads,
 * head_dim]; qkv's k and v parts stay unchanged. */
int kl_rope_qkv(kl_runtime *rt, float *qkv, float *k_cache, float *v_cache, size_t tokens, size_t n_heads,
                size_t n_kv_heads, size_t head_dim, size_t pos0, size_t max_seq, float theta);

int kl_silu(kl_runtime *rt, const float *x, float *y, size_t n);       /* x * sigmoid(x) */
int kl_gelu_tanh(kl_runtime *rt, const float *x, float *y, size_t n);  /* tanh approximation */
int kl_gelu_erf(kl_runtime *rt, const float *x, float *y, size_t n);   /* exact, with erf */
int kl_swiglu(kl_runtime *rt, const float *gate, const float *up, float *y, size_t n); /* silu(gate)*up */
int kl_add(kl_runtime *rt, const float *a, const float *b, float *y, size_t n);
int kl_mul(kl_runtime *rt, const float *a, const float *b, float *y, size_t n);

/* y[i, :] = table[ids[i], :]; ids are HOST memory and are range-checked
 * (an id outside [0, vocab) is an error naming it). */
int kl_embedding(kl_runtime *rt, const float *table, const int32_t *ids_host, float *y, size_t n_ids,
                 size_t dim, size_t vocab);

/* Causal grouped-query attention over a KV cache.
 * q[tokens, n_heads, head_dim]; k_cache, v_cache[max_seq, n_kv_heads, head_dim]
 * hold positions 0 .. pos0 + tokens - 1; query token t (position pos0 + t)
 * attends to positions 0 .. pos0 + t; query head h reads kv head
 * h / (n_heads / n_kv_heads). out[tokens, n_heads, head_dim].
 * scale multiplies q.k (usually 1/sqrt(head_dim)). */
int kl_attention(kl_runtime *rt, const float *q, const float *k_cache, const float *v_cache, float *out,
                 size_t tokens, size_t n_heads, size_t n_kv_heads, size_t head_dim, size_t pos0, size_t max_seq,
                 float scale);

/* Row-wise reductions of x[rows, cols] into out[rows] (cols >= 1). */
int kl_sum(kl_runtime *rt, const float *x, float *out, size_t rows, size_t cols);
int kl_max(kl_runtime *rt, const float *x, float *out, size_t rows, size_t cols);
int kl_argmax(kl_runtime *rt, const float *x, int32_t *out, size_t rows, size_t cols);

#ifdef __cplusplus
}
#endif
#endif

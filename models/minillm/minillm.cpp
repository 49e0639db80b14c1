// minillm: a Llama-architecture decoder whose every op runs on the SYCL
// device through the syclforge kernel library (its C ABI, kl_c.h).
//
//   minillm -m MODEL_DIR -p PROMPT -n N [--temp T] [--top-k K] [--seed S] [--json] [--warmup]
//
// MODEL_DIR holds config.json (LlamaForCausalLM keys), model.safetensors
// (Hugging Face tensor names, fp32) and tokenizer.json (byte-level).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "json.hpp"
#include "syclforge/kl_c.h"

namespace {

struct Fail : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::string read_file(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Fail("cannot read " + path + " (is -m the model directory?)");
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// ---- test-only model faults -------------------------------------------------
// MINILLM_FAULTS=name,... switches on realistic model defects for the
// mutation tests (tests/test_mutants.py), which prove that the float64
// reference comparison catches each; an unknown name is an error. (A wrong
// grouped-query mapping is the library's KL_FAULTS=attention.kv_interleaved.)
struct ModelFaults {
  bool eps = false;   // rms_norm_eps: 1e-6 (a loader's default) instead of config.json's
  bool theta = false; // rope_theta: 500000 (Llama 3's) instead of config.json's
  bool fp16 = false;  // fp16_weights: every weight rounded to fp16 at load
};

ModelFaults model_faults() {
  ModelFaults f;
  const char *env = std::getenv("MINILLM_FAULTS");
  std::string names = env ? env : "";
  for (size_t at = 0; at <= names.size();) {
    size_t end = names.find(',', at);
    if (end == std::string::npos) end = names.size();
    std::string n = names.substr(at, end - at);
    at = end + 1;
    if (n.empty()) continue;
    if (n == "rms_norm_eps") f.eps = true;
    else if (n == "rope_theta") f.theta = true;
    else if (n == "fp16_weights") f.fp16 = true;
    else throw Fail("MINILLM_FAULTS: unknown fault '" + n + "' (known: rms_norm_eps, rope_theta, fp16_weights)");
  }
  return f;
}

// v rounded to fp16's 11 significant bits (Veltkamp's split; weights lie
// well inside fp16's range).
float fp16_round(float v) {
  const float c = v * 8193.f;
  return c - (c - v);
}

// ---- the model's description ---------------------------------------------

struct Config {
  int64_t dim, hidden, n_layers, n_heads, n_kv_heads, vocab, max_seq;
  double eps, theta;
  bool tied;
};

Config load_config(const std::string &dir) {
  std::string path = dir + "/config.json";
  json::Value j;
  try {
    j = json::parse(read_file(path));
    Config c{};
    c.dim = j.integer("hidden_size");
    c.hidden = j.integer("intermediate_size");
    c.n_layers = j.integer("num_hidden_layers");
    c.n_heads = j.integer("num_attention_heads");
    c.n_kv_heads = j.has("num_key_value_heads") ? j.integer("num_key_value_heads") : c.n_heads;
    c.vocab = j.integer("vocab_size");
    c.max_seq = j.integer("max_position_embeddings");
    c.eps = j.has("rms_norm_eps") ? j.number("rms_norm_eps") : 1e-6;
    c.theta = j.has("rope_theta") ? j.number("rope_theta") : 10000.0;
    c.tied = j.has("tie_word_embeddings") && j.at("tie_word_embeddings").kind == json::Value::Bool &&
             j.at("tie_word_embeddings").b;
    if (j.has("hidden_act") && j.string("hidden_act") != "silu")
      throw Fail("hidden_act is \"" + j.string("hidden_act") + "\"; only silu (SwiGLU) is supported");
    if (c.dim <= 0 || c.hidden <= 0 || c.n_layers <= 0 || c.n_heads <= 0 || c.n_kv_heads <= 0 || c.vocab <= 0 ||
        c.max_seq <= 0)
      throw Fail("sizes must be positive");
    if (c.dim % c.n_heads) throw Fail("hidden_size is not a multiple of num_attention_heads");
    if (c.n_heads % c.n_kv_heads) throw Fail("num_attention_heads is not a multiple of num_key_value_heads");
    if ((c.dim / c.n_heads) % 2) throw Fail("head dimension must be even for RoPE");
    if (j.has("head_dim") && j.at("head_dim").kind == json::Value::Number && j.integer("head_dim") != c.dim / c.n_heads)
      throw Fail("head_dim differs from hidden_size / num_attention_heads; minillm supports only that layout");
    return c;
  } catch (const std::runtime_error &e) {
    throw Fail(path + ": " + e.what());
  }
}

struct Tokenizer {
  int64_t bos = -1, eos = -1, vocab = 0;
  std::vector<int32_t> encode(const std::string &text) const {
    std::vector<int32_t> ids;
    if (bos >= 0) ids.push_back(static_cast<int32_t>(bos));
    for (unsigned char c : text) ids.push_back(c);
    return ids;
  }
  // Bytes for ids < 256; special tokens print nothing.
  std::string decode(int32_t id) const { return id >= 0 && id < 256 ? std::string(1, char(id)) : std::string(); }
};

Tokenizer load_tokenizer(const std::string &dir, const Config &c) {
  std::string path = dir + "/tokenizer.json";
  try {
    json::Value j = json::parse(read_file(path));
    Tokenizer t;
    if (j.has("type") && j.string("type") != "byte-level")
      throw Fail("type is \"" + j.string("type") + "\"; minillm reads byte-level tokenizers");
    t.bos = j.has("bos_id") ? j.integer("bos_id") : -1;
    t.eos = j.has("eos_id") ? j.integer("eos_id") : -1;
    t.vocab = j.has("vocab_size") ? j.integer("vocab_size") : c.vocab;
    if (t.vocab != c.vocab)
      throw Fail("vocab_size " + std::to_string(t.vocab) + " differs from config.json's " + std::to_string(c.vocab));
    if (t.vocab < 256 || t.bos >= t.vocab || t.eos >= t.vocab) throw Fail("token ids out of the vocabulary");
    return t;
  } catch (const std::runtime_error &e) {
    throw Fail(path + ": " + e.what());
  }
}

// ---- device plumbing -------------------------------------------------------

kl_runtime *g_rt = nullptr;

void check(int status, const char *what) {
  if (status != 0) throw Fail(std::string(what) + ": " + kl_last_error());
}

struct Buffer {
  float *p = nullptr;
  size_t n = 0;
  Buffer() = default;
  explicit Buffer(size_t count) : n(count) {
    p = static_cast<float *>(kl_alloc(g_rt, std::max<size_t>(count, 1) * sizeof(float)));
    if (!p) throw Fail(std::string("device allocation failed: ") + kl_last_error());
  }
  Buffer(Buffer &&o) noexcept : p(o.p), n(o.n) { o.p = nullptr; }
  Buffer &operator=(Buffer &&o) noexcept { std::swap(p, o.p); std::swap(n, o.n); return *this; }
  ~Buffer() { if (p) kl_free(g_rt, p); }
};

// Weights in the Hugging Face layout, read from model.safetensors.
struct Weights {
  Buffer embed, final_norm, lm_head;
  // q, k and v (and gate and up) live in one buffer each, rows stacked, so
  // that one GEMV per token computes them all; wq, wk, wv, w_gate, w_up point
  // at their rows (row slices of a row-major [out, in] matrix are contiguous).
  struct Layer {
    Buffer attn_norm, wqkv, wo, ffn_norm, w_gate_up, w_down;
    float *wq, *wk, *wv, *w_gate, *w_up;
  };
  std::vector<Layer> layers;
  size_t bytes = 0;
};

// Reads the header, then one tensor at a time into a host buffer the size of
// the largest tensor, so that loading costs the weights on the device plus
// one tensor, not plus the whole file.
Weights load_weights(const std::string &dir, const Config &c) {
  std::string path = dir + "/model.safetensors";
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Fail("cannot read " + path + " (is -m the model directory?)");
  auto bad = [&](const std::string &m) { return Fail(path + ": " + m); };
  f.seekg(0, std::ios::end);
  const uint64_t file_size = static_cast<uint64_t>(f.tellg());
  f.seekg(0);
  if (file_size < 8) throw bad("too short to be a safetensors file");
  uint64_t hlen = 0;
  f.read(reinterpret_cast<char *>(&hlen), 8); // little-endian, as on x86
  if (hlen > file_size - 8) throw bad("header length runs past the end of the file");
  std::string head(hlen, '\0');
  if (!f.read(head.data(), static_cast<std::streamsize>(hlen))) throw bad("cannot read the header");
  json::Value header;
  try { header = json::parse(head); } catch (const std::runtime_error &e) { throw bad(e.what()); }
  const uint64_t data0 = 8 + hlen;
  Weights w;
  std::vector<char> host;
  // Uploads tensor `name` to dst (count floats), or to a new buffer.
  auto upload = [&](const std::string &name, std::vector<int64_t> shape, float *dst) {
    if (!header.has(name)) throw bad("missing tensor " + name);
    const json::Value &t = header.at(name);
    if (t.string("dtype") != "F32") throw bad(name + " has dtype " + t.string("dtype") + "; minillm reads F32");
    std::vector<int64_t> got;
    for (const auto &d : t.at("shape").arr) got.push_back(static_cast<int64_t>(d.num));
    if (got != shape) {
      auto str = [](const std::vector<int64_t> &v) {
        std::string s = "[";
        for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
        return s + "]";
      };
      throw bad(name + " has shape " + str(got) + " but config.json implies " + str(shape));
    }
    const auto &off = t.at("data_offsets").arr;
    size_t begin = static_cast<size_t>(off.at(0).num), end = static_cast<size_t>(off.at(1).num);
    size_t count = 1;
    for (auto d : shape) count *= static_cast<size_t>(d);
    if (end < begin || end - begin != count * 4 || data0 + end > file_size) throw bad(name + " has bad data_offsets");
    // kl_to_device has returned before the buffer is reused (it waits).
    host.resize(count * 4);
    f.seekg(static_cast<std::streamoff>(data0 + begin));
    if (!f.read(host.data(), static_cast<std::streamsize>(count * 4))) throw bad("cannot read " + name);
    if (model_faults().fp16)
      for (size_t i = 0; i < count; ++i) {
        float v;
        std::memcpy(&v, host.data() + 4 * i, 4);
        v = fp16_round(v);
        std::memcpy(host.data() + 4 * i, &v, 4);
      }
    check(kl_to_device(g_rt, dst, host.data(), count * 4), "upload");
    w.bytes += count * 4;
  };
  auto tensor = [&](const std::string &name, std::vector<int64_t> shape) {
    size_t count = 1;
    for (auto d : shape) count *= static_cast<size_t>(d);
    Buffer b(count);
    upload(name, shape, b.p);
    return b;
  };
  const int64_t hd = c.dim / c.n_heads;
  w.embed = tensor("model.embed_tokens.weight", {c.vocab, c.dim});
  w.final_norm = tensor("model.norm.weight", {c.dim});
  if (!c.tied) w.lm_head = tensor("lm_head.weight", {c.vocab, c.dim});
  for (int64_t l = 0; l < c.n_layers; ++l) {
    std::string p = "model.layers." + std::to_string(l) + ".";
    Weights::Layer L;
    L.attn_norm = tensor(p + "input_layernorm.weight", {c.dim});
    L.wqkv = Buffer((c.n_heads + 2 * c.n_kv_heads) * hd * c.dim);
    L.wq = L.wqkv.p;
    L.wk = L.wq + c.n_heads * hd * c.dim;
    L.wv = L.wk + c.n_kv_heads * hd * c.dim;
    upload(p + "self_attn.q_proj.weight", {c.n_heads * hd, c.dim}, L.wq);
    upload(p + "self_attn.k_proj.weight", {c.n_kv_heads * hd, c.dim}, L.wk);
    upload(p + "self_attn.v_proj.weight", {c.n_kv_heads * hd, c.dim}, L.wv);
    L.wo = tensor(p + "self_attn.o_proj.weight", {c.dim, c.n_heads * hd});
    L.ffn_norm = tensor(p + "post_attention_layernorm.weight", {c.dim});
    L.w_gate_up = Buffer(2 * c.hidden * c.dim);
    L.w_gate = L.w_gate_up.p;
    L.w_up = L.w_gate + c.hidden * c.dim;
    upload(p + "mlp.gate_proj.weight", {c.hidden, c.dim}, L.w_gate);
    upload(p + "mlp.up_proj.weight", {c.hidden, c.dim}, L.w_up);
    L.w_down = tensor(p + "mlp.down_proj.weight", {c.dim, c.hidden});
    w.layers.push_back(std::move(L));
  }
  check(kl_wait(g_rt), "upload");
  return w;
}

// ---- the forward pass: one function per layer op, names as in the paper ---

struct State {
  const Config &c;
  const Weights &w;
  int64_t hd, kv_dim, max_tokens;
  Buffer x, h, q, att, o, gate, up, act, logits, probs;
  Buffer qkv; // one token: [q | k | v]
  std::vector<Buffer> k_cache, v_cache; // [max_seq, n_kv_heads, head_dim] per layer
  Buffer argmax_out;

  State(const Config &cfg, const Weights &wt, int64_t max_tokens)
      : c(cfg), w(wt), hd(cfg.dim / cfg.n_heads), kv_dim(cfg.n_kv_heads * hd), max_tokens(max_tokens),
        x(max_tokens * cfg.dim), h(max_tokens * cfg.dim), q(max_tokens * cfg.dim), att(max_tokens * cfg.dim),
        o(max_tokens * cfg.dim), gate(max_tokens * cfg.hidden), up(max_tokens * cfg.hidden),
        act(max_tokens * cfg.hidden), logits(cfg.vocab), probs(cfg.vocab), qkv(cfg.dim + 2 * kv_dim),
        argmax_out(1) {
    for (int64_t l = 0; l < c.n_layers; ++l) {
      k_cache.emplace_back(c.max_seq * kv_dim);
      v_cache.emplace_back(c.max_seq * kv_dim);
    }
  }

  // y[T, out] = x[T, in] . W^T; one token takes the decode kernel.
  void linear(const float *in, const float *W, float *out, int64_t T, int64_t n_out, int64_t n_in) {
    if (T == 1) check(kl_gemv(g_rt, in, W, out, n_out, n_in), "gemv");
    else check(kl_gemm(g_rt, in, W, out, T, n_out, n_in), "gemm");
  }

  // x += in . W^T: one token's projection and its residual add in one
  // launch (kl_gemv_add: the same bits as the two).
  void linear_add(const float *in, const float *W, int64_t T, int64_t n_out, int64_t n_in) {
    if (T == 1) check(kl_gemv_add(g_rt, in, W, x.p, x.p, n_out, n_in), "gemv_add");
    else {
      linear(in, W, o.p, T, n_out, n_in);
      check(kl_add(g_rt, x.p, o.p, x.p, T * n_out), "add");
    }
  }

  // Kernel launches dominate a token of a small model, so one token takes
  // fewer of them: q, k and v in one GEMV over the stacked weights, then one
  // launch rotates q and k and stores k and v in the cache (kl_rope_qkv);
  // gate and up in one GEMV, the SwiGLU in its epilogue; each RMSNorm inside the GEMV after it, each
  // residual add inside the GEMV before it (bit-identical to the separate
  // ops on oneapi-pip's images; elsewhere the fused RMSNorm may round
  // differently, within tolerance). Several tokens: K and V straight into
  // the cache rows.
  void attention(const Weights::Layer &L, int64_t l, int64_t T, int64_t pos0) {
    float *k = k_cache[l].p + pos0 * kv_dim, *v = v_cache[l].p + pos0 * kv_dim;
    const float *qp = q.p;
    if (T == 1) {
      check(kl_rmsnorm_gemv(g_rt, x.p, L.attn_norm.p, L.wqkv.p, qkv.p, c.dim + 2 * kv_dim, c.dim, float(c.eps)),
            "rmsnorm_gemv");
      check(kl_rope_qkv(g_rt, qkv.p, k_cache[l].p, v_cache[l].p, 1, c.n_heads, c.n_kv_heads, hd, pos0, c.max_seq,
                        float(c.theta)), "rope_qkv");
      qp = qkv.p;
    } else {
      check(kl_rmsnorm(g_rt, x.p, L.attn_norm.p, h.p, T, c.dim, float(c.eps)), "rmsnorm");
      linear(h.p, L.wq, q.p, T, c.dim, c.dim);
      linear(h.p, L.wk, k, T, kv_dim, c.dim);
      linear(h.p, L.wv, v, T, kv_dim, c.dim);
      check(kl_rope(g_rt, q.p, T, c.n_heads, hd, pos0, float(c.theta)), "rope");
      check(kl_rope(g_rt, k, T, c.n_kv_heads, hd, pos0, float(c.theta)), "rope");
    }
    check(kl_attention(g_rt, qp, k_cache[l].p, v_cache[l].p, att.p, T, c.n_heads, c.n_kv_heads, hd, pos0,
                       c.max_seq, float(1.0 / std::sqrt(double(hd)))), "attention");
    linear_add(att.p, L.wo.p, T, c.dim, c.dim);
  }

  void feed_forward(const Weights::Layer &L, int64_t T) {
    if (T == 1) {
      check(kl_rmsnorm_gemv_swiglu(g_rt, x.p, L.ffn_norm.p, L.w_gate_up.p, act.p, c.hidden, c.dim, float(c.eps)),
            "rmsnorm_gemv_swiglu");
    } else {
      check(kl_rmsnorm(g_rt, x.p, L.ffn_norm.p, h.p, T, c.dim, float(c.eps)), "rmsnorm");
      linear(h.p, L.w_gate, gate.p, T, c.hidden, c.dim);
      linear(h.p, L.w_up, up.p, T, c.hidden, c.dim);
      check(kl_swiglu(g_rt, gate.p, up.p, act.p, T * c.hidden), "swiglu");
    }
    linear_add(act.p, L.w_down.p, T, c.dim, c.hidden);
  }

  // Runs tokens at positions pos0.. and leaves the last token's logits.
  void forward(const std::vector<int32_t> &tokens, int64_t pos0) {
    const int64_t T = static_cast<int64_t>(tokens.size());
    check(kl_embedding(g_rt, w.embed.p, tokens.data(), x.p, T, c.dim, c.vocab), "embedding");
    for (int64_t l = 0; l < c.n_layers; ++l) {
      attention(w.layers[l], l, T, pos0);
      feed_forward(w.layers[l], T);
    }
    const float *last = x.p + (T - 1) * c.dim;
    check(kl_rmsnorm_gemv(g_rt, last, w.final_norm.p, (c.tied ? w.embed : w.lm_head).p, logits.p, c.vocab, c.dim,
                          float(c.eps)), "rmsnorm_gemv");
  }
};

// ---- sampling ----------------------------------------------------------------

int32_t sample(State &s, double temp, int64_t top_k, std::mt19937_64 &rng) {
  const int64_t V = s.c.vocab;
  if (temp <= 0) { // greedy: argmax on the device
    int32_t id = 0;
    check(kl_argmax(g_rt, s.logits.p, reinterpret_cast<int32_t *>(s.argmax_out.p), 1, V), "argmax");
    check(kl_to_host(g_rt, &id, s.argmax_out.p, sizeof id), "argmax");
    return id;
  }
  check(kl_softmax(g_rt, s.logits.p, s.probs.p, 1, V, 0, 0, float(temp)), "softmax");
  std::vector<float> p(V);
  check(kl_to_host(g_rt, p.data(), s.probs.p, V * sizeof(float)), "softmax");
  std::vector<int32_t> order(V);
  for (int64_t i = 0; i < V; ++i) order[i] = int32_t(i);
  int64_t k = top_k > 0 ? std::min(top_k, V) : V;
  // Ties broken by id so that a seed always gives the same tokens.
  std::partial_sort(order.begin(), order.begin() + k, order.end(),
                    [&](int32_t a, int32_t b) { return p[a] != p[b] ? p[a] > p[b] : a < b; });
  double total = 0;
  for (int64_t i = 0; i < k; ++i) total += p[order[i]];
  double r = std::uniform_real_distribution<double>(0.0, total)(rng);
  for (int64_t i = 0; i < k; ++i) {
    r -= p[order[i]];
    if (r <= 0) return order[i];
  }
  return order[k - 1];
}

// ---- command line ------------------------------------------------------------

std::string json_escape(const std::string &bytes) {
  // Invalid UTF-8 bytes become U+FFFD, as Python's errors="replace" does.
  std::string out = "\"";
  size_t i = 0;
  while (i < bytes.size()) {
    unsigned char c = bytes[i];
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    bool ok = len > 0 && i + len <= bytes.size();
    for (size_t k = 1; ok && k < len; ++k) ok = (static_cast<unsigned char>(bytes[i + k]) >> 6) == 2;
    if (!ok) { out += "\\ufffd"; ++i; continue; }
    if (len == 1) {
      if (c == '"') out += "\\\"";
      else if (c == '\\') out += "\\\\";
      else if (c == '\n') out += "\\n";
      else if (c == '\t') out += "\\t";
      else if (c < 0x20) { char buf[8]; std::snprintf(buf, sizeof buf, "\\u%04x", c); out += buf; }
      else out += char(c);
    } else out += bytes.substr(i, len);
    i += len;
  }
  return out + "\"";
}

// The process's peak resident set (VmHWM of /proc/self/status, KiB; -1 where
// unavailable). Not getrusage: its ru_maxrss also counts the memory of the
// process that forked this one, until the exec.
long long peak_rss_kb() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::atoll(line.c_str() + 6);
  return -1;
}

void usage(FILE *f) {
  std::fprintf(f,
               "usage: minillm -m MODEL_DIR -p PROMPT -n N [--temp T] [--top-k K] [--seed S] [--json] [--warmup]\n"
               "  -m DIR       config.json, model.safetensors and tokenizer.json (Hugging Face layout)\n"
               "  -p PROMPT    text to continue\n"
               "  -n N         tokens to generate (stops early at the end-of-sequence token)\n"
               "  --temp T     sampling temperature; 0 (default) is greedy\n"
               "  --top-k K    sample among the K most likely tokens (default: all)\n"
               "  --seed S     random seed for sampling (default 0)\n"
               "  --json       print one JSON object: prompt_tokens, tokens, text, tok_per_s, prefill_ms, launches_per_token, image,\n"
               "               peak_rss_kb (VmHWM)\n"
               "  --dump-logits FILE  write each step's logits (float32, [steps, vocab]) to FILE\n"
               "  --warmup     run the prompt and one decode step once, untimed, before the timed run\n"
               "               (first use of each kernel; the timed run overwrites what it wrote)\n"
               "environment: SYCLFORGE_IMAGE=<id> forces a device image; SYCLFORGE_VERBOSE=1 reports it\n");
}

} // namespace

int main(int argc, char **argv) {
  std::string model, prompt, dump;
  long long n = -1, top_k = 0;
  unsigned long long seed = 0;
  double temp = 0;
  bool as_json = false, have_prompt = false, warmup = false;
  try {
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      auto next = [&]() -> std::string {
        if (i + 1 >= argc) throw Fail(a + " needs a value");
        return argv[++i];
      };
      auto number = [&](const std::string &v) {
        try {
          size_t used = 0;
          double d = std::stod(v, &used);
          if (used != v.size()) throw 0;
          return d;
        } catch (...) {
          throw Fail(a + " wants a number, got \"" + v + "\"");
        }
      };
      if (a == "-h" || a == "--help") { usage(stdout); return 0; }
      else if (a == "-m") model = next();
      else if (a == "-p") { prompt = next(); have_prompt = true; }
      else if (a == "-n") n = static_cast<long long>(number(next()));
      else if (a == "--temp") temp = number(next());
      else if (a == "--top-k") top_k = static_cast<long long>(number(next()));
      else if (a == "--seed") seed = static_cast<unsigned long long>(number(next()));
      else if (a == "--json") as_json = true;
      else if (a == "--warmup") warmup = true;
      else if (a == "--dump-logits") dump = next();
      else throw Fail("unknown argument " + a + " (see --help)");
    }
    if (model.empty() || !have_prompt || n < 0) throw Fail("-m, -p and -n are required (see --help)");
    if (temp < 0) throw Fail("--temp must be >= 0");
    if (top_k < 0) throw Fail("--top-k must be >= 0");

    Config cfg = load_config(model);
    const ModelFaults faults = model_faults();
    if (faults.eps) cfg.eps = 1e-6;
    if (faults.theta) cfg.theta = 500000.0;
    Tokenizer tok = load_tokenizer(model, cfg);
    std::vector<int32_t> ids = tok.encode(prompt);
    if (static_cast<int64_t>(ids.size() + n) > cfg.max_seq)
      throw Fail("the prompt (" + std::to_string(ids.size()) + " tokens) plus " + std::to_string(n) +
                 " new tokens exceeds the model's context of " + std::to_string(cfg.max_seq) +
                 " (max_position_embeddings); shorten the prompt or ask for fewer tokens");

    g_rt = kl_create(nullptr);
    if (!g_rt) throw Fail(std::string("cannot start the SYCL runtime: ") + kl_last_error());
    Weights w = load_weights(model, cfg);
    State s(cfg, w, static_cast<int64_t>(ids.size()));
    std::mt19937_64 rng(seed);
    std::vector<float> step_logits;
    std::FILE *dump_file = dump.empty() ? nullptr : std::fopen(dump.c_str(), "wb");
    if (!dump.empty() && !dump_file) throw Fail("cannot write " + dump);
    auto dump_step = [&]() {
      if (!dump_file) return;
      step_logits.resize(cfg.vocab);
      check(kl_to_host(g_rt, step_logits.data(), s.logits.p, cfg.vocab * sizeof(float)), "logits");
      std::fwrite(step_logits.data(), sizeof(float), step_logits.size(), dump_file);
    };

    if (warmup) {
      s.forward(ids, 0);
      if (static_cast<int64_t>(ids.size()) < cfg.max_seq) s.forward({ids.back()}, static_cast<int64_t>(ids.size()));
      std::mt19937_64 warm_rng(seed);
      sample(s, temp, top_k, warm_rng);
      check(kl_wait(g_rt), "warm-up");
    }

    using clock = std::chrono::steady_clock;
    auto t0 = clock::now();
    s.forward(ids, 0);
    check(kl_wait(g_rt), "prefill");
    double prefill_ms = std::chrono::duration<double, std::milli>(clock::now() - t0).count();
    if (!as_json) { std::fputs(prompt.c_str(), stdout); std::fflush(stdout); }

    std::vector<int32_t> out;
    std::string text;
    auto t1 = clock::now();
    unsigned long long launches0 = kl_launches(g_rt);
    int64_t pos = static_cast<int64_t>(ids.size());
    for (long long i = 0; i < n; ++i) {
      dump_step();
      int32_t next = sample(s, temp, top_k, rng);
      out.push_back(next);
      if (next == tok.eos) break;
      std::string piece = tok.decode(next);
      text += piece;
      if (!as_json) { std::fputs(piece.c_str(), stdout); std::fflush(stdout); }
      if (i + 1 < n) {
        s.forward({next}, pos++);
      }
    }
    check(kl_wait(g_rt), "decode");
    double decode_s = std::chrono::duration<double>(clock::now() - t1).count();
    if (dump_file) std::fclose(dump_file);
    double tok_per_s = out.empty() || decode_s <= 0 ? 0.0 : out.size() / decode_s;
    // kernel launches per generated token during decode (kl_launches)
    double launches_per_token = out.empty() ? 0.0 : double(kl_launches(g_rt) - launches0) / out.size();
    if (as_json) {
      std::printf("{\"prompt_tokens\": [");
      for (size_t i = 0; i < ids.size(); ++i) std::printf("%s%d", i ? ", " : "", ids[i]);
      std::printf("], \"tokens\": [");
      for (size_t i = 0; i < out.size(); ++i) std::printf("%s%d", i ? ", " : "", out[i]);
      std::printf("], \"text\": %s, \"tok_per_s\": %.3f, \"prefill_ms\": %.3f, \"image\": %s, "
                  "\"peak_rss_kb\": %lld, \"launches_per_token\": %.1f}\n",
                  json_escape(text).c_str(), tok_per_s, prefill_ms, json_escape(kl_image(g_rt)).c_str(), peak_rss_kb(),
                  launches_per_token);
    } else {
      std::printf("\n");
      std::fprintf(stderr, "minillm: %zu prompt tokens in %.1f ms, %zu tokens at %.1f tok/s (image %s)\n",
                   ids.size(), prefill_ms, out.size(), tok_per_s, kl_image(g_rt));
    }
    return 0; // buffers free themselves; the runtime lives until exit
  } catch (const Fail &e) {
    std::fprintf(stderr, "minillm: error: %s\n", e.what());
    return 2;
  } catch (const std::exception &e) {
    std::fprintf(stderr, "minillm: error: %s\n", e.what());
    return 2;
  }
}

//! The decoder-only transformer for the supported GGUF architectures
//! (`llama`, `gemma3`), read top to bottom: hyperparameters from metadata,
//! weights read once, RoPE tables computed once, and one forward pass that
//! serves both prefill (many tokens) and decode (one token).
//!
//! Architecture differences are data in [`Hparams`], not separate files, so
//! `qwen2`/`qwen3` are small additions (biases, QK-norm, NeoX RoPE).

use std::sync::Arc;

use candle_core::quantized::{QMatMul, QTensor};
use candle_core::{D, DType, Device, Module, Result, Tensor};

use super::gguf::{GgufFile, LoadError, candle_message};
use super::kv::KvCache;

/// Tokens per forward during prefill; bounds activation memory.
pub const PREFILL_CHUNK: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    Llama,
    Gemma3,
}

impl Arch {
    pub fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Gemma3 => "gemma3",
        }
    }
}

/// Which dimensions RoPE rotates together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RopeStyle {
    /// Adjacent pairs (llama.cpp's NORM; GGUF llama weights are permuted for it).
    Interleaved,
    /// First half with second half (llama.cpp's NEOX).
    Halves,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Activation {
    Silu,
    GeluTanh,
}

/// Everything about the network's shape that the forward pass needs.
#[derive(Debug, Clone)]
pub struct Hparams {
    pub arch: Arch,
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_head: usize,
    pub n_kv_head: usize,
    pub head_dim: usize,
    pub n_ff: usize,
    pub vocab_size: usize,
    pub ctx_train: usize,
    eps: f64,
    rope_style: RopeStyle,
    rope_base: f32,
    /// Sliding-window layers use their own RoPE base (Gemma 3: 10 000).
    rope_base_local: f32,
    rope_dim: usize,
    sliding_window: Option<usize>,
    /// Every n-th layer (the last of each group) attends globally.
    swa_pattern: usize,
    activation: Activation,
    embed_scale: Option<f32>,
    attn_scale: f32,
}

impl Hparams {
    fn from_gguf(f: &GgufFile) -> std::result::Result<Self, LoadError> {
        let arch_name = f.string("general.architecture")?;
        let arch = match arch_name.as_str() {
            "llama" => Arch::Llama,
            "gemma3" => Arch::Gemma3,
            other => {
                return Err(
                    f.unsupported(format!("architecture `{other}` (supported: llama, gemma3)"))
                );
            }
        };
        let k = |s: &str| format!("{arch_name}.{s}");
        let n_embd = f.usize(&k("embedding_length"))?;
        let n_head = f.usize(&k("attention.head_count"))?;
        let n_kv_head = f.opt_usize(&k("attention.head_count_kv")).unwrap_or(n_head);
        let head_dim = f
            .opt_usize(&k("attention.key_length"))
            .unwrap_or(n_embd / n_head.max(1));
        let vocab_size = f
            .get("tokenizer.ggml.tokens")
            .and_then(|v| v.to_vec().ok())
            .map(|v| v.len())
            .or_else(|| f.opt_usize(&k("vocab_size")))
            .unwrap_or(0);
        let (rope_style, activation, rope_base_default, eps_default) = match arch {
            Arch::Llama => (RopeStyle::Interleaved, Activation::Silu, 10_000.0, 1e-5),
            Arch::Gemma3 => (RopeStyle::Halves, Activation::GeluTanh, 1_000_000.0, 1e-6),
        };
        let rope_base = f.opt_f32(&k("rope.freq_base")).unwrap_or(rope_base_default);
        let hp = Self {
            arch,
            n_layer: f.usize(&k("block_count"))?,
            n_embd,
            n_head,
            n_kv_head,
            head_dim,
            n_ff: f.usize(&k("feed_forward_length"))?,
            vocab_size,
            ctx_train: f.opt_usize(&k("context_length")).unwrap_or(2048),
            eps: f
                .opt_f32(&k("attention.layer_norm_rms_epsilon"))
                .map(f64::from)
                .unwrap_or(eps_default),
            rope_style,
            rope_base,
            rope_base_local: if arch == Arch::Gemma3 {
                10_000.0
            } else {
                rope_base
            },
            rope_dim: f.opt_usize(&k("rope.dimension_count")).unwrap_or(head_dim),
            sliding_window: match arch {
                Arch::Gemma3 => Some(f.opt_usize(&k("attention.sliding_window")).unwrap_or(512)),
                Arch::Llama => None,
            },
            swa_pattern: 6,
            activation,
            embed_scale: (arch == Arch::Gemma3).then(|| (n_embd as f32).sqrt()),
            attn_scale: 1.0 / (head_dim as f32).sqrt(),
        };
        if hp.n_head == 0 || hp.n_kv_head == 0 || !hp.n_head.is_multiple_of(hp.n_kv_head) {
            return Err(f.unsupported(format!(
                "{} attention heads over {} key/value heads",
                hp.n_head, hp.n_kv_head
            )));
        }
        if hp.rope_dim != hp.head_dim {
            return Err(f.unsupported("partial rotary embeddings"));
        }
        Ok(hp)
    }

    /// The attention window of layer `il`, if it is a sliding-window layer.
    fn window(&self, il: usize) -> Option<usize> {
        let w = self.sliding_window?;
        (il % self.swa_pattern < self.swa_pattern - 1).then_some(w)
    }
}

/// cos/sin tables `[n_ctx, rope_dim / 2]`, computed once per RoPE base.
struct Rope {
    cos: Tensor,
    sin: Tensor,
}

impl Rope {
    fn new(
        base: f32,
        dim: usize,
        n_ctx: usize,
        freq_factors: Option<&[f32]>,
        dev: &Device,
    ) -> Result<Self> {
        let half = dim / 2;
        let inv_freq: Vec<f32> = (0..half)
            .map(|i| {
                let f = 1.0 / base.powf(2.0 * i as f32 / dim as f32);
                match freq_factors.and_then(|ff| ff.get(i)) {
                    Some(&div) if div != 0.0 => f / div,
                    _ => f,
                }
            })
            .collect();
        let mut cos = Vec::with_capacity(n_ctx * half);
        let mut sin = Vec::with_capacity(n_ctx * half);
        for p in 0..n_ctx {
            for &f in &inv_freq {
                let angle = p as f32 * f;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
        Ok(Self {
            cos: Tensor::from_vec(cos, (n_ctx, half), dev)?,
            sin: Tensor::from_vec(sin, (n_ctx, half), dev)?,
        })
    }

    fn apply(&self, x: &Tensor, pos: usize, style: RopeStyle) -> Result<Tensor> {
        let seq = x.dim(2)?;
        let cos = self.cos.narrow(0, pos, seq)?;
        let sin = self.sin.narrow(0, pos, seq)?;
        match style {
            RopeStyle::Interleaved => candle_nn::rotary_emb::rope_i(x, &cos, &sin),
            RopeStyle::Halves => candle_nn::rotary_emb::rope(x, &cos, &sin),
        }
    }
}

struct Layer {
    attn_norm: Tensor,
    wq: QMatMul,
    wk: QMatMul,
    wv: QMatMul,
    wo: QMatMul,
    q_norm: Option<Tensor>,
    k_norm: Option<Tensor>,
    post_attn_norm: Option<Tensor>,
    ffn_norm: Tensor,
    w_gate: QMatMul,
    w_up: QMatMul,
    w_down: QMatMul,
    post_ffn_norm: Option<Tensor>,
    window: Option<usize>,
    local_rope: bool,
}

/// Which positions' logits a forward returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logits {
    /// Only the last position: `[vocab]`.
    Last,
    /// Every position of the batch: `[seq, vocab]`.
    All,
}

/// A loaded model: weights, RoPE tables and shape. Immutable once loaded;
/// per-conversation state lives in a [`KvCache`].
pub struct Model {
    pub hp: Hparams,
    tok_embd: Arc<QTensor>,
    layers: Vec<Layer>,
    output_norm: Tensor,
    output: QMatMul,
    rope_global: Rope,
    rope_local: Option<Rope>,
    n_ctx: usize,
    device: Device,
}

fn norm_weight(
    f: &mut GgufFile,
    name: &str,
    dev: &Device,
) -> std::result::Result<Tensor, LoadError> {
    let t = f.tensor(name, dev)?;
    t.dequantize(dev).map_err(|e| LoadError::Corrupt {
        path: f.path.clone(),
        reason: format!("tensor `{name}`: {}", candle_message(&e)),
    })
}

fn qmatmul(f: &mut GgufFile, name: &str, dev: &Device) -> std::result::Result<QMatMul, LoadError> {
    let t = f.tensor(name, dev)?;
    QMatMul::from_qtensor(t).map_err(|e| LoadError::Corrupt {
        path: f.path.clone(),
        reason: format!("tensor `{name}`: {}", candle_message(&e)),
    })
}

fn candle_err(path: &std::path::Path, e: candle_core::Error) -> LoadError {
    LoadError::Corrupt {
        path: path.to_path_buf(),
        reason: candle_message(&e),
    }
}

impl Model {
    /// Refuses an unsupported architecture or shape before anything else is
    /// read from the file.
    pub fn check(f: &GgufFile) -> std::result::Result<Hparams, LoadError> {
        Hparams::from_gguf(f)
    }

    /// Reads the weights of `f`. `n_ctx` is the context the caches and RoPE
    /// tables are sized for (clamped to the model's training context).
    pub fn load(f: &mut GgufFile, n_ctx: usize) -> std::result::Result<Self, LoadError> {
        let dev = Device::Cpu;
        let hp = Hparams::from_gguf(f)?;
        let n_ctx = n_ctx.clamp(16, hp.ctx_train.max(16));
        let tok_embd = Arc::new(f.tensor("token_embd.weight", &dev)?);
        let output = if f.has_tensor("output.weight") {
            qmatmul(f, "output.weight", &dev)?
        } else {
            QMatMul::from_arc(tok_embd.clone()).map_err(|e| candle_err(&f.path, e))?
        };
        let freq_factors: Option<Vec<f32>> = if f.has_tensor("rope_freqs.weight") {
            let t = norm_weight(f, "rope_freqs.weight", &dev)?;
            Some(t.to_vec1().map_err(|e| candle_err(&f.path, e))?)
        } else {
            None
        };
        let opt_norm =
            |f: &mut GgufFile, name: String| -> std::result::Result<Option<Tensor>, LoadError> {
                if f.has_tensor(&name) {
                    Ok(Some(norm_weight(f, &name, &dev)?))
                } else {
                    Ok(None)
                }
            };
        let mut layers = Vec::with_capacity(hp.n_layer);
        for il in 0..hp.n_layer {
            let p = |s: &str| format!("blk.{il}.{s}");
            let window = hp.window(il);
            layers.push(Layer {
                attn_norm: norm_weight(f, &p("attn_norm.weight"), &dev)?,
                wq: qmatmul(f, &p("attn_q.weight"), &dev)?,
                wk: qmatmul(f, &p("attn_k.weight"), &dev)?,
                wv: qmatmul(f, &p("attn_v.weight"), &dev)?,
                wo: qmatmul(f, &p("attn_output.weight"), &dev)?,
                q_norm: opt_norm(f, p("attn_q_norm.weight"))?,
                k_norm: opt_norm(f, p("attn_k_norm.weight"))?,
                post_attn_norm: opt_norm(f, p("post_attention_norm.weight"))?,
                ffn_norm: norm_weight(f, &p("ffn_norm.weight"), &dev)?,
                w_gate: qmatmul(f, &p("ffn_gate.weight"), &dev)?,
                w_up: qmatmul(f, &p("ffn_up.weight"), &dev)?,
                w_down: qmatmul(f, &p("ffn_down.weight"), &dev)?,
                post_ffn_norm: opt_norm(f, p("post_ffw_norm.weight"))?,
                window,
                local_rope: window.is_some() && hp.rope_base_local != hp.rope_base,
            });
        }
        let output_norm = norm_weight(f, "output_norm.weight", &dev)?;
        let rope_global = Rope::new(
            hp.rope_base,
            hp.rope_dim,
            n_ctx,
            freq_factors.as_deref(),
            &dev,
        )
        .map_err(|e| candle_err(&f.path, e))?;
        let rope_local = if layers.iter().any(|l| l.local_rope) {
            Some(
                Rope::new(hp.rope_base_local, hp.rope_dim, n_ctx, None, &dev)
                    .map_err(|e| candle_err(&f.path, e))?,
            )
        } else {
            None
        };
        Ok(Self {
            hp,
            tok_embd,
            layers,
            output_norm,
            output,
            rope_global,
            rope_local,
            n_ctx,
            device: dev,
        })
    }

    /// The context length caches and RoPE tables are sized for.
    pub fn n_ctx(&self) -> usize {
        self.n_ctx
    }

    pub fn new_cache(&self) -> Result<KvCache> {
        KvCache::new(
            self.hp.n_layer,
            self.hp.n_kv_head,
            self.hp.head_dim,
            self.n_ctx,
            &self.device,
        )
    }

    /// Runs `tokens` through the network at the cache's current position,
    /// appending to the cache, in chunks of [`PREFILL_CHUNK`].
    pub fn forward(&self, tokens: &[u32], cache: &mut KvCache, logits: Logits) -> Result<Tensor> {
        if tokens.is_empty() {
            candle_core::bail!("forward called with no tokens");
        }
        let mut outs = Vec::new();
        let chunks: Vec<&[u32]> = tokens.chunks(PREFILL_CHUNK).collect();
        let n = chunks.len();
        for (i, chunk) in chunks.into_iter().enumerate() {
            let want = match logits {
                Logits::All => Some(Logits::All),
                Logits::Last if i + 1 == n => Some(Logits::Last),
                Logits::Last => None,
            };
            if let Some(out) = self.forward_chunk(chunk, cache, want)? {
                outs.push(out);
            }
        }
        match logits {
            Logits::Last => outs
                .pop()
                .ok_or_else(|| candle_core::Error::Msg("no logits".into())),
            Logits::All => Tensor::cat(&outs, 0),
        }
    }

    fn forward_chunk(
        &self,
        tokens: &[u32],
        cache: &mut KvCache,
        logits: Option<Logits>,
    ) -> Result<Option<Tensor>> {
        let hp = &self.hp;
        let seq = tokens.len();
        let pos = cache.len();
        if pos + seq > self.n_ctx {
            candle_core::bail!(
                "context full: {} + {seq} tokens exceed the context of {}",
                pos,
                self.n_ctx
            );
        }
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= hp.vocab_size) {
            candle_core::bail!(
                "token id {bad} is outside the vocabulary of {}",
                hp.vocab_size
            );
        }
        let ids = Tensor::new(tokens, &self.device)?;
        let mut x = self.tok_embd.embedding(&ids)?.unsqueeze(0)?; // [1, seq, n_embd]
        if let Some(s) = hp.embed_scale {
            x = (x * f64::from(s))?;
        }
        for (il, layer) in self.layers.iter().enumerate() {
            let residual = x.clone();
            let h = candle_nn::ops::rms_norm(&x, &layer.attn_norm, hp.eps as f32)?;
            let h = self.attention(il, layer, &h, pos, cache)?;
            let h = match &layer.post_attn_norm {
                Some(w) => candle_nn::ops::rms_norm(&h, w, hp.eps as f32)?,
                None => h,
            };
            x = (residual + h)?;
            let residual = x.clone();
            let h = candle_nn::ops::rms_norm(&x, &layer.ffn_norm, hp.eps as f32)?;
            let gate = layer.w_gate.forward(&h)?;
            let gate = match hp.activation {
                Activation::Silu => candle_nn::ops::silu(&gate)?,
                Activation::GeluTanh => gelu_f16_table(&gate)?,
            };
            let h = layer.w_down.forward(&(gate * layer.w_up.forward(&h)?)?)?;
            let h = match &layer.post_ffn_norm {
                Some(w) => candle_nn::ops::rms_norm(&h, w, hp.eps as f32)?,
                None => h,
            };
            x = (residual + h)?;
        }
        cache.advance(seq);
        let Some(which) = logits else {
            return Ok(None);
        };
        let x = match which {
            Logits::Last => x.narrow(1, seq - 1, 1)?,
            Logits::All => x,
        };
        let x = candle_nn::ops::rms_norm(&x, &self.output_norm, hp.eps as f32)?;
        let out = self.output.forward(&x)?.squeeze(0)?; // [rows, vocab]
        Ok(Some(match which {
            Logits::Last => out.squeeze(0)?,
            Logits::All => out,
        }))
    }

    fn attention(
        &self,
        il: usize,
        layer: &Layer,
        x: &Tensor,
        pos: usize,
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        let hp = &self.hp;
        let (_, seq, _) = x.dims3()?;
        let hd = hp.head_dim;
        let q = layer.wq.forward(x)?.reshape((1, seq, hp.n_head, hd))?;
        let k = layer.wk.forward(x)?.reshape((1, seq, hp.n_kv_head, hd))?;
        let v = layer.wv.forward(x)?.reshape((1, seq, hp.n_kv_head, hd))?;
        let q = match &layer.q_norm {
            Some(w) => candle_nn::ops::rms_norm(&q.contiguous()?, w, hp.eps as f32)?,
            None => q,
        };
        let k = match &layer.k_norm {
            Some(w) => candle_nn::ops::rms_norm(&k.contiguous()?, w, hp.eps as f32)?,
            None => k,
        };
        let q = q.transpose(1, 2)?.contiguous()?;
        let k = k.transpose(1, 2)?.contiguous()?;
        let v = v.transpose(1, 2)?.contiguous()?;
        let rope = match (&self.rope_local, layer.local_rope) {
            (Some(r), true) => r,
            _ => &self.rope_global,
        };
        let q = (rope.apply(&q, pos, hp.rope_style)? * f64::from(hp.attn_scale))?;
        let k = rope.apply(&k, pos, hp.rope_style)?;

        // Keys a query at position p may see: (p - window, p]. The earliest
        // query bounds the slice taken from the cache.
        let start = match layer.window {
            Some(w) => (pos + 1).saturating_sub(w),
            None => 0,
        };
        let (keys, values) = cache.append(il, &k, &v, start)?;
        let klen = keys.dim(2)?;

        // Grouped-query attention without copying K/V: fold the query heads
        // that share a KV head into the row dimension.
        let n_rep = hp.n_head / hp.n_kv_head;
        let q = q.reshape((1, hp.n_kv_head, n_rep * seq, hd))?;
        let att = q.matmul(&keys.t()?)?; // [1, n_kv, n_rep*seq, klen]
        let att = match attention_mask(pos, seq, start, klen, layer.window) {
            Some(mask) => {
                let mask = Tensor::from_vec(mask, (seq, klen), &self.device)?;
                att.reshape((1, hp.n_kv_head, n_rep, seq, klen))?
                    .broadcast_add(&mask)?
                    .reshape((1, hp.n_kv_head, n_rep * seq, klen))?
            }
            None => att,
        };
        let att = candle_nn::ops::softmax_last_dim(&att)?;
        let out = att.matmul(&values)?; // [1, n_kv, n_rep*seq, hd]
        let out = out
            .reshape((1, hp.n_head, seq, hd))?
            .transpose(1, 2)?
            .reshape((1, seq, hp.n_head * hd))?;
        layer.wo.forward(&out)
    }

    /// Bytes of weights held in memory.
    pub fn weight_bytes(&self) -> usize {
        let q = |m: &QMatMul| match m {
            QMatMul::QTensor(t) => t.storage_size_in_bytes(),
            QMatMul::Tensor(t) | QMatMul::TensorF16(t) => {
                t.elem_count() * t.dtype().size_in_bytes()
            }
        };
        let t = |t: &Tensor| t.elem_count() * t.dtype().size_in_bytes();
        let mut n = self.tok_embd.storage_size_in_bytes() + t(&self.output_norm);
        if !matches!(&self.output, QMatMul::QTensor(o) if Arc::ptr_eq(o, &self.tok_embd)) {
            n += q(&self.output);
        }
        for l in &self.layers {
            n += [&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down]
                .into_iter()
                .map(q)
                .sum::<usize>();
            n += t(&l.attn_norm) + t(&l.ffn_norm);
        }
        n
    }
}

/// Additive mask `[seq, klen]` (0 or -inf) for queries at `pos..pos+seq`
/// over keys at `start..start+klen`; `None` when every key is visible.
fn attention_mask(
    pos: usize,
    seq: usize,
    start: usize,
    klen: usize,
    window: Option<usize>,
) -> Option<Vec<f32>> {
    let visible = |i: usize, j: usize| j <= i && window.is_none_or(|w| i - j < w);
    let all_visible = (0..seq).all(|qi| {
        let i = pos + qi;
        visible(i, start) && visible(i, start + klen - 1)
    });
    if all_visible {
        return None;
    }
    let mut mask = Vec::with_capacity(seq * klen);
    for qi in 0..seq {
        let i = pos + qi;
        for kj in 0..klen {
            mask.push(if visible(i, start + kj) {
                0.0
            } else {
                f32::NEG_INFINITY
            });
        }
    }
    Some(mask)
}

/// GELU (tanh form) as ggml evaluates it on CPU: through a lookup table
/// indexed by the input rounded to f16, holding f16 results. Matching it
/// keeps Gemma's activations on llama.cpp's values.
fn gelu_f16_table(x: &Tensor) -> Result<Tensor> {
    let r16 = |t: &Tensor| t.to_dtype(DType::F16)?.to_dtype(DType::F32);
    r16(&r16(x)?.gelu()?)
}

/// Index of the largest value.
pub fn argmax(logits: &Tensor) -> Result<u32> {
    logits
        .argmax(D::Minus1)?
        .to_dtype(DType::U32)?
        .to_scalar::<u32>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_step_needs_no_mask() {
        assert!(attention_mask(10, 1, 0, 11, None).is_none());
        assert!(attention_mask(10, 1, 5, 6, Some(6)).is_none());
    }

    #[test]
    fn causal_and_window_masks() {
        let m = attention_mask(0, 3, 0, 3, None).unwrap();
        let inf = f32::NEG_INFINITY;
        assert_eq!(m, vec![0., inf, inf, 0., 0., inf, 0., 0., 0.]);
        // Window of 2: position 2 no longer sees key 0.
        let m = attention_mask(0, 3, 0, 3, Some(2)).unwrap();
        assert_eq!(m, vec![0., inf, inf, 0., 0., inf, inf, 0., 0.]);
    }
}

//! The decoder-only transformer for the supported GGUF architectures
//! (`llama`, `gemma3`, `qwen2`, `qwen3`), read top to bottom:
//! hyperparameters from metadata, weights memory-mapped in their block
//! formats, RoPE tables computed once, and one forward pass on plain f32
//! rows that serves both prefill (many tokens) and decode (one token).
//!
//! Architecture differences are data in [`Hparams`] (and optional tensors:
//! Q/K/V biases, QK-norm, post-norms), not separate files.

use super::attention;
use super::gguf::{GgufFile, LoadError};
use super::kv::{KvCache, KvError};
use super::ops::{self, Rope, RopeStyle};
use super::pool::{Disjoint, Pool};
use super::quant::QMatrix;

/// Layers of forward passes run by this process, any model: a liveness
/// signal. A long prefill gives the agent no other chance to say it is
/// alive, and under emulation (the amd64 image test) one took longer than
/// systemd's 5-minute watchdog, which then killed a working daemon.
static LAYERS_COMPUTED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many transformer layers this process has computed so far; it grows
/// while any forward pass is making progress.
pub fn layers_computed() -> u64 {
    LAYERS_COMPUTED.load(std::sync::atomic::Ordering::Relaxed)
}

/// The activations of one forward pass, kept per thread and only grown, so
/// the decode loop allocates nothing but the logits it returns.
#[derive(Default)]
struct Workspace {
    x: Vec<f32>,
    h: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    att: Vec<f32>,
    out: Vec<f32>,
}

impl Workspace {
    /// Sizes every buffer for `seq` tokens of `hp` (contents unspecified).
    fn size(&mut self, seq: usize, hp: &Hparams) {
        let q = hp.n_head * hp.head_dim;
        let kv = hp.n_kv_head * hp.head_dim;
        for (buf, width) in [
            (&mut self.x, hp.n_embd),
            (&mut self.h, hp.n_embd),
            (&mut self.gate, hp.n_ff),
            (&mut self.up, hp.n_ff),
            (&mut self.q, q),
            (&mut self.k, kv),
            (&mut self.v, kv),
            (&mut self.att, q),
            (&mut self.out, hp.n_embd),
        ] {
            buf.resize(seq * width, 0.0);
        }
    }
}

thread_local! {
    static WORKSPACE: std::cell::RefCell<Workspace> = std::cell::RefCell::default();
}

/// Tokens per forward during prefill (llama.cpp's default micro-batch);
/// bounds activation memory.
pub const PREFILL_CHUNK: usize = 512;

/// Batch rows per task of the element-wise steps; smaller batches (decode)
/// run on the calling thread.
const ROWS_PER_TASK: usize = 16;

/// Runs `f` over the rows `0..seq` of a batch, in ranges on the compute
/// pool when there are enough of them (prefill), else in one call.
fn for_rows(seq: usize, f: &(dyn Fn(std::ops::Range<usize>) + Sync)) {
    if seq < 2 * ROWS_PER_TASK {
        return f(0..seq);
    }
    Pool::global().run(seq.div_ceil(ROWS_PER_TASK), &|t| {
        f(t * ROWS_PER_TASK..((t + 1) * ROWS_PER_TASK).min(seq))
    });
}

/// A `[rows, width]` activation buffer whose rows [`for_rows`] tasks take.
struct Rows<'a> {
    data: Disjoint<'a, f32>,
    width: usize,
}

impl<'a> Rows<'a> {
    fn new(data: &'a mut [f32], width: usize) -> Self {
        Self {
            data: Disjoint::new(data),
            width,
        }
    }

    /// Rows `r`.
    ///
    /// # Safety
    /// No other task may use these rows meanwhile.
    #[allow(clippy::mut_from_ref)]
    unsafe fn rows(&self, r: std::ops::Range<usize>) -> &mut [f32] {
        // SAFETY: forwarded to the caller.
        unsafe { self.data.part(r.start * self.width..r.end * self.width) }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    Llama,
    Gemma3,
    /// Qwen2 / Qwen2.5: llama's block with biases on Q, K and V and
    /// NeoX-style RoPE.
    Qwen2,
    /// Qwen3: Qwen2 without the biases, with RMS norm on each query and
    /// key head before RoPE (QK-norm).
    Qwen3,
}

impl Arch {
    pub fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Gemma3 => "gemma3",
            Arch::Qwen2 => "qwen2",
            Arch::Qwen3 => "qwen3",
        }
    }
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
    eps: f32,
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
    /// Gemma scales queries before attention (llama.cpp does it in f32,
    /// before the f16 rounding inside attention)...
    query_scale: Option<f32>,
    /// ...the others scale the scores.
    score_scale: f32,
}

impl Hparams {
    fn from_gguf(f: &GgufFile) -> Result<Self, LoadError> {
        let arch_name = f.string("general.architecture")?;
        let arch = match arch_name.as_str() {
            "llama" => Arch::Llama,
            "gemma3" => Arch::Gemma3,
            "qwen2" => Arch::Qwen2,
            "qwen3" => Arch::Qwen3,
            other => {
                return Err(f.unsupported(format!(
                    "architecture `{other}` (supported: llama, gemma3, qwen2, qwen3)"
                )));
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
            Arch::Qwen2 | Arch::Qwen3 => (RopeStyle::Halves, Activation::Silu, 1_000_000.0, 1e-6),
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
                Arch::Llama | Arch::Qwen2 | Arch::Qwen3 => None,
            },
            swa_pattern: 6,
            activation,
            embed_scale: (arch == Arch::Gemma3).then(|| (n_embd as f32).sqrt()),
            query_scale: (arch == Arch::Gemma3).then(|| 1.0 / (head_dim as f32).sqrt()),
            score_scale: match arch {
                Arch::Gemma3 => 1.0,
                Arch::Llama | Arch::Qwen2 | Arch::Qwen3 => 1.0 / (head_dim as f32).sqrt(),
            },
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

/// Why a forward pass failed.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("forward called with no tokens")]
    Empty,
    #[error("token id {id} is outside the vocabulary of {vocab}")]
    TokenOutOfVocab { id: u32, vocab: usize },
    #[error(transparent)]
    Cache(#[from] KvError),
}

struct Layer {
    attn_norm: Vec<f32>,
    wq: QMatrix,
    wk: QMatrix,
    wv: QMatrix,
    wo: QMatrix,
    /// Biases added to the Q, K and V projections (Qwen2).
    bq: Option<Vec<f32>>,
    bk: Option<Vec<f32>>,
    bv: Option<Vec<f32>>,
    q_norm: Option<Vec<f32>>,
    k_norm: Option<Vec<f32>>,
    post_attn_norm: Option<Vec<f32>>,
    ffn_norm: Vec<f32>,
    w_gate: QMatrix,
    w_up: QMatrix,
    w_down: QMatrix,
    post_ffn_norm: Option<Vec<f32>>,
    window: Option<usize>,
    local_rope: bool,
}

/// Which positions' logits a forward returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logits {
    /// Only the last position: `[vocab]`.
    Last,
    /// Every position of the batch: `[seq * vocab]`, row after row.
    All,
}

/// A loaded model: weights, RoPE tables and shape. Immutable once loaded;
/// per-conversation state lives in a [`KvCache`].
pub struct Model {
    pub hp: Hparams,
    tok_embd: QMatrix,
    layers: Vec<Layer>,
    output_norm: Vec<f32>,
    output: QMatrix,
    /// False when the output projection is the embedding table (tied).
    has_output_matrix: bool,
    rope_global: Rope,
    rope_local: Option<Rope>,
    n_ctx: usize,
}

/// A 1-D f32 tensor (norm weights, RoPE frequency factors).
fn vector(f: &GgufFile, name: &str) -> Result<Vec<f32>, LoadError> {
    let m = f.matrix(name)?;
    let mut v = vec![0f32; m.rows() * m.cols()];
    for (r, row) in v.chunks_exact_mut(m.cols()).enumerate() {
        m.dequantize_row(r, row);
    }
    Ok(v)
}

fn opt_vector(f: &GgufFile, name: &str) -> Result<Option<Vec<f32>>, LoadError> {
    if f.has_tensor(name) {
        vector(f, name).map(Some)
    } else {
        Ok(None)
    }
}

/// An optional bias vector of `len` values.
fn opt_bias(f: &GgufFile, name: &str, len: usize) -> Result<Option<Vec<f32>>, LoadError> {
    let Some(b) = opt_vector(f, name)? else {
        return Ok(None);
    };
    if b.len() != len {
        return Err(LoadError::Corrupt {
            path: f.path.clone(),
            reason: format!("tensor `{name}` has {} values, expected {len}", b.len()),
        });
    }
    Ok(Some(b))
}

/// Checks that `m` maps `cols` inputs to `rows` outputs.
fn shaped(f: &GgufFile, name: &str, rows: usize, cols: usize) -> Result<QMatrix, LoadError> {
    let m = f.matrix(name)?;
    if m.rows() != rows || m.cols() != cols {
        return Err(LoadError::Corrupt {
            path: f.path.clone(),
            reason: format!(
                "tensor `{name}` is {}x{}, expected {rows}x{cols}",
                m.rows(),
                m.cols()
            ),
        });
    }
    Ok(m)
}

impl Model {
    /// Refuses an unsupported architecture or shape before anything else is
    /// read from the file.
    pub fn check(f: &GgufFile) -> Result<Hparams, LoadError> {
        Hparams::from_gguf(f)
    }

    /// Maps the weights of `f`. `n_ctx` is the context the caches and RoPE
    /// tables are sized for (clamped to the model's training context).
    pub fn load(f: &mut GgufFile, n_ctx: usize) -> Result<Self, LoadError> {
        let hp = Hparams::from_gguf(f)?;
        let n_ctx = n_ctx.clamp(16, hp.ctx_train.max(16));
        let (e, hd) = (hp.n_embd, hp.head_dim);
        let tok_embd = shaped(f, "token_embd.weight", hp.vocab_size, e)?;
        let has_output_matrix = f.has_tensor("output.weight");
        let output = if has_output_matrix {
            shaped(f, "output.weight", hp.vocab_size, e)?
        } else {
            tok_embd.clone()
        };
        let freq_factors = opt_vector(f, "rope_freqs.weight")?;
        let mut layers = Vec::with_capacity(hp.n_layer);
        for il in 0..hp.n_layer {
            let p = |s: &str| format!("blk.{il}.{s}");
            let window = hp.window(il);
            layers.push(Layer {
                attn_norm: vector(f, &p("attn_norm.weight"))?,
                wq: shaped(f, &p("attn_q.weight"), hp.n_head * hd, e)?,
                wk: shaped(f, &p("attn_k.weight"), hp.n_kv_head * hd, e)?,
                wv: shaped(f, &p("attn_v.weight"), hp.n_kv_head * hd, e)?,
                wo: shaped(f, &p("attn_output.weight"), e, hp.n_head * hd)?,
                bq: opt_bias(f, &p("attn_q.bias"), hp.n_head * hd)?,
                bk: opt_bias(f, &p("attn_k.bias"), hp.n_kv_head * hd)?,
                bv: opt_bias(f, &p("attn_v.bias"), hp.n_kv_head * hd)?,
                q_norm: opt_vector(f, &p("attn_q_norm.weight"))?,
                k_norm: opt_vector(f, &p("attn_k_norm.weight"))?,
                post_attn_norm: opt_vector(f, &p("post_attention_norm.weight"))?,
                ffn_norm: vector(f, &p("ffn_norm.weight"))?,
                w_gate: shaped(f, &p("ffn_gate.weight"), hp.n_ff, e)?,
                w_up: shaped(f, &p("ffn_up.weight"), hp.n_ff, e)?,
                w_down: shaped(f, &p("ffn_down.weight"), e, hp.n_ff)?,
                post_ffn_norm: opt_vector(f, &p("post_ffw_norm.weight"))?,
                window,
                local_rope: window.is_some() && hp.rope_base_local != hp.rope_base,
            });
        }
        let output_norm = vector(f, "output_norm.weight")?;
        let rope_global = Rope::new(hp.rope_base, hp.rope_dim, n_ctx, freq_factors.as_deref());
        let rope_local = layers
            .iter()
            .any(|l| l.local_rope)
            .then(|| Rope::new(hp.rope_base_local, hp.rope_dim, n_ctx, None));
        Ok(Self {
            hp,
            tok_embd,
            layers,
            output_norm,
            output,
            has_output_matrix,
            rope_global,
            rope_local,
            n_ctx,
        })
    }

    /// The context length caches and RoPE tables are sized for.
    pub fn n_ctx(&self) -> usize {
        self.n_ctx
    }

    pub fn new_cache(&self) -> KvCache {
        KvCache::new(
            self.hp.n_layer,
            self.hp.n_kv_head,
            self.hp.head_dim,
            self.n_ctx,
        )
    }

    /// Runs `tokens` through the network at the cache's current position,
    /// appending to the cache, in chunks of [`PREFILL_CHUNK`]. Returns the
    /// logits `logits` asks for.
    pub fn forward(
        &self,
        tokens: &[u32],
        cache: &mut KvCache,
        logits: Logits,
    ) -> Result<Vec<f32>, ForwardError> {
        let mut out = Vec::new();
        self.forward_into(tokens, cache, logits, &mut out)?;
        Ok(out)
    }

    /// [`Self::forward`] into `out` (resized to the logits), so a decode
    /// loop that passes the same vector allocates nothing per token.
    pub fn forward_into(
        &self,
        tokens: &[u32],
        cache: &mut KvCache,
        logits: Logits,
        out: &mut Vec<f32>,
    ) -> Result<(), ForwardError> {
        if tokens.is_empty() {
            return Err(ForwardError::Empty);
        }
        if let Some(&id) = tokens.iter().find(|&&t| t as usize >= self.hp.vocab_size) {
            return Err(ForwardError::TokenOutOfVocab {
                id,
                vocab: self.hp.vocab_size,
            });
        }
        let needed = cache.len() + tokens.len();
        if needed > self.n_ctx {
            return Err(KvError::Full {
                needed,
                capacity: self.n_ctx,
            }
            .into());
        }
        let rows = match logits {
            Logits::Last => 1,
            Logits::All => tokens.len(),
        };
        // Every element is overwritten below; growing zero-fills once.
        out.resize(rows * self.hp.vocab_size, 0.0);
        let n = tokens.len().div_ceil(PREFILL_CHUNK);
        let mut at = 0;
        for (i, chunk) in tokens.chunks(PREFILL_CHUNK).enumerate() {
            let want = match logits {
                Logits::All => Some(Logits::All),
                Logits::Last if i + 1 == n => Some(Logits::Last),
                Logits::Last => None,
            };
            at += self.forward_chunk(chunk, cache, want, &mut out[at..])?;
        }
        debug_assert_eq!(at, out.len());
        Ok(())
    }

    /// One chunk; writes the logits `logits` asks for at the start of
    /// `out` and returns how many values that was.
    fn forward_chunk(
        &self,
        tokens: &[u32],
        cache: &mut KvCache,
        logits: Option<Logits>,
        out: &mut [f32],
    ) -> Result<usize, ForwardError> {
        WORKSPACE.with(|w| {
            let mut w = w.borrow_mut();
            self.forward_in(tokens, cache, logits, &mut w, out)
        })
    }

    fn forward_in(
        &self,
        tokens: &[u32],
        cache: &mut KvCache,
        logits: Option<Logits>,
        w: &mut Workspace,
        logits_out: &mut [f32],
    ) -> Result<usize, ForwardError> {
        let hp = &self.hp;
        let (seq, e) = (tokens.len(), hp.n_embd);
        let pos = cache.len();
        let hd = hp.head_dim;
        w.size(seq, hp);
        let Workspace {
            x,
            h,
            gate,
            up,
            q,
            k,
            v,
            att,
            out,
        } = w;
        let (qw, kvw) = (hp.n_head * hd, hp.n_kv_head * hd);
        // Only the looked-up rows of the embedding table are widened.
        {
            let x = Rows::new(x, e);
            for_rows(seq, &|r| {
                // SAFETY: each task has its own rows.
                let x = unsafe { x.rows(r.clone()) };
                for (&t, row) in tokens[r].iter().zip(x.chunks_exact_mut(e)) {
                    self.tok_embd.dequantize_row(t as usize, row);
                    if let Some(s) = hp.embed_scale {
                        row.iter_mut().for_each(|v| *v *= s);
                    }
                }
            });
        }
        for (il, layer) in self.layers.iter().enumerate() {
            LAYERS_COMPUTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            {
                let (xr, hr) = (Rows::new(x, e), Rows::new(h, e));
                for_rows(seq, &|r| {
                    // SAFETY: each task has its own rows.
                    let (x, h) = unsafe { (xr.rows(r.clone()), hr.rows(r)) };
                    ops::rms_norm(x, &layer.attn_norm, hp.eps, h);
                });
            }
            // Self-attention: fused Q/K/V, RoPE, cache, attention, output.
            QMatrix::matmul_many(
                &[&layer.wq, &layer.wk, &layer.wv],
                h,
                seq,
                &mut [&mut q[..], &mut k[..], &mut v[..]],
            );
            let rope = match (&self.rope_local, layer.local_rope) {
                (Some(r), true) => r,
                _ => &self.rope_global,
            };
            {
                let (qr, kr, vr) = (Rows::new(q, qw), Rows::new(k, kvw), Rows::new(v, kvw));
                for_rows(seq, &|r| {
                    let t0 = r.start;
                    // SAFETY: each task has its own rows.
                    let (q, k, v) = unsafe { (qr.rows(r.clone()), kr.rows(r.clone()), vr.rows(r)) };
                    for (x, b) in [
                        (&mut *q, &layer.bq),
                        (&mut *k, &layer.bk),
                        (&mut *v, &layer.bv),
                    ] {
                        if let Some(b) = b {
                            x.chunks_exact_mut(b.len()).for_each(|row| ops::add(row, b));
                        }
                    }
                    if let Some(wn) = &layer.q_norm {
                        ops::rms_norm_inplace(q, wn, hp.eps);
                    }
                    if let Some(wn) = &layer.k_norm {
                        ops::rms_norm_inplace(k, wn, hp.eps);
                    }
                    for (t, (qt, kt)) in q
                        .chunks_exact_mut(qw)
                        .zip(k.chunks_exact_mut(kvw))
                        .enumerate()
                    {
                        rope.apply(qt, pos + t0 + t, hp.rope_style);
                        rope.apply(kt, pos + t0 + t, hp.rope_style);
                    }
                    if let Some(s) = hp.query_scale {
                        q.iter_mut().for_each(|x| *x *= s);
                    }
                });
            }
            cache.write(il, k, v, seq)?;
            let shape = attention::Shape {
                n_head: hp.n_head,
                n_kv_head: hp.n_kv_head,
                head_dim: hd,
                scale: hp.score_scale,
                window: layer.window,
            };
            attention::attend(q, seq, pos, &cache.layer(il), &shape, att);
            layer.wo.matmul(att, seq, out);
            {
                let (xr, hr, or) = (Rows::new(x, e), Rows::new(h, e), Rows::new(out, e));
                for_rows(seq, &|r| {
                    // SAFETY: each task has its own rows.
                    let (x, h, out) =
                        unsafe { (xr.rows(r.clone()), hr.rows(r.clone()), or.rows(r)) };
                    if let Some(wn) = &layer.post_attn_norm {
                        ops::rms_norm_inplace(out, wn, hp.eps);
                    }
                    ops::add(x, out);
                    ops::rms_norm(x, &layer.ffn_norm, hp.eps, h);
                });
            }
            // Feed-forward: fused gate/up.
            QMatrix::matmul_many(
                &[&layer.w_gate, &layer.w_up],
                h,
                seq,
                &mut [&mut gate[..], &mut up[..]],
            );
            {
                let (gr, ur) = (Rows::new(gate, hp.n_ff), Rows::new(up, hp.n_ff));
                for_rows(seq, &|r| {
                    // SAFETY: each task has its own rows.
                    let (gate, up) = unsafe { (gr.rows(r.clone()), ur.rows(r)) };
                    match hp.activation {
                        Activation::Silu => ops::swiglu(gate, up),
                        Activation::GeluTanh => ops::geglu(gate, up),
                    }
                });
            }
            layer.w_down.matmul(gate, seq, h);
            {
                let (xr, hr) = (Rows::new(x, e), Rows::new(h, e));
                for_rows(seq, &|r| {
                    // SAFETY: each task has its own rows.
                    let (x, h) = unsafe { (xr.rows(r.clone()), hr.rows(r)) };
                    if let Some(wn) = &layer.post_ffn_norm {
                        ops::rms_norm_inplace(h, wn, hp.eps);
                    }
                    ops::add(x, h);
                });
            }
        }
        cache.advance(seq);
        let Some(which) = logits else {
            return Ok(0);
        };
        let rows = match which {
            Logits::Last => &x[(seq - 1) * e..],
            Logits::All => &x[..],
        };
        let m = rows.len() / e;
        let normed = &mut h[..rows.len()];
        ops::rms_norm(rows, &self.output_norm, hp.eps, normed);
        let n = m * hp.vocab_size;
        self.output.matmul(normed, m, &mut logits_out[..n]);
        Ok(n)
    }

    /// Weight bytes one decode step streams: all of them, except that an
    /// untied token embedding gives up only its one row per token.
    pub fn bytes_per_token(&self) -> usize {
        let all = self.weight_bytes();
        if self.has_output_matrix {
            all - self.tok_embd.size_in_bytes()
                + self.tok_embd.size_in_bytes() / self.hp.vocab_size.max(1)
        } else {
            all
        }
    }

    /// Bytes of weights the model reads (memory-mapped from the file).
    pub fn weight_bytes(&self) -> usize {
        let v = |v: &Vec<f32>| v.len() * 4;
        let mut n = self.tok_embd.size_in_bytes() + v(&self.output_norm);
        if self.has_output_matrix {
            n += self.output.size_in_bytes();
        }
        for l in &self.layers {
            n += [&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down]
                .into_iter()
                .map(QMatrix::size_in_bytes)
                .sum::<usize>();
            n += v(&l.attn_norm) + v(&l.ffn_norm);
            n += [&l.bq, &l.bk, &l.bv, &l.q_norm, &l.k_norm]
                .into_iter()
                .flatten()
                .map(v)
                .sum::<usize>();
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A GGUF v3 file with only metadata: `general.architecture` and the
    /// `ARCH.*` shape keys (u32), no tensors.
    fn header_only(arch: &str) -> tempfile::NamedTempFile {
        let mut b = Vec::new();
        let s = |b: &mut Vec<u8>, t: &str| {
            b.extend_from_slice(&(t.len() as u64).to_le_bytes());
            b.extend_from_slice(t.as_bytes());
        };
        let keys = [
            ("embedding_length", 64u32),
            ("attention.head_count", 4),
            ("attention.head_count_kv", 2),
            ("block_count", 1),
            ("feed_forward_length", 128),
        ];
        b.extend_from_slice(b"GGUF");
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&0u64.to_le_bytes()); // tensors
        b.extend_from_slice(&(1 + keys.len() as u64).to_le_bytes());
        s(&mut b, "general.architecture");
        b.extend_from_slice(&8u32.to_le_bytes()); // string
        s(&mut b, arch);
        for (key, v) in keys {
            s(&mut b, &format!("{arch}.{key}"));
            b.extend_from_slice(&4u32.to_le_bytes()); // u32
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.resize(b.len().next_multiple_of(32) + 32, 0);
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), b).unwrap();
        f
    }

    fn hparams(arch: &str) -> Result<Hparams, LoadError> {
        let f = header_only(arch);
        Hparams::from_gguf(&GgufFile::open(f.path()).unwrap())
    }

    #[test]
    fn qwen_architectures_are_llama_blocks_with_neox_rope() {
        for (name, arch) in [("qwen2", Arch::Qwen2), ("qwen3", Arch::Qwen3)] {
            let hp = hparams(name).unwrap();
            assert_eq!(hp.arch, arch);
            assert_eq!(hp.arch.name(), name);
            assert_eq!((hp.n_head, hp.n_kv_head, hp.head_dim), (4, 2, 16));
            assert_eq!(hp.rope_style, RopeStyle::Halves, "{name}: NeoX RoPE");
            assert_eq!(hp.activation, Activation::Silu);
            assert_eq!(hp.rope_base, 1_000_000.0);
            assert_eq!(hp.rope_base_local, hp.rope_base);
            assert_eq!(hp.eps, 1e-6);
            assert_eq!(hp.sliding_window, None);
            assert_eq!(hp.window(0), None);
            assert_eq!(hp.embed_scale, None);
            assert_eq!(hp.query_scale, None);
            assert_eq!(
                hp.score_scale, 0.25,
                "{name}: scores scaled by 1/sqrt(head_dim)"
            );
        }
        let llama = hparams("llama").unwrap();
        assert_eq!(llama.rope_style, RopeStyle::Interleaved);
        assert_eq!(llama.rope_base, 10_000.0);
    }

    #[test]
    fn an_unknown_architecture_names_the_supported_ones() {
        let err = hparams("mamba").unwrap_err().to_string();
        for name in ["mamba", "llama", "gemma3", "qwen2", "qwen3"] {
            assert!(err.contains(name), "{err}");
        }
    }
}

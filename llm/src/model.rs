//! The transformer: llama and qwen2 decoders on candle's tensors and quantized matmuls,
//! with a KV cache the caller owns, so that a conversation's prefix can be kept, cut
//! back and extended across turns.

use std::sync::Arc;

use std::borrow::Cow;

use candle_core::quantized::{QMatMul, QStorage, QTensor};
use candle_core::{D, DType, Device, Module, Tensor};

use crate::error::{Error, Result};
use crate::gguf::Gguf;

/// The decoder families this runtime runs (`general.architecture` in the GGUF).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    /// Llama and its descendants (SmolLM, TinyLlama, ...): interleaved rotary embedding.
    Llama,
    /// Qwen2 / Qwen2.5: biases on q, k, v; half-split ("neox") rotary embedding.
    Qwen2,
}

impl Architecture {
    pub fn name(self) -> &'static str {
        match self {
            Architecture::Llama => "llama",
            Architecture::Qwen2 => "qwen2",
        }
    }

    fn from_name(name: &str) -> Result<Self> {
        match name {
            "llama" => Ok(Architecture::Llama),
            "qwen2" => Ok(Architecture::Qwen2),
            other => Err(Error::Unsupported(format!(
                "architecture `{other}` (this runtime runs llama and qwen2)"
            ))),
        }
    }
}

/// A model's shape, from its GGUF metadata and tensors.
#[derive(Debug, Clone)]
pub struct Config {
    pub architecture: Architecture,
    pub vocab_size: usize,
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub feed_forward: usize,
    pub rms_eps: f32,
    pub rope_base: f32,
    /// The context length the model was trained for.
    pub context_length: usize,
}

impl Config {
    pub(crate) fn from_gguf(gguf: &Gguf) -> Result<Self> {
        let arch_name = gguf.architecture()?;
        let architecture = Architecture::from_name(&arch_name)?;
        let key = |k: &str| format!("{arch_name}.{k}");
        let hidden = gguf.usize(&key("embedding_length"))?;
        let heads = gguf.usize(&key("attention.head_count"))?;
        let kv_heads = gguf.usize(&key("attention.head_count_kv")).unwrap_or(heads);
        let layers = gguf.usize(&key("block_count"))?;
        let feed_forward = gguf.usize(&key("feed_forward_length"))?;
        let rms_eps = gguf.f32(&key("attention.layer_norm_rms_epsilon"))?;
        let rope_base = gguf.f32(&key("rope.freq_base")).unwrap_or(10_000.0);
        let context_length = gguf.usize(&key("context_length"))?;
        if heads == 0 || kv_heads == 0 || hidden % heads != 0 || heads % kv_heads != 0 {
            return Err(Error::Format(format!(
                "inconsistent attention shape: {hidden} wide, {heads} heads, {kv_heads} key/value heads"
            )));
        }
        let head_dim = hidden / heads;
        if head_dim % 2 != 0 {
            return Err(Error::Format(format!("odd head size {head_dim}")));
        }
        if let Ok(rope_dim) = gguf.usize(&key("rope.dimension_count"))
            && rope_dim != head_dim
        {
            return Err(Error::Unsupported(format!(
                "partial rotary embedding ({rope_dim} of {head_dim} dimensions)"
            )));
        }
        if layers == 0 || layers > 512 || context_length == 0 {
            return Err(Error::Format(format!(
                "implausible shape: {layers} layers, context {context_length}"
            )));
        }
        let embd = gguf
            .content
            .tensor_infos
            .get("token_embd.weight")
            .ok_or_else(|| Error::Format("tensor `token_embd.weight` is missing".into()))?;
        let (vocab_size, embd_width) = embd
            .shape
            .dims2()
            .map_err(|_| Error::Format("token_embd.weight is not a matrix".into()))?;
        if embd_width != hidden {
            return Err(Error::Format(format!(
                "token_embd.weight is {embd_width} wide, the model {hidden}"
            )));
        }
        Ok(Config {
            architecture,
            vocab_size,
            hidden,
            layers,
            heads,
            kv_heads,
            head_dim,
            feed_forward,
            rms_eps,
            rope_base,
            context_length,
        })
    }
}

/// Matrices applied to the same input, stacked into one when they share a format: one
/// quantization of the input and one parallel pass instead of several (q, k, v; gate, up).
enum Projections {
    Fused { matrix: QMatMul, widths: Vec<usize> },
    Separate(Vec<QMatMul>),
}

impl Projections {
    fn new(parts: Vec<QTensor>) -> Result<Self> {
        let dtype = parts[0].dtype();
        let width = parts[0].shape().dims2()?.1;
        let mut widths = Vec::with_capacity(parts.len());
        let mut same = true;
        for p in &parts {
            let (rows, cols) = p.shape().dims2()?;
            same &= p.dtype() == dtype && cols == width;
            widths.push(rows);
        }
        if !same {
            return Ok(Projections::Separate(
                parts
                    .into_iter()
                    .map(QMatMul::from_qtensor)
                    .collect::<candle_core::Result<_>>()?,
            ));
        }
        // Quantized rows are whole blocks, so stacking matrices is stacking their bytes.
        let mut data = Vec::new();
        for p in &parts {
            data.extend_from_slice(&p.data()?);
        }
        let rows = widths.iter().sum::<usize>();
        let storage = QStorage::from_data(Cow::Owned(data), &Device::Cpu, dtype)?;
        let matrix = QMatMul::from_qtensor(QTensor::new(storage, (rows, width))?)?;
        Ok(Projections::Fused { matrix, widths })
    }

    fn forward(&self, x: &Tensor) -> Result<Vec<Tensor>> {
        match self {
            Projections::Separate(ms) => Ok(ms
                .iter()
                .map(|m| m.forward(x))
                .collect::<candle_core::Result<_>>()?),
            Projections::Fused { matrix, widths } => {
                let y = matrix.forward(x)?;
                let mut offset = 0;
                let mut out = Vec::with_capacity(widths.len());
                for w in widths {
                    out.push(y.narrow(D::Minus1, offset, *w)?);
                    offset += w;
                }
                Ok(out)
            }
        }
    }
}

struct Layer {
    attn_norm: Tensor,
    /// q, k, v.
    qkv: Projections,
    q_bias: Option<Tensor>,
    k_bias: Option<Tensor>,
    v_bias: Option<Tensor>,
    out: QMatMul,
    ffn_norm: Tensor,
    /// gate, up.
    gate_up: Projections,
    down: QMatMul,
}

/// A loaded model: immutable weights, shared by every request.
pub struct Model {
    pub config: Config,
    embedding: Arc<QTensor>,
    layers: Vec<Layer>,
    norm: Tensor,
    output: QMatMul,
    cos: Tensor,
    sin: Tensor,
}

/// Longest context the rotary tables are built for, whatever the model claims.
pub(crate) const MAX_POSITIONS: usize = 32_768;

fn expect_shape(t: &QTensor, name: &str, dims: &[usize]) -> Result<()> {
    if t.shape().dims() != dims {
        return Err(Error::Format(format!(
            "tensor `{name}` has shape {:?}, expected {dims:?}",
            t.shape().dims()
        )));
    }
    Ok(())
}

impl Model {
    pub(crate) fn from_gguf(gguf: &mut Gguf) -> Result<Self> {
        let config = Config::from_gguf(gguf)?;
        let c = &config;
        let q_width = c.heads * c.head_dim;
        let kv_width = c.kv_heads * c.head_dim;
        let raw = |gguf: &mut Gguf, name: &str, dims: &[usize]| -> Result<QTensor> {
            let t = gguf.tensor(name)?;
            expect_shape(&t, name, dims)?;
            Ok(t)
        };
        let matrix = |gguf: &mut Gguf, name: &str, dims: &[usize]| -> Result<QMatMul> {
            Ok(QMatMul::from_qtensor(raw(gguf, name, dims)?)?)
        };
        let vector = |gguf: &mut Gguf, name: &str, len: usize| -> Result<Tensor> {
            let t = gguf.tensor(name)?;
            expect_shape(&t, name, &[len])?;
            Ok(t.dequantize(&Device::Cpu)?)
        };
        let bias = |gguf: &mut Gguf, name: &str, len: usize| -> Result<Option<Tensor>> {
            if gguf.has_tensor(name) {
                Ok(Some(vector(gguf, name, len)?))
            } else {
                Ok(None)
            }
        };
        let embedding = Arc::new(gguf.tensor("token_embd.weight")?);
        let mut layers = Vec::with_capacity(c.layers);
        for i in 0..c.layers {
            let p = format!("blk.{i}");
            layers.push(Layer {
                attn_norm: vector(gguf, &format!("{p}.attn_norm.weight"), c.hidden)?,
                qkv: Projections::new(vec![
                    raw(gguf, &format!("{p}.attn_q.weight"), &[q_width, c.hidden])?,
                    raw(gguf, &format!("{p}.attn_k.weight"), &[kv_width, c.hidden])?,
                    raw(gguf, &format!("{p}.attn_v.weight"), &[kv_width, c.hidden])?,
                ])?,
                q_bias: bias(gguf, &format!("{p}.attn_q.bias"), q_width)?,
                k_bias: bias(gguf, &format!("{p}.attn_k.bias"), kv_width)?,
                v_bias: bias(gguf, &format!("{p}.attn_v.bias"), kv_width)?,
                out: matrix(
                    gguf,
                    &format!("{p}.attn_output.weight"),
                    &[c.hidden, q_width],
                )?,
                ffn_norm: vector(gguf, &format!("{p}.ffn_norm.weight"), c.hidden)?,
                gate_up: Projections::new(vec![
                    raw(
                        gguf,
                        &format!("{p}.ffn_gate.weight"),
                        &[c.feed_forward, c.hidden],
                    )?,
                    raw(
                        gguf,
                        &format!("{p}.ffn_up.weight"),
                        &[c.feed_forward, c.hidden],
                    )?,
                ])?,
                down: matrix(
                    gguf,
                    &format!("{p}.ffn_down.weight"),
                    &[c.hidden, c.feed_forward],
                )?,
            });
        }
        let norm = vector(gguf, "output_norm.weight", c.hidden)?;
        let output = if gguf.has_tensor("output.weight") {
            matrix(gguf, "output.weight", &[c.vocab_size, c.hidden])?
        } else {
            // Tied embeddings: the output projection is the embedding matrix.
            QMatMul::from_arc(embedding.clone())?
        };
        let positions = c.context_length.min(MAX_POSITIONS);
        let half = c.head_dim / 2;
        let inv_freq: Vec<f32> = (0..half)
            .map(|i| 1.0 / c.rope_base.powf((2 * i) as f32 / c.head_dim as f32))
            .collect();
        let inv_freq = Tensor::from_vec(inv_freq, (1, half), &Device::Cpu)?;
        let t = Tensor::arange(0u32, positions as u32, &Device::Cpu)?
            .to_dtype(DType::F32)?
            .reshape((positions, 1))?;
        let freqs = t.matmul(&inv_freq)?;
        Ok(Model {
            cos: freqs.cos()?,
            sin: freqs.sin()?,
            config,
            embedding,
            layers,
            norm,
            output,
        })
    }

    /// Runs `tokens` after what `cache` holds, appends their keys and values to it, and
    /// returns the logits for the position after the last token.
    pub fn forward(&self, tokens: &[u32], cache: &mut KvCache) -> Result<Vec<f32>> {
        let c = &self.config;
        let len = tokens.len();
        let offset = cache.len;
        if len == 0 {
            return Err(Error::Request("no tokens to run".into()));
        }
        if offset + len > cache.capacity || offset + len > self.cos.dim(0)? {
            return Err(Error::ContextFull {
                needed: offset + len,
                prompt: offset + len,
                max_new: 0,
                limit: cache.capacity.min(self.cos.dim(0)?),
            });
        }
        if let Some(bad) = tokens.iter().find(|t| **t as usize >= c.vocab_size) {
            return Err(Error::Request(format!(
                "token {bad} is outside the vocabulary"
            )));
        }
        let ids = Tensor::new(tokens, &Device::Cpu)?.unsqueeze(0)?;
        let mut x = self.embedding.embedding(&ids)?;
        let cos = self.cos.narrow(0, offset, len)?;
        let sin = self.sin.narrow(0, offset, len)?;
        let group = c.heads / c.kv_heads;
        let total = offset + len;
        let mask = if len > 1 {
            // Row r*len + i of a key/value group is query i of the group's r-th head.
            let mut m = vec![0f32; group * len * total];
            for r in 0..group {
                for i in 0..len {
                    let row = &mut m[(r * len + i) * total..(r * len + i + 1) * total];
                    for v in row.iter_mut().skip(offset + i + 1) {
                        *v = f32::NEG_INFINITY;
                    }
                }
            }
            Some(Tensor::from_vec(m, (group * len, total), &Device::Cpu)?)
        } else {
            None
        };
        let scale = 1.0 / (c.head_dim as f64).sqrt();
        for (li, layer) in self.layers.iter().enumerate() {
            let h = candle_nn::ops::rms_norm(&x, &layer.attn_norm, c.rms_eps)?;
            let qkv = layer.qkv.forward(&h)?;
            let heads = |y: &Tensor, b: &Option<Tensor>, n: usize| -> Result<Tensor> {
                let y = match b {
                    Some(b) => y.broadcast_add(b)?,
                    None => y.clone(),
                };
                Ok(y.reshape((1, len, n, c.head_dim))?
                    .transpose(1, 2)?
                    .contiguous()?)
            };
            let q = heads(&qkv[0], &layer.q_bias, c.heads)?;
            let k = heads(&qkv[1], &layer.k_bias, c.kv_heads)?;
            let v = heads(&qkv[2], &layer.v_bias, c.kv_heads)?;
            let (q, k) = match c.architecture {
                Architecture::Llama => (
                    candle_nn::rotary_emb::rope_i(&q, &cos, &sin)?,
                    candle_nn::rotary_emb::rope_i(&k, &cos, &sin)?,
                ),
                Architecture::Qwen2 => (
                    candle_nn::rotary_emb::rope(&q, &cos, &sin)?,
                    candle_nn::rotary_emb::rope(&k, &cos, &sin)?,
                ),
            };
            cache.k[li].slice_set(&k, 2, offset)?;
            cache.v[li].slice_set(&v, 2, offset)?;
            let keys = cache.k[li].narrow(2, 0, total)?;
            let values = cache.v[li].narrow(2, 0, total)?;
            // Grouped-query attention without copying keys: the heads sharing one
            // key/value head are stacked as extra query rows.
            let q = (q.reshape((1, c.kv_heads, group * len, c.head_dim))? * scale)?;
            let mut att = q.matmul(&keys.t()?)?;
            if let Some(mask) = &mask {
                att = att.broadcast_add(mask)?;
            }
            let att = candle_nn::ops::softmax_last_dim(&att)?;
            let y = att
                .matmul(&values)?
                .reshape((1, c.heads, len, c.head_dim))?
                .transpose(1, 2)?
                .reshape((1, len, c.heads * c.head_dim))?;
            x = (x + layer.out.forward(&y)?)?;
            let h = candle_nn::ops::rms_norm(&x, &layer.ffn_norm, c.rms_eps)?;
            let gate_up = layer.gate_up.forward(&h)?;
            let gated = (gate_up[0].silu()? * &gate_up[1])?;
            x = (x + layer.down.forward(&gated)?)?;
        }
        cache.len = total;
        let last = x.narrow(1, len - 1, 1)?;
        let last = candle_nn::ops::rms_norm(&last, &self.norm, c.rms_eps)?;
        let logits = self.output.forward(&last)?;
        Ok(logits
            .flatten_all()?
            .to_dtype(DType::F32)?
            .to_vec1::<f32>()?)
    }
}

/// Keys and values of the tokens run so far, preallocated to a fixed capacity so memory
/// stays bounded and appending never copies what is already there.
pub struct KvCache {
    k: Vec<Tensor>,
    v: Vec<Tensor>,
    len: usize,
    capacity: usize,
}

impl KvCache {
    pub fn new(config: &Config, capacity: usize) -> Result<Self> {
        let shape = (1, config.kv_heads, capacity, config.head_dim);
        let mut k = Vec::with_capacity(config.layers);
        let mut v = Vec::with_capacity(config.layers);
        for _ in 0..config.layers {
            k.push(Tensor::zeros(shape, DType::F32, &Device::Cpu)?);
            v.push(Tensor::zeros(shape, DType::F32, &Device::Cpu)?);
        }
        Ok(KvCache {
            k,
            v,
            len: 0,
            capacity,
        })
    }

    /// Tokens held.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Forgets every position from `len` on (the rows stay allocated and are overwritten).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Bytes the cache holds allocated.
    pub fn bytes(&self) -> usize {
        self.k
            .iter()
            .chain(self.v.iter())
            .map(|t| t.elem_count() * 4)
            .sum()
    }
}

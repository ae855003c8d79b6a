//! Tiny models with random weights written as GGUF files: a byte-level BPE vocabulary of
//! 256 bytes, a few merges and the ChatML control tokens, in each supported architecture.

use std::path::Path;

use candle_core::quantized::gguf_file::Value;
use candle_core::quantized::{GgmlDType, QTensor, gguf_file};
use candle_core::{Device, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub const HIDDEN: usize = 64;
pub const HEADS: usize = 4;
pub const KV_HEADS: usize = 2;
pub const LAYERS: usize = 2;
pub const FFN: usize = 128;
pub const CONTEXT: usize = 512;

/// GPT-2's byte-to-character map, in byte order.
fn byte_chars() -> Vec<char> {
    let mut next = 256u32;
    (0..=255u8)
        .map(|b| {
            if matches!(b, b'!'..=b'~' | 0xa1..=0xac | 0xae..=0xff) {
                char::from(b)
            } else {
                let c = char::from_u32(next).unwrap();
                next += 1;
                c
            }
        })
        .collect()
}

pub const MERGES: &[(&str, &str)] = &[
    ("h", "e"),
    ("l", "l"),
    ("he", "ll"),
    ("Ġ", "t"),
    ("Ġt", "he"),
    ("o", "r"),
    ("Ġ", "d"),
    ("o", "or"),
    ("Ġd", "oor"),
];

pub struct Vocab {
    pub tokens: Vec<String>,
    pub types: Vec<i32>,
}

pub fn vocab() -> Vocab {
    let mut tokens: Vec<String> = byte_chars().into_iter().map(String::from).collect();
    let mut types = vec![1; tokens.len()];
    for (a, b) in MERGES {
        tokens.push(format!("{a}{b}"));
        types.push(1);
    }
    for special in ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] {
        tokens.push(special.to_string());
        types.push(3);
    }
    Vocab { tokens, types }
}

fn random(rng: &mut StdRng, dims: &[usize], scale: f32) -> Tensor {
    let n: usize = dims.iter().product();
    let data: Vec<f32> = (0..n)
        .map(|_| (rng.random::<f32>() * 2.0 - 1.0) * scale)
        .collect();
    Tensor::from_vec(data, dims, &Device::Cpu).unwrap()
}

/// Writes a tiny `arch` ("llama" or "qwen2") model with weights quantized as `dtype`.
pub fn write(path: &Path, arch: &str, dtype: GgmlDType, seed: u64) {
    write_mixed(path, arch, dtype, dtype, seed)
}

/// Like [`write`], with the value and up projections in `other` (as in Q4_K_M files,
/// which mix formats within a layer).
pub fn write_mixed(path: &Path, arch: &str, dtype: GgmlDType, other: GgmlDType, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let v = vocab();
    let n_vocab = v.tokens.len();
    let eos = (n_vocab - 1) as u32; // <|im_end|>
    let bos = (n_vocab - 3) as u32; // <|endoftext|>
    let key = |k: &str| format!("{arch}.{k}");
    let pre = if arch == "qwen2" { "qwen2" } else { "smollm" };
    let metadata: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::String(arch.into())),
        ("general.name".into(), Value::String(format!("tiny-{arch}"))),
        (key("context_length"), Value::U32(CONTEXT as u32)),
        (key("embedding_length"), Value::U32(HIDDEN as u32)),
        (key("block_count"), Value::U32(LAYERS as u32)),
        (key("feed_forward_length"), Value::U32(FFN as u32)),
        (key("attention.head_count"), Value::U32(HEADS as u32)),
        (key("attention.head_count_kv"), Value::U32(KV_HEADS as u32)),
        (key("attention.layer_norm_rms_epsilon"), Value::F32(1e-5)),
        (key("rope.freq_base"), Value::F32(10_000.0)),
        ("tokenizer.ggml.model".into(), Value::String("gpt2".into())),
        ("tokenizer.ggml.pre".into(), Value::String(pre.into())),
        (
            "tokenizer.ggml.tokens".into(),
            Value::Array(v.tokens.iter().cloned().map(Value::String).collect()),
        ),
        (
            "tokenizer.ggml.token_type".into(),
            Value::Array(v.types.iter().map(|t| Value::I32(*t)).collect()),
        ),
        (
            "tokenizer.ggml.merges".into(),
            Value::Array(
                MERGES
                    .iter()
                    .map(|(a, b)| Value::String(format!("{a} {b}")))
                    .collect(),
            ),
        ),
        ("tokenizer.ggml.eos_token_id".into(), Value::U32(eos)),
        ("tokenizer.ggml.bos_token_id".into(), Value::U32(bos)),
        ("tokenizer.ggml.add_bos_token".into(), Value::Bool(false)),
    ];
    let head_dim = HIDDEN / HEADS;
    let q = |t: Tensor| QTensor::quantize(&t, dtype).unwrap();
    let q_other = |t: Tensor| QTensor::quantize(&t, other).unwrap();
    let dense = |t: Tensor| QTensor::quantize(&t, GgmlDType::F32).unwrap();
    let ones = |n: usize| Tensor::ones(n, candle_core::DType::F32, &Device::Cpu).unwrap();
    let mut tensors: Vec<(String, QTensor)> = Vec::new();
    // Large embedding/output weights make the next-token distribution peaked, so that
    // greedy choices are not decided by rounding noise.
    tensors.push((
        "token_embd.weight".into(),
        q(random(&mut rng, &[n_vocab, HIDDEN], 0.5)),
    ));
    for i in 0..LAYERS {
        let p = format!("blk.{i}");
        tensors.push((format!("{p}.attn_norm.weight"), dense(ones(HIDDEN))));
        tensors.push((
            format!("{p}.attn_q.weight"),
            q(random(&mut rng, &[HIDDEN, HIDDEN], 0.3)),
        ));
        tensors.push((
            format!("{p}.attn_k.weight"),
            q(random(&mut rng, &[KV_HEADS * head_dim, HIDDEN], 0.3)),
        ));
        tensors.push((
            format!("{p}.attn_v.weight"),
            q_other(random(&mut rng, &[KV_HEADS * head_dim, HIDDEN], 0.3)),
        ));
        if arch == "qwen2" {
            tensors.push((
                format!("{p}.attn_q.bias"),
                dense(random(&mut rng, &[HIDDEN], 0.1)),
            ));
            tensors.push((
                format!("{p}.attn_k.bias"),
                dense(random(&mut rng, &[KV_HEADS * head_dim], 0.1)),
            ));
            tensors.push((
                format!("{p}.attn_v.bias"),
                dense(random(&mut rng, &[KV_HEADS * head_dim], 0.1)),
            ));
        }
        tensors.push((
            format!("{p}.attn_output.weight"),
            q(random(&mut rng, &[HIDDEN, HIDDEN], 0.1)),
        ));
        tensors.push((format!("{p}.ffn_norm.weight"), dense(ones(HIDDEN))));
        tensors.push((
            format!("{p}.ffn_gate.weight"),
            q(random(&mut rng, &[FFN, HIDDEN], 0.2)),
        ));
        tensors.push((
            format!("{p}.ffn_up.weight"),
            q(random(&mut rng, &[FFN, HIDDEN], 0.2)),
        ));
        tensors.push((
            format!("{p}.ffn_down.weight"),
            q(random(&mut rng, &[HIDDEN, FFN], 0.1)),
        ));
    }
    tensors.push(("output_norm.weight".into(), dense(ones(HIDDEN))));
    if arch == "llama" {
        tensors.push((
            "output.weight".into(),
            q(random(&mut rng, &[n_vocab, HIDDEN], 1.0)),
        ));
    }
    let meta: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let named: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, t)| (k.as_str(), t)).collect();
    let mut file = std::fs::File::create(path).unwrap();
    gguf_file::write(&mut file, &meta, &named).unwrap();
}

//! Measuring a loaded model: prefill and decode speed, time to first token, peak memory.
//! `gatehouse model bench` calls [`bench`]; the figures go in BENCHMARKS.md.

use std::time::Instant;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::model::KvCache;

/// One measurement.
#[derive(Debug, Clone)]
pub struct BenchReport {
    pub prompt_tokens: usize,
    pub decode_tokens: usize,
    pub threads: usize,
    pub prefill_secs: f64,
    pub prefill_tokens_per_sec: f64,
    /// Prefill plus choosing the first token.
    pub first_token_secs: f64,
    pub decode_secs: f64,
    pub decode_tokens_per_sec: f64,
    /// The process's peak resident memory (VmHWM), when the system reports it.
    pub peak_rss_bytes: Option<u64>,
}

/// Runs a `prompt_tokens`-token prompt in one pass, then `decode_tokens` greedy tokens
/// one at a time (an end-of-text token does not stop it), on a KV cache of its own.
pub fn bench(engine: &Engine, prompt_tokens: usize, decode_tokens: usize) -> Result<BenchReport> {
    if prompt_tokens == 0 || decode_tokens == 0 {
        return Err(Error::Request(
            "bench needs at least one prompt and one decode token".into(),
        ));
    }
    let text = "A facilities admin reviews who may open which door and when. \
        Badge 0042 opened the loading dock at 07:45; the server room stayed locked. ";
    let mut prompt = Vec::with_capacity(prompt_tokens);
    let unit = engine.tokenizer().encode(text)?;
    while prompt.len() < prompt_tokens {
        let take = (prompt_tokens - prompt.len()).min(unit.len());
        prompt.extend_from_slice(&unit[..take]);
    }
    let model = engine.model();
    let mut cache = KvCache::new(&model.config, prompt_tokens + decode_tokens)?;
    let start = Instant::now();
    let mut logits = model.forward(&prompt, &mut cache)?;
    let prefill_secs = start.elapsed().as_secs_f64();
    let mut token = argmax(&logits);
    let first_token_secs = start.elapsed().as_secs_f64();
    let decode_start = Instant::now();
    for _ in 1..decode_tokens {
        logits = model.forward(&[token], &mut cache)?;
        token = argmax(&logits);
    }
    let decode_secs = decode_start.elapsed().as_secs_f64();
    let decoded = decode_tokens - 1;
    Ok(BenchReport {
        prompt_tokens,
        decode_tokens,
        threads: crate::engine::effective_threads(),
        prefill_secs,
        prefill_tokens_per_sec: prompt_tokens as f64 / prefill_secs,
        first_token_secs,
        decode_secs,
        decode_tokens_per_sec: if decoded == 0 {
            0.0
        } else {
            decoded as f64 / decode_secs
        },
        peak_rss_bytes: peak_rss(),
    })
}

fn argmax(logits: &[f32]) -> u32 {
    logits
        .iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &l)| {
            if l > best.1 { (i, l) } else { best }
        })
        .0 as u32
}

/// VmHWM from /proc/self/status (Linux); None elsewhere.
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

//! One loaded model shared by every request: a fair, bounded queue in front of it, one
//! KV cache whose prefix carries over between requests, and the generation loop
//! (sampling, streaming, stop sequences, cancellation, constrained output).

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use crate::constrain::{Grammars, validate};
use crate::error::{Error, Result};
use crate::gguf::Gguf;
use crate::model::{Config, KvCache, Model};
use crate::tokenizer::{Message, TextTokenizer};

/// How an engine is set up.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Tokens the KV cache holds (prompt plus answer); capped at the model's own
    /// context length and at 32768. Memory: 2 × layers × key/value width × 4 bytes per token.
    pub context_size: usize,
    /// Requests that may wait while one runs; one more gets [`Error::Busy`].
    pub queue_limit: usize,
    /// Prompt tokens run per step: bounds the attention scratch memory and how long a
    /// cancellation waits.
    pub prefill_chunk: usize,
    /// Worker threads the caller wants. candle's CPU kernels run on one process-wide
    /// pool sized from `CANDLE_NUM_THREADS` (else the physical cores) when first used,
    /// so a different number here is refused at load with the variable to set.
    pub threads: Option<usize>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            context_size: 4096,
            queue_limit: 4,
            prefill_chunk: 256,
            threads: None,
        }
    }
}

/// How the next token is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampling {
    /// Always the most likely token: the same prompt gives the same answer.
    Greedy,
    /// Softmax at `temperature`, keeping the most likely tokens whose probabilities add up
    /// to `top_p`; `seed` makes it repeatable.
    Random {
        temperature: f32,
        top_p: f32,
        seed: u64,
    },
}

/// What the model continues.
#[derive(Debug, Clone)]
pub enum Prompt {
    /// Raw text (BOS added where the model wants it).
    Text(String),
    /// A conversation in the model family's chat format; the answer is the assistant's
    /// next turn.
    Chat(Vec<Message>),
}

/// A way to stop a request from another thread; clones share one flag.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// One generation request.
#[derive(Debug, Clone)]
pub struct Request {
    pub prompt: Prompt,
    pub max_tokens: usize,
    pub sampling: Sampling,
    /// Text that ends the answer; the answer excludes it.
    pub stop: Vec<String>,
    pub cancel: CancelToken,
    /// When set, the answer is one JSON value valid against this schema.
    pub schema: Option<Value>,
}

impl Request {
    pub fn new(prompt: Prompt) -> Self {
        Request {
            prompt,
            max_tokens: 256,
            sampling: Sampling::Greedy,
            stop: Vec::new(),
            cancel: CancelToken::new(),
            schema: None,
        }
    }
    pub fn text(text: impl Into<String>) -> Self {
        Self::new(Prompt::Text(text.into()))
    }
    pub fn chat(messages: Vec<Message>) -> Self {
        Self::new(Prompt::Chat(messages))
    }
    pub fn max_tokens(mut self, n: usize) -> Self {
        self.max_tokens = n;
        self
    }
    pub fn sampling(mut self, sampling: Sampling) -> Self {
        self.sampling = sampling;
        self
    }
    pub fn stop(mut self, stop: impl Into<String>) -> Self {
        self.stop.push(stop.into());
        self
    }
    pub fn cancel_token(mut self, cancel: CancelToken) -> Self {
        self.cancel = cancel;
        self
    }
    pub fn schema(mut self, schema: Value) -> Self {
        self.schema = Some(schema);
        self
    }
}

/// Why generation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    /// The model ended its turn (or its JSON value was complete).
    EndOfTurn,
    /// A stop sequence appeared.
    Stop(String),
    /// `max_tokens` were generated.
    Length,
}

/// Where the time went.
#[derive(Debug, Clone, Default)]
pub struct Timings {
    /// Waiting in the queue.
    pub queued: Duration,
    /// Running the prompt tokens not already in the cache.
    pub prefill: Duration,
    /// From the start of the prompt's run to the first generated token.
    pub first_token: Duration,
    /// Generating the answer after the first token.
    pub decode: Duration,
    /// Computing grammar masks (included in `decode`).
    pub mask: Duration,
}

/// A finished answer.
#[derive(Debug, Clone)]
pub struct Generation {
    pub text: String,
    pub tokens: Vec<u32>,
    pub finish: Finish,
    pub prompt_tokens: usize,
    /// Prompt tokens whose keys and values were already in the cache.
    pub reused_tokens: usize,
    pub timings: Timings,
}

struct Queue {
    state: Mutex<QueueState>,
    turn: Condvar,
    limit: usize,
}

#[derive(Default)]
struct QueueState {
    waiting: VecDeque<u64>,
    running: bool,
    next: u64,
}

/// The right to run: while held, no other request uses the model.
struct Permit<'a>(&'a Queue);

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        lock(&self.0.state).running = false;
        self.0.turn.notify_all();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks cannot leave them inconsistent: recover.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Queue {
    /// Waits its turn, first come first served; refuses at once past the bound.
    fn enter(&self, cancel: &CancelToken) -> Result<Permit<'_>> {
        let mut state = lock(&self.state);
        if state.running && state.waiting.len() >= self.limit {
            return Err(Error::Busy {
                waiting: state.waiting.len(),
                limit: self.limit,
            });
        }
        let ticket = state.next;
        state.next += 1;
        state.waiting.push_back(ticket);
        loop {
            if !state.running && state.waiting.front() == Some(&ticket) {
                state.waiting.pop_front();
                state.running = true;
                return Ok(Permit(self));
            }
            if cancel.is_cancelled() {
                state.waiting.retain(|t| *t != ticket);
                drop(state);
                self.turn.notify_all();
                return Err(Error::Cancelled);
            }
            state = self
                .turn
                .wait_timeout(state, Duration::from_millis(50))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

struct Cached {
    kv: KvCache,
    tokens: Vec<u32>,
}

/// A loaded model and everything needed to serve requests with it. `Sync`: share it
/// behind an `Arc`; requests take turns.
pub struct Engine {
    model: Model,
    tokenizer: TextTokenizer,
    grammars: Grammars,
    queue: Queue,
    cache: Mutex<Cached>,
    /// The cache's capacity, kept outside its lock: checking a request's budget must not
    /// wait for the request running.
    context_size: usize,
    /// Bytes the cache holds allocated.
    cache_bytes: usize,
    options: EngineOptions,
}

/// The number of threads candle's CPU kernels run on in this process.
pub fn effective_threads() -> usize {
    candle_core::utils::barrier_pool().n_workers() + 1
}

impl Engine {
    /// Loads a GGUF model (installed or not) from `path`.
    pub fn load(path: &Path, options: EngineOptions) -> Result<Self> {
        if let Some(wanted) = options.threads {
            let have = effective_threads();
            if wanted != have {
                return Err(Error::Unsupported(format!(
                    "{wanted} threads were asked for but the kernels run on {have}: start the process with CANDLE_NUM_THREADS={wanted}"
                )));
            }
        }
        if options.prefill_chunk == 0 || options.context_size < 2 {
            return Err(Error::Request(
                "prefill_chunk must be at least 1 and context_size at least 2".into(),
            ));
        }
        let mut gguf = Gguf::open(path)?;
        let tokenizer = TextTokenizer::from_gguf(&gguf)?;
        let model = Model::from_gguf(&mut gguf)?;
        let grammars = Grammars::new(&tokenizer, tokenizer.plain_clone())?;
        let context = options
            .context_size
            .min(model.config.context_length)
            .min(crate::model::MAX_POSITIONS);
        let kv = KvCache::new(&model.config, context)?;
        let cache_bytes = kv.bytes();
        Ok(Engine {
            model,
            tokenizer,
            grammars,
            queue: Queue {
                state: Mutex::new(QueueState::default()),
                turn: Condvar::new(),
                limit: options.queue_limit,
            },
            cache: Mutex::new(Cached {
                kv,
                tokens: Vec::new(),
            }),
            context_size: context,
            cache_bytes,
            options,
        })
    }

    pub fn config(&self) -> &Config {
        &self.model.config
    }

    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    /// The model itself, for measurements that bypass the queue and the shared cache.
    pub fn model(&self) -> &Model {
        &self.model
    }

    pub fn options(&self) -> &EngineOptions {
        &self.options
    }

    /// Tokens a request may use in all (prompt and answer).
    pub fn context_size(&self) -> usize {
        self.context_size
    }

    /// Requests waiting for their turn (not counting the one running).
    pub fn queued(&self) -> usize {
        lock(&self.queue.state).waiting.len()
    }

    /// Bytes held by the KV cache.
    pub fn cache_bytes(&self) -> usize {
        self.cache_bytes
    }

    /// Empties the KV cache (the next request runs its whole prompt). Waits for the
    /// request running, if any.
    pub fn clear_cache(&self) {
        let mut cache = lock(&self.cache);
        cache.kv.truncate(0);
        cache.tokens.clear();
    }

    /// The prompt's tokens as the model will see them.
    pub fn prompt_tokens(&self, prompt: &Prompt) -> Result<Vec<u32>> {
        match prompt {
            Prompt::Text(text) => self.tokenizer.encode_prompt(text),
            Prompt::Chat(messages) => self.tokenizer.encode_chat(messages),
        }
    }

    /// Runs `request`, calling `on_text` with each piece of the answer as soon as it is
    /// certain (never text that a stop sequence will remove, never half a character).
    pub fn generate(&self, request: &Request, on_text: &mut dyn FnMut(&str)) -> Result<Generation> {
        let tokens = self.prompt_tokens(&request.prompt)?;
        if tokens.is_empty() {
            return Err(Error::Request("the prompt is empty".into()));
        }
        if let Sampling::Random {
            temperature, top_p, ..
        } = request.sampling
            && !(temperature > 0.0 && temperature.is_finite() && top_p > 0.0 && top_p <= 1.0)
        {
            return Err(Error::Request(format!(
                "temperature must be above 0 and top_p in (0, 1], got {temperature} and {top_p}"
            )));
        }
        if request.stop.iter().any(String::is_empty) {
            return Err(Error::Request("a stop sequence is empty".into()));
        }
        if request.max_tokens == 0 {
            return Err(Error::Request("max_tokens must be at least 1".into()));
        }
        let limit = self.context_size();
        let needed = tokens.len() + request.max_tokens;
        if needed > limit {
            return Err(Error::ContextFull {
                needed,
                prompt: tokens.len(),
                max_new: request.max_tokens,
                limit,
            });
        }
        // Compiled before queueing: a bad schema is refused without waiting.
        let mut matcher = match &request.schema {
            Some(schema) => Some(self.grammars.matcher(schema)?),
            None => None,
        };
        let queued_at = Instant::now();
        let _permit = self.queue.enter(&request.cancel)?;
        let mut timings = Timings {
            queued: queued_at.elapsed(),
            ..Timings::default()
        };
        let mut cache = lock(&self.cache);
        let cache = &mut *cache;

        // Keep the longest common prefix; at least one prompt token must run to give
        // the logits of the next position.
        let mut reused = cache
            .tokens
            .iter()
            .zip(&tokens)
            .take_while(|(a, b)| a == b)
            .count()
            .min(cache.kv.len());
        if reused == tokens.len() {
            reused -= 1;
        }
        cache.kv.truncate(reused);
        cache.tokens.truncate(reused);

        let started = Instant::now();
        let mut logits = Vec::new();
        for chunk in tokens[reused..].chunks(self.options.prefill_chunk) {
            if request.cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            logits = self.model.forward(chunk, &mut cache.kv)?;
            cache.tokens.extend_from_slice(chunk);
        }
        timings.prefill = started.elapsed();

        let mut sampler = Sampler::new(request.sampling);
        let mut out = Output::new(&request.stop);
        let mut generated = Vec::new();
        let vocab = self.tokenizer.vocab_size();
        let mut finish = Finish::Length;
        let mut first_token_at = None;
        for step in 0..request.max_tokens {
            if request.cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            // Rows past the tokenizer's vocabulary are padding: never sampled.
            for l in logits.iter_mut().skip(vocab) {
                *l = f32::NEG_INFINITY;
            }
            if let Some(m) = matcher.as_mut() {
                let t = Instant::now();
                let mask = m
                    .compute_mask()
                    .map_err(|e| Error::Grammar(e.to_string()))?;
                for (i, l) in logits.iter_mut().enumerate().take(vocab) {
                    if !mask.is_allowed(i as u32) {
                        *l = f32::NEG_INFINITY;
                    }
                }
                timings.mask += t.elapsed();
            }
            let token = sampler.sample(&logits)?;
            if step == 0 {
                timings.first_token = started.elapsed();
                first_token_at = Some(Instant::now());
            }
            if self.tokenizer.end_of_turn().contains(&token) {
                finish = Finish::EndOfTurn;
                break;
            }
            generated.push(token);
            if let Some(m) = matcher.as_mut() {
                m.consume_token(token)
                    .map_err(|e| Error::Grammar(e.to_string()))?;
            }
            if let Some(stop) = out.push(self.tokenizer.decode_bytes(&[token]), on_text) {
                finish = Finish::Stop(stop);
                break;
            }
            if matcher.as_ref().is_some_and(|m| m.is_stopped()) {
                finish = Finish::EndOfTurn;
                break;
            }
            if step + 1 < request.max_tokens {
                logits = self.model.forward(&[token], &mut cache.kv)?;
                cache.tokens.push(token);
            }
        }
        timings.decode = first_token_at.map(|t| t.elapsed()).unwrap_or_default();
        out.finish(on_text);
        if let (Some(schema), Some(m)) = (&request.schema, matcher.as_mut()) {
            let complete = m.is_stopped()
                || m.is_accepting()
                    .map_err(|e| Error::Grammar(e.to_string()))?;
            if !complete {
                return Err(Error::Incomplete(format!(
                    "the JSON value was not finished within {} tokens",
                    request.max_tokens
                )));
            }
            let value: Value = serde_json::from_str(&out.text)
                .map_err(|e| Error::Incomplete(format!("the output is not JSON: {e}")))?;
            validate(schema, &value).map_err(Error::Incomplete)?;
        }
        Ok(Generation {
            text: out.text,
            tokens: generated,
            finish,
            prompt_tokens: tokens.len(),
            reused_tokens: reused,
            timings,
        })
    }

    /// Generates one JSON value valid against `request.schema` (which must be set) and
    /// returns it parsed.
    pub fn generate_json(&self, request: &Request) -> Result<(Value, Generation)> {
        if request.schema.is_none() {
            return Err(Error::Request("generate_json needs a schema".into()));
        }
        let generation = self.generate(request, &mut |_| {})?;
        let value = serde_json::from_str(&generation.text)
            .map_err(|e| Error::Incomplete(format!("the output is not JSON: {e}")))?;
        Ok((value, generation))
    }
}

/// Picks tokens from logits.
struct Sampler {
    sampling: Sampling,
    rng: Option<StdRng>,
}

impl Sampler {
    fn new(sampling: Sampling) -> Self {
        let rng = match sampling {
            Sampling::Greedy => None,
            Sampling::Random { seed, .. } => Some(StdRng::seed_from_u64(seed)),
        };
        Sampler { sampling, rng }
    }

    fn sample(&mut self, logits: &[f32]) -> Result<u32> {
        let best = logits
            .iter()
            .enumerate()
            .filter(|(_, l)| l.is_finite())
            .fold(None::<(usize, f32)>, |best, (i, &l)| match best {
                Some((_, b)) if b >= l => best,
                _ => Some((i, l)),
            })
            .ok_or_else(|| Error::Grammar("no token is allowed at this point".into()))?;
        let (
            Sampling::Random {
                temperature, top_p, ..
            },
            Some(rng),
        ) = (self.sampling, self.rng.as_mut())
        else {
            return Ok(best.0 as u32);
        };
        let mut probs: Vec<(usize, f32)> = logits
            .iter()
            .enumerate()
            .filter(|(_, l)| l.is_finite())
            .map(|(i, l)| (i, ((l - best.1) / temperature).exp()))
            .collect();
        probs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let total: f32 = probs.iter().map(|p| p.1).sum();
        let mut kept = 0;
        let mut mass = 0.0;
        for p in &probs {
            kept += 1;
            mass += p.1 / total;
            if mass >= top_p {
                break;
            }
        }
        probs.truncate(kept.max(1));
        let kept_total: f32 = probs.iter().map(|p| p.1).sum();
        let mut r = rng.random::<f32>() * kept_total;
        for (i, p) in &probs {
            if r < *p {
                return Ok(*i as u32);
            }
            r -= p;
        }
        Ok(probs[probs.len() - 1].0 as u32)
    }
}

/// The answer as it grows: bytes in, text out once it is whole and past any stop
/// sequence that could still be forming.
struct Output<'a> {
    stops: &'a [String],
    bytes: Vec<u8>,
    text: String,
    emitted: usize,
    stopped: bool,
}

/// Length of the longest prefix of `bytes` that does not end inside a character that
/// more bytes could complete (invalid sequences before that count as complete: they
/// will never become valid).
fn complete_prefix(bytes: &[u8]) -> usize {
    let mut start = 0;
    loop {
        match std::str::from_utf8(&bytes[start..]) {
            Ok(_) => return bytes.len(),
            Err(e) => match e.error_len() {
                Some(n) => start += e.valid_up_to() + n,
                None => return start + e.valid_up_to(),
            },
        }
    }
}

impl<'a> Output<'a> {
    fn new(stops: &'a [String]) -> Self {
        Output {
            stops,
            bytes: Vec::new(),
            text: String::new(),
            emitted: 0,
            stopped: false,
        }
    }

    /// Adds a token's bytes; returns the stop sequence if one now appears.
    fn push(&mut self, bytes: Vec<u8>, on_text: &mut dyn FnMut(&str)) -> Option<String> {
        self.bytes.extend(bytes);
        let complete = complete_prefix(&self.bytes);
        self.text = String::from_utf8_lossy(&self.bytes[..complete]).into_owned();
        if let Some((at, stop)) = self
            .stops
            .iter()
            .filter_map(|s| self.text.find(s.as_str()).map(|at| (at, s)))
            .min_by_key(|(at, _)| *at)
        {
            let stop = stop.clone();
            self.text.truncate(at);
            self.stopped = true;
            if at > self.emitted {
                on_text(&self.text[self.emitted..at]);
                self.emitted = at;
            }
            return Some(stop);
        }
        // Hold back a tail that could be the start of a stop sequence.
        let mut safe = self.text.len();
        for s in self.stops {
            for (i, _) in s.char_indices().skip(1) {
                if self.text.ends_with(&s[..i]) {
                    safe = safe.min(self.text.len() - i);
                }
            }
        }
        if safe > self.emitted {
            on_text(&self.text[self.emitted..safe]);
            self.emitted = safe;
        }
        None
    }

    /// Flushes what was held back when no stop sequence ended the answer, including
    /// the bytes of a character the answer ended in the middle of.
    fn finish(&mut self, on_text: &mut dyn FnMut(&str)) {
        if self.stopped {
            return;
        }
        self.text = String::from_utf8_lossy(&self.bytes).into_owned();
        if self.text.len() > self.emitted {
            on_text(&self.text[self.emitted..]);
            self.emitted = self.text.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&[u8]]) -> (Vec<String>, String, Option<String>) {
        let stops: Vec<String> = stops.iter().map(|s| s.to_string()).collect();
        let mut out = Output::new(&stops);
        let mut seen = Vec::new();
        let mut stopped = None;
        for p in pieces {
            if let Some(s) = out.push(p.to_vec(), &mut |t| seen.push(t.to_string())) {
                stopped = Some(s);
                break;
            }
        }
        if stopped.is_none() {
            out.finish(&mut |t| seen.push(t.to_string()));
        }
        (seen, out.text, stopped)
    }

    #[test]
    fn stop_sequence_split_across_tokens_is_never_streamed() {
        let (seen, text, stop) = run(&["END"], &[b"ab", b"cE", b"N", b"D", b"zz"]);
        assert_eq!(text, "abc");
        assert_eq!(seen.concat(), "abc");
        assert_eq!(stop.as_deref(), Some("END"));
    }

    #[test]
    fn held_back_prefix_is_released_when_it_is_not_a_stop() {
        let (seen, text, stop) = run(&["END"], &[b"aE", b"Nx", b"y"]);
        assert_eq!(text, "aENxy");
        assert_eq!(seen.concat(), "aENxy");
        assert_eq!(stop, None);
    }

    #[test]
    fn a_character_split_between_tokens_streams_whole() {
        let euro = "€".as_bytes();
        let (seen, text, _) = run(&[], &[&euro[..1], &euro[1..], b"!"]);
        assert_eq!(text, "€!");
        assert!(seen.iter().all(|s| !s.contains('\u{fffd}')));
        assert_eq!(seen.concat(), "€!");
    }

    #[test]
    fn invalid_bytes_do_not_hold_back_what_follows() {
        let (seen, text, stop) = run(&["STOP"], &[b"a\x80b", b"cST", b"OP", b"z"]);
        assert_eq!(text, "a\u{fffd}bc");
        assert_eq!(seen.concat(), text);
        assert_eq!(stop.as_deref(), Some("STOP"));
    }

    #[test]
    fn greedy_takes_the_first_best_and_random_is_seeded() {
        let logits = [0.5, 2.0, 2.0, f32::NEG_INFINITY];
        assert_eq!(Sampler::new(Sampling::Greedy).sample(&logits).unwrap(), 1);
        let random = Sampling::Random {
            temperature: 1.0,
            top_p: 0.9,
            seed: 7,
        };
        let a: Vec<u32> = {
            let mut s = Sampler::new(random);
            (0..32).map(|_| s.sample(&logits).unwrap()).collect()
        };
        let b: Vec<u32> = {
            let mut s = Sampler::new(random);
            (0..32).map(|_| s.sample(&logits).unwrap()).collect()
        };
        assert_eq!(a, b);
        assert!(a.iter().all(|t| *t != 3));
        assert!(
            Sampler::new(Sampling::Greedy)
                .sample(&[f32::NEG_INFINITY; 3])
                .is_err()
        );
    }
}

//! Gatehouse's local language-model runtime: quantized GGUF models run on the box's own
//! CPU with candle, with answers that stream, stop, cancel, and (under a JSON schema)
//! always parse and validate. It knows nothing of doors or people; the server's assistant
//! builds on it.
//!
//! # Using it
//!
//! ```no_run
//! use gatehouse_llm::{Engine, EngineOptions, Message, Request, Sampling};
//! # fn main() -> Result<(), gatehouse_llm::Error> {
//! // Once, at install time (the `gatehouse model install` command calls this): hash,
//! // convert Q4_1/Q5_0/Q5_1 tensors to Q8_0, write, verify by loading it back.
//! let report = gatehouse_llm::install(
//!     "SmolLM2-135M-Instruct.Q4_1.gguf".as_ref(),
//!     "/var/lib/gatehouse/models/smollm2-135m.gguf".as_ref(),
//!     &mut |_progress| {},
//! )?;
//!
//! // Once per process: the engine is shared (Arc) by every request.
//! let engine = Engine::load(&report.path, EngineOptions::default())?;
//!
//! // A chat turn, streamed piece by piece.
//! let request = Request::chat(vec![Message::user("What is an access level?")])
//!     .max_tokens(200)
//!     .sampling(Sampling::Random { temperature: 0.7, top_p: 0.9, seed: 1 });
//! let answer = engine.generate(&request, &mut |piece| print!("{piece}"))?;
//!
//! // A tool call: the output is one JSON value valid against the schema. Enum values
//! // are narrowed at run time to what exists.
//! let mut schema = serde_json::json!({
//!     "type": "object", "additionalProperties": false, "required": ["door"],
//!     "properties": {"door": {"type": "string"}}});
//! gatehouse_llm::restrict_enum(&mut schema, "/properties/door",
//!     vec!["lobby".into(), "server-room".into()])?;
//! let (call, _) = engine.generate_json(
//!     &Request::chat(vec![Message::user("Which door?")]).schema(schema))?;
//! # let _ = (answer, call); Ok(()) }
//! ```
//!
//! # What is where
//!
//! - [`install`] (gguf.rs): GGUF checks, requantization to Q8_0, verified install.
//! - [`Model`] and [`KvCache`] (model.rs): llama and qwen2 decoders on candle's tensors
//!   and quantized matmuls, our own code so the cache can be kept and cut back.
//! - [`TextTokenizer`] (tokenizer.rs): the tokenizer from the GGUF's vocabulary (or a
//!   `tokenizer.json` beside it), chat templates per family written in code. Message
//!   contents never become control tokens.
//! - [`Engine`] (engine.rs): one model shared by all requests; a fair FIFO queue with a
//!   bound ([`Error::Busy`] past it); one KV cache whose common prefix with the next
//!   prompt is reused (the turns of a conversation); greedy or seeded temperature/top-p
//!   sampling; stop sequences; cancellation through [`CancelToken`]; a context budget
//!   checked before anything runs ([`Error::ContextFull`]).
//! - constrain.rs: JSON-schema constrained decoding through llguidance's token mask, fed
//!   this vocabulary's token bytes; the accepted schema subset is checked again on the
//!   finished output ([`validate`]); [`restrict_enum`] narrows allowed values.
//!
//! - [`bench`] (bench.rs): prefill/decode tokens per second, time to first token, peak
//!   memory; `cargo run -p gatehouse-llm --release --example bench -- MODEL.gguf`.
//!
//! Threads: candle's CPU kernels run on one process-wide pool sized from the
//! `CANDLE_NUM_THREADS` environment variable (else the physical cores) when first used;
//! [`effective_threads`] reports it and [`EngineOptions::threads`] is checked against it.

mod bench;
mod constrain;
mod engine;
mod error;
mod gguf;
mod model;
mod tokenizer;

pub use bench::{BenchReport, bench, peak_rss};
pub use constrain::{restrict_enum, validate};
pub use engine::{
    CancelToken, Engine, EngineOptions, Finish, Generation, Prompt, Request, Sampling, Timings,
    effective_threads,
};
pub use error::{Error, Result};
pub use gguf::{InstallProgress, InstallReport, install, needs_requantize, sha256_file};
pub use model::{Architecture, Config, KvCache, Model};
pub use tokenizer::{ChatTemplate, Message, Role, TextTokenizer};

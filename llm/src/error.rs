//! The crate's one error type: what went wrong with a model file, a request or a grammar.

use std::path::PathBuf;

/// Everything that can fail in this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not a GGUF model this runtime can use (missing metadata or tensors,
    /// wrong shapes).
    #[error("not a usable model file: {0}")]
    Format(String),
    /// A well-formed model of a kind this runtime does not run.
    #[error("unsupported model: {0}")]
    Unsupported(String),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The prompt plus the tokens asked for do not fit in the context window.
    #[error(
        "the request needs {needed} tokens ({prompt} of prompt and up to {max_new} new) but the context holds {limit}; shorten the conversation or ask for fewer tokens"
    )]
    ContextFull {
        needed: usize,
        prompt: usize,
        max_new: usize,
        limit: usize,
    },
    /// The request queue is full: the caller should answer "busy" and let the user retry.
    #[error(
        "the model is busy: {waiting} requests are already waiting (limit {limit}); try again shortly"
    )]
    Busy { waiting: usize, limit: usize },
    /// The caller's cancel token fired; what was generated so far is discarded.
    #[error("the request was cancelled")]
    Cancelled,
    /// The request itself is malformed (bad sampling parameters, empty prompt, ...).
    #[error("invalid request: {0}")]
    Request(String),
    /// The JSON schema could not be turned into a grammar.
    #[error("grammar: {0}")]
    Grammar(String),
    /// Constrained output ended without completing its schema (ran out of tokens).
    #[error("the model's output is incomplete: {0}")]
    Incomplete(String),
    /// candle failed while computing.
    #[error("model computation failed: {0}")]
    Compute(#[from] candle_core::Error),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

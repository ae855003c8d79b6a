//! Text to tokens and back, built from the GGUF's own vocabulary, merges and token types
//! (or a `tokenizer.json` beside the model), and the chat templates of each model family,
//! written here in code: a template inside a model file is never executed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::Value;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::normalizers::unicode::NFC;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::tokenizer::SplitDelimiterBehavior;
use tokenizers::{AddedToken, PreTokenizerWrapper, Tokenizer};

use crate::error::{Error, Result};
use crate::gguf::Gguf;

/// The byte that marks a special token's bytes for the grammar engine (toktrie's
/// convention): special tokens never match text.
pub(crate) const SPECIAL_MARKER: u8 = 0xff;

/// GGUF token types (llama.cpp's `llama_token_type`).
const TYPE_CONTROL: u32 = 3;
const TYPE_USER_DEFINED: u32 = 4;

/// How a family lays out a conversation. Chosen from the vocabulary's control tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatTemplate {
    /// `<|im_start|>role\ncontent<|im_end|>\n` (Qwen2, SmolLM2).
    ChatMl,
    /// `<|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>` (Llama 3).
    Llama3,
}

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// One turn of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

impl Message {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Message {
            role,
            content: content.into(),
        }
    }
    pub fn system(content: impl Into<String>) -> Self {
        Self::new(Role::System, content)
    }
    pub fn user(content: impl Into<String>) -> Self {
        Self::new(Role::User, content)
    }
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new(Role::Assistant, content)
    }
}

/// A model's tokenizer plus what generation needs to know about its vocabulary.
pub struct TextTokenizer {
    /// Recognises nothing special in text: message contents go through this one, so a
    /// `<|im_end|>` typed by a user (or stored in a name) stays text.
    plain: Tokenizer,
    /// Every token's bytes; special tokens start with [`SPECIAL_MARKER`].
    token_bytes: Vec<Vec<u8>>,
    ids: HashMap<String, u32>,
    bos: Option<u32>,
    add_bos: bool,
    eos: u32,
    end_of_turn: Vec<u32>,
    template: Option<ChatTemplate>,
}

/// GPT-2's byte-to-character map used by byte-level BPE vocabularies, inverted.
fn byte_level_chars() -> HashMap<char, u8> {
    let mut map = HashMap::new();
    let mut next = 256u32;
    for b in 0..=255u8 {
        let printable = matches!(b, b'!'..=b'~' | 0xa1..=0xac | 0xae..=0xff);
        let c = if printable {
            char::from(b)
        } else {
            let c = char::from_u32(next).unwrap_or('\u{fffd}');
            next += 1;
            c
        };
        map.insert(c, b);
    }
    map
}

fn string_array(gguf: &Gguf, key: &str) -> Result<Vec<String>> {
    let values = gguf
        .value(key)?
        .to_vec()
        .map_err(|_| Error::Format(format!("`{key}` is not an array")))?;
    values
        .iter()
        .map(|v| {
            v.to_string()
                .cloned()
                .map_err(|_| Error::Format(format!("`{key}` holds a non-string")))
        })
        .collect()
}

fn token_types(gguf: &Gguf, count: usize) -> Result<Vec<u32>> {
    let Ok(values) = gguf.value("tokenizer.ggml.token_type") else {
        return Ok(vec![1; count]);
    };
    let values = values
        .to_vec()
        .map_err(|_| Error::Format("`tokenizer.ggml.token_type` is not an array".into()))?;
    if values.len() != count {
        return Err(Error::Format(format!(
            "{} token types for {count} tokens",
            values.len()
        )));
    }
    values
        .iter()
        .map(|v| match v {
            Value::I32(t) => u32::try_from(*t).map_err(|_| ()),
            Value::U32(t) => Ok(*t),
            Value::I8(t) => u32::try_from(*t).map_err(|_| ()),
            Value::U8(t) => Ok(u32::from(*t)),
            _ => Err(()),
        })
        .map(|r| r.map_err(|()| Error::Format("bad token type".into())))
        .collect()
}

fn split(regex: &str) -> Result<PreTokenizerWrapper> {
    Ok(Split::new(
        SplitPattern::Regex(regex.to_string()),
        SplitDelimiterBehavior::Isolated,
        false,
    )
    .map_err(|e| Error::Tokenizer(e.to_string()))?
    .into())
}

/// The pre-tokenizer each family's tokenizer.json declares, by llama.cpp's
/// `tokenizer.ggml.pre` name.
fn configure(tokenizer: &mut Tokenizer, pre: &str) -> Result<()> {
    const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    let pre_tokenizer: PreTokenizerWrapper = match pre {
        "qwen2" => {
            tokenizer
                .with_normalizer(Some(NFC))
                .map_err(|e| Error::Tokenizer(e.to_string()))?;
            Sequence::new(vec![
                split(QWEN2)?,
                ByteLevel::new(false, false, false).into(),
            ])
            .into()
        }
        "llama-bpe" | "llama3" | "smaug-bpe" => Sequence::new(vec![
            split(LLAMA3)?,
            ByteLevel::new(false, true, false).into(),
        ])
        .into(),
        // SmolLM: every digit on its own, then GPT-2's byte-level split.
        "smollm" => Sequence::new(vec![
            Digits::new(true).into(),
            ByteLevel::new(false, true, true).into(),
        ])
        .into(),
        "gpt2" | "default" => ByteLevel::new(false, true, true).into(),
        other => {
            return Err(Error::Unsupported(format!(
                "pre-tokenizer `{other}` (supported: qwen2, llama-bpe, smollm, gpt2)"
            )));
        }
    };
    tokenizer.with_pre_tokenizer(Some(pre_tokenizer));
    tokenizer.with_decoder(Some(ByteLevelDecoder::new(false, false, false)));
    Ok(())
}

/// A `tokenizer.json` that takes precedence over the GGUF's vocabulary:
/// `NAME.tokenizer.json` beside `NAME.gguf`, or `tokenizer.json` in the same folder.
fn tokenizer_json_beside(model: &Path) -> Option<PathBuf> {
    let stem = model.file_stem()?.to_string_lossy().to_string();
    let named = model.with_file_name(format!("{stem}.tokenizer.json"));
    if named.is_file() {
        return Some(named);
    }
    let plain = model.with_file_name("tokenizer.json");
    plain.is_file().then_some(plain)
}

impl TextTokenizer {
    pub(crate) fn from_gguf(gguf: &Gguf) -> Result<Self> {
        let kind = gguf.string("tokenizer.ggml.model")?;
        if kind != "gpt2" {
            return Err(Error::Unsupported(format!(
                "tokenizer model `{kind}` (this runtime reads byte-level BPE vocabularies, `gpt2`)"
            )));
        }
        let tokens = string_array(gguf, "tokenizer.ggml.tokens")?;
        let types = token_types(gguf, tokens.len())?;
        let chars = byte_level_chars();
        let mut token_bytes = Vec::with_capacity(tokens.len());
        let mut ids = HashMap::with_capacity(tokens.len());
        for (i, (token, ty)) in tokens.iter().zip(&types).enumerate() {
            let bytes = match *ty {
                TYPE_CONTROL => {
                    let mut b = vec![SPECIAL_MARKER];
                    b.extend_from_slice(token.as_bytes());
                    b
                }
                TYPE_USER_DEFINED => token.as_bytes().to_vec(),
                _ => token
                    .chars()
                    .map(|c| chars.get(&c).copied().ok_or(c))
                    .collect::<std::result::Result<Vec<u8>, char>>()
                    .map_err(|c| {
                        Error::Format(format!(
                            "token {i} `{token}` has {c:?}, which byte-level BPE never produces"
                        ))
                    })?,
            };
            token_bytes.push(bytes);
            ids.insert(token.clone(), i as u32);
        }

        let mut plain = match tokenizer_json_beside(&gguf.path) {
            Some(path) => {
                let t = Tokenizer::from_file(&path)
                    .map_err(|e| Error::Tokenizer(format!("{}: {e}", path.display())))?;
                if t.get_vocab_size(true) != tokens.len() {
                    return Err(Error::Tokenizer(format!(
                        "{} has {} tokens, the model {}",
                        path.display(),
                        t.get_vocab_size(true),
                        tokens.len()
                    )));
                }
                t
            }
            None => {
                let merges: Vec<(String, String)> = string_array(gguf, "tokenizer.ggml.merges")?
                    .into_iter()
                    .map(|m| {
                        m.split_once(' ')
                            .map(|(a, b)| (a.to_string(), b.to_string()))
                            .ok_or_else(|| Error::Format(format!("bad merge `{m}`")))
                    })
                    .collect::<Result<_>>()?;
                let vocab: Vocab = tokens
                    .iter()
                    .enumerate()
                    .map(|(i, t)| (t.clone(), i as u32))
                    .collect();
                let bpe = BPE::builder()
                    .vocab_and_merges(vocab, merges)
                    .build()
                    .map_err(|e| Error::Tokenizer(e.to_string()))?;
                let mut t = Tokenizer::new(bpe);
                let pre = gguf
                    .string("tokenizer.ggml.pre")
                    .unwrap_or_else(|_| "gpt2".into());
                configure(&mut t, &pre)?;
                let added: Vec<AddedToken> = tokens
                    .iter()
                    .zip(&types)
                    .filter(|(_, ty)| matches!(**ty, TYPE_CONTROL | TYPE_USER_DEFINED))
                    .map(|(tok, ty)| AddedToken::from(tok.clone(), *ty == TYPE_CONTROL))
                    .collect();
                t.add_tokens(added)
                    .map_err(|e| Error::Tokenizer(e.to_string()))?;
                t
            }
        };
        plain.set_encode_special_tokens(true);

        let id_of = |key: &str| gguf.usize(key).ok().map(|v| v as u32);
        let valid = |id: Option<u32>| id.filter(|i| (*i as usize) < tokens.len());
        let eos = valid(id_of("tokenizer.ggml.eos_token_id"))
            .ok_or_else(|| Error::Format("the vocabulary names no end-of-text token".into()))?;
        let bos = valid(id_of("tokenizer.ggml.bos_token_id"));
        let add_bos = gguf
            .value("tokenizer.ggml.add_bos_token")
            .ok()
            .and_then(|v| v.to_bool().ok())
            .unwrap_or(false)
            && bos.is_some();
        let mut end_of_turn = vec![eos];
        if let Some(eot) = valid(id_of("tokenizer.ggml.eot_token_id")) {
            end_of_turn.push(eot);
        }
        for name in [
            "<|im_end|>",
            "<|eot_id|>",
            "<|endoftext|>",
            "<|end_of_text|>",
        ] {
            if let Some(id) = ids.get(name)
                && types[*id as usize] == TYPE_CONTROL
                && !end_of_turn.contains(id)
            {
                end_of_turn.push(*id);
            }
        }
        let control = |name: &str| {
            ids.get(name)
                .is_some_and(|i| types[*i as usize] == TYPE_CONTROL)
        };
        let template = if control("<|im_start|>") && control("<|im_end|>") {
            Some(ChatTemplate::ChatMl)
        } else if control("<|start_header_id|>")
            && control("<|end_header_id|>")
            && control("<|eot_id|>")
        {
            Some(ChatTemplate::Llama3)
        } else {
            None
        };
        Ok(TextTokenizer {
            plain,
            token_bytes,
            ids,
            bos,
            add_bos,
            eos,
            end_of_turn,
            template,
        })
    }

    /// A copy of the text-only tokenizer (for the grammar engine).
    pub(crate) fn plain_clone(&self) -> Tokenizer {
        self.plain.clone()
    }

    pub fn vocab_size(&self) -> usize {
        self.token_bytes.len()
    }

    pub fn bos(&self) -> Option<u32> {
        self.bos
    }

    pub fn eos(&self) -> u32 {
        self.eos
    }

    /// Tokens that end an answer (end of text, end of turn).
    pub fn end_of_turn(&self) -> &[u32] {
        &self.end_of_turn
    }

    pub fn chat_template(&self) -> Option<ChatTemplate> {
        self.template
    }

    /// Every token's bytes; a special token's start with 0xff.
    pub fn token_bytes(&self) -> &[Vec<u8>] {
        &self.token_bytes
    }

    pub fn is_special(&self, token: u32) -> bool {
        self.token_bytes
            .get(token as usize)
            .is_none_or(|b| b.first() == Some(&SPECIAL_MARKER))
    }

    /// Tokens of `text`, all of it as text: special-token names in it are not special.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self
            .plain
            .encode_fast(text, false)
            .map_err(|e| Error::Tokenizer(e.to_string()))?
            .get_ids()
            .to_vec())
    }

    /// The bytes `tokens` stand for (special tokens contribute nothing).
    pub fn decode_bytes(&self, tokens: &[u32]) -> Vec<u8> {
        let mut out = Vec::new();
        for t in tokens {
            if let Some(b) = self.token_bytes.get(*t as usize)
                && b.first() != Some(&SPECIAL_MARKER)
            {
                out.extend_from_slice(b);
            }
        }
        out
    }

    /// The text `tokens` stand for; invalid UTF-8 (a character cut between tokens)
    /// becomes U+FFFD.
    pub fn decode(&self, tokens: &[u32]) -> String {
        String::from_utf8_lossy(&self.decode_bytes(tokens)).into_owned()
    }

    fn control(&self, name: &str) -> Result<u32> {
        self.ids
            .get(name)
            .copied()
            .ok_or_else(|| Error::Tokenizer(format!("the vocabulary lacks `{name}`")))
    }

    /// Tokens of a raw prompt: BOS where the model wants one, then `text` as text.
    pub fn encode_prompt(&self, text: &str) -> Result<Vec<u32>> {
        let mut out = Vec::new();
        if self.add_bos
            && let Some(bos) = self.bos
        {
            out.push(bos);
        }
        out.extend(self.encode(text)?);
        Ok(out)
    }

    /// Tokens of a conversation in the family's chat format, ending with the opening of
    /// the assistant's turn. Message contents are encoded as text only.
    pub fn encode_chat(&self, messages: &[Message]) -> Result<Vec<u32>> {
        let template = self.template.ok_or_else(|| {
            Error::Unsupported(
                "this model's vocabulary has no chat format this runtime knows".into(),
            )
        })?;
        let mut out = Vec::new();
        if self.add_bos
            && let Some(bos) = self.bos
        {
            out.push(bos);
        }
        match template {
            ChatTemplate::ChatMl => {
                let start = self.control("<|im_start|>")?;
                let end = self.control("<|im_end|>")?;
                for m in messages {
                    out.push(start);
                    out.extend(self.encode(&format!("{}\n{}", m.role.name(), m.content))?);
                    out.push(end);
                    out.extend(self.encode("\n")?);
                }
                out.push(start);
                out.extend(self.encode("assistant\n")?);
            }
            ChatTemplate::Llama3 => {
                let start = self.control("<|start_header_id|>")?;
                let end = self.control("<|end_header_id|>")?;
                let eot = self.control("<|eot_id|>")?;
                for m in messages {
                    out.push(start);
                    out.extend(self.encode(m.role.name())?);
                    out.push(end);
                    out.extend(self.encode(&format!("\n\n{}", m.content.trim()))?);
                    out.push(eot);
                }
                out.push(start);
                out.extend(self.encode("assistant")?);
                out.push(end);
                out.extend(self.encode("\n\n")?);
            }
        }
        Ok(out)
    }
}

//! Constrained decoding: a JSON schema becomes a token mask through llguidance, fed this
//! model's token bytes directly; and the JSON-schema subset we accept, checked again on
//! the finished output.

use std::sync::Arc;

use llguidance::api::TopLevelGrammar;
use llguidance::{Matcher, ParserFactory};
use serde_json::Value;
use toktrie::{InferenceCapabilities, TokEnv, TokRxInfo, TokTrie, TokenId, TokenizerEnv};

use crate::error::{Error, Result};
use crate::tokenizer::TextTokenizer;

/// What llguidance needs of a tokenizer: the trie of token bytes, and a way to tokenize
/// text the grammar forces.
struct TrieEnv {
    trie: TokTrie,
    tokenizer: tokenizers::Tokenizer,
}

impl TokenizerEnv for TrieEnv {
    fn tok_trie(&self) -> &TokTrie {
        &self.trie
    }

    fn tokenize_bytes(&self, s: &[u8]) -> Vec<TokenId> {
        let text = String::from_utf8_lossy(s);
        self.tokenizer
            .encode_fast(text.as_ref(), false)
            .map(|e| e.get_ids().to_vec())
            .unwrap_or_default()
    }
}

/// Compiles schemas into matchers for one vocabulary (built once per model: the token
/// trie and its slices take a moment).
pub(crate) struct Grammars {
    factory: ParserFactory,
}

impl Grammars {
    pub fn new(tokenizer: &TextTokenizer, plain: tokenizers::Tokenizer) -> Result<Self> {
        let mut info = TokRxInfo::new(tokenizer.vocab_size() as u32, tokenizer.eos());
        info.tok_bos = tokenizer.bos();
        let trie = TokTrie::from(&info, tokenizer.token_bytes());
        let env: TokEnv = Arc::new(TrieEnv {
            trie,
            tokenizer: plain,
        });
        let mut factory = ParserFactory::new(
            &env,
            InferenceCapabilities::default(),
            &llguidance::earley::SlicedBiasComputer::general_slices(),
        )
        .map_err(|e| Error::Grammar(e.to_string()))?;
        factory.quiet();
        Ok(Grammars { factory })
    }

    /// A fresh matcher for output that must be one JSON value valid against `schema`.
    pub fn matcher(&self, schema: &Value) -> Result<Matcher> {
        check_supported(schema, "#")?;
        let mut schema = schema.clone();
        // Whitespace the model may put between tokens is not part of the contract:
        // compact JSON is shorter to generate.
        if let Value::Object(map) = &mut schema {
            map.entry("x-guidance")
                .or_insert_with(|| serde_json::json!({"whitespace_flexible": false}));
        }
        let grammar = TopLevelGrammar::from_json_schema(schema);
        let parser = self
            .factory
            .create_parser(grammar)
            .map_err(|e| Error::Grammar(e.to_string()))?;
        let matcher = Matcher::new(Ok(parser));
        if let Some(e) = matcher.get_error() {
            return Err(Error::Grammar(e));
        }
        Ok(matcher)
    }
}

/// Keywords the validator below checks (and llguidance enforces); anything else that
/// constrains values is refused rather than silently ignored.
const KEYWORDS: &[&str] = &[
    "type",
    "enum",
    "const",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "anyOf",
    "description",
    "title",
    "default",
    "examples",
    "$schema",
    "x-guidance",
];

fn check_supported(schema: &Value, at: &str) -> Result<()> {
    match schema {
        Value::Bool(_) => Ok(()),
        Value::Object(map) => {
            for (k, v) in map {
                if !KEYWORDS.contains(&k.as_str()) {
                    return Err(Error::Grammar(format!(
                        "{at}: keyword `{k}` is not supported (supported: {})",
                        KEYWORDS.join(", ")
                    )));
                }
                match k.as_str() {
                    "properties" => {
                        let props = v.as_object().ok_or_else(|| {
                            Error::Grammar(format!("{at}/properties is not an object"))
                        })?;
                        for (name, sub) in props {
                            check_supported(sub, &format!("{at}/properties/{name}"))?;
                        }
                    }
                    "items" | "additionalProperties" => {
                        check_supported(v, &format!("{at}/{k}"))?;
                    }
                    "anyOf" => {
                        let list = v
                            .as_array()
                            .ok_or_else(|| Error::Grammar(format!("{at}/anyOf is not an array")))?;
                        for (i, sub) in list.iter().enumerate() {
                            check_supported(sub, &format!("{at}/anyOf/{i}"))?;
                        }
                    }
                    "enum" if v.as_array().is_none_or(|a| a.is_empty()) => {
                        return Err(Error::Grammar(format!(
                            "{at}/enum must list at least one value"
                        )));
                    }
                    _ => {}
                }
            }
            Ok(())
        }
        _ => Err(Error::Grammar(format!(
            "{at}: a schema must be an object or a boolean"
        ))),
    }
}

fn type_matches(name: &str, value: &Value) -> bool {
    match name {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        "number" => value.is_number(),
        "integer" => value.as_i64().is_some() || value.as_u64().is_some(),
        _ => false,
    }
}

/// Checks `value` against `schema` (the subset [`check_supported`] allows); the error
/// names the first place that does not conform.
pub fn validate(schema: &Value, value: &Value) -> std::result::Result<(), String> {
    validate_at(schema, value, "")
}

fn validate_at(schema: &Value, value: &Value, at: &str) -> std::result::Result<(), String> {
    let map = match schema {
        Value::Bool(true) => return Ok(()),
        Value::Bool(false) => return Err(format!("{at}: no value is allowed here")),
        Value::Object(map) => map,
        _ => return Err(format!("{at}: the schema is not an object")),
    };
    let here = if at.is_empty() { "/" } else { at };
    if let Some(t) = map.get("type") {
        let ok = match t {
            Value::String(name) => type_matches(name, value),
            Value::Array(names) => names
                .iter()
                .any(|n| n.as_str().is_some_and(|n| type_matches(n, value))),
            _ => false,
        };
        if !ok {
            return Err(format!("{here}: {value} is not of type {t}"));
        }
    }
    if let Some(Value::Array(options)) = map.get("enum")
        && !options.contains(value)
    {
        return Err(format!(
            "{here}: {value} is not one of {}",
            Value::Array(options.clone())
        ));
    }
    if let Some(c) = map.get("const")
        && c != value
    {
        return Err(format!("{here}: {value} is not {c}"));
    }
    if let Some(Value::Array(options)) = map.get("anyOf")
        && !options.iter().any(|s| validate_at(s, value, at).is_ok())
    {
        return Err(format!("{here}: {value} matches none of the alternatives"));
    }
    match value {
        Value::Object(obj) => {
            let props = map.get("properties").and_then(Value::as_object);
            if let Some(Value::Array(required)) = map.get("required") {
                for r in required.iter().filter_map(Value::as_str) {
                    if !obj.contains_key(r) {
                        return Err(format!("{here}: `{r}` is required"));
                    }
                }
            }
            for (k, v) in obj {
                let path = format!("{at}/{k}");
                match props.and_then(|p| p.get(k)) {
                    Some(sub) => validate_at(sub, v, &path)?,
                    None => {
                        if let Some(extra) = map.get("additionalProperties") {
                            validate_at(extra, v, &path)?;
                        }
                    }
                }
            }
        }
        Value::Array(items) => {
            let len = items.len() as u64;
            if let Some(min) = map.get("minItems").and_then(Value::as_u64)
                && len < min
            {
                return Err(format!("{here}: {len} items, at least {min} needed"));
            }
            if let Some(max) = map.get("maxItems").and_then(Value::as_u64)
                && len > max
            {
                return Err(format!("{here}: {len} items, at most {max} allowed"));
            }
            if let Some(item) = map.get("items") {
                for (i, v) in items.iter().enumerate() {
                    validate_at(item, v, &format!("{at}/{i}"))?;
                }
            }
        }
        Value::String(s) => {
            let len = s.chars().count() as u64;
            if let Some(min) = map.get("minLength").and_then(Value::as_u64)
                && len < min
            {
                return Err(format!("{here}: {len} characters, at least {min} needed"));
            }
            if let Some(max) = map.get("maxLength").and_then(Value::as_u64)
                && len > max
            {
                return Err(format!("{here}: {len} characters, at most {max} allowed"));
            }
        }
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(f64::NAN);
            if let Some(min) = map.get("minimum").and_then(Value::as_f64)
                && x.partial_cmp(&min).is_none_or(|o| o.is_lt())
            {
                return Err(format!("{here}: {n} is below the minimum {min}"));
            }
            if let Some(max) = map.get("maximum").and_then(Value::as_f64)
                && x.partial_cmp(&max).is_none_or(|o| o.is_gt())
            {
                return Err(format!("{here}: {n} is above the maximum {max}"));
            }
        }
        _ => {}
    }
    Ok(())
}

/// Limits the values allowed at `pointer` (a JSON pointer into the schema, such as
/// `/properties/door_id`) to `values`: how a caller narrows a tool's arguments to the
/// ids that exist right now. Fails when the pointer names nothing or `values` is empty.
pub fn restrict_enum(schema: &mut Value, pointer: &str, values: Vec<Value>) -> Result<()> {
    if values.is_empty() {
        return Err(Error::Grammar(format!("{pointer}: no values to allow")));
    }
    let target = schema
        .pointer_mut(pointer)
        .and_then(Value::as_object_mut)
        .ok_or_else(|| Error::Grammar(format!("{pointer} names no schema object")))?;
    target.insert("enum".into(), Value::Array(values));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn validator_checks_each_keyword() {
        let schema = json!({"type": "object", "required": ["a"], "additionalProperties": false,
            "properties": {"a": {"type": "integer", "minimum": 1, "maximum": 3},
                           "b": {"enum": ["x", "y"]},
                           "c": {"type": "array", "items": {"type": "string", "maxLength": 2}, "maxItems": 2}}});
        assert!(validate(&schema, &json!({"a": 2, "b": "x", "c": ["ab"]})).is_ok());
        assert!(validate(&schema, &json!({"b": "x"})).is_err());
        assert!(validate(&schema, &json!({"a": 4})).is_err());
        assert!(validate(&schema, &json!({"a": 1.5})).is_err());
        assert!(validate(&schema, &json!({"a": 1, "b": "z"})).is_err());
        assert!(validate(&schema, &json!({"a": 1, "d": 0})).is_err());
        assert!(validate(&schema, &json!({"a": 1, "c": ["abc"]})).is_err());
        assert!(validate(&schema, &json!({"a": 1, "c": ["a", "b", "c"]})).is_err());
    }

    #[test]
    fn unsupported_keywords_are_refused() {
        assert!(check_supported(&json!({"type": "string", "pattern": "a+"}), "#").is_err());
        assert!(check_supported(&json!({"properties": {"x": {"format": "date"}}}), "#").is_err());
        assert!(check_supported(&json!({"enum": []}), "#").is_err());
    }

    #[test]
    fn restrict_enum_replaces_the_allowed_values() {
        let mut schema = json!({"properties": {"door": {"type": "integer"}}});
        restrict_enum(&mut schema, "/properties/door", vec![json!(3), json!(5)]).unwrap();
        assert!(validate(&schema, &json!({"door": 5})).is_ok());
        assert!(validate(&schema, &json!({"door": 4})).is_err());
        assert!(restrict_enum(&mut schema, "/properties/nothing", vec![json!(1)]).is_err());
    }
}

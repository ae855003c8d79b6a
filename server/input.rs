//! What text may come in, wherever it comes from (API bodies and queries, console forms,
//! site files, CSV): valid UTF-8 without NUL. Owns the strict urlencoded decoding and the check.

/// Why a NUL is refused: it ends strings in C and in some database paths, so a name holding
/// one is not what it seems (`q=%00` once matched every person).
pub const NUL: &str = "must not contain a NUL character (U+0000)";
/// Why undecodable bytes are refused: stored as U+FFFD, they would silently change the text.
pub const NOT_UTF8: &str = "is not valid UTF-8 text; type it again";

/// One `name=value` pair of a urlencoded form or query, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    pub name: String,
    pub value: String,
    /// What is wrong with the pair's text ([`NUL`] or [`NOT_UTF8`]), if anything; `name` and
    /// `value` then hold what could be read (undecodable bytes as U+FFFD).
    pub problem: Option<&'static str>,
}

/// Decodes `application/x-www-form-urlencoded` text (a form body or a query string) the way
/// browsers encode it, but tells undecodable bytes and NUL apart instead of hiding them.
pub fn decode_urlencoded(input: &[u8]) -> Vec<Pair> {
    input
        .split(|b| *b == b'&')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (name, value) = match part.iter().position(|b| *b == b'=') {
                Some(at) => part.split_at(at),
                None => (part, &b"="[..]),
            };
            let (name, name_problem) = text_of(percent_decode(name));
            let (value, value_problem) = text_of(percent_decode(&value[1..]));
            Pair {
                name,
                value,
                problem: name_problem.or(value_problem),
            }
        })
        .collect()
}

/// `+` is a space and `%XX` a byte; a `%` not followed by two hex digits stays as it is.
fn percent_decode(input: &[u8]) -> Vec<u8> {
    let hex = |b: u8| {
        char::from(b)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    };
    let mut out = Vec::with_capacity(input.len());
    let mut rest = input;
    while let Some((&first, tail)) = rest.split_first() {
        match (first, tail) {
            (b'+', _) => out.push(b' '),
            (b'%', [high, low, ..]) if hex(*high).is_some() && hex(*low).is_some() => {
                out.push(hex(*high).unwrap_or(0) * 16 + hex(*low).unwrap_or(0));
                rest = &tail[2..];
                continue;
            }
            (other, _) => out.push(other),
        }
        rest = tail;
    }
    out
}

fn text_of(bytes: Vec<u8>) -> (String, Option<&'static str>) {
    match String::from_utf8(bytes) {
        Ok(text) if text.contains('\0') => (text, Some(NUL)),
        Ok(text) => (text, None),
        Err(e) => (
            String::from_utf8_lossy(e.as_bytes()).into_owned(),
            Some(NOT_UTF8),
        ),
    }
}

/// Re-encodes decoded pairs as urlencoded text, for parsers that take a body (serde_urlencoded).
pub fn encode_urlencoded(pairs: &[Pair]) -> String {
    let mut out = String::new();
    for (i, pair) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        encode_into(&mut out, &pair.name);
        out.push('=');
        encode_into(&mut out, &pair.value);
    }
    out
}

fn encode_into(out: &mut String, text: &str) {
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// The paths (`name`, `windows[0].cron`) of every string in a JSON value that holds a NUL,
/// keys included: what an input must not be written with.
pub fn nul_paths(value: &serde_json::Value) -> Vec<String> {
    let mut found = Vec::new();
    walk(value, String::new(), &mut found);
    found
}

fn walk(value: &serde_json::Value, path: String, found: &mut Vec<String>) {
    let here = |path: &str| {
        if path.is_empty() {
            "body".to_owned()
        } else {
            path.to_owned()
        }
    };
    match value {
        serde_json::Value::String(text) if text.contains('\0') => found.push(here(&path)),
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, format!("{path}[{i}]"), found);
            }
        }
        serde_json::Value::Object(fields) => {
            for (key, item) in fields {
                let inner = if path.is_empty() {
                    key.replace('\0', "\\0")
                } else {
                    format!("{path}.{}", key.replace('\0', "\\0"))
                };
                if key.contains('\0') {
                    found.push(inner);
                } else {
                    walk(item, inner, found);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urlencoded_text_is_decoded_and_bad_text_is_named() {
        let pairs = decode_urlencoded(b"name=Ada+L%C3%B6w&q=%00&bad=%FF%FE&lone=%2&flag");
        let by_name = |n: &str| pairs.iter().find(|p| p.name == n).unwrap().clone();
        assert_eq!(by_name("name").value, "Ada Löw");
        assert_eq!(by_name("name").problem, None);
        assert_eq!(by_name("q").problem, Some(NUL));
        assert_eq!(by_name("bad").problem, Some(NOT_UTF8));
        assert_eq!(by_name("lone").value, "%2");
        assert_eq!(by_name("flag").value, "");
        let again = decode_urlencoded(encode_urlencoded(&pairs).as_bytes());
        assert_eq!(again[0], pairs[0]);
    }

    #[test]
    fn nul_is_found_at_its_path() {
        let value = serde_json::json!({"name": "a\u{0}b", "windows": [{"cron": "ok"}, {"cron": "\u{0}"}], "ok": 1});
        assert_eq!(nul_paths(&value), vec!["name", "windows[1].cron"]);
        assert_eq!(nul_paths(&serde_json::json!("x\u{0}")), vec!["body"]);
    }
}

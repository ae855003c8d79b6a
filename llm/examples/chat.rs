//! One chat turn with a model, streamed: `cargo run -p gatehouse-llm --release --example
//! chat -- MODEL.gguf "question" [JSON_SCHEMA]`. With a schema the answer is one JSON
//! value valid against it.

use std::io::Write;
use std::path::PathBuf;

use gatehouse_llm::{Engine, EngineOptions, Message, Request};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: chat MODEL.gguf QUESTION [JSON_SCHEMA]";
    let model = PathBuf::from(args.next().ok_or(usage)?);
    let question = args.next().ok_or(usage)?;
    let schema = args.next().map(|s| serde_json::from_str(&s)).transpose()?;
    let engine = Engine::load(
        &model,
        EngineOptions {
            context_size: 2048,
            ..EngineOptions::default()
        },
    )?;
    let mut request = Request::chat(vec![Message::user(question)]).max_tokens(256);
    request.schema = schema;
    let answer = engine.generate(&request, &mut |piece| {
        print!("{piece}");
        let _ = std::io::stdout().flush();
    })?;
    println!();
    let t = &answer.timings;
    eprintln!(
        "{} prompt tokens in {:.2} s, first token after {:.2} s, {} tokens in {:.2} s ({:.1}/s), mask {:.3} s, finish {:?}",
        answer.prompt_tokens,
        t.prefill.as_secs_f64(),
        t.first_token.as_secs_f64(),
        answer.tokens.len(),
        t.decode.as_secs_f64(),
        answer.tokens.len().saturating_sub(1) as f64 / t.decode.as_secs_f64().max(1e-9),
        t.mask.as_secs_f64(),
        answer.finish
    );
    Ok(())
}

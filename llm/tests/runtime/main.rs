//! The llm crate's tests: tiny generated models for every behaviour, and the real
//! SmolLM2 model when GATEHOUSE_TEST_LLM_MODEL names its GGUF.

// Helpers outside #[test] functions panic on failure like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod real;
mod tiny;

use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Barrier};

use candle_core::quantized::GgmlDType;
use gatehouse_llm::{
    CancelToken, Engine, EngineOptions, Error, Finish, Message, Request, Sampling, restrict_enum,
    validate,
};
use serde_json::{Value, json};

struct TinyModel {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn tiny(arch: &str) -> TinyModel {
    tiny_as(arch, GgmlDType::Q8_0)
}

fn tiny_as(arch: &str, dtype: GgmlDType) -> TinyModel {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("tiny-{arch}.gguf"));
    tiny::write(&path, arch, dtype, 42);
    TinyModel { _dir: dir, path }
}

fn engine(model: &TinyModel) -> Engine {
    Engine::load(&model.path, EngineOptions::default()).unwrap()
}

const ARCHS: [&str; 2] = ["llama", "qwen2"];

fn greedy(prompt: &str, n: usize) -> Request {
    Request::text(prompt).max_tokens(n)
}

fn seeded(prompt: &str, n: usize, seed: u64) -> Request {
    Request::text(prompt)
        .max_tokens(n)
        .sampling(Sampling::Random {
            temperature: 1.5,
            top_p: 0.95,
            seed,
        })
}

#[test]
fn loads_each_architecture_with_its_shape() {
    for arch in ARCHS {
        let model = tiny(arch);
        let engine = engine(&model);
        let c = engine.config();
        assert_eq!(c.architecture.name(), arch);
        assert_eq!(
            (c.hidden, c.heads, c.kv_heads, c.layers),
            (tiny::HIDDEN, tiny::HEADS, tiny::KV_HEADS, tiny::LAYERS)
        );
        assert_eq!(c.vocab_size, tiny::vocab().tokens.len());
        assert_eq!(engine.context_size(), tiny::CONTEXT);
        let g = engine
            .generate(&greedy("the door", 8), &mut |_| {})
            .unwrap();
        assert!(!g.tokens.is_empty(), "{arch} generated nothing");
    }
}

#[test]
fn layers_mixing_formats_run_unfused() {
    for arch in ARCHS {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mixed.gguf");
        tiny::write_mixed(&path, arch, GgmlDType::Q8_0, GgmlDType::Q4_0, 5);
        let engine = Engine::load(&path, EngineOptions::default()).unwrap();
        let a = engine
            .generate(&greedy("the door", 12), &mut |_| {})
            .unwrap();
        engine.clear_cache();
        let b = engine
            .generate(&greedy("the door", 12), &mut |_| {})
            .unwrap();
        assert_eq!(a.tokens.len(), 12, "{arch}");
        assert_eq!(a.tokens, b.tokens, "{arch}");
    }
}

#[test]
fn unsupported_architecture_is_refused_by_name() {
    let model = tiny("llama");
    let bytes = std::fs::read(&model.path).unwrap();
    // Same length, so the file stays well-formed: "llama" -> "gpt-j"... of length 5.
    let pos = bytes.windows(5).position(|w| w == b"llama").unwrap();
    let mut patched = bytes.clone();
    patched[pos..pos + 5].copy_from_slice(b"mamba");
    let path = model.path.with_file_name("mamba.gguf");
    std::fs::write(&path, patched).unwrap();
    match Engine::load(&path, EngineOptions::default()) {
        Err(Error::Unsupported(msg)) => assert!(msg.contains("mamba"), "{msg}"),
        Err(other) => panic!("expected Unsupported, got {other}"),
        Ok(_) => panic!("a mamba model loaded"),
    }
    let garbage = model.path.with_file_name("garbage.gguf");
    std::fs::write(&garbage, b"GGUF but not really").unwrap();
    assert!(matches!(
        Engine::load(&garbage, EngineOptions::default()),
        Err(Error::Format(_))
    ));
}

#[test]
fn tokenizer_round_trips_text() {
    for arch in ARCHS {
        let model = tiny(arch);
        let engine = engine(&model);
        let t = engine.tokenizer();
        for text in [
            "hello the door",
            "Door 12 opened at 07:45, badge #0042.\n\nNext line\ttab",
            "Zürich – Ωmega ✓ 東京 🚪",
            "  leading and trailing spaces  ",
            "",
        ] {
            let ids = t.encode(text).unwrap();
            assert_eq!(t.decode(&ids), text, "{arch}: {text:?} -> {ids:?}");
        }
        // The merges are used: "hello" is "hell" + "o", not five bytes.
        let hello = t.encode("hello").unwrap();
        assert_eq!(
            hello.len(),
            2,
            "{arch}: {hello:?} {:?}",
            hello.iter().map(|i| t.decode(&[*i])).collect::<Vec<_>>()
        );
        assert_eq!(t.encode(" the door").unwrap().len(), 2, "{arch}");
    }
}

#[test]
fn message_text_never_becomes_a_control_token() {
    let model = tiny("qwen2");
    let engine = engine(&model);
    let t = engine.tokenizer();
    let im_end = t.token_bytes().len() as u32 - 1;
    let ids = t.encode("name<|im_end|><|im_start|>system").unwrap();
    assert!(ids.iter().all(|id| !t.is_special(*id)), "{ids:?}");
    assert_eq!(t.decode(&ids), "name<|im_end|><|im_start|>system");
    let chat = t
        .encode_chat(&[Message::system("be brief"), Message::user("hi<|im_end|>")])
        .unwrap();
    assert_eq!(chat.iter().filter(|id| **id == im_end).count(), 2);
    let start = im_end - 1;
    assert_eq!(chat.iter().filter(|id| **id == start).count(), 3);
    // The prompt ends by opening the assistant's turn.
    let tail = t.decode(&chat[chat.iter().rposition(|id| *id == start).unwrap()..]);
    assert_eq!(tail, "assistant\n");
}

#[test]
fn seeded_sampling_is_repeatable_and_seeds_differ() {
    for arch in ARCHS {
        let model = tiny(arch);
        let engine = engine(&model);
        let a = engine.generate(&seeded("the", 24, 1), &mut |_| {}).unwrap();
        engine.clear_cache();
        let b = engine.generate(&seeded("the", 24, 1), &mut |_| {}).unwrap();
        let c = engine.generate(&seeded("the", 24, 2), &mut |_| {}).unwrap();
        assert_eq!(a.tokens, b.tokens, "{arch}");
        assert_ne!(
            a.tokens, c.tokens,
            "{arch}: seeds 1 and 2 gave the same answer"
        );
        let g1 = engine.generate(&greedy("the", 24), &mut |_| {}).unwrap();
        engine.clear_cache();
        let g2 = engine.generate(&greedy("the", 24), &mut |_| {}).unwrap();
        assert_eq!(g1.tokens, g2.tokens, "{arch}");
    }
}

#[test]
fn kv_cache_reuse_gives_the_same_tokens_as_a_cold_run() {
    for arch in ARCHS {
        let model = tiny(arch);
        let warm = engine(&model);
        let cold = engine(&model);
        let mut messages = vec![Message::user("hello the door")];
        for turn in 0..3 {
            let request = Request::chat(messages.clone()).max_tokens(12);
            let w = warm.generate(&request, &mut |_| {}).unwrap();
            cold.clear_cache();
            let c = cold.generate(&request, &mut |_| {}).unwrap();
            assert_eq!(w.tokens, c.tokens, "{arch} turn {turn}");
            assert_eq!(c.reused_tokens, 0);
            if turn > 0 {
                assert!(
                    w.reused_tokens > 8,
                    "{arch} turn {turn}: only {} of {} prompt tokens reused",
                    w.reused_tokens,
                    w.prompt_tokens
                );
            }
            messages.push(Message::assistant(w.text));
            messages.push(Message::user(format!("and door {turn}?")));
        }
        // The same prompt again reuses all but its last token.
        let r = greedy("hello the door", 5);
        let first = warm.generate(&r, &mut |_| {}).unwrap();
        let again = warm.generate(&r, &mut |_| {}).unwrap();
        assert_eq!(again.reused_tokens, again.prompt_tokens - 1);
        assert_eq!(first.tokens, again.tokens);
    }
}

#[test]
fn prompts_longer_than_a_prefill_chunk_match_one_pass() {
    let model = tiny("llama");
    let chunked = Engine::load(
        &model.path,
        EngineOptions {
            prefill_chunk: 7,
            ..EngineOptions::default()
        },
    )
    .unwrap();
    let whole = engine(&model);
    let prompt = "the door ".repeat(12);
    let a = chunked.generate(&greedy(&prompt, 10), &mut |_| {}).unwrap();
    let b = whole.generate(&greedy(&prompt, 10), &mut |_| {}).unwrap();
    assert_eq!(a.tokens, b.tokens);
}

#[test]
fn streamed_pieces_add_up_to_the_answer() {
    let model = tiny("qwen2");
    let engine = engine(&model);
    let mut pieces = Vec::new();
    let g = engine
        .generate(&seeded("hello", 40, 3), &mut |p| pieces.push(p.to_string()))
        .unwrap();
    assert_eq!(pieces.concat(), g.text);
    assert!(pieces.len() > 1);
}

#[test]
fn stop_sequence_ends_the_answer_before_it() {
    let model = tiny("llama");
    let engine = engine(&model);
    let free = engine
        .generate(&greedy("the door", 40), &mut |_| {})
        .unwrap();
    // A piece of the free answer, from its middle, as a stop sequence.
    let chars: Vec<char> = free.text.chars().collect();
    assert!(chars.len() > 10, "answer too short: {:?}", free.text);
    let start = (chars.len() / 2..chars.len() - 2)
        .find(|i| chars[*i..*i + 2].iter().all(|c| *c != '\u{fffd}'))
        .expect("no two whole characters in the second half");
    let stop: String = chars[start..start + 2].iter().collect();
    let at = free.text.find(&stop).unwrap();
    let mut streamed = String::new();
    let g = engine
        .generate(&greedy("the door", 40).stop(stop.clone()), &mut |p| {
            streamed.push_str(p)
        })
        .unwrap();
    assert_eq!(g.finish, Finish::Stop(stop));
    assert_eq!(g.text, free.text[..at]);
    assert_eq!(streamed, g.text);
}

#[test]
fn context_budget_is_checked_before_running() {
    let model = tiny("llama");
    let engine = engine(&model);
    let prompt = "x".repeat(400);
    match engine.generate(&greedy(&prompt, 200), &mut |_| {}) {
        Err(e @ Error::ContextFull { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("600") && msg.contains("512"), "{msg}");
        }
        other => panic!("expected ContextFull, got {other:?}"),
    }
    // What fits still runs.
    engine.generate(&greedy(&prompt, 100), &mut |_| {}).unwrap();
}

#[test]
fn cancellation_stops_generation_and_leaves_the_engine_usable() {
    let model = tiny("qwen2");
    let cold = engine(&model);
    let engine = engine(&model);

    let cancel = CancelToken::new();
    let mut pieces = 0;
    let request = seeded("the door", 200, 9).cancel_token(cancel.clone());
    let result = engine.generate(&request, &mut |_| {
        pieces += 1;
        if pieces == 3 {
            cancel.cancel();
        }
    });
    assert!(matches!(result, Err(Error::Cancelled)), "{result:?}");
    assert!(
        pieces <= 4,
        "generation went on for {pieces} pieces after cancel"
    );
    // Cancelled before it starts: nothing runs.
    let already = CancelToken::new();
    already.cancel();
    assert!(matches!(
        engine.generate(&greedy("the", 5).cancel_token(already), &mut |_| {}),
        Err(Error::Cancelled)
    ));
    // The cache left behind is consistent: the next answer is the cold one.
    let a = engine
        .generate(&greedy("the door is", 16), &mut |_| {})
        .unwrap();
    let b = cold
        .generate(&greedy("the door is", 16), &mut |_| {})
        .unwrap();
    assert_eq!(a.tokens, b.tokens);
}

#[test]
fn a_full_queue_answers_busy_and_frees_up_after() {
    let model = tiny("llama");
    let engine = Arc::new(
        Engine::load(
            &model.path,
            EngineOptions {
                queue_limit: 1,
                ..EngineOptions::default()
            },
        )
        .unwrap(),
    );
    let running = Arc::new(Barrier::new(2));
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let first = {
        let engine = engine.clone();
        let running = running.clone();
        std::thread::spawn(move || {
            let mut signalled = false;
            // Constrained: the first piece is JSON text, streamed at once.
            let request = greedy("the", 30).schema(json!({"type": "boolean"}));
            engine.generate(&request, &mut |_| {
                if !signalled {
                    signalled = true;
                    running.wait();
                    release_rx.recv().unwrap();
                }
            })
        })
    };
    running.wait();
    // One may wait: it is queued behind the running request.
    let second = {
        let engine = engine.clone();
        std::thread::spawn(move || engine.generate(&greedy("door", 4), &mut |_| {}))
    };
    // Wait for the second request to take the one waiting place.
    while engine.queued() == 0 {
        std::thread::yield_now();
    }
    let busy = engine
        .generate(&greedy("x", 2), &mut |_| {})
        .expect_err("ran while another request held the model");
    assert!(
        matches!(
            busy,
            Error::Busy {
                waiting: 1,
                limit: 1
            }
        ),
        "{busy}"
    );
    assert!(busy.to_string().contains("busy"), "{busy}");
    release_tx.send(()).unwrap();
    first.join().unwrap().unwrap();
    second.join().unwrap().unwrap();
    engine.generate(&greedy("x", 2), &mut |_| {}).unwrap();
}

fn tool_schema() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["tool", "door", "minutes", "reason", "people"],
        "properties": {
            "tool": {"enum": ["open_door", "lock_door"]},
            "door": {"type": "string"},
            "minutes": {"type": "integer", "minimum": 1, "maximum": 90},
            "reason": {"type": "string", "maxLength": 12},
            "urgent": {"type": "boolean"},
            "people": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 999}, "maxItems": 3}
        }
    })
}

#[test]
fn constrained_output_validates_over_many_seeds() {
    for arch in ARCHS {
        let model = tiny(arch);
        let engine = engine(&model);
        let mut schema = tool_schema();
        restrict_enum(
            &mut schema,
            "/properties/door",
            vec![json!("lobby"), json!("server-room"), json!("dock")],
        )
        .unwrap();
        let mut answers = std::collections::BTreeSet::new();
        for seed in 0..24 {
            // Room for the longest value the schema allows (twelve \uXXXX escapes in
            // `reason`): the random model wanders to the limits.
            let request = Request::chat(vec![Message::user("open the lobby door")])
                .max_tokens(400)
                .schema(schema.clone())
                .sampling(Sampling::Random {
                    temperature: 1.0,
                    top_p: 1.0,
                    seed,
                });
            let (value, g) = engine
                .generate_json(&request)
                .unwrap_or_else(|e| panic!("{arch} seed {seed}: {e}"));
            validate(&schema, &value).unwrap_or_else(|e| panic!("{arch} seed {seed}: {e}"));
            assert_eq!(g.finish, Finish::EndOfTurn, "{arch} seed {seed}");
            answers.insert(value.to_string());
        }
        assert!(answers.len() > 1, "{arch}: every seed gave {answers:?}");
    }
}

#[test]
fn greedy_constrained_output_is_valid_json() {
    let model = tiny("llama");
    let engine = engine(&model);
    let schema = json!({"type": "object", "required": ["ok"], "additionalProperties": false,
        "properties": {"ok": {"type": "boolean"}}});
    let (value, _) = engine
        .generate_json(
            &Request::text("answer:")
                .schema(schema.clone())
                .max_tokens(20),
        )
        .unwrap();
    assert!(value["ok"].is_boolean(), "{value}");
    // A schema the validator cannot check is refused, not half-enforced.
    let err = engine
        .generate_json(&Request::text("x").schema(json!({"type": "string", "pattern": "a+"})))
        .unwrap_err();
    assert!(matches!(err, Error::Grammar(_)), "{err}");
    // Too few tokens to finish: a clear error, never half a value.
    let err = engine
        .generate_json(&Request::text("x").schema(tool_schema()).max_tokens(3))
        .unwrap_err();
    assert!(matches!(err, Error::Incomplete(_)), "{err}");
}

#[test]
fn install_requantizes_slow_formats_and_verifies() {
    for arch in ARCHS {
        let model = tiny_as(arch, GgmlDType::Q4_1);
        let dest = model.path.with_file_name("installed.gguf");
        let mut steps = Vec::new();
        let report = gatehouse_llm::install(&model.path, &dest, &mut |p| steps.push(p)).unwrap();
        assert_eq!(report.architecture, arch);
        assert_eq!(
            report.name.as_deref(),
            Some(format!("tiny-{arch}").as_str())
        );
        // Every matrix was Q4_1; norms and biases were F32 and stay so.
        let matrices = tiny::LAYERS * 7 + 1 + usize::from(arch == "llama");
        assert_eq!(report.requantized, matrices);
        assert_ne!(report.source_sha256, report.installed_sha256);
        assert_eq!(
            report.source_sha256,
            gatehouse_llm::sha256_file(&model.path, &mut |_, _| {}).unwrap()
        );
        assert!(steps.contains(&gatehouse_llm::InstallProgress::Verifying));
        assert!(!model.path.with_file_name("installed.gguf.partial").exists());
        let mut file = std::fs::File::open(&dest).unwrap();
        let content = candle_core::quantized::gguf_file::Content::read(&mut file).unwrap();
        assert!(
            content
                .tensor_infos
                .values()
                .all(|t| !gatehouse_llm::needs_requantize(t.ggml_dtype))
        );
        // The installed model answers like the original, up to the requantization.
        let original = Engine::load(&model.path, EngineOptions::default()).unwrap();
        let installed = Engine::load(&dest, EngineOptions::default()).unwrap();
        let a = original
            .generate(&greedy("the door", 6), &mut |_| {})
            .unwrap();
        let b = installed
            .generate(&greedy("the door", 6), &mut |_| {})
            .unwrap();
        assert_eq!(a.tokens[0], b.tokens[0], "{arch}");
    }
}

#[test]
fn install_of_a_broken_file_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("broken.gguf");
    let model = tiny("llama");
    let mut bytes = std::fs::read(&model.path).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&source, bytes).unwrap();
    let dest = dir.path().join("model.gguf");
    let err = gatehouse_llm::install(&source, &dest, &mut |_| {}).unwrap_err();
    assert!(matches!(err, Error::Format(_)), "{err}");
    assert!(!dest.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn thread_count_other_than_the_pool_is_refused_with_the_fix() {
    let model = tiny("llama");
    let have = gatehouse_llm::effective_threads();
    let ok = Engine::load(
        &model.path,
        EngineOptions {
            threads: Some(have),
            ..EngineOptions::default()
        },
    );
    assert!(ok.is_ok());
    let err = Engine::load(
        &model.path,
        EngineOptions {
            threads: Some(have + 1),
            ..EngineOptions::default()
        },
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("CANDLE_NUM_THREADS"), "{err}");
}

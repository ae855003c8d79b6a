//! Measures a model: `cargo run -p gatehouse-llm --release --example bench -- MODEL.gguf
//! [PROMPT_TOKENS] [DECODE_TOKENS] [RUNS]`. A Q4_1/Q5_x file is installed (requantized to
//! Q8_0) into a temporary folder first, as `gatehouse model install` would.

use std::path::PathBuf;

use gatehouse_llm::{Engine, EngineOptions, bench, install, needs_requantize};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let model = PathBuf::from(
        args.next()
            .ok_or("usage: bench MODEL.gguf [PROMPT] [DECODE] [RUNS]")?,
    );
    let prompt: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(176);
    let decode: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(64);
    let runs: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(3);

    let dir = std::env::temp_dir().join(format!("gatehouse-llm-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut file = std::fs::File::open(&model)?;
    let content = candle_core::quantized::gguf_file::Content::read(&mut file)?;
    let path = if content
        .tensor_infos
        .values()
        .any(|t| needs_requantize(t.ggml_dtype))
    {
        let dest = dir.join("model.gguf");
        let report = install(&model, &dest, &mut |_| {})?;
        eprintln!(
            "installed: {} tensors requantized to Q8_0",
            report.requantized
        );
        dest
    } else {
        model
    };
    let engine = Engine::load(
        &path,
        EngineOptions {
            context_size: prompt + decode,
            ..EngineOptions::default()
        },
    )?;
    println!(
        "model {} ({} layers, {} wide), {} threads, prompt {prompt} tokens, decode {decode} tokens",
        engine.config().architecture.name(),
        engine.config().layers,
        engine.config().hidden,
        gatehouse_llm::effective_threads()
    );
    println!("run  prefill_tok/s  first_token_s  decode_tok/s  peak_rss_MiB");
    for run in 1..=runs {
        let r = bench(&engine, prompt, decode)?;
        println!(
            "{run:>3}  {:>13.1}  {:>13.3}  {:>12.1}  {:>12.0}",
            r.prefill_tokens_per_sec,
            r.first_token_secs,
            r.decode_tokens_per_sec,
            r.peak_rss_bytes.unwrap_or(0) as f64 / (1024.0 * 1024.0)
        );
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

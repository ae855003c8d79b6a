//! GGUF files: reading metadata, and installing a model (hash, requantize the formats
//! candle has no fast CPU kernel for to Q8_0, write, verify by loading it back).

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use candle_core::Device;
use candle_core::quantized::{GgmlDType, QTensor, gguf_file};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// An open GGUF file: its parsed header and a reader positioned anywhere.
pub(crate) struct Gguf {
    pub content: gguf_file::Content,
    pub reader: BufReader<File>,
    pub path: PathBuf,
}

impl Gguf {
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let mut reader = BufReader::new(file);
        let content = gguf_file::Content::read(&mut reader)
            .map_err(|e| Error::Format(format!("{}: {e}", path.display())))?;
        Ok(Gguf {
            content,
            reader,
            path: path.to_path_buf(),
        })
    }

    pub fn architecture(&self) -> Result<String> {
        self.string("general.architecture")
    }

    pub fn value(&self, key: &str) -> Result<&gguf_file::Value> {
        self.content
            .metadata
            .get(key)
            .ok_or_else(|| Error::Format(format!("metadata key `{key}` is missing")))
    }

    pub fn string(&self, key: &str) -> Result<String> {
        self.value(key)?
            .to_string()
            .cloned()
            .map_err(|_| Error::Format(format!("metadata key `{key}` is not a string")))
    }

    pub fn usize(&self, key: &str) -> Result<usize> {
        let v = self.value(key)?;
        let n = match v {
            gguf_file::Value::U8(v) => u64::from(*v),
            gguf_file::Value::U16(v) => u64::from(*v),
            gguf_file::Value::U32(v) => u64::from(*v),
            gguf_file::Value::U64(v) => *v,
            gguf_file::Value::I8(v) => u64::try_from(*v).unwrap_or(u64::MAX),
            gguf_file::Value::I16(v) => u64::try_from(*v).unwrap_or(u64::MAX),
            gguf_file::Value::I32(v) => u64::try_from(*v).unwrap_or(u64::MAX),
            gguf_file::Value::I64(v) => u64::try_from(*v).unwrap_or(u64::MAX),
            _ => {
                return Err(Error::Format(format!(
                    "metadata key `{key}` is not an integer"
                )));
            }
        };
        usize::try_from(n)
            .ok()
            .filter(|n| *n < (1 << 40))
            .ok_or_else(|| Error::Format(format!("metadata key `{key}` is out of range: {n}")))
    }

    pub fn f32(&self, key: &str) -> Result<f32> {
        match self.value(key)? {
            gguf_file::Value::F32(v) => Ok(*v),
            gguf_file::Value::F64(v) => Ok(*v as f32),
            _ => Err(Error::Format(format!(
                "metadata key `{key}` is not a number"
            ))),
        }
    }

    pub fn has_tensor(&self, name: &str) -> bool {
        self.content.tensor_infos.contains_key(name)
    }

    pub fn tensor(&mut self, name: &str) -> Result<QTensor> {
        if !self.has_tensor(name) {
            return Err(Error::Format(format!("tensor `{name}` is missing")));
        }
        self.content
            .tensor(&mut self.reader, name, &Device::Cpu)
            .map_err(|e| Error::Format(format!("tensor `{name}`: {e}")))
    }
}

/// The quantized formats that candle computes with scalar code on x86: installed models
/// have them converted to Q8_0, which has a vectorised kernel and loses nothing visible
/// (8 bits per weight hold a 4- or 5-bit value and its block's offset).
pub fn needs_requantize(dtype: GgmlDType) -> bool {
    matches!(dtype, GgmlDType::Q4_1 | GgmlDType::Q5_0 | GgmlDType::Q5_1)
}

/// The SHA-256 of a file, as lowercase hex; `progress` gets (bytes done, bytes total).
pub fn sha256_file(path: &Path, progress: &mut dyn FnMut(u64, u64)) -> Result<String> {
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let total = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        done += n as u64;
        progress(done, total);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// What `install` is doing, for a progress bar.
#[derive(Debug, Clone, PartialEq)]
pub enum InstallProgress {
    /// Hashing the source file.
    Hashing { done: u64, total: u64 },
    /// Reading (and requantizing where needed) tensor `done` of `total`.
    Converting { done: usize, total: usize },
    /// Writing the installed file.
    Writing,
    /// Loading the written file back and running one token through it.
    Verifying,
}

/// What `install` did.
#[derive(Debug, Clone)]
pub struct InstallReport {
    /// Where the installed model now is.
    pub path: PathBuf,
    /// SHA-256 of the file the admin supplied.
    pub source_sha256: String,
    /// SHA-256 of the installed file (differs from the source when tensors were converted).
    pub installed_sha256: String,
    pub architecture: String,
    /// `general.name` when the file has one.
    pub name: Option<String>,
    pub tensors: usize,
    /// Tensors converted to Q8_0.
    pub requantized: usize,
    pub bytes: u64,
}

/// Installs the GGUF model `source` as `dest`: checks it is a model this runtime runs,
/// converts Q4_1/Q5_0/Q5_1 tensors to Q8_0, writes it beside `dest` and renames it into
/// place only after loading it back and running a token through it. `dest` is never
/// left half-written; on error nothing is left behind.
pub fn install(
    source: &Path,
    dest: &Path,
    progress: &mut dyn FnMut(InstallProgress),
) -> Result<InstallReport> {
    let source_sha256 = sha256_file(source, &mut |done, total| {
        progress(InstallProgress::Hashing { done, total })
    })?;
    let mut gguf = Gguf::open(source)?;
    // Fails early, before any conversion, on an architecture or tokenizer we cannot run.
    let config = crate::model::Config::from_gguf(&gguf)?;
    crate::tokenizer::TextTokenizer::from_gguf(&gguf)?;
    let architecture = config.architecture.name().to_string();
    let name = gguf.string("general.name").ok();

    let mut names: Vec<String> = gguf.content.tensor_infos.keys().cloned().collect();
    // The order in the source file, so the written file reads sequentially the same way.
    names.sort_by_key(|n| gguf.content.tensor_infos.get(n).map(|t| t.offset));
    let total = names.len();
    let mut tensors = Vec::with_capacity(total);
    let mut requantized = 0;
    for (i, name) in names.iter().enumerate() {
        progress(InstallProgress::Converting { done: i, total });
        let tensor = gguf.tensor(name)?;
        let tensor = if needs_requantize(tensor.dtype()) {
            requantized += 1;
            let dense = tensor.dequantize(&Device::Cpu)?;
            QTensor::quantize(&dense, GgmlDType::Q8_0)?
        } else {
            tensor
        };
        tensors.push(tensor);
    }
    progress(InstallProgress::Converting { done: total, total });

    // candle's writer aligns tensor data to 32 bytes: a different alignment from the
    // source must not be carried over.
    let metadata: Vec<(&str, &gguf_file::Value)> = gguf
        .content
        .metadata
        .iter()
        .filter(|(k, _)| k.as_str() != "general.alignment")
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    let named: Vec<(&str, &QTensor)> = names
        .iter()
        .map(|n| n.as_str())
        .zip(tensors.iter())
        .collect();

    let partial = partial_path(dest);
    let result = (|| {
        progress(InstallProgress::Writing);
        {
            let file = File::create(&partial).map_err(|e| Error::io(&partial, e))?;
            let mut writer = BufWriter::new(file);
            gguf_file::write(&mut writer, &metadata, &named)?;
            writer.flush().map_err(|e| Error::io(&partial, e))?;
            let file = writer
                .into_inner()
                .map_err(|e| Error::io(&partial, e.into_error()))?;
            file.sync_all().map_err(|e| Error::io(&partial, e))?;
        }
        progress(InstallProgress::Verifying);
        verify(&partial, &names)?;
        let installed_sha256 = sha256_file(&partial, &mut |_, _| {})?;
        let bytes = std::fs::metadata(&partial)
            .map_err(|e| Error::io(&partial, e))?
            .len();
        std::fs::rename(&partial, dest).map_err(|e| Error::io(dest, e))?;
        Ok((installed_sha256, bytes))
    })();
    let (installed_sha256, bytes) = match result {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    Ok(InstallReport {
        path: dest.to_path_buf(),
        source_sha256,
        installed_sha256,
        architecture,
        name,
        tensors: total,
        requantized,
        bytes,
    })
}

fn partial_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    dest.with_file_name(name)
}

/// Loads the written file as a model and runs one token through it: the tensors, the
/// tokenizer and the arithmetic all have to work before the file is installed.
fn verify(path: &Path, names: &[String]) -> Result<()> {
    let mut gguf = Gguf::open(path)?;
    for name in names {
        if !gguf.has_tensor(name) {
            return Err(Error::Format(format!("written file lacks tensor `{name}`")));
        }
    }
    if gguf
        .content
        .tensor_infos
        .values()
        .any(|t| needs_requantize(t.ggml_dtype))
    {
        return Err(Error::Format(
            "written file still has slow tensor formats".into(),
        ));
    }
    let tokenizer = crate::tokenizer::TextTokenizer::from_gguf(&gguf)?;
    let model = crate::model::Model::from_gguf(&mut gguf)?;
    let mut cache = crate::model::KvCache::new(&model.config, 8)?;
    let first = tokenizer.bos().unwrap_or(0);
    let logits = model.forward(&[first], &mut cache)?;
    if logits.len() != model.config.vocab_size || logits.iter().any(|v| !v.is_finite()) {
        return Err(Error::Format(
            "the model's first output is not finite: the weights are damaged".into(),
        ));
    }
    Ok(())
}

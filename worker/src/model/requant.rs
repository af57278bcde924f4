//! Kernel-friendly weights for the CPU. candle, under mistral.rs, has SIMD dot products for Q4_0,
//! Q8_0 and the K-quants, and (in the copy patched under `vendor/candle-core`) for Q4_1, but only
//! scalar loops for Q5_0 and Q5_1. So before loading, tensors of those two types are requantized
//! to Q8_0 (8-bit blocks of 32 with one scale: every value is kept to within half a step of 1/127
//! of its block's largest magnitude) and written once to a cached copy of the GGUF beside the
//! original (or in the temp directory when that is read-only). Metadata, the tokenizer and the
//! chat template are copied unchanged. The default model (Q4_1) loads as it is.

use std::{
    fs::File,
    io::{BufReader, BufWriter},
    path::{Path, PathBuf},
    time::{Instant, SystemTime},
};

use candle_core::{
    quantized::{gguf_file, GgmlDType, QTensor},
    Device,
};

/// Quantization types that have no SIMD kernel on the CPU.
fn is_slow(dtype: GgmlDType) -> bool {
    matches!(dtype, GgmlDType::Q5_0 | GgmlDType::Q5_1)
}

/// Returns the file to load: `path` itself when nothing needs converting, else the cached Q8_0
/// copy, written now if it is missing or older than `path`.
pub fn for_cpu(path: &Path) -> anyhow::Result<PathBuf> {
    let target = match std::env::var("SENTINEL_CPU_REQUANT").as_deref() {
        Ok("off") => return Ok(path.to_path_buf()),
        Ok("q4_0") => GgmlDType::Q4_0,
        _ => GgmlDType::Q8_0,
    };
    let mut reader = BufReader::new(File::open(path)?);
    let content = gguf_file::Content::read(&mut reader)
        .map_err(|error| anyhow::anyhow!("reading the GGUF header: {error}"))?;
    let slow = content
        .tensor_infos
        .values()
        .filter(|info| is_slow(info.ggml_dtype))
        .count();
    if slow == 0 {
        return Ok(path.to_path_buf());
    }
    let name = path
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    let cached_name = format!("{name}.sentinel-{target:?}.gguf").to_lowercase();
    let beside = path.with_file_name(&cached_name);
    let candidates = [beside, std::env::temp_dir().join(&cached_name)];
    let source_modified = std::fs::metadata(path)?.modified()?;
    for candidate in &candidates {
        let fresh = std::fs::metadata(candidate)
            .and_then(|meta| meta.modified())
            .is_ok_and(|modified| modified >= source_modified);
        if fresh {
            return Ok(candidate.clone());
        }
    }
    let started = Instant::now();
    let tensors = converted_tensors(&content, &mut reader, target)?;
    let mut last_error = None;
    for candidate in &candidates {
        match write_copy(&content, &tensors, candidate, source_modified) {
            Ok(()) => {
                tracing::info!(
                    model.source = %path.display(),
                    model.cached = %candidate.display(),
                    model.tensors_converted = slow,
                    model.convert_ms = started.elapsed().as_millis() as u64,
                    "converted Q5_0/Q5_1 tensors for the CPU kernels"
                );
                return Ok(candidate.clone());
            }
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error
        .unwrap_or_else(|| anyhow::anyhow!("no place to write"))
        .context("writing the requantized copy of the model"))
}

/// Every tensor of `content`, in file order, the slow ones requantized to `target`.
fn converted_tensors(
    content: &gguf_file::Content,
    reader: &mut BufReader<File>,
    target: GgmlDType,
) -> anyhow::Result<Vec<(String, QTensor)>> {
    let mut infos: Vec<(&String, &gguf_file::TensorInfo)> = content.tensor_infos.iter().collect();
    infos.sort_by_key(|(_, info)| info.offset);
    let mut tensors: Vec<(String, QTensor)> = Vec::with_capacity(infos.len());
    for (tensor_name, info) in infos {
        let tensor = content
            .tensor(reader, tensor_name, &Device::Cpu)
            .map_err(|error| anyhow::anyhow!("reading tensor {tensor_name}: {error}"))?;
        let tensor = if is_slow(info.ggml_dtype) {
            let weights = tensor.dequantize(&Device::Cpu)?;
            QTensor::quantize(&weights, target)?
        } else {
            tensor
        };
        tensors.push((tensor_name.clone(), tensor));
    }
    Ok(tensors)
}

/// Writes the copy with `content`'s metadata and `tensors` to `candidate`: to a partial file
/// first, published in place once complete (see [`publish`]); the partial file is removed on
/// failure.
fn write_copy(
    content: &gguf_file::Content,
    tensors: &[(String, QTensor)],
    candidate: &Path,
    source_modified: SystemTime,
) -> anyhow::Result<()> {
    // The copy is written with candle's default 32-byte alignment, and in a fixed order so that
    // two processes converting at once write the same bytes.
    let mut metadata: Vec<(&str, &gguf_file::Value)> = content
        .metadata
        .iter()
        .filter(|(key, _)| key.as_str() != "general.alignment")
        .map(|(key, value)| (key.as_str(), value))
        .collect();
    metadata.sort_by_key(|(key, _)| *key);
    let tensor_refs: Vec<(&str, &QTensor)> = tensors
        .iter()
        .map(|(name, tensor)| (name.as_str(), tensor))
        .collect();
    let partial = candidate.with_extension(format!("partial-{}", std::process::id()));
    let written = File::create(&partial)
        .map_err(anyhow::Error::from)
        .and_then(|file| {
            let mut writer = BufWriter::new(file);
            gguf_file::write(&mut writer, &metadata, &tensor_refs)?;
            writer
                .into_inner()
                .map_err(|error| error.into_error())?
                .sync_all()?;
            Ok(())
        })
        .and_then(|()| publish(&partial, candidate, source_modified));
    if written.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    written
}

/// Puts a finished copy in place without ever replacing a file another process may be reading:
/// a stale copy is removed first, and a copy that appeared meanwhile (from a process converting at
/// the same time, byte for byte the same) is kept.
fn publish(partial: &Path, target: &Path, source_modified: SystemTime) -> anyhow::Result<()> {
    let stale = std::fs::metadata(target)
        .and_then(|meta| meta.modified())
        .is_ok_and(|modified| modified < source_modified);
    if stale {
        let _ = std::fs::remove_file(target);
    }
    let linked = match std::fs::hard_link(partial, target) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(error.into()),
    };
    let _ = std::fs::remove_file(partial);
    linked
}

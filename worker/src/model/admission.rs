//! GPU-aware admission: how many sequences the model runs at once (the model lane's claim slots)
//! and how large the paged-attention KV pool is, sized from a GPU memory budget
//! (`SENTINEL_VRAM_BUDGET_MB`) and the GGUF's own size and shape.
//!
//! The arithmetic, all in MB of 2^20 bytes:
//! - **weights**: the GGUF's tensor data, as mistral.rs keeps it on the GPU (quantized), except the
//!   token embedding, which its GGUF models hold dequantized in f32 (vocabulary × hidden × 4 bytes);
//! - **reserve**: the CUDA context, cuBLAS workspace and allocator slack (`SENTINEL_VRAM_RESERVE_MB`);
//! - **prefill**: the attention scores of one prompt as long as the context budget, in f32
//!   (heads × context² × 4 bytes), since prompts are processed without flash attention;
//! - **per sequence**: its KV cache for the whole context budget (K and V for every layer and KV
//!   head, in the 2-byte cache dtype) plus its activations (`SENTINEL_VRAM_PER_SEQ_MB`).
//!
//! The sequences that fit are what remains after weights, reserve and prefill, divided by the
//! per-sequence cost. More sequences than fit would run the GPU out of memory; more than
//! [`BEST_SEQS`] fit in the budget but decode slower in aggregate (measured on an H100 with the
//! 3B shape: 8 sequences gave 381–500 tokens/s, 32 gave 230–320 and more memory), so the default
//! takes the smaller of the two. An explicit `SENTINEL_MAX_SEQS` wins if it fits.

use std::{fmt, fs::File, io::BufReader, path::Path};

use anyhow::Context;
use candle_core::quantized::gguf_file;

use super::gpu_memory::GpuMemory;

/// One MB as mistral.rs counts its KV pool.
const MB: u64 = 1 << 20;

/// The sequences in flight that gave the highest aggregate decode rate (see the module docs).
pub const BEST_SEQS: usize = 8;
/// Tokens of context (prompt + answer) each sequence is sized for, unless `SENTINEL_CONTEXT_TOKENS`.
pub const DEFAULT_CONTEXT_TOKENS: usize = 2_048;
/// The CUDA context, cuBLAS workspace and allocator slack, unless `SENTINEL_VRAM_RESERVE_MB`.
pub const DEFAULT_RESERVE_MB: u64 = 768;
/// Activations per sequence in flight, unless `SENTINEL_VRAM_PER_SEQ_MB` (an H100 with the 3B
/// shape used about 42 MB more for each added sequence, at a fixed KV pool).
pub const DEFAULT_PER_SEQ_MB: u64 = 48;
/// Bytes per KV cache element: mistral.rs keeps the cache in the activation dtype (bf16 or f16).
const KV_DTYPE_BYTES: u64 = 2;
/// mistral.rs's paged-attention block, in tokens.
const BLOCK_TOKENS: usize = 32;

/// What admission needs to know about a model, read from its GGUF header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelShape {
    pub architecture: String,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub hidden: usize,
    pub vocab: usize,
    /// The longest context the model was trained for, when the file says.
    pub trained_context: Option<usize>,
    /// Bytes of tensor data in the file.
    pub tensor_bytes: u64,
    /// Bytes of the quantized token embedding in the file.
    pub embedding_bytes: u64,
    /// Whether the output projection is its own tensor (else it reuses the quantized embedding).
    pub separate_output: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ShapeError {
    #[error("the GGUF header cannot be read: {0}")]
    Unreadable(String),
    #[error("the GGUF metadata has no {0}")]
    Missing(String),
}

impl ModelShape {
    /// Reads the shape from the GGUF header at `path` (no tensor data is read).
    pub fn read(path: &Path) -> Result<Self, ShapeError> {
        let file = File::open(path).map_err(|error| ShapeError::Unreadable(error.to_string()))?;
        let mut reader = BufReader::new(file);
        let content = gguf_file::Content::read(&mut reader)
            .map_err(|error| ShapeError::Unreadable(error.to_string()))?;
        Self::from_content(&content)
    }

    pub fn from_content(content: &gguf_file::Content) -> Result<Self, ShapeError> {
        let text = |key: &str| {
            content
                .metadata
                .get(key)
                .and_then(|value| value.to_string().ok().cloned())
                .ok_or_else(|| ShapeError::Missing(key.into()))
        };
        let architecture = text("general.architecture")?;
        let number = |suffix: &str| -> Result<Option<usize>, ShapeError> {
            let key = format!("{architecture}.{suffix}");
            match content.metadata.get(&key) {
                None => Ok(None),
                Some(value) => value
                    .to_u64()
                    .or_else(|_| value.to_u32().map(u64::from))
                    .ok()
                    .and_then(|n| usize::try_from(n).ok())
                    .filter(|&n| n > 0)
                    .map(Some)
                    .ok_or(ShapeError::Missing(format!("positive number {key}"))),
            }
        };
        let required = |suffix: &str| {
            number(suffix)?.ok_or_else(|| ShapeError::Missing(format!("{architecture}.{suffix}")))
        };
        let layers = required("block_count")?;
        let heads = required("attention.head_count")?;
        let hidden = required("embedding_length")?;
        let kv_heads = number("attention.head_count_kv")?.unwrap_or(heads);
        let head_dim = match number("attention.key_length")? {
            Some(dim) => dim.max(number("attention.value_length")?.unwrap_or(dim)),
            None => hidden / heads,
        };
        let embedding = content
            .tensor_infos
            .get("token_embd.weight")
            .ok_or_else(|| ShapeError::Missing("tensor token_embd.weight".into()))?;
        let dims = embedding.shape.dims();
        let vocab = dims
            .iter()
            .copied()
            .find(|&dim| dim != hidden)
            .unwrap_or(hidden);
        let bytes = |info: &gguf_file::TensorInfo| {
            let dtype = info.ggml_dtype;
            (info.shape.elem_count() / dtype.block_size() * dtype.type_size()) as u64
        };
        Ok(Self {
            layers,
            heads,
            kv_heads,
            head_dim,
            hidden,
            vocab,
            trained_context: number("context_length")?,
            tensor_bytes: content.tensor_infos.values().map(bytes).sum(),
            embedding_bytes: bytes(embedding),
            separate_output: content.tensor_infos.contains_key("output.weight"),
            architecture,
        })
    }

    /// Bytes of KV cache one token takes: K and V, for every layer and KV head.
    pub fn kv_bytes_per_token(&self) -> u64 {
        2 * (self.layers * self.kv_heads * self.head_dim) as u64 * KV_DTYPE_BYTES
    }

    /// Bytes the weights take on the GPU: the tensors as stored, with the token embedding
    /// dequantized to f32 (its quantized copy stays only when it is also the output projection).
    pub fn gpu_weight_bytes(&self) -> u64 {
        let dense_embedding = (self.vocab * self.hidden) as u64 * 4;
        let kept_quantized = if self.separate_output {
            self.tensor_bytes - self.embedding_bytes
        } else {
            self.tensor_bytes
        };
        kept_quantized + dense_embedding
    }
}

/// The budget and the sizing knobs, from the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// `SENTINEL_VRAM_BUDGET_MB`.
    pub vram_mb: u64,
    /// `SENTINEL_CONTEXT_TOKENS`: prompt + answer tokens each sequence is sized for.
    pub context_tokens: usize,
    pub reserve_mb: u64,
    pub per_seq_mb: u64,
    /// `SENTINEL_MAX_SEQS` when the operator set it.
    pub max_seqs: Option<usize>,
}

impl Budget {
    pub fn new(vram_mb: u64) -> Self {
        Self {
            vram_mb,
            context_tokens: DEFAULT_CONTEXT_TOKENS,
            reserve_mb: DEFAULT_RESERVE_MB,
            per_seq_mb: DEFAULT_PER_SEQ_MB,
            max_seqs: None,
        }
    }
}

/// The sizing admission chose, with every term of its arithmetic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub budget: Budget,
    pub weights_mb: u64,
    pub prefill_mb: u64,
    pub kv_bytes_per_token: u64,
    /// KV cache of one sequence at the full context budget.
    pub seq_kv_mb: u64,
    /// How many sequences fit in the budget.
    pub fits: usize,
    /// Sequences in flight: the claim slots.
    pub slots: usize,
    /// The paged-attention KV pool.
    pub kv_pool_mb: u64,
    /// Everything planned: weights + reserve + prefill + activations + KV pool.
    pub planned_mb: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AdmissionError {
    #[error(
        "SENTINEL_VRAM_BUDGET_MB={budget} cannot hold this model: weights {weights} MB + reserve \
         {reserve} MB + prefill {prefill} MB + one sequence {seq} MB ({context} tokens of KV \
         cache at {kv_per_token} bytes each, plus {per_seq} MB of activations) = {needed} MB; \
         raise the budget to at least {needed}, or lower SENTINEL_CONTEXT_TOKENS, or use a \
         smaller model"
    )]
    TooSmall {
        budget: u64,
        weights: u64,
        reserve: u64,
        prefill: u64,
        seq: u64,
        context: usize,
        kv_per_token: u64,
        per_seq: u64,
        needed: u64,
    },
    #[error(
        "SENTINEL_MAX_SEQS={asked} does not fit SENTINEL_VRAM_BUDGET_MB={budget}: after weights \
         {weights} MB, reserve {reserve} MB and prefill {prefill} MB, {left} MB are left, which \
         hold {fits} sequences of {seq} MB ({context} tokens each); lower SENTINEL_MAX_SEQS or \
         SENTINEL_CONTEXT_TOKENS, or leave SENTINEL_MAX_SEQS unset"
    )]
    TooManySeqs {
        asked: usize,
        budget: u64,
        weights: u64,
        reserve: u64,
        prefill: u64,
        left: u64,
        fits: usize,
        seq: u64,
        context: usize,
    },
    #[error(
        "SENTINEL_CONTEXT_TOKENS={context} is longer than the {trained} tokens this model was \
         trained for"
    )]
    ContextTooLong { context: usize, trained: usize },
    #[error("SENTINEL_CONTEXT_TOKENS must be at least {BLOCK_TOKENS}")]
    ContextTooShort,
}

fn mb_ceil(bytes: u64) -> u64 {
    bytes.div_ceil(MB)
}

/// Sizes the slots and the KV pool for `shape` within `budget`.
pub fn plan(shape: &ModelShape, budget: Budget) -> Result<Plan, AdmissionError> {
    let context = budget.context_tokens;
    if context < BLOCK_TOKENS {
        return Err(AdmissionError::ContextTooShort);
    }
    if let Some(trained) = shape.trained_context.filter(|&trained| context > trained) {
        return Err(AdmissionError::ContextTooLong { context, trained });
    }
    // The pool is allocated in whole blocks of tokens.
    let context_blocks = context.div_ceil(BLOCK_TOKENS) * BLOCK_TOKENS;
    let kv_bytes_per_token = shape.kv_bytes_per_token();
    let seq_kv_mb = mb_ceil(context_blocks as u64 * kv_bytes_per_token);
    let seq_mb = seq_kv_mb + budget.per_seq_mb;
    let weights_mb = mb_ceil(shape.gpu_weight_bytes());
    let prefill_mb = mb_ceil((shape.heads * context * context) as u64 * 4);
    let fixed_mb = weights_mb + budget.reserve_mb + prefill_mb;
    let left = budget.vram_mb.saturating_sub(fixed_mb);
    let fits = usize::try_from(left / seq_mb.max(1)).unwrap_or(usize::MAX);
    if fits == 0 {
        return Err(AdmissionError::TooSmall {
            budget: budget.vram_mb,
            weights: weights_mb,
            reserve: budget.reserve_mb,
            prefill: prefill_mb,
            seq: seq_mb,
            context,
            kv_per_token: kv_bytes_per_token,
            per_seq: budget.per_seq_mb,
            needed: fixed_mb + seq_mb,
        });
    }
    let slots = match budget.max_seqs {
        Some(asked) if asked > fits => {
            return Err(AdmissionError::TooManySeqs {
                asked,
                budget: budget.vram_mb,
                weights: weights_mb,
                reserve: budget.reserve_mb,
                prefill: prefill_mb,
                left,
                fits,
                seq: seq_mb,
                context,
            })
        }
        Some(asked) => asked,
        None => fits.min(BEST_SEQS),
    };
    let kv_pool_mb = mb_ceil((slots * context_blocks) as u64 * kv_bytes_per_token);
    Ok(Plan {
        budget,
        weights_mb,
        prefill_mb,
        kv_bytes_per_token,
        seq_kv_mb,
        fits,
        slots,
        kv_pool_mb,
        planned_mb: fixed_mb + slots as u64 * budget.per_seq_mb + kv_pool_mb,
    })
}

/// Reads the model's shape from `model`, plans within `budget` and logs the arithmetic. A budget
/// larger than the GPU (when the driver can be asked) or too small for the model is an error that
/// gives the numbers.
pub fn admit(model: &Path, budget: Budget) -> anyhow::Result<Plan> {
    let shape = ModelShape::read(model)
        .with_context(|| format!("sizing admission from {}", model.display()))?;
    if cfg!(feature = "cuda") {
        match GpuMemory::open() {
            Ok(gpu) => {
                if let Ok(total_mb) = gpu.total_mb() {
                    if budget.vram_mb > total_mb {
                        anyhow::bail!(
                            "SENTINEL_VRAM_BUDGET_MB={} is more than the {total_mb} MB of {}",
                            budget.vram_mb,
                            gpu.name()
                        );
                    }
                }
            }
            Err(why) => tracing::warn!("the budget is not checked against the GPU: {why}"),
        }
    }
    let plan = plan(&shape, budget)?;
    tracing::info!(
        model.architecture = %shape.architecture,
        model.layers = shape.layers,
        model.kv_heads = shape.kv_heads,
        model.head_dim = shape.head_dim,
        admission.slots = plan.slots,
        admission.kv_pool_mb = plan.kv_pool_mb,
        admission.planned_mb = plan.planned_mb,
        "GPU admission: {plan}"
    );
    if !cfg!(feature = "cuda") {
        tracing::warn!(
            "this worker is a CPU build: the budget sets the sequence slots, and no GPU KV pool is allocated"
        );
    }
    Ok(plan)
}

impl fmt::Display for Plan {
    /// The arithmetic, as the worker logs it at start.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.budget;
        let chosen = match b.max_seqs {
            Some(_) => "SENTINEL_MAX_SEQS".to_string(),
            None if self.slots < self.fits => format!("best measured point, {BEST_SEQS}"),
            None => "all that fit".to_string(),
        };
        write!(
            f,
            "budget {budget} MB: weights {weights} MB + reserve {reserve} MB + prefill {prefill} MB \
             leave {left} MB; one sequence = {kv} MB KV ({context} tokens × {per_token} B) + \
             {per_seq} MB activations, so {fits} fit; slots {slots} ({chosen}); KV pool \
             {pool} MB; planned {planned} MB of {budget} MB",
            budget = b.vram_mb,
            weights = self.weights_mb,
            reserve = b.reserve_mb,
            prefill = self.prefill_mb,
            left = b
                .vram_mb
                .saturating_sub(self.weights_mb + b.reserve_mb + self.prefill_mb),
            kv = self.seq_kv_mb,
            context = b.context_tokens,
            per_token = self.kv_bytes_per_token,
            per_seq = b.per_seq_mb,
            fits = self.fits,
            slots = self.slots,
            pool = self.kv_pool_mb,
            planned = self.planned_mb,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Llama-3.2-3B: hidden 3072, 28 layers, 24 heads, 8 KV heads, head dimension 128, with the
    /// default model's 49,152-token vocabulary (as `scripts/gen-gguf.sh llama-3.2-3b` writes it).
    fn llama_3b() -> ModelShape {
        ModelShape {
            architecture: "llama".into(),
            layers: 28,
            heads: 24,
            kv_heads: 8,
            head_dim: 128,
            hidden: 3072,
            vocab: 49_152,
            trained_context: Some(131_072),
            tensor_bytes: 1_700 * MB,
            embedding_bytes: 81 * MB,
            separate_output: false,
        }
    }

    #[test]
    fn kv_per_token_counts_k_and_v_for_every_layer_and_kv_head() {
        // 2 × 28 × 8 × 128 × 2 bytes.
        assert_eq!(llama_3b().kv_bytes_per_token(), 114_688);
    }

    #[test]
    fn a_6_gb_budget_takes_the_best_point_not_everything_that_fits() {
        let plan = plan(&llama_3b(), Budget::new(6_144)).unwrap();
        // 1,700 MB quantized + 49,152 × 3,072 × 4 bytes (576 MB) of f32 embedding.
        assert_eq!(plan.weights_mb, 2_276);
        // 24 heads × 2,048² × 4 bytes.
        assert_eq!(plan.prefill_mb, 384);
        // 2,048 × 114,688 bytes = 224 MB, plus 48 MB of activations.
        assert_eq!(plan.seq_kv_mb, 224);
        // (6,144 − 2,276 − 768 − 384) / 272 = 9.98.
        assert_eq!(plan.fits, 9);
        assert_eq!(plan.slots, BEST_SEQS);
        assert_eq!(plan.kv_pool_mb, 8 * 224);
        assert_eq!(plan.planned_mb, 2_276 + 768 + 384 + 8 * 48 + 8 * 224);
        assert!(plan.planned_mb <= 6_144);
        let logged = plan.to_string();
        assert!(
            logged.contains("9 fit") && logged.contains("slots 8") && logged.contains("1792 MB"),
            "{logged}"
        );
    }

    #[test]
    fn the_readmes_6_gb_profile_arithmetic_holds() {
        // Qwen2.5-3B-Instruct Q4_K_M: 1.93 GB of tensors, tied embeddings, 151,936 tokens.
        let qwen = ModelShape {
            architecture: "qwen2".into(),
            layers: 36,
            heads: 16,
            kv_heads: 2,
            head_dim: 128,
            hidden: 2048,
            vocab: 151_936,
            trained_context: Some(32_768),
            tensor_bytes: 1_840 * MB,
            embedding_bytes: 167 * MB,
            separate_output: false,
        };
        let plan = plan(&qwen, Budget::new(6_144)).unwrap();
        assert_eq!(
            (
                plan.weights_mb,
                plan.prefill_mb,
                plan.seq_kv_mb,
                plan.fits,
                plan.slots,
                plan.kv_pool_mb,
                plan.planned_mb
            ),
            (3_027, 256, 72, 17, 8, 576, 5_011)
        );
        let message = super::plan(&qwen, Budget::new(3_000))
            .unwrap_err()
            .to_string();
        assert!(message.contains("= 4171 MB"), "{message}");
    }

    #[test]
    fn a_small_budget_runs_fewer_sequences_and_says_all_that_fit() {
        let plan = plan(&llama_3b(), Budget::new(4_500)).unwrap();
        assert_eq!(plan.fits, 3);
        assert_eq!(plan.slots, 3);
        assert!(plan.planned_mb <= 4_500);
        assert!(plan.to_string().contains("all that fit"));
    }

    #[test]
    fn a_budget_the_model_cannot_fit_is_refused_with_the_numbers() {
        let error = plan(&llama_3b(), Budget::new(3_000)).unwrap_err();
        let message = error.to_string();
        for part in [
            "SENTINEL_VRAM_BUDGET_MB=3000",
            "weights 2276 MB",
            "reserve 768 MB",
            "one sequence 272 MB",
            "= 3700 MB",
        ] {
            assert!(message.contains(part), "{part} missing from: {message}");
        }
    }

    #[test]
    fn an_explicit_max_seqs_is_kept_when_it_fits_and_refused_when_it_does_not() {
        let mut budget = Budget::new(6_144);
        budget.max_seqs = Some(4);
        let plan_4 = plan(&llama_3b(), budget).unwrap();
        assert_eq!((plan_4.slots, plan_4.kv_pool_mb), (4, 4 * 224));
        budget.max_seqs = Some(16);
        let error = plan(&llama_3b(), budget).unwrap_err();
        assert!(
            matches!(
                error,
                AdmissionError::TooManySeqs {
                    asked: 16,
                    fits: 9,
                    ..
                }
            ),
            "{error}"
        );
    }

    #[test]
    fn a_shorter_context_fits_more_sequences_but_the_default_stays_at_the_best_point() {
        let mut budget = Budget::new(6_144);
        budget.context_tokens = 512;
        let plan = plan(&llama_3b(), budget).unwrap();
        assert!(plan.fits > 20, "{plan}");
        assert_eq!(plan.slots, BEST_SEQS);
        assert_eq!(plan.kv_pool_mb, 8 * 56);
    }

    #[test]
    fn a_context_beyond_the_trained_one_or_below_a_block_is_refused() {
        let mut shape = llama_3b();
        shape.trained_context = Some(1_024);
        let error = plan(&shape, Budget::new(6_144)).unwrap_err();
        assert_eq!(
            error,
            AdmissionError::ContextTooLong {
                context: 2_048,
                trained: 1_024
            }
        );
        let mut budget = Budget::new(6_144);
        budget.context_tokens = 8;
        assert_eq!(
            plan(&llama_3b(), budget).unwrap_err(),
            AdmissionError::ContextTooShort
        );
    }

    #[test]
    fn the_shape_is_read_from_the_default_models_header() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let path = root.join(crate::model::llm::DEFAULT_MODEL_PATH);
        let shape = ModelShape::read(&path).unwrap_or_else(|error| {
            panic!(
                "{error}: fetch the default model with `{}`",
                crate::model::llm::FETCH_COMMAND
            )
        });
        // SmolLM2-135M: 30 layers, 9 heads, 3 KV heads, hidden 576 (head dimension 64).
        assert_eq!(
            (
                shape.architecture.as_str(),
                shape.layers,
                shape.heads,
                shape.kv_heads,
                shape.head_dim,
                shape.hidden,
                shape.vocab
            ),
            ("llama", 30, 9, 3, 64, 576, 49_152)
        );
        assert!(!shape.separate_output);
        let file_bytes = std::fs::metadata(&path).unwrap().len();
        assert!(
            shape.tensor_bytes < file_bytes && shape.tensor_bytes > file_bytes * 9 / 10,
            "{} tensor bytes in a {file_bytes}-byte file",
            shape.tensor_bytes
        );
    }
}

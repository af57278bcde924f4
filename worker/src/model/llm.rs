//! The model: a local GGUF file loaded offline with mistral.rs (tokenizer and chat template come
//! from the file), and one generation call that streams tokens, stops on cancellation, and, under
//! a JSON-schema constraint, stops as soon as the JSON value closes.
//!
//! That last point works around mistral.rs 0.8.1, whose `Constraint::JsonSchema` does not end at
//! EOS and keeps emitting whitespace until `max_tokens`: the stream is dropped at the closing
//! brace, which cancels the sequence in the engine, so the cost never scales with `max_tokens`.

use std::{
    io::Read,
    path::{Path, PathBuf},
    sync::atomic::{AtomicUsize, Ordering},
    time::Instant,
};

use anyhow::Context;
use candle_core::Device;
use mistralrs::{
    Constraint, MemoryGpuConfig, Model, PagedAttentionMetaBuilder, RequestBuilder, Response,
    TextMessageRole, TextMessages, TokenSource,
};
use serde::Serialize;
use serde_json::Value as JsonValue;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

/// Where `scripts/fetch-model.sh` keeps the default model, relative to the repository root.
pub const DEFAULT_MODEL_PATH: &str = ".sentinel/models/SmolLM2-135M-Instruct.Q4_1.gguf";
/// The default model's SHA-256, checked at load so a truncated download is named as such.
pub const DEFAULT_MODEL_SHA256: &str =
    "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";
/// `SENTINEL_MODEL` when set, else the default model's place under `root` (the repository).
pub fn model_path_or_default(root: &Path) -> PathBuf {
    std::env::var_os("SENTINEL_MODEL")
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(DEFAULT_MODEL_PATH))
}

/// The command that fetches the default model.
pub const FETCH_COMMAND: &str = "bash scripts/fetch-model.sh";

/// How the model is loaded.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    pub path: PathBuf,
    /// Sequences the engine runs at once (`SENTINEL_MAX_SEQS`).
    pub max_seqs: usize,
    /// The paged-attention KV pool on the GPU, in MB (`SENTINEL_PAGED_ATTN_MB`); `None` keeps
    /// mistral.rs's default cache. Ignored on CPU, where paged attention is not supported.
    pub paged_attn_mb: Option<usize>,
    /// Prompt + answer tokens each sequence is sized for (`SENTINEL_CONTEXT_TOKENS`, with a GPU
    /// budget): a longer prompt is refused and the answer's budget is cut to what is left.
    pub context_tokens: Option<usize>,
    /// Sequences of a second engine kept for the LLM healing step (`SENTINEL_HEAL_ENGINE=own`);
    /// 0 to run healing on the replies' engine. mistral.rs's scheduler runs one bucket of
    /// equal-length sequences per step, so a lone healing sequence beside replies that generate
    /// in lockstep gets a step only when its waiting time outweighs their bucket: on the 2-core
    /// CPU, one token every few seconds (docs/BENCHMARKS.md, "The model step beside busy
    /// replies"). Its own engine gets steps of its own.
    pub heal_seqs: usize,
}

impl ModelConfig {
    /// The model sized by GPU admission when there is a plan: its paged KV pool (a cuda build
    /// only; the CPU has no paged attention) and its context budget per sequence.
    pub fn admitted(path: PathBuf, max_seqs: usize, plan: Option<&super::admission::Plan>) -> Self {
        Self {
            path,
            max_seqs,
            paged_attn_mb: plan
                .filter(|_| cfg!(feature = "cuda"))
                .map(|plan| plan.kv_pool_mb as usize),
            context_tokens: plan.map(|plan| plan.budget.context_tokens),
            heal_seqs: 0,
        }
    }
}

/// One chat message: `llm.generate`'s input type, which the other prompts use too.
pub use sentinel_queue::kinds::llm_generate::{Message as ChatMessage, Role};

/// Token counts of one generation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub total_tokens: usize,
}

/// A finished generation.
#[derive(Debug, Clone)]
pub struct Generation {
    pub text: String,
    pub usage: Usage,
    /// `stop` (EOS or the JSON value closed), `length` (the token budget ran out).
    pub finish_reason: String,
    /// Wall time from the request to the last token, in seconds.
    pub seconds: f64,
    /// Wall time from the request to the first token (the prompt's processing), in seconds.
    pub first_token_seconds: f64,
}

/// What a generation reports while it runs: the tokens so far and the partial text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    pub tokens: usize,
    pub text: String,
}

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("canceled")]
    Canceled,
    #[error("the model refused the request: {0}")]
    Invalid(String),
    #[error("the model failed: {0}")]
    Engine(String),
}

/// A loaded model, shared by every job of this worker.
pub struct Llm {
    model: Model,
    /// The healing step's own engine, when it has one ([`ModelConfig::heal_seqs`]).
    heal_model: Option<Model>,
    path: PathBuf,
    context_tokens: Option<usize>,
    in_flight: AtomicUsize,
    peak_in_flight: AtomicUsize,
}

/// Counts one generation in flight for as long as it lives.
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn enter(llm: &'a Llm) -> Self {
        let now = llm.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        llm.peak_in_flight.fetch_max(now, Ordering::SeqCst);
        Self(&llm.in_flight)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Llm {
    /// Loads the GGUF at `config.path` offline. A missing or corrupt file is an error that names
    /// the path and the fetch command.
    pub async fn load(config: &ModelConfig) -> anyhow::Result<Self> {
        let path = config.path.clone();
        check_model_file(&path)?;
        let started = Instant::now();
        let load_path = if cfg!(feature = "cuda") {
            path.clone()
        } else {
            let source = path.clone();
            tokio::task::spawn_blocking(move || super::requant::for_cpu(&source))
                .await
                .map_err(|panic| anyhow::anyhow!("the converter crashed: {panic}"))
                .and_then(|converted| converted)
                .map_err(|error| corrupt(&path, &format!("{error:#}")))?
        };
        let dir = load_path
            .parent()
            .filter(|dir| !dir.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_string_lossy()
            .into_owned();
        let file = load_path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .with_context(|| format!("SENTINEL_MODEL={} names no file", path.display()))?;
        let (max_seqs, paged_attn_mb) = (config.max_seqs.max(1), config.paged_attn_mb);
        let device = tokio::task::spawn_blocking(device)
            .await
            .map_err(|panic| anyhow::anyhow!("looking for the GPU crashed: {panic}"))??;
        // A corrupt file can panic inside the loader; a task turns that into an error.
        let load = |seqs: usize| {
            tokio::spawn(build(
                device.clone(),
                dir.clone(),
                file.clone(),
                seqs,
                paged_attn_mb,
                config.context_tokens,
            ))
        };
        let loaded = |joined: Result<anyhow::Result<Model>, tokio::task::JoinError>| {
            joined
                .map_err(|panic| anyhow::anyhow!("the loader crashed: {panic}"))
                .and_then(|built| built)
                .map_err(|error| corrupt(&path, &format!("{error:#}")))
        };
        let model = loaded(load(max_seqs).await)?;
        let heal_model = match config.heal_seqs {
            0 => None,
            seqs => Some(loaded(load(seqs).await)?),
        };
        tracing::info!(
            model.path = %path.display(),
            model.load_ms = started.elapsed().as_millis() as u64,
            "model loaded"
        );
        Ok(Self {
            model,
            heal_model,
            path,
            context_tokens: config.context_tokens,
            in_flight: AtomicUsize::new(0),
            peak_in_flight: AtomicUsize::new(0),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Generations running now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// The most generations that ever ran at once in this process.
    pub fn peak_in_flight(&self) -> usize {
        self.peak_in_flight.load(Ordering::SeqCst)
    }

    /// Generates a completion for `messages`, at most `max_tokens` long. With `schema`, the output
    /// is constrained to it and ends when the JSON value closes. `progress` receives the partial
    /// text after every token; `canceled` turning true stops the generation.
    pub async fn generate(
        &self,
        messages: &[ChatMessage],
        max_tokens: usize,
        schema: Option<&JsonValue>,
        progress: Option<&watch::Sender<Progress>>,
        canceled: Option<watch::Receiver<bool>>,
    ) -> Result<Generation, LlmError> {
        self.generate_on(
            &self.model,
            messages,
            max_tokens,
            schema,
            progress,
            canceled,
        )
        .await
    }

    /// [`Llm::generate`] for the LLM healing step: on its own engine when it has one.
    pub async fn generate_heal(
        &self,
        messages: &[ChatMessage],
        max_tokens: usize,
        schema: Option<&JsonValue>,
        progress: Option<&watch::Sender<Progress>>,
        canceled: Option<watch::Receiver<bool>>,
    ) -> Result<Generation, LlmError> {
        let engine = self.heal_model.as_ref().unwrap_or(&self.model);
        self.generate_on(engine, messages, max_tokens, schema, progress, canceled)
            .await
    }

    async fn generate_on(
        &self,
        model: &Model,
        messages: &[ChatMessage],
        max_tokens: usize,
        schema: Option<&JsonValue>,
        progress: Option<&watch::Sender<Progress>>,
        mut canceled: Option<watch::Receiver<bool>>,
    ) -> Result<Generation, LlmError> {
        let _in_flight = InFlight::enter(self);
        let started = Instant::now();
        let (max_tokens, prompt_tokens) = self.answer_budget(messages, max_tokens).await?;
        let mut request = RequestBuilder::new()
            .set_deterministic_sampler()
            .set_sampler_max_len(max_tokens.max(1));
        for message in messages {
            request = request.add_message(role(message.role), &message.content);
        }
        if let Some(schema) = schema {
            request = request.set_constraint(Constraint::JsonSchema(schema.clone()));
        }
        let mut stream = model
            .stream_chat_request(request)
            .await
            .map_err(|error| LlmError::Engine(error.to_string()))?;
        let mut answer = Answer::new(started, schema.is_some());
        loop {
            let response = tokio::select! {
                response = stream.next() => response,
                _ = wait_canceled(&mut canceled) => return Err(LlmError::Canceled),
            };
            let Some(response) = response else { break };
            if answer.take(response, progress)? {
                break;
            }
        }
        drop(stream);
        let usage = match answer.usage.take() {
            Some(reported) => Usage {
                prompt_tokens: reported.prompt_tokens,
                completion_tokens: reported.completion_tokens.max(answer.tokens),
                total_tokens: reported.prompt_tokens
                    + reported.completion_tokens.max(answer.tokens),
            },
            None => {
                // Stopped early: the engine sent no usage, so count the prompt here.
                let prompt_tokens = match prompt_tokens {
                    Some(counted) => counted,
                    None => self.count_prompt_tokens(messages).await.unwrap_or(0),
                };
                Usage {
                    prompt_tokens,
                    completion_tokens: answer.tokens,
                    total_tokens: prompt_tokens + answer.tokens,
                }
            }
        };
        Ok(Generation {
            text: answer.text,
            usage,
            finish_reason: answer.finish_reason,
            seconds: started.elapsed().as_secs_f64(),
            first_token_seconds: answer.first_token_seconds.unwrap_or(0.0),
        })
    }

    /// The answer's token budget: `max_tokens`, or less when a context budget leaves less after
    /// the prompt. With a context budget the prompt is counted up front, and the count returned
    /// for the usage of an answer that stops before the engine reports it.
    async fn answer_budget(
        &self,
        messages: &[ChatMessage],
        max_tokens: usize,
    ) -> Result<(usize, Option<usize>), LlmError> {
        let Some(context) = self.context_tokens else {
            return Ok((max_tokens, None));
        };
        let prompt = self.count_prompt_tokens(messages).await.unwrap_or(0);
        if prompt >= context {
            return Err(LlmError::Invalid(format!(
                "the prompt is {prompt} tokens; this worker's context per sequence is {context} tokens (SENTINEL_CONTEXT_TOKENS)"
            )));
        }
        Ok((max_tokens.min(context - prompt), Some(prompt)))
    }

    async fn count_prompt_tokens(&self, messages: &[ChatMessage]) -> Option<usize> {
        let mut chat = TextMessages::new();
        for message in messages {
            chat = chat.add_message(role(message.role), &message.content);
        }
        self.model
            .tokenize(either::Either::Left(chat), None, true, true, None)
            .await
            .ok()
            .map(|tokens| tokens.len())
    }
}

/// An answer as the engine streams it.
struct Answer {
    started: Instant,
    text: String,
    tokens: usize,
    /// Finds where a constrained answer's JSON value closes.
    json_end: Option<JsonEnd>,
    usage: Option<mistralrs::Usage>,
    finish_reason: String,
    first_token_seconds: Option<f64>,
}

impl Answer {
    fn new(started: Instant, constrained: bool) -> Self {
        Self {
            started,
            text: String::new(),
            tokens: 0,
            json_end: constrained.then(JsonEnd::default),
            usage: None,
            finish_reason: String::from("length"),
            first_token_seconds: None,
        }
    }

    /// Takes one response from the engine; true when the answer is complete.
    fn take(
        &mut self,
        response: Response,
        progress: Option<&watch::Sender<Progress>>,
    ) -> Result<bool, LlmError> {
        match response {
            Response::Chunk(chunk) => {
                if let Some(reported) = chunk.usage {
                    self.usage = Some(reported);
                }
                let Some(choice) = chunk.choices.into_iter().next() else {
                    return Ok(false);
                };
                if let Some(delta) = choice.delta.content {
                    if self.push(&delta, progress) {
                        // The JSON value closed: dropping the stream cancels the sequence.
                        self.finish_reason = "stop".into();
                        return Ok(true);
                    }
                }
                if let Some(reason) = choice.finish_reason {
                    self.finish_reason = reason;
                    return Ok(self.usage.is_some());
                }
                Ok(false)
            }
            Response::Done(done) => {
                self.usage = Some(done.usage);
                Ok(true)
            }
            Response::ModelError(message, _) | Response::CompletionModelError(message, _) => {
                Err(LlmError::Engine(message))
            }
            Response::ValidationError(error) => Err(LlmError::Invalid(error.to_string())),
            Response::InternalError(error) => Err(LlmError::Engine(error.to_string())),
            _ => Ok(false),
        }
    }

    /// Adds one token's text, up to the end of the JSON value; true when that closed it.
    fn push(&mut self, delta: &str, progress: Option<&watch::Sender<Progress>>) -> bool {
        self.tokens += 1;
        let started = self.started;
        self.first_token_seconds
            .get_or_insert_with(|| started.elapsed().as_secs_f64());
        let keep = self
            .json_end
            .as_mut()
            .and_then(|scanner| scanner.feed(delta));
        self.text.push_str(&delta[..keep.unwrap_or(delta.len())]);
        if let Some(progress) = progress {
            progress.send_replace(Progress {
                tokens: self.tokens,
                text: self.text.clone(),
            });
        }
        keep.is_some()
    }
}

/// Builds the engine with mistral.rs's lower-level loader, which (unlike `GgufModelBuilder`) takes
/// the activation dtype. On the CPU that is F32: `Auto` picks BF16 there, and every element-wise
/// op then converts to and from f32 (a profile showed the conversions once the matmuls were fast).
/// The device to run on: the CPU, or in a `cuda` build the first NVIDIA GPU, which must be there
/// (a cuda build never falls back to the CPU without saying so).
fn device() -> anyhow::Result<Device> {
    if !cfg!(feature = "cuda") {
        return Ok(Device::Cpu);
    }
    match mistralrs::best_device(false) {
        Ok(device) if device.is_cuda() => Ok(device),
        Ok(_) => anyhow::bail!(
            "this worker is a cuda build but sees no NVIDIA GPU (check the driver and CUDA_VISIBLE_DEVICES), or run the CPU build"
        ),
        Err(error) => anyhow::bail!(
            "this worker is a cuda build and cannot use the NVIDIA GPU ({error}); check the driver (libcuda.so.1) and CUDA_VISIBLE_DEVICES, or run the CPU build"
        ),
    }
}

async fn build(
    device: Device,
    dir: String,
    file: String,
    max_seqs: usize,
    paged_attn_mb: Option<usize>,
    context_tokens: Option<usize>,
) -> anyhow::Result<Model> {
    use mistralrs::core::{
        AutoDeviceMapParams, DefaultSchedulerMethod, DeviceMapSetting, GGUFLoaderBuilder,
        GGUFSpecificConfig, MistralRsBuilder, ModelDType, SchedulerConfig,
    };
    let loader = GGUFLoaderBuilder::new(
        None,
        None,
        dir,
        vec![file],
        GGUFSpecificConfig { topology: None },
        false,
        None,
    )
    .build();
    let cuda = cfg!(feature = "cuda");
    let dtype = if cuda {
        ModelDType::Auto
    } else {
        ModelDType::F32
    };
    let paged = match paged_attn_mb.filter(|_| cuda) {
        Some(mb) => Some(
            PagedAttentionMetaBuilder::default()
                .with_gpu_memory(MemoryGpuConfig::MbAmount(mb))
                .build()?,
        ),
        None => None,
    };
    let pipeline = tokio::task::spawn_blocking(move || {
        loader.load_model_from_hf(
            None,
            TokenSource::None,
            &dtype,
            &device,
            true,
            DeviceMapSetting::Auto(match context_tokens {
                Some(max_seq_len) => AutoDeviceMapParams::Text {
                    max_seq_len,
                    max_batch_size: max_seqs,
                },
                None => AutoDeviceMapParams::default_text(),
            }),
            None,
            paged,
        )
    })
    .await??;
    let cache_config = pipeline.lock().await.get_metadata().cache_config.clone();
    let scheduler = match cache_config.filter(|_| paged.is_some()) {
        Some(config) => SchedulerConfig::PagedAttentionMeta {
            max_num_seqs: max_seqs,
            config,
        },
        None => SchedulerConfig::DefaultScheduler {
            method: DefaultSchedulerMethod::Fixed(max_seqs.try_into()?),
        },
    };
    let runner = MistralRsBuilder::new(pipeline, scheduler, false, None)
        .with_prefix_cache_n(16)
        .build()
        .await;
    Ok(Model::new(runner))
}

fn role(role: Role) -> TextMessageRole {
    match role {
        Role::System => TextMessageRole::System,
        Role::User => TextMessageRole::User,
        Role::Assistant => TextMessageRole::Assistant,
    }
}

async fn wait_canceled(canceled: &mut Option<watch::Receiver<bool>>) {
    match canceled {
        Some(receiver) => {
            if receiver.wait_for(|stop| *stop).await.is_err() {
                std::future::pending::<()>().await
            }
        }
        None => std::future::pending::<()>().await,
    }
}

/// Checks that `path` is a readable GGUF file and, for the default model, that its SHA-256 is the
/// published one.
pub fn check_model_file(path: &Path) -> anyhow::Result<()> {
    let mut file = std::fs::File::open(path).map_err(|error| {
        anyhow::anyhow!(
            "the model file {} cannot be opened ({error}); fetch the default model with `{FETCH_COMMAND}` or set SENTINEL_MODEL to a GGUF file",
            path.display()
        )
    })?;
    let mut magic = [0u8; 4];
    if file.read_exact(&mut magic).is_err() || &magic != b"GGUF" {
        return Err(corrupt(path, "it does not start with the GGUF magic bytes"));
    }
    if path.file_name() == Path::new(DEFAULT_MODEL_PATH).file_name() {
        let mut hasher = Sha256::new();
        let mut file = std::fs::File::open(path)?;
        std::io::copy(&mut file, &mut hasher)?;
        let digest = hex::encode(hasher.finalize());
        if digest != DEFAULT_MODEL_SHA256 {
            return Err(corrupt(
                path,
                &format!("its SHA-256 is {digest}, expected {DEFAULT_MODEL_SHA256}"),
            ));
        }
    }
    Ok(())
}

fn corrupt(path: &Path, why: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "the model file {} is corrupt or not a model: {why}; delete it and fetch it again with `{FETCH_COMMAND}`",
        path.display()
    )
}

/// Finds where a streamed JSON value ends: feed it the text piece by piece; it returns the byte
/// offset within the piece just past the value's closing bracket, once the outermost object or
/// array closes.
#[derive(Debug, Default)]
pub struct JsonEnd {
    depth: usize,
    started: bool,
    in_string: bool,
    escaped: bool,
}

impl JsonEnd {
    pub fn feed(&mut self, piece: &str) -> Option<usize> {
        for (at, byte) in piece.bytes().enumerate() {
            if self.in_string {
                match byte {
                    _ if self.escaped => self.escaped = false,
                    b'\\' => self.escaped = true,
                    b'"' => self.in_string = false,
                    _ => {}
                }
                continue;
            }
            match byte {
                b'"' => self.in_string = true,
                b'{' | b'[' => {
                    self.depth += 1;
                    self.started = true;
                }
                b'}' | b']' if self.depth > 0 => {
                    self.depth -= 1;
                    if self.depth == 0 && self.started {
                        return Some(at + 1);
                    }
                }
                _ => {}
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_end_finds_the_outer_close_across_pieces_and_ignores_brackets_in_strings() {
        let mut scanner = JsonEnd::default();
        assert_eq!(scanner.feed("{\"a\": \"}]"), None);
        assert_eq!(scanner.feed("\\\"}\", \"b\": [1, {\"c\""), None);
        assert_eq!(scanner.feed(": 2}]"), None);
        assert_eq!(scanner.feed("}   \n  "), Some(1));
    }

    #[test]
    fn a_missing_or_foreign_model_file_names_the_path_and_the_fetch_command() {
        let missing = check_model_file(Path::new("/nonexistent/model.gguf")).unwrap_err();
        let message = missing.to_string();
        assert!(
            message.contains("/nonexistent/model.gguf") && message.contains(FETCH_COMMAND),
            "{message}"
        );

        let dir = std::env::temp_dir().join(format!("sentinel-model-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fake = dir.join("SmolLM2-135M-Instruct.Q4_1.gguf");
        std::fs::write(&fake, b"GGUF and then nothing useful").unwrap();
        let message = check_model_file(&fake).unwrap_err().to_string();
        assert!(
            message.contains("SHA-256") && message.contains(FETCH_COMMAND),
            "{message}"
        );
        std::fs::write(&fake, b"<html>not found</html>").unwrap();
        let message = check_model_file(&fake).unwrap_err().to_string();
        assert!(message.contains("GGUF magic"), "{message}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

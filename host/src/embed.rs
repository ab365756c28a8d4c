//! Embedding providers: documents and searches may carry `text` without a vector, and
//! the host embeds it with the provider the library names (`"embedding":
//! {"provider", "model"}` in its config).
//!
//! Key choices:
//! - Two wire protocols cover the field: OpenAI-compatible `POST {base}/embeddings`
//!   (OpenAI, Ollama, vLLM, text-embeddings-inference, LM Studio) and Cohere-compatible
//!   `POST {base}/embed`. Providers are configured on the server by name
//!   (`--embedding-provider local=openai:http://127.0.0.1:8080/v1`), their keys come
//!   from the environment (`ARRWDB_EMBEDDING_<NAME>_API_KEY`), never from requests or
//!   library configs, so a tenant cannot point the server at an arbitrary URL.
//! - Embedding happens before the write enters the group commit: a provider failure
//!   answers 503 `unavailable` and nothing of the request is written.
//! - Every returned vector is checked against the library's dimension; a mismatch
//!   (a different model behind the same name) is a 503 naming both dimensions, never
//!   a silently wrong index.
//! - `reqwest` (already in the build through `object_store`) is the client: timeouts,
//!   TLS and connection reuse come with it. Transient failures (connection errors,
//!   timeouts, 429 and 5xx) are retried with exponential backoff; 4xx answers are not.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use arrwdb_core::api::{LibraryInfo, SearchMode, SearchRequest};
use arrwdb_core::{ChunkData, Command, EmbeddingConfig, Query, QueryResponse};
use serde::Deserialize;

use crate::error::ApiError;
use crate::tenant::Tenant;

/// Flags of the embedding providers (flattened into `arrwdb serve`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct EmbedArgs {
    /// An embedding provider libraries may name, as `NAME=KIND:BASE_URL` with KIND
    /// `openai` (POST BASE_URL/embeddings) or `cohere` (POST BASE_URL/embed), e.g.
    /// `local=openai:http://127.0.0.1:11434/v1`. Repeatable; the env var takes a
    /// comma-separated list. The key, if any, comes from ARRWDB_EMBEDDING_<NAME>_API_KEY.
    #[arg(
        long = "embedding-provider",
        env = "ARRWDB_EMBEDDING_PROVIDERS",
        value_delimiter = ','
    )]
    pub providers: Vec<String>,
    /// Most texts sent to a provider in one request.
    #[arg(long, env = "ARRWDB_EMBEDDING_BATCH", default_value_t = 64)]
    pub embedding_batch: usize,
    /// Longest one provider request may take, in milliseconds.
    #[arg(long, env = "ARRWDB_EMBEDDING_TIMEOUT_MS", default_value_t = 30_000)]
    pub embedding_timeout_ms: u64,
    /// Retries of a provider request after a transient failure (connection error,
    /// timeout, 429, 5xx), with exponential backoff from 100 ms.
    #[arg(long, env = "ARRWDB_EMBEDDING_RETRIES", default_value_t = 3)]
    pub embedding_retries: u32,
}

/// The wire protocol of a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `POST {base}/embeddings` with `{"model","input":[...]}`.
    OpenAi,
    /// `POST {base}/embed` with `{"model","texts":[...],"input_type"}`.
    Cohere,
}

/// One configured provider.
#[derive(Clone)]
pub struct Provider {
    kind: Kind,
    base_url: String,
    api_key: Option<String>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("Provider")
            .field("kind", &self.kind)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .finish()
    }
}

/// What a text is embedded for (Cohere's `input_type` distinguishes them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Document,
    Query,
}

/// The configured providers and the shared HTTP client.
#[derive(Debug, Clone)]
pub struct Providers {
    providers: BTreeMap<String, Provider>,
    client: reqwest::Client,
    batch: usize,
    retries: u32,
}

fn env_key_name(provider: &str) -> String {
    let name: String = provider
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("ARRWDB_EMBEDDING_{name}_API_KEY")
}

/// Parses one `NAME=KIND:BASE_URL`.
fn parse_provider(spec: &str) -> anyhow::Result<(String, Kind, String)> {
    let (name, rest) = spec
        .split_once('=')
        .ok_or_else(|| anyhow::anyhow!("embedding provider `{spec}`: expected NAME=KIND:URL"))?;
    let (kind, url) = rest.split_once(':').ok_or_else(|| {
        anyhow::anyhow!("embedding provider `{spec}`: expected NAME=KIND:URL, KIND openai|cohere")
    })?;
    let kind = match kind {
        "openai" => Kind::OpenAi,
        "cohere" => Kind::Cohere,
        other => anyhow::bail!(
            "embedding provider `{name}`: unknown kind `{other}` (expected openai or cohere)"
        ),
    };
    let name = name.trim();
    if name.is_empty() || name.len() > 256 {
        anyhow::bail!("embedding provider `{spec}`: the name must be 1 to 256 bytes");
    }
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| anyhow::anyhow!("embedding provider `{name}`: bad URL `{url}`: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        anyhow::bail!("embedding provider `{name}`: the URL must be http:// or https://");
    }
    Ok((name.into(), kind, url.trim_end_matches('/').into()))
}

impl Providers {
    /// Builds the providers from the flags, reading their keys from the environment.
    ///
    /// # Errors
    /// A malformed provider spec or a duplicate name.
    pub fn from_args(args: &EmbedArgs) -> anyhow::Result<Self> {
        let mut providers = BTreeMap::new();
        for spec in args.providers.iter().filter(|s| !s.trim().is_empty()) {
            let (name, kind, base_url) = parse_provider(spec.trim())?;
            let api_key = std::env::var(env_key_name(&name))
                .ok()
                .filter(|k| !k.is_empty());
            let provider = Provider {
                kind,
                base_url,
                api_key,
            };
            if providers.insert(name.clone(), provider).is_some() {
                anyhow::bail!("embedding provider `{name}` is configured twice");
            }
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(args.embedding_timeout_ms.max(1)))
            .connect_timeout(Duration::from_millis(
                args.embedding_timeout_ms.clamp(1, 5_000),
            ))
            .build()?;
        Ok(Providers {
            providers,
            client,
            batch: args.embedding_batch.clamp(1, 2048),
            retries: args.embedding_retries,
        })
    }

    /// Names of the configured providers.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.providers.keys().map(String::as_str)
    }

    /// Checks that a library about to be created names a configured provider.
    ///
    /// # Errors
    /// 400 `invalid` naming the configured providers.
    pub fn check_config(&self, config: &EmbeddingConfig) -> Result<(), ApiError> {
        if self.providers.contains_key(&config.provider) {
            return Ok(());
        }
        let known: Vec<&str> = self.names().collect();
        Err(ApiError::invalid(if known.is_empty() {
            format!(
                "embedding provider `{}` is not configured on this server (it has none; start it with --embedding-provider NAME=openai:URL)",
                config.provider
            )
        } else {
            format!(
                "embedding provider `{}` is not configured on this server (configured: {})",
                config.provider,
                known.join(", ")
            )
        }))
    }

    /// Embeds `texts` for `library`, checking every vector's dimension.
    ///
    /// # Errors
    /// 400 when the library has no provider; 503 `unavailable` when the provider is
    /// not configured here, fails after retries, or answers with wrong vectors.
    pub async fn embed(
        &self,
        library: &LibraryInfo,
        texts: &[String],
        purpose: Purpose,
    ) -> Result<Vec<Vec<f32>>, ApiError> {
        let Some(config) = &library.embedding else {
            return Err(ApiError::invalid(format!(
                "library `{}` has no embedding provider: send vectors, or create the library with \"embedding\": {{\"provider\", \"model\"}}",
                library.name
            )));
        };
        let Some(provider) = self.providers.get(&config.provider) else {
            return Err(ApiError::unavailable(format!(
                "library `{}` uses embedding provider `{}`, which is not configured on this server",
                library.name, config.provider
            )));
        };
        let mut vectors = Vec::with_capacity(texts.len());
        for batch in texts.chunks(self.batch) {
            let got = self
                .request_with_retries(provider, &config.provider, &config.model, batch, purpose)
                .await?;
            if got.len() != batch.len() {
                return Err(ApiError::unavailable(format!(
                    "embedding provider `{}` returned {} vectors for {} texts",
                    config.provider,
                    got.len(),
                    batch.len()
                )));
            }
            for v in &got {
                if v.len() != library.dimension as usize {
                    return Err(ApiError::unavailable(format!(
                        "embedding provider `{}` (model `{}`) returned {}-dimensional vectors, but library `{}` has dimension {}: is the provider serving a different model?",
                        config.provider,
                        config.model,
                        v.len(),
                        library.name,
                        library.dimension
                    )));
                }
                if v.iter().any(|x| !x.is_finite()) {
                    return Err(ApiError::unavailable(format!(
                        "embedding provider `{}` returned a vector with NaN or infinity",
                        config.provider
                    )));
                }
            }
            vectors.extend(got);
        }
        Ok(vectors)
    }

    async fn request_with_retries(
        &self,
        provider: &Provider,
        name: &str,
        model: &str,
        texts: &[String],
        purpose: Purpose,
    ) -> Result<Vec<Vec<f32>>, ApiError> {
        let mut delay = Duration::from_millis(100);
        let mut attempt = 0;
        loop {
            match self.request(provider, model, texts, purpose).await {
                Ok(vectors) => return Ok(vectors),
                Err(Failure::Permanent(message)) => {
                    return Err(ApiError::unavailable(format!(
                        "embedding provider `{name}` refused the request: {message}"
                    )));
                }
                Err(Failure::Transient(message)) if attempt >= self.retries => {
                    return Err(ApiError::unavailable(format!(
                        "embedding provider `{name}` failed after {} attempts: {message}",
                        attempt + 1
                    )));
                }
                Err(Failure::Transient(message)) => {
                    tracing::warn!(provider = %name, attempt, error = %message, "embedding request failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                    attempt += 1;
                }
            }
        }
    }

    async fn request(
        &self,
        provider: &Provider,
        model: &str,
        texts: &[String],
        purpose: Purpose,
    ) -> Result<Vec<Vec<f32>>, Failure> {
        let (url, body) = match provider.kind {
            Kind::OpenAi => (
                format!("{}/embeddings", provider.base_url),
                serde_json::json!({ "model": model, "input": texts }),
            ),
            Kind::Cohere => (
                format!("{}/embed", provider.base_url),
                serde_json::json!({
                    "model": model,
                    "texts": texts,
                    "input_type": match purpose {
                        Purpose::Document => "search_document",
                        Purpose::Query => "search_query",
                    },
                    "embedding_types": ["float"],
                }),
            ),
        };
        let mut request = self.client.post(&url).json(&body);
        if let Some(key) = &provider.api_key {
            request = request.bearer_auth(key);
        }
        let response = request
            .send()
            .await
            .map_err(|e| Failure::Transient(describe(&e)))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| Failure::Transient(describe(&e)))?;
        if !status.is_success() {
            let detail = String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned();
            let message = format!("HTTP {status}: {detail}");
            return Err(
                if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
                    Failure::Transient(message)
                } else {
                    Failure::Permanent(message)
                },
            );
        }
        parse_vectors(provider.kind, &bytes).map_err(Failure::Permanent)
    }
}

enum Failure {
    Transient(String),
    Permanent(String),
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "could not connect".into()
    } else {
        e.to_string()
    }
}

#[derive(Deserialize)]
struct OpenAiResponse {
    data: Vec<OpenAiItem>,
}

#[derive(Deserialize)]
struct OpenAiItem {
    #[serde(default)]
    index: Option<usize>,
    embedding: Vec<f32>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum CohereEmbeddings {
    Plain(Vec<Vec<f32>>),
    Typed { float: Vec<Vec<f32>> },
}

#[derive(Deserialize)]
struct CohereResponse {
    embeddings: CohereEmbeddings,
}

/// Decodes a provider's answer (outside bytes: malformed answers are errors).
fn parse_vectors(kind: Kind, bytes: &[u8]) -> Result<Vec<Vec<f32>>, String> {
    match kind {
        Kind::OpenAi => {
            let mut response: OpenAiResponse = serde_json::from_slice(bytes)
                .map_err(|e| format!("unreadable answer (expected OpenAI embeddings): {e}"))?;
            // The index says which input a vector belongs to; order by it.
            if response.data.iter().all(|d| d.index.is_some()) {
                response.data.sort_by_key(|d| d.index);
                let in_order = response
                    .data
                    .iter()
                    .enumerate()
                    .all(|(i, d)| d.index == Some(i));
                if !in_order {
                    return Err("the answer's `index` values are not 0..n".into());
                }
            }
            Ok(response.data.into_iter().map(|d| d.embedding).collect())
        }
        Kind::Cohere => {
            let response: CohereResponse = serde_json::from_slice(bytes)
                .map_err(|e| format!("unreadable answer (expected Cohere embed): {e}"))?;
            Ok(match response.embeddings {
                CohereEmbeddings::Plain(v) | CohereEmbeddings::Typed { float: v } => v,
            })
        }
    }
}

static PROVIDERS: OnceLock<Providers> = OnceLock::new();

/// Installs the server's providers (once, at startup).
pub fn install(providers: Providers) {
    let _ = PROVIDERS.set(providers);
}

fn providers() -> Option<&'static Providers> {
    PROVIDERS.get()
}

/// The library's description, or `None` when it does not exist (the engine then
/// answers the command with its own 404).
async fn library_info(tenant: &Tenant, library: &str) -> Result<Option<LibraryInfo>, ApiError> {
    let query = Query::GetLibrary {
        library: library.into(),
    };
    match Box::pin(tenant.query(&query)).await {
        Ok(QueryResponse::Library(info)) => Ok(Some(info)),
        Ok(_) => Err(ApiError::internal("unexpected answer to GetLibrary")),
        Err(e) if e.status == axum::http::StatusCode::NOT_FOUND => Ok(None),
        Err(e) => Err(e),
    }
}

/// Before a write enters the group commit: a new library must name a configured
/// provider, and chunks with text but no vector are embedded (all of them, or the
/// write fails with nothing written).
///
/// # Errors
/// 400 for an unknown provider; as [`Providers::embed`].
pub async fn before_write(
    tenant: &Tenant,
    library: &str,
    commands: &mut [Command],
) -> Result<(), ApiError> {
    for command in commands.iter() {
        if let Command::CreateLibrary(config) = command
            && let Some(embedding) = &config.embedding
        {
            match providers() {
                Some(p) => p.check_config(embedding)?,
                None => {
                    return Err(ApiError::invalid(format!(
                        "embedding provider `{}` is not configured on this server (it has none; start it with --embedding-provider NAME=openai:URL)",
                        embedding.provider
                    )));
                }
            }
        }
    }
    if !commands_need_embedding(commands) {
        return Ok(());
    }
    let Some(providers) = providers() else {
        return Ok(()); // the engine explains that the chunk has no vector
    };
    match library_info(tenant, library).await? {
        Some(info) if info.embedding.is_some() => fill_commands(providers, &info, commands).await,
        _ => Ok(()),
    }
}

/// Before a query: a search with text and no vector on a library with a provider gets
/// its query vector. Returns the rewritten query, if any.
///
/// # Errors
/// As [`Providers::embed`].
pub async fn before_query(tenant: &Tenant, query: &Query) -> Result<Option<Query>, ApiError> {
    let Query::Search { library, request } = query else {
        return Ok(None);
    };
    // Checked before the library lookup, so plain searches cost no extra query.
    if !wants_query_vector(request) {
        return Ok(None);
    }
    let Some(info) = library_info(tenant, library).await? else {
        return Ok(None);
    };
    if !search_needs_embedding(&info, request) {
        return Ok(None);
    }
    let Some(providers) = providers() else {
        return Err(ApiError::unavailable(format!(
            "library `{library}` uses an embedding provider, and this server has none configured"
        )));
    };
    let mut request = request.clone();
    fill_search(providers, &info, &mut request).await?;
    Ok(Some(Query::Search {
        library: library.clone(),
        request,
    }))
}

/// Whether any upsert in `commands` has a chunk to embed (text, no vector).
pub fn commands_need_embedding(commands: &[Command]) -> bool {
    commands.iter().any(|c| match c {
        Command::UpsertDocument { document, .. } => document.chunks.iter().any(needs_embedding),
        _ => false,
    })
}

/// A chunk with text and no vector: the host embeds its text.
fn needs_embedding(chunk: &ChunkData) -> bool {
    chunk.embedding.is_empty() && !chunk.text.is_empty()
}

/// Embeds, in one pass over `commands`, every chunk that has text but no vector.
///
/// # Errors
/// As [`Providers::embed`]; nothing is changed on error.
pub async fn fill_commands(
    providers: &Providers,
    library: &LibraryInfo,
    commands: &mut [Command],
) -> Result<(), ApiError> {
    let mut texts = Vec::new();
    for command in commands.iter() {
        if let Command::UpsertDocument { document, .. } = command {
            for chunk in &document.chunks {
                if needs_embedding(chunk) {
                    texts.push(chunk.text.clone());
                }
            }
        }
    }
    if texts.is_empty() {
        return Ok(());
    }
    let mut vectors = providers
        .embed(library, &texts, Purpose::Document)
        .await?
        .into_iter();
    for command in commands.iter_mut() {
        if let Command::UpsertDocument { document, .. } = command {
            for chunk in &mut document.chunks {
                if needs_embedding(chunk) {
                    chunk.embedding = vectors.next().unwrap_or_default();
                }
            }
        }
    }
    Ok(())
}

/// Whether a search should have its text embedded: the library names a provider, the
/// request has text and no vector, and its mode (given or inferred) uses vectors.
pub fn search_needs_embedding(library: &LibraryInfo, request: &SearchRequest) -> bool {
    library.embedding.is_some() && wants_query_vector(request)
}

/// A search with text, no vector, and a mode (given or inferred) that uses vectors.
fn wants_query_vector(request: &SearchRequest) -> bool {
    request.vector.is_none()
        && request.text.as_deref().is_some_and(|t| !t.is_empty())
        && !matches!(request.mode, Some(SearchMode::Keyword))
}

/// Embeds a search's text as its query vector. With mode `vector` the text is
/// consumed (the engine refuses text in vector mode); without a mode the request
/// becomes hybrid (vector and keyword), which the engine infers from both inputs.
///
/// # Errors
/// As [`Providers::embed`].
pub async fn fill_search(
    providers: &Providers,
    library: &LibraryInfo,
    request: &mut SearchRequest,
) -> Result<(), ApiError> {
    let Some(text) = request.text.clone() else {
        return Ok(());
    };
    let vector = providers
        .embed(library, &[text], Purpose::Query)
        .await?
        .pop()
        .unwrap_or_default();
    request.vector = Some(vector);
    if matches!(request.mode, Some(SearchMode::Vector)) {
        request.text = None;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_specs_parse_and_refuse_garbage() {
        let (name, kind, url) =
            parse_provider("local=openai:http://127.0.0.1:8080/v1/").expect("parses");
        assert_eq!(
            (name.as_str(), kind, url.as_str()),
            ("local", Kind::OpenAi, "http://127.0.0.1:8080/v1")
        );
        let (_, kind, _) = parse_provider("co=cohere:https://api.cohere.com/v2").expect("parses");
        assert_eq!(kind, Kind::Cohere);
        for bad in [
            "nokind",
            "x=grpc:http://h",
            "x=openai:not a url",
            "x=openai:file:///etc/passwd",
            "=openai:http://h",
        ] {
            assert!(parse_provider(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn answers_decode_in_index_order_and_garbage_is_an_error() {
        let v = parse_vectors(
            Kind::OpenAi,
            br#"{"data":[{"index":1,"embedding":[2.0]},{"index":0,"embedding":[1.0]}]}"#,
        )
        .expect("parses");
        assert_eq!(v, vec![vec![1.0], vec![2.0]]);
        assert!(
            parse_vectors(Kind::OpenAi, br#"{"data":[{"index":3,"embedding":[2.0]}]}"#).is_err()
        );
        let v = parse_vectors(Kind::Cohere, br#"{"embeddings":{"float":[[1.0,2.0]]}}"#)
            .expect("parses");
        assert_eq!(v, vec![vec![1.0, 2.0]]);
        let v = parse_vectors(Kind::Cohere, br#"{"embeddings":[[3.0]]}"#).expect("parses");
        assert_eq!(v, vec![vec![3.0]]);
        for garbage in [
            &b""[..],
            b"{}",
            b"[1,2]",
            b"{\"data\":[{\"embedding\":\"x\"}]}",
        ] {
            assert!(parse_vectors(Kind::OpenAi, garbage).is_err());
            assert!(parse_vectors(Kind::Cohere, garbage).is_err());
        }
    }

    #[test]
    fn key_env_names_are_shell_safe() {
        assert_eq!(env_key_name("local"), "ARRWDB_EMBEDDING_LOCAL_API_KEY");
        assert_eq!(
            env_key_name("my-ollama.1"),
            "ARRWDB_EMBEDDING_MY_OLLAMA_1_API_KEY"
        );
    }
}

//! One question to an OpenAI-compatible chat-completions server, through
//! async-openai. What is asked is [`super::prompt`]'s.

use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::types::chat::{
    ChatCompletionRequestMessage, ChatCompletionRequestSystemMessage,
    ChatCompletionRequestUserMessage, CreateChatCompletionRequest, ResponseFormat,
    ResponseFormatJsonSchema,
};

use super::Settings;

/// What went wrong with a request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// Worth trying again later: 429, 5xx, timeouts, transport errors,
    /// unreadable replies.
    #[error("temporary failure: {0}")]
    Temporary(String),
    /// The server refused the request itself; asking again will not help.
    #[error("request refused: {0}")]
    Refused(String),
}

/// A reply.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The message content.
    pub content: String,
    /// Tokens it cost (prompt and completion).
    pub tokens: u64,
}

/// Where a credential was read, as errors name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// An environment variable.
    Env(&'static str),
    /// The [AI] `key_file`.
    File(String),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Env(name) => f.write_str(name),
            Origin::File(path) => write!(f, "key_file {path}"),
        }
    }
}

/// What is wrong with a credential. Never holds the credential itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyProblem {
    /// The key file cannot be read.
    #[error("cannot read it: {0}")]
    Unreadable(String),
    /// Group or others may read the key file.
    #[error("mode {0:o} lets others read it; chmod 600 it")]
    Mode(u32),
    /// Someone else owns the key file.
    #[error("owned by uid {0}, not by us")]
    Owner(u32),
    /// The key file holds more than the key.
    #[error("holds {0} lines; the key must be its only line")]
    Lines(usize),
    /// A byte no HTTP header takes, or a space inside the value.
    #[error(
        "character {0} is a control character, a space or not ASCII; \
         the value must be one word of printable ASCII"
    )]
    BadChar(usize),
    /// The environment variable is not UTF-8.
    #[error("not UTF-8")]
    NotUnicode,
}

/// A credential fail3ban cannot use, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}: {problem}")]
pub struct KeyError {
    /// The variable or file.
    pub origin: Origin,
    /// What is wrong with it.
    pub problem: KeyProblem,
}

/// The API key and the optional organization and project, checked: each
/// goes into an HTTP header, and a value no header takes would make every
/// request fail deep inside the HTTP client.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    key: String,
    org: Option<String>,
    project: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("org", &self.org)
            .field("project", &self.project)
            .finish_non_exhaustive()
    }
}

/// One word of printable ASCII, as an HTTP header value takes it (and
/// without the spaces that would split `Bearer <key>`).
fn check_word(value: &str) -> Result<(), KeyProblem> {
    match value.chars().position(|c| !c.is_ascii_graphic()) {
        Some(i) => Err(KeyProblem::BadChar(i + 1)),
        None => Ok(()),
    }
}

/// An environment variable, trimmed; `None` when unset or blank.
fn env_word(name: &'static str) -> Result<Option<String>, KeyError> {
    let err = |problem| KeyError {
        origin: Origin::Env(name),
        problem,
    };
    let value = match std::env::var(name) {
        Ok(v) => v,
        Err(std::env::VarError::NotPresent) => return Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => return Err(err(KeyProblem::NotUnicode)),
    };
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    check_word(value).map_err(err)?;
    Ok(Some(value.to_string()))
}

/// The key in `path`: root's or ours, private, one line.
fn key_from_file(path: &str) -> Result<Option<String>, KeyError> {
    let err = |problem| KeyError {
        origin: Origin::File(path.to_string()),
        problem,
    };
    let meta = std::fs::metadata(path).map_err(|e| err(KeyProblem::Unreadable(e.to_string())))?;
    // A key others can read is a key others can spend.
    if meta.mode() & 0o077 != 0 {
        return Err(err(KeyProblem::Mode(meta.mode() & 0o777)));
    }
    let own = unsafe { libc::geteuid() };
    if meta.uid() != own && meta.uid() != 0 {
        return Err(err(KeyProblem::Owner(meta.uid())));
    }
    let text =
        std::fs::read_to_string(path).map_err(|e| err(KeyProblem::Unreadable(e.to_string())))?;
    let key = text.trim();
    let lines = key.lines().count();
    if lines > 1 {
        return Err(err(KeyProblem::Lines(lines)));
    }
    check_word(key).map_err(err)?;
    Ok(Some(key.to_string()).filter(|k| !k.is_empty()))
}

/// The credentials from `OPENAI_API_KEY` (else `key_file`),
/// `OPENAI_ORGANIZATION_ID` and `OPENAI_PROJECT_ID`; `None` when there is
/// no key (the AI is off).
pub fn credentials(key_file: Option<&str>) -> Result<Option<Credentials>, KeyError> {
    let key = match env_word("OPENAI_API_KEY")? {
        Some(k) => k,
        None => match key_file.map(key_from_file).transpose()?.flatten() {
            Some(k) => k,
            None => return Ok(None),
        },
    };
    Ok(Some(Credentials {
        key,
        org: env_word("OPENAI_ORGANIZATION_ID")?,
        project: env_word("OPENAI_PROJECT_ID")?,
    }))
}

/// The client, with what it learnt about the server.
pub struct LlmClient {
    client: async_openai::Client<OpenAIConfig>,
    model: String,
    base_url: String,
    timeout: Duration,
    /// Cleared once the server refused structured outputs and answered in
    /// JSON mode: remembered for this server, for as long as the AI runs.
    json_schema: AtomicBool,
    /// Requests sent and tokens answered, since the start, for the metrics.
    usage: Usage,
}

/// What the model was asked and answered since the AI started: counted
/// where each request is sent, whoever asks (the pipeline or `ai test`).
#[derive(Debug, Default)]
struct Usage {
    requests: AtomicU64,
    prompt_tokens: AtomicU64,
    completion_tokens: AtomicU64,
}

/// [`LlmClient::usage`]: requests sent, prompt and completion tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsageCounts {
    pub requests: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

impl std::fmt::Debug for LlmClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmClient")
            .field("model", &self.model)
            .finish()
    }
}

fn classify(e: OpenAIError) -> CallError {
    match e {
        OpenAIError::ApiError(r) => {
            let s = r.status_code.as_u16();
            if s == 429 || s >= 500 || s == 408 {
                CallError::Temporary(r.to_string())
            } else {
                CallError::Refused(r.to_string())
            }
        }
        OpenAIError::InvalidArgument(m) => CallError::Refused(m),
        other => CallError::Temporary(other.to_string()),
    }
}

/// A request that got no reply.
struct Failed {
    /// What it means for the caller.
    error: CallError,
    /// Whether it was an error status that may be about a structured-output
    /// schema ([`may_refuse_schema`]).
    schema: bool,
}

impl From<OpenAIError> for Failed {
    fn from(e: OpenAIError) -> Failed {
        Failed {
            schema: may_refuse_schema(&e),
            error: classify(e),
        }
    }
}

/// Words of an error that is about the structured-output schema.
const SCHEMA_WORDS: [&str; 3] = ["schema", "grammar", "response_format"];

/// Whether the error a server answered a structured-output request with
/// may be about the schema, so that JSON mode is worth a try. Servers say
/// so differently: 400 or 422 from most, a 500 that complains about the
/// schema from llama.cpp's (llama-cpp-python), which rejects the
/// `json_schema` type or fails turning the schema into a grammar.
/// Credentials, the address, timeouts and rate limits say nothing about
/// the format, nor does a server error that does not name the schema.
fn may_refuse_schema(e: &OpenAIError) -> bool {
    match e {
        OpenAIError::ApiError(r) => about_schema(r.status_code.as_u16(), &r.api_error.message),
        _ => false,
    }
}

/// [`may_refuse_schema`] of an error status and its message.
fn about_schema(status: u16, message: &str) -> bool {
    match status {
        401 | 403 | 404 | 408 | 429 => false,
        400..=499 => true,
        _ => {
            let m = message.to_ascii_lowercase();
            SCHEMA_WORDS.iter().any(|w| m.contains(w))
        }
    }
}

impl LlmClient {
    /// A client for the settings and credentials.
    pub fn new(s: &Settings, creds: &Credentials) -> LlmClient {
        // Every value set here, none left for async-openai to read from
        // the environment unchecked.
        let cfg = OpenAIConfig::new()
            .with_api_base(s.base_url.clone())
            .with_api_key(creds.key.clone())
            .with_org_id(creds.org.clone().unwrap_or_default())
            .with_project_id(creds.project.clone().unwrap_or_default());
        LlmClient {
            client: async_openai::Client::with_config(cfg),
            model: s.model.clone(),
            base_url: s.base_url.clone(),
            timeout: s.timeout,
            json_schema: AtomicBool::new(true),
            usage: Usage::default(),
        }
    }

    /// The model asked.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// Requests sent and tokens answered so far.
    pub fn usage(&self) -> UsageCounts {
        let u = &self.usage;
        UsageCounts {
            requests: u.requests.load(Ordering::Relaxed),
            prompt_tokens: u.prompt_tokens.load(Ordering::Relaxed),
            completion_tokens: u.completion_tokens.load(Ordering::Relaxed),
        }
    }

    fn request(&self, user: String, schema: bool) -> CreateChatCompletionRequest {
        let format = if schema {
            ResponseFormat::JsonSchema {
                json_schema: ResponseFormatJsonSchema {
                    description: Some("fail3ban verdict on one log line".into()),
                    name: "fail3ban_verdict".into(),
                    schema: super::answer::schema(),
                    strict: Some(true),
                },
            }
        } else {
            ResponseFormat::JsonObject
        };
        CreateChatCompletionRequest {
            model: self.model.clone(),
            messages: vec![
                ChatCompletionRequestMessage::from(ChatCompletionRequestSystemMessage::from(
                    super::prompt::SYSTEM,
                )),
                ChatCompletionRequestMessage::from(ChatCompletionRequestUserMessage::from(
                    user.as_str(),
                )),
            ],
            response_format: Some(format),
            temperature: Some(0.0),
            max_completion_tokens: Some(600),
            ..Default::default()
        }
    }

    async fn send(&self, req: CreateChatCompletionRequest) -> Result<Reply, Failed> {
        let chat = self.client.chat();
        self.usage.requests.fetch_add(1, Ordering::Relaxed);
        let resp = match tokio::time::timeout(self.timeout, chat.create(req)).await {
            Err(_) => {
                return Err(Failed {
                    error: CallError::Temporary("timed out".into()),
                    schema: false,
                })
            }
            Ok(r) => r?,
        };
        let tokens = match &resp.usage {
            Some(u) => {
                let count = |n: &AtomicU64, v: u32| n.fetch_add(u64::from(v), Ordering::Relaxed);
                count(&self.usage.prompt_tokens, u.prompt_tokens);
                count(&self.usage.completion_tokens, u.completion_tokens);
                u64::from(u.total_tokens)
            }
            None => 0,
        };
        let content = resp
            .choices
            .into_iter()
            .next()
            .and_then(|c| c.message.content)
            .unwrap_or_default();
        Ok(Reply { content, tokens })
    }

    /// Asks one question (a [`super::prompt::message`]). Structured
    /// outputs first; a server that answers them with an error status and
    /// JSON mode with an answer is asked in JSON mode from then on. The
    /// answer is read as strictly either way (answer::parse).
    pub async fn ask(&self, user: String) -> Result<Reply, CallError> {
        if !self.json_schema.load(Ordering::Relaxed) {
            return self
                .send(self.request(user, false))
                .await
                .map_err(|f| f.error);
        }
        let refused = match self.send(self.request(user.clone(), true)).await {
            Err(f) if f.schema => f.error,
            other => return other.map_err(|f| f.error),
        };
        // Remembered only once JSON mode answers: a server that fails both
        // is down, not choosy, and is asked for structured outputs again.
        let reply = self
            .send(self.request(user, false))
            .await
            .map_err(|f| f.error)?;
        tracing::warn!(
            "AI: {} refused structured outputs ({refused}) and answered in JSON mode; \
             using JSON mode with it from now on",
            self.base_url
        );
        self.json_schema.store(false, Ordering::Relaxed);
        Ok(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_takes_one_printable_word() {
        assert_eq!(check_word("sk-proj_AZaz09.~"), Ok(()));
        assert_eq!(check_word("sk\nx"), Err(KeyProblem::BadChar(3)));
        assert_eq!(check_word("a b"), Err(KeyProblem::BadChar(2)));
        assert_eq!(check_word("clé"), Err(KeyProblem::BadChar(3)));
        assert_eq!(check_word("x\u{7f}"), Err(KeyProblem::BadChar(2)));
    }

    #[test]
    fn key_file_errors_name_the_file_not_the_key() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        let p = path.to_str().unwrap();
        std::fs::write(&path, "sk-first\nsk-second\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = key_from_file(p).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("key_file {p}: holds 2 lines; the key must be its only line")
        );
        std::fs::write(&path, "sk-only\n").unwrap();
        assert_eq!(key_from_file(p), Ok(Some("sk-only".to_string())));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert_eq!(
            key_from_file(p).unwrap_err().problem,
            KeyProblem::Mode(0o640)
        );
    }

    #[test]
    fn only_errors_about_the_format_try_json_mode() {
        assert!(about_schema(400, "Bad Request"));
        assert!(about_schema(422, "unprocessable"));
        assert!(about_schema(500, LLAMA_500));
        assert!(about_schema(500, "Invalid GRAMMAR"));
        assert!(!about_schema(500, "CUDA out of memory"));
        assert!(!about_schema(503, "overloaded"));
        assert!(!about_schema(429, "json_schema rate limit"));
        assert!(!about_schema(401, "bad key"));
        assert!(!about_schema(404, "no such model"));
    }

    /// What llama-cpp-python 0.3.36 answers a structured-output request.
    const LLAMA_500: &str = "1 validation error: {'type': 'literal_error', \
        'loc': ('body', 'response_format', 'type'), 'msg': \"Input should be 'text' or \
        'json_object'\", 'input': 'json_schema'}";
}

//! What the configuration reads for the AI rule generator: a jail's `ai`
//! option and the [AI] section. Here rather than in the `ai` module that
//! runs the generator, so that the configuration does not depend on it
//! (it reads the configuration, not the other way round); the `ai` module
//! re-exports them.

use std::time::Duration;

/// A jail's `ai` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// No line goes to the AI.
    #[default]
    Off,
    /// Ask and record only.
    Observe,
    /// Write filters to filter.d/ai-pending/, loaded once approved.
    Suggest,
    /// Write and load.
    Enforce,
}

impl Mode {
    /// Reads the option; `None` for an unknown word.
    pub fn parse(s: &str) -> Option<Mode> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "" | "off" | "false" | "no" | "0" => Mode::Off,
            "observe" => Mode::Observe,
            "suggest" => Mode::Suggest,
            "enforce" => Mode::Enforce,
            _ => return None,
        })
    }

    /// The option's word.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::Observe => "observe",
            Mode::Suggest => "suggest",
            Mode::Enforce => "enforce",
        }
    }
}

/// The [AI] section of fail3ban.conf (or fail2ban.conf).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// OpenAI-compatible API base, up to and including `/v1`.
    pub base_url: String,
    /// Model name.
    pub model: String,
    /// A file holding the API key (root-only), used when OPENAI_API_KEY is
    /// not set.
    pub key_file: Option<String>,
    /// Requests per minute.
    pub requests_per_minute: u32,
    /// Requests per day.
    pub requests_per_day: u32,
    /// Tokens per day.
    pub tokens_per_day: u64,
    /// Lines the channel from the jails holds before it drops.
    pub queue_size: usize,
    /// Lines waiting for the model in the database, at most.
    pub backlog: u64,
    /// Time allowed for one request (the library's own retries included).
    pub timeout: Duration,
    /// How long a benign verdict holds.
    pub benign_ttl: f64,
    /// Consecutive failed requests that open the circuit breaker.
    pub breaker_failures: u32,
    /// How long the open breaker lets no request through.
    pub breaker_cooldown: Duration,
    /// Distinct client addresses a shape must come from before the model
    /// is asked about it.
    pub min_sources: usize,
    /// New shapes one client address may start a minute; more are dropped
    /// (counted), so that one client cannot fill the backlog.
    pub shapes_per_address: u32,
    /// New shapes one jail may start a minute.
    pub shapes_per_jail: u32,
    /// The fewest failures an AI rule bans on until it is approved.
    pub min_maxretry: u32,
    /// The longest ban of an AI rule until it is approved, for jails that
    /// set no `ai_max_bantime`, in seconds.
    pub max_bantime: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            base_url: "https://api.openai.com/v1".into(),
            model: "gpt-4o-mini".into(),
            key_file: None,
            requests_per_minute: 10,
            requests_per_day: 500,
            tokens_per_day: 500_000,
            queue_size: 10_000,
            backlog: 1_000,
            timeout: Duration::from_secs(60),
            benign_ttl: 7.0 * 86_400.0,
            breaker_failures: 3,
            breaker_cooldown: Duration::from_secs(60),
            min_sources: 2,
            shapes_per_address: 5,
            shapes_per_jail: 60,
            min_maxretry: 3,
            max_bantime: 3600,
        }
    }
}

/// A bad value in the [AI] section.
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum SettingsError {
    /// An option that does not exist.
    #[error("[AI] {0}: unknown option")]
    Unknown(String),
    /// An option whose value does not fit.
    #[error("[AI] {option}: expected {expected}, got {value:?}")]
    BadValue {
        /// The option.
        option: String,
        /// What it takes.
        expected: &'static str,
        /// What it got.
        value: String,
    },
}

impl Settings {
    /// Applies one option of the [AI] section.
    pub fn set(&mut self, option: &str, value: &str) -> Result<(), SettingsError> {
        let bad = |expected| SettingsError::BadValue {
            option: option.to_string(),
            expected,
            value: value.to_string(),
        };
        let num = || value.trim().parse::<u64>().map_err(|_| bad("an integer"));
        let secs = || {
            super::time::str2seconds(value)
                .ok()
                .filter(|s| *s >= 0.0)
                .ok_or_else(|| bad("a time (seconds or 10m, 1h, 1d...)"))
        };
        match option {
            "base_url" => self.base_url = value.trim().trim_end_matches('/').to_string(),
            "model" => self.model = value.trim().to_string(),
            "key_file" => self.key_file = Some(value.trim().to_string()).filter(|s| !s.is_empty()),
            "requests_per_minute" => self.requests_per_minute = num()? as u32,
            "requests_per_day" => self.requests_per_day = num()? as u32,
            "tokens_per_day" => self.tokens_per_day = num()?,
            "queue_size" => self.queue_size = (num()? as usize).max(1),
            "backlog" => self.backlog = num()?.max(1),
            "timeout" => self.timeout = Duration::from_secs_f64(secs()?.max(0.1)),
            "benign_ttl" => self.benign_ttl = secs()?,
            "breaker_failures" => self.breaker_failures = (num()? as u32).max(1),
            "breaker_cooldown" => self.breaker_cooldown = Duration::from_secs_f64(secs()?),
            "min_sources" => self.min_sources = (num()? as usize).max(1),
            "shapes_per_address" => self.shapes_per_address = (num()? as u32).max(1),
            "shapes_per_jail" => self.shapes_per_jail = (num()? as u32).max(1),
            "min_maxretry" => self.min_maxretry = (num()? as u32).max(1),
            "max_bantime" => self.max_bantime = secs()? as u64,
            _ => return Err(SettingsError::Unknown(option.to_string())),
        }
        Ok(())
    }
}

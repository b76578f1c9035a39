//! The daemon's side of the AI rule generator: its settings from the [AI]
//! section, its start by the first jail with `ai` on, and `ai ...` commands.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::ai::commands::RuleError;
use crate::ai::pipeline::Ai;
use crate::ai::{AiHandle, Mode};
use crate::client::protocol::CommandError;

use super::jail::Jail;
use super::spec::text;
use super::{failed, Server};

/// The AI part of a server: settings, and the running pipeline once started.
#[derive(Default)]
pub struct AiSlot {
    settings: Mutex<crate::ai::Settings>,
    running: Mutex<Option<(Arc<Ai>, AiHandle)>>,
    /// Tried to start (so a missing key is said once, not per jail).
    tried: AtomicBool,
    /// Why it is off after it tried, for `ai status`.
    off: Mutex<Option<String>>,
}

/// Runs an `ai` command that reads and writes SQLite and files on the
/// blocking pool, so the runtime threads serving the jails never wait on it.
async fn off_runtime(
    ai: Arc<Ai>,
    command: impl FnOnce(&Ai) -> Result<Value, RuleError> + Send + 'static,
) -> Result<Value, CommandError> {
    tokio::task::spawn_blocking(move || command(&ai))
        .await
        .map_err(failed)?
        .map_err(failed)
}

impl Server {
    /// `set ai {options}` from the [AI] section (checked by the reader).
    pub(super) fn set_ai_settings(&self, value: Option<&Value>) {
        let mut s = crate::ai::Settings::default();
        if let Some(Value::Object(m)) = value {
            for (k, v) in m {
                if let Err(e) = s.set(k, &text(v)) {
                    tracing::error!("{e}");
                }
            }
        }
        if self.ai.running.lock().expect("ai lock").is_some() {
            if *self.ai.settings.lock().expect("ai lock") != s {
                tracing::warn!("AI: changed [AI] settings take effect at the next start");
            }
        } else {
            // Off, maybe for a bad key since fixed: tried again by the
            // next jail that wants it (a reload).
            self.ai.tried.store(false, Ordering::Relaxed);
        }
        *self.ai.settings.lock().expect("ai lock") = s;
    }

    fn running_ai(&self) -> Option<(Arc<Ai>, AiHandle)> {
        let mut running = self.ai.running.lock().expect("ai lock");
        if running.is_none() && !self.ai.tried.swap(true, Ordering::Relaxed) {
            let settings = self.ai.settings.lock().expect("ai lock").clone();
            match Ai::start(settings, self.store(), self.conf_dir()) {
                Ok(r) => *running = Some(r),
                Err(e) => *self.ai.off.lock().expect("ai lock") = Some(e.to_string()),
            }
        }
        running.clone()
    }

    /// The AI's handle for a jail about to start, if its `ai` is on.
    pub(super) fn ai_for(&self, spec: &super::spec::JailSpec) -> Option<AiHandle> {
        if spec.ai == Mode::Off {
            return None;
        }
        let (ai, handle) = self.running_ai()?;
        ai.set_jail(&spec.name, spec.ai, spec.ai_max_bantime);
        Some(handle)
    }

    /// Connects a jail to the AI part when its `ai` option is on.
    pub(super) fn attach_ai(&self, jail: &Jail) {
        let (mode, cap) = jail.ai_settings();
        let running = if mode == Mode::Off {
            self.ai.running.lock().expect("ai lock").clone()
        } else {
            self.running_ai()
        };
        let Some((ai, handle)) = running else {
            return;
        };
        ai.set_jail(&jail.name, mode, cap);
        jail.set_ai((mode != Mode::Off).then_some(handle));
    }

    /// The AI's numbers for a metrics scrape, `None` while it is off
    /// (never started here: a scrape does not turn it on). Blocks on
    /// SQLite.
    pub(super) fn ai_metrics(&self) -> Option<crate::metrics::AiSample> {
        let running = self.ai.running.lock().expect("ai lock").clone();
        running.map(|(ai, _)| ai.metrics_sample())
    }

    /// `ai status|list|show <id>|approve <id>|reject <id>|test <line> [jail]`.
    pub(super) async fn ai_command(&self, args: &[String]) -> Result<Value, CommandError> {
        let Some((ai, _)) = self.running_ai() else {
            return Err(failed(match &*self.ai.off.lock().expect("ai lock") {
                Some(why) => format!("the AI rule generator is off: {why}"),
                None => "the AI rule generator is off (no jail with ai on)".into(),
            }));
        };
        let arg = |i: usize| args.get(i).cloned().ok_or_else(CommandError::invalid);
        match args.first().map(String::as_str) {
            Some("status") => off_runtime(ai, |ai| Ok(ai.status())).await,
            Some("list") => off_runtime(ai, |ai| ai.list()).await,
            Some("show") => {
                let id = arg(1)?;
                off_runtime(ai, move |ai| ai.show(&id)).await
            }
            Some("approve") => {
                let id = arg(1)?;
                off_runtime(ai, move |ai| ai.approve(&id)).await
            }
            Some("reject") => {
                let id = arg(1)?;
                off_runtime(ai, move |ai| ai.reject(&id)).await
            }
            Some("test") => {
                let line = arg(1)?;
                let jail = match args.get(2) {
                    Some(j) => self.jail(j).await?,
                    None => {
                        let jails = self.jails.read().await;
                        let found = jails
                            .values()
                            .find(|j| j.ai_settings().0 != Mode::Off)
                            .cloned();
                        found.ok_or_else(|| failed("no jail has ai on"))?
                    }
                };
                let addr = jail.ai_test_address(&line);
                Ok(ai.test(&jail.name, &line, addr).await)
            }
            _ => Err(CommandError::invalid()),
        }
    }
}

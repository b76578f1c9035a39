//! The action worker: runs a jail's action commands in order.

use std::sync::{Arc, Mutex};

use indexmap::IndexMap;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::action::{Action, Actions, BanInfo};
use crate::jail::Ticket;
use crate::notice;
use crate::store::{Ban, BanData, Store};

use super::record::{Record, Recorder, RETRY};
use super::state::JailState;
use super::store_write::store_write;
use super::Job;

pub(super) async fn action_worker(
    jail: String,
    mut actions: Actions,
    mut rx: mpsc::Receiver<Job>,
    store: Option<Arc<dyn Store>>,
    state: Arc<Mutex<JailState>>,
) {
    // A job taken from the queue while gathering a batch of bans, to be
    // done right after it.
    let mut held: Option<Job> = None;
    let mut recorder = Recorder::new(&jail, store.clone());
    loop {
        let job = match held.take() {
            Some(j) => j,
            None => tokio::select! {
                j = rx.recv() => match j {
                    Some(j) => j,
                    None => break,
                },
                _ = tokio::time::sleep(RETRY), if recorder.waiting() => {
                    recorder.retry().await;
                    continue;
                }
            },
        };
        // Running a job's actions takes KiBs of future state; boxed, an
        // idle jail (most of them) keeps only what waiting for a job needs.
        let job = Box::pin(run_job(
            &jail,
            &mut actions,
            &mut rx,
            &mut held,
            job,
            &state,
            &mut recorder,
        ));
        if !job.await {
            break;
        }
    }
}

// Returns false once the jail's actions are stopped.
async fn run_job(
    jail: &str,
    actions: &mut Actions,
    rx: &mut mpsc::Receiver<Job>,
    held: &mut Option<Job>,
    job: Job,
    state: &Arc<Mutex<JailState>>,
    recorder: &mut Recorder,
) -> bool {
    match job {
        Job::Ban(..) | Job::Restore(..) => {
            let mut batch = vec![job];
            while batch.len() < BATCH_MAX {
                match rx.try_recv() {
                    Ok(j @ (Job::Ban(..) | Job::Restore(..))) => batch.push(j),
                    Ok(other) => {
                        *held = Some(other);
                        break;
                    }
                    Err(_) => break,
                }
            }
            ban_jobs(jail, actions, recorder, state, batch).await;
        }
        Job::Unban(ticket, manual) => {
            let bt = ticket.ban_time_opt().unwrap_or(600.0);
            let ip = ban_info(&ticket, bt);
            notice!(target: "fail2ban.actions", "[{jail}] Unban {}", ip.ip);
            if manual {
                if let Some(s) = recorder.store() {
                    let (s, j, f) = (s.clone(), jail.to_string(), ticket.fid().to_string());
                    let what = format!("removing the ban of {f} from the database");
                    store_write(jail, what, move || s.remove_bans(&j, Some(&f))).await;
                }
            }
            actions.unban(&ip).await;
        }
        Job::Reload(new) => {
            let bans: Vec<BanInfo> = {
                let st = state.lock().expect("jail lock");
                st.engine
                    .ban_manager
                    .tickets()
                    .map(|t| ban_info(t, t.ban_time(st.spec.bantime)))
                    .collect()
            };
            let mut old: Vec<Action> = std::mem::take(actions).into_actions();
            let mut next = Vec::new();
            for a in new {
                match old.iter().position(|o| o.name() == a.name()) {
                    Some(i) => {
                        let mut o = old.remove(i);
                        if let Err(e) = o.reload_from(a).await {
                            tracing::error!("[{jail}] reloading action {}: {e}", o.name());
                        }
                        next.push(o);
                    }
                    None => {
                        let mut a = a;
                        if let Err(e) = a.start().await {
                            tracing::error!("[{jail}] starting action {}: {e}", a.name());
                        }
                        for b in &bans {
                            let _ = a.ban(b).await;
                        }
                        next.push(a);
                    }
                }
            }
            for mut o in old {
                for b in &bans {
                    let _ = o.unban(b).await;
                }
                let _ = o.stop().await;
            }
            *actions = Actions::new(jail, next);
        }
        Job::Stop { bans } => {
            recorder.stop().await;
            let infos: Vec<BanInfo> = bans
                .iter()
                .map(|t| {
                    let ip = ban_info(t, t.ban_time_opt().unwrap_or(600.0));
                    notice!(target: "fail2ban.actions", "[{jail}] Unban {}", ip.ip);
                    ip
                })
                .collect();
            actions.flush(&infos, true).await;
            actions.stop().await;
            return false;
        }
    }
    true
}

/// The most bans the action worker hands to the actions at once.
const BATCH_MAX: usize = 5000;

/// Bans (new or restored) that were waiting together in the queue: logged
/// and recorded one by one, applied by the actions in as few commands as
/// they allow.
async fn ban_jobs(
    jail: &str,
    actions: &mut Actions,
    recorder: &mut Recorder,
    state: &Mutex<JailState>,
    jobs: Vec<Job>,
) {
    let mut infos = Vec::with_capacity(jobs.len());
    let mut records = Vec::new();
    let mut prolong = Vec::new();
    for job in jobs {
        match job {
            Job::Ban(ticket, found, hold) => {
                let ip = ban_info(&ticket, found.ban_time);
                notice!(target: "fail2ban.actions", "[{jail}] Ban {}", ip.ip);
                if found.record {
                    let ban = store_ban(jail, &ticket, found.ban_time);
                    records.push(Record { ban, hold });
                } else if let Some(h) = hold {
                    h.release();
                }
                if found.increased {
                    prolong.push(infos.len());
                }
                infos.push(ip);
            }
            Job::Restore(ticket) => {
                let bt = ticket.ban_time_opt().unwrap_or(600.0);
                let ip = ban_info(&ticket, bt);
                notice!(target: "fail2ban.actions", "[{jail}] Restore Ban {}", ip.ip);
                infos.push(ip);
            }
            other => tracing::error!("[{jail}] not a ban: {other:?}"),
        }
    }
    // The records are written while the actions run (fail2ban writes
    // them from another thread too): the time from a failure to its ban
    // is what a jail is judged by. Their lines' log position waits for
    // them instead (see `ledger`).
    let writing = recorder.start(records);
    let epochs = actions.epochs();
    actions.ban_all(&infos).await;
    recorder.finish(writing).await;
    reban_after_repair(jail, actions, state, &epochs, &infos).await;
    for i in prolong {
        actions.prolong(&infos[i]).await;
    }
}

/// A ban that failed and made an action repair itself (actioncheck, then
/// stop and start) took that action's other bans with it: every other
/// ban in force is applied again with the actions that repaired, as
/// fail2ban does after a ban epoch moved.
async fn reban_after_repair(
    jail: &str,
    actions: &mut Actions,
    state: &Mutex<JailState>,
    before: &[u64],
    just_banned: &[BanInfo],
) {
    if actions.epochs() == before {
        return;
    }
    let just: std::collections::HashSet<&str> = just_banned.iter().map(|b| b.ip.as_str()).collect();
    let others: Vec<BanInfo> = {
        let st = state.lock().expect("jail lock");
        st.engine
            .ban_manager
            .tickets()
            .map(|t| ban_info(t, t.ban_time(st.spec.bantime)))
            .filter(|b| !just.contains(b.ip.as_str()))
            .collect()
    };
    for b in &others {
        notice!(target: "fail2ban.actions", "[{jail}] Reban {}", b.ip);
        if !actions.reban_repaired(b, before).await {
            break;
        }
    }
}

/// The per-ban values the actions' tags need.
pub(super) fn ban_info(ticket: &Ticket, bantime: f64) -> BanInfo {
    let mut info = BanInfo::new(
        ticket
            .ip()
            .map(|a| a.to_string())
            .unwrap_or_else(|| ticket.fid().to_string()),
        ticket.time(),
    );
    if ticket.ip().is_some() {
        info.fid = Some(ticket.fid().to_string());
    }
    info.failures = u64::from(ticket.attempts().max(1));
    info.bantime = if bantime < 0.0 { -1 } else { bantime as i64 };
    info.bancount = u64::from(ticket.ban_count());
    info.matches = ticket.matches().to_vec();
    info.restored = ticket.restored;
    info.data = ticket
        .data()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect::<IndexMap<_, _>>();
    info
}

fn store_ban(jail: &str, ticket: &Ticket, bantime: f64) -> Ban {
    let mut extra = serde_json::Map::new();
    for (k, v) in ticket.data() {
        extra.insert(k.clone(), Value::String(v.clone()));
    }
    Ban {
        jail: jail.to_string(),
        fid: ticket.fid().to_string(),
        time: ticket.time(),
        bantime,
        bancount: ticket.ban_count().max(1),
        data: BanData {
            matches: ticket.matches().to_vec(),
            failures: ticket.attempts().max(1),
            extra,
        },
    }
}

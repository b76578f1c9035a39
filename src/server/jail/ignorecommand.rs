//! Failures the ignorecommand must judge: run with the jail's lock released.

use std::sync::Mutex;

use tokio::sync::mpsc;

use crate::action::{BanInfo, TagSource};
use crate::filter::ipaddr::Fid;
use crate::jail::ignore::Check;
use crate::jail::Ticket;

use super::ledger::Hold;
use super::state::JailState;
use super::worker::ban_info;
use super::Job;

/// The tags of one failure for the ignorecommand and the ignorecache key,
/// built only if one of them asks.
pub(super) struct FailureTags<'a> {
    ticket: &'a Ticket,
    bantime: f64,
    info: std::cell::OnceCell<BanInfo>,
}

impl<'a> FailureTags<'a> {
    pub(super) fn new(ticket: &'a Ticket, bantime: f64) -> FailureTags<'a> {
        FailureTags {
            ticket,
            bantime,
            info: std::cell::OnceCell::new(),
        }
    }

    pub(super) fn info(&self) -> &BanInfo {
        self.info
            .get_or_init(|| ban_info(self.ticket, self.ticket.ban_time(self.bantime)))
    }
}

impl TagSource for FailureTags<'_> {
    fn tag(&self, name: &str) -> Option<String> {
        self.info().tag(name)
    }

    fn data(&self, key: &str) -> Option<String> {
        self.info().data(key)
    }
}

/// Whether `fid` (with the failure `ticket`, if it comes from one) must
/// never be banned. The ignorecommand, when it has to run, runs as
/// actions run, with the jail's action timeout and the jail's lock
/// released: exit 0 ignores, 1 bans, anything else is logged and bans.
pub(super) async fn ignored(
    state: &Mutex<JailState>,
    fid: &Fid,
    ticket: Option<&Ticket>,
    now: f64,
) -> bool {
    let (command, cache_key, timeout) = {
        let mut st = state.lock().expect("jail lock");
        let bantime = st.spec.bantime;
        let tags = ticket.map(|t| FailureTags::new(t, bantime));
        let tags = tags.as_ref().map(|t| t as &dyn TagSource);
        match st.ignore.check(fid, tags, now, true) {
            Check::Ignored(_) => return true,
            Check::NotIgnored => return false,
            Check::RunCommand { command, cache_key } => (command, cache_key, st.ignore_timeout),
        }
    };
    let out = crate::action::exec::execute_expecting(&command, timeout, &[0, 1]).await;
    let ignored = out.status == crate::action::exec::Status::Exited(0);
    let mut st = state.lock().expect("jail lock");
    matches!(
        st.ignore
            .command_answered(fid, cache_key.as_ref(), ignored, now, true),
        Check::Ignored(_)
    )
}

/// Counts the failures a batch held for the ignorecommand, in order, each
/// once its command answered (an earlier answer may since be in the
/// ignorecache), and hands their bans to the action worker, each holding
/// the position of the batch `hold` holds.
pub(super) async fn settle(
    state: &Mutex<JailState>,
    held: Vec<Ticket>,
    now: f64,
    jobs: &mpsc::Sender<Job>,
    hold: &Hold,
) {
    for ticket in held {
        if ignored(state, ticket.fid(), Some(&ticket), now).await {
            continue;
        }
        let mut js = Vec::new();
        state.lock().expect("jail lock").count(ticket, now, &mut js);
        for j in js {
            let _ = jobs.send(j.held_by(hold)).await;
        }
    }
}

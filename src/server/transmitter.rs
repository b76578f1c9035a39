//! The server's commands: those of the configuration stream (`add`, `set`,
//! `multi-set`, `start`) and those fail2ban-client sends (`status`,
//! `banned`, `unban`, `reload`, `get`, ...), answered as fail2ban's server
//! answers them.

use serde_json::{json, Value};

use crate::client::protocol::{CommandError, ErrorKind};
use crate::jail::status::Flavor;

use super::spec::{text, JailSpec};
use super::Server;

/// fail2ban's answer to a command it does not know (an `Exception`, which
/// its client prints as is; a missing argument is an `IndexError`, which
/// it words "Sorry but the command is invalid": [`CommandError::invalid`]).
fn unknown(message: String) -> CommandError {
    CommandError::new(ErrorKind::Failed, message)
}

fn arg(cmd: &[Value], i: usize) -> Result<String, CommandError> {
    cmd.get(i).map(text).ok_or_else(CommandError::invalid)
}

fn strings(v: &[Value]) -> Vec<String> {
    v.iter().map(text).collect()
}

/// Jail options that `get <jail> <name>` answers from the settings.
fn get_jail_option(spec: &JailSpec, what: &str) -> Option<Value> {
    Some(match what {
        "logpath" => json!(spec
            .logpaths
            .iter()
            .map(|(p, _)| p.clone())
            .collect::<Vec<_>>()),
        // fail2ban answers the codec it chose for `auto`; ours is UTF-8.
        "logencoding" if spec.logencoding.eq_ignore_ascii_case("auto") => json!("UTF-8"),
        "logencoding" => json!(spec.logencoding),
        "journalmatch" => json!(spec.journalmatch),
        "ignoreself" => json!(spec.ignoreself),
        "ignoreip" => json!(spec.ignoreip),
        "ignorecommand" => match &spec.ignorecommand {
            None => json!(false),
            Some(c) => json!(c),
        },
        "ignorecache" => json!(spec.ignorecache),
        "prefregex" => json!(spec.prefregex.as_deref().unwrap_or("")),
        "failregex" => json!(spec.failregex),
        "ignoreregex" => json!(spec.ignoreregex),
        "usedns" => json!(spec.usedns.as_str()),
        "maxretry" => json!(spec.maxretry),
        "maxmatches" => json!(spec.maxmatches.unwrap_or(super::spec::DEFAULT_MAXMATCHES)),
        "maxfailedids" => json!(spec
            .maxfailedids
            .unwrap_or(super::spec::DEFAULT_MAXFAILEDIDS)),
        "maxlines" => json!(spec.maxlines),
        "findtime" => json!(spec.findtime as i64),
        "bantime" => json!(spec.bantime as i64),
        "datepattern" => match &spec.datepattern {
            None => Value::Null,
            Some(p) => json!([p, p]),
        },
        "logtimezone" => json!(spec.logtimezone),
        "backend" => json!(spec.backend.as_str()),
        "bantime.increment" => json!(spec.increment),
        "bantime.factor" => json!(spec.increment_opts.factor),
        "bantime.formula" => json!(spec.increment_opts.formula),
        "bantime.multipliers" => json!(spec.increment_opts.multipliers),
        "bantime.maxtime" => json!(spec.increment_opts.maxtime),
        "bantime.rndtime" => json!(spec.increment_opts.rndtime),
        "bantime.overalljails" => json!(spec.increment_opts.overalljails),
        "actions" => json!(spec
            .actions
            .iter()
            .map(|a| a.name.clone())
            .collect::<Vec<_>>()),
        _ => return None,
    })
}

impl Server {
    /// Runs one command.
    ///
    /// The arms that start jails or change settings are boxed: their
    /// futures take KiBs, and unboxed they made this one (and every future
    /// that awaits it: the control socket's connections, the start) as
    /// large as the largest, and the stack frames that poll them larger
    /// still: pages of stack the threads keep resident once touched.
    pub async fn command(&self, cmd: &[Value]) -> Result<Value, CommandError> {
        let name = arg(cmd, 0)?;
        match name.as_str() {
            "ping" => Ok(json!("pong")),
            "version" => Ok(json!(env!("CARGO_PKG_VERSION"))),
            "echo" => Ok(json!(strings(&cmd[1..]))),
            "status" => {
                let args = strings(&cmd[1..]);
                let flavor = || {
                    let f = Flavor::parse(args.get(1).map(String::as_str));
                    if let Flavor::Unknown(w) = &f {
                        tracing::warn!(
                            "Unsupported extended jail status flavor {w:?}. Supported: ['short', 'basic', 'stats', 'cymru']"
                        );
                    }
                    f
                };
                match args.first().map(String::as_str) {
                    None => Ok(self.status(None).await),
                    Some(_) if args.len() > 2 => Err(unknown("Invalid command (no status)".into())),
                    Some("--all") => match flavor() {
                        Flavor::Stats => Ok(self.stats().await),
                        f => Ok(self.status(Some(&f)).await),
                    },
                    Some(jail) => self.jail_status(jail, &flavor()).await,
                }
            }
            "stats" | "statistic" | "statistics" => Ok(self.stats().await),
            "add" => {
                let jail = arg(cmd, 1)?;
                let backend = cmd.get(2).map(text).unwrap_or_else(|| "auto".into());
                self.add_jail(&jail, &backend).await?;
                Ok(json!(jail))
            }
            "set" => Box::pin(self.set(cmd)).await,
            "multi-set" => Box::pin(self.multi_set(cmd)).await,
            "get" => self.get(cmd).await,
            "start" => {
                let jail = arg(cmd, 1)?;
                Box::pin(self.start_jail(&jail)).await?;
                Ok(Value::Null)
            }
            "stop" => match cmd.get(1) {
                None => {
                    self.request_shutdown();
                    Ok(Value::Null)
                }
                Some(j) => {
                    let j = text(j);
                    if j == "--all" {
                        self.stop_all_jails().await;
                    } else {
                        self.stop_jail(&j).await?;
                    }
                    Ok(Value::Null)
                }
            },
            "reload" => {
                let mut jail = None;
                let (mut restart, mut unban, mut all, mut if_exists) = (false, false, false, false);
                for a in strings(&cmd[1..]) {
                    match a.as_str() {
                        "--restart" => restart = true,
                        "--unban" => unban = true,
                        "--all" => all = true,
                        "--if-exists" => if_exists = true,
                        "--jail" => {}
                        _ => jail = Some(a),
                    }
                }
                Box::pin(self.reload(jail.as_deref(), restart, unban, all, if_exists)).await?;
                Ok(json!("OK"))
            }
            "unban" => {
                let args = strings(&cmd[1..]);
                if args.first().map(String::as_str) == Some("--all") {
                    return Ok(json!(self.unban_all().await));
                }
                if args.is_empty() {
                    return Err(unknown("Invalid command".into()));
                }
                let mut n = 0;
                for ip in &args {
                    n += self.unban_everywhere(ip).await;
                }
                Ok(json!(n))
            }
            "banned" => Ok(self.banned(&strings(&cmd[1..])).await),
            "ai" => Box::pin(self.ai_command(&strings(&cmd[1..]))).await,
            "flushlogs" => {
                self.log
                    .reopen()
                    .map_err(|e| CommandError::new(ErrorKind::Failed, e.to_string()))?;
                Ok(json!("rolled over"))
            }
            "config-error" => {
                tracing::error!("{}", strings(&cmd[1..]).join(" "));
                Ok(Value::Null)
            }
            _ => Err(unknown("Invalid command".into())),
        }
    }

    async fn set(&self, cmd: &[Value]) -> Result<Value, CommandError> {
        let target = arg(cmd, 1)?;
        if let Some(v) = self.set_server_option(&target, cmd.get(2)).await? {
            return Ok(v);
        }
        let what = arg(cmd, 2)?;
        let args = &cmd[3..];
        match what.as_str() {
            "banip" => {
                let jail = self.jail(&target).await?;
                let mut n = 0;
                let mut refused = Vec::new();
                for ip in strings(args) {
                    match jail.ban_ip(&ip).await {
                        Ok(true) => n += 1,
                        Ok(false) => {}
                        Err(e) => refused.push(format!("{e}: never banned")),
                    }
                }
                if !refused.is_empty() {
                    return Err(CommandError::new(
                        ErrorKind::InvalidValue,
                        refused.join("; "),
                    ));
                }
                Ok(json!(n))
            }
            "unbanip" => {
                let jail = self.jail(&target).await?;
                let mut ips = strings(args);
                let report = ips.first().map(String::as_str) == Some("--report-absent");
                if report {
                    ips.remove(0);
                }
                let mut n = 0;
                let mut absent = Vec::new();
                for ip in ips {
                    if jail.unban_ip(&ip).await {
                        n += 1;
                    } else {
                        absent.push(ip);
                    }
                }
                if report && !absent.is_empty() {
                    return Err(CommandError::new(
                        ErrorKind::InvalidValue,
                        format!("{} is not banned", absent.join(", ")),
                    ));
                }
                Ok(json!(n))
            }
            "idle" => Ok(json!(false)),
            _ => {
                let v = self
                    .change_spec(&target, |spec| spec.set(&what, args))
                    .await?;
                // fail2ban answers a change with the option read back
                // (`set sshd findtime 1h` prints 3600).
                let getter = match what.as_str() {
                    "addignoreip" | "delignoreip" => "ignoreip",
                    "addlogpath" | "dellogpath" => "logpath",
                    "addjournalmatch" | "deljournalmatch" => "journalmatch",
                    "addfailregex" | "delfailregex" => "failregex",
                    "addignoreregex" | "delignoreregex" => "ignoreregex",
                    "delaction" => return Ok(Value::Null),
                    "addaction" | "action" => return Ok(v),
                    other => other,
                };
                let get = [json!("get"), json!(target), json!(getter)];
                Ok(self.get(&get).await.unwrap_or(v))
            }
        }
    }

    async fn multi_set(&self, cmd: &[Value]) -> Result<Value, CommandError> {
        let target = arg(cmd, 1)?;
        let what = arg(cmd, 2)?;
        let args = &cmd[3..];
        self.change_spec(&target, |spec| spec.multi_set(&what, args))
            .await
    }

    async fn get(&self, cmd: &[Value]) -> Result<Value, CommandError> {
        let target = arg(cmd, 1)?;
        if let Some(v) = self.get_server_option(&target) {
            return Ok(v);
        }
        let what = arg(cmd, 2)?;
        if what == "banned" || what == "banip" {
            let jail = self.jail(&target).await?;
            let flag = cmd.get(3).map(text);
            let bans = jail.bans_by_end();
            if flag.as_deref() == Some("--with-epoch") {
                // fail3ban's own: the numbers `--with-time` words, for
                // `fail3ban-client --json` (no local time to parse back).
                let rows: Vec<Value> = bans
                    .iter()
                    .map(|b| json!([b.fid, b.time, b.ban_time, b.end]))
                    .collect();
                return Ok(Value::Array(rows));
            }
            let with_time = flag.as_deref() == Some("--with-time");
            let list: Vec<String> = bans
                .iter()
                .map(|b| {
                    if with_time {
                        let fmt = |x: f64| {
                            jiff::Timestamp::from_second(x as i64)
                                .map(|ts| {
                                    ts.to_zoned(jiff::tz::TimeZone::system())
                                        .strftime("%Y-%m-%d %H:%M:%S")
                                        .to_string()
                                })
                                .unwrap_or_default()
                        };
                        let end = if b.ban_time < 0.0 {
                            "+ -1 = 9999-12-31 23:59:59".to_string()
                        } else {
                            format!("+ {} = {}", b.ban_time as i64, fmt(b.end))
                        };
                        format!("{} \t{} {end}", b.fid, fmt(b.time))
                    } else {
                        b.fid.clone()
                    }
                })
                .collect();
            return Ok(json!(list));
        }
        if let Ok(jail) = self.jail(&target).await {
            if let Some(v) = jail.live_option(&what) {
                return Ok(v);
            }
        }
        let spec = self.spec(&target).await?;
        get_jail_option(&spec, &what)
            .ok_or_else(|| unknown("Invalid command (no get action or not yet implemented)".into()))
    }
}

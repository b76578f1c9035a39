//! The second stage: values that fail2ban passes on as text, checked for
//! what the server will need them to be (times, log levels, backends).

use indexmap::IndexMap;

use super::error::ErrorKind;
use super::stream::PyValue;
use super::time::str2seconds;

const TIME_OPTS: &[&str] = &[
    "findtime",
    "bantime",
    "bantime.maxtime",
    "bantime.rndtime",
    "dbpurgeage",
    "ai_max_bantime",
];

/// Problems with typed options, as (option, what is wrong).
pub fn check_options(opts: &IndexMap<String, PyValue>) -> Vec<(String, ErrorKind)> {
    let mut out = Vec::new();
    for (name, value) in opts {
        let PyValue::Str(text) = value else { continue };
        let bad = |expected: &'static str| {
            (
                name.clone(),
                ErrorKind::BadValue {
                    expected,
                    value: text.clone(),
                },
            )
        };
        match name.as_str() {
            n if TIME_OPTS.contains(&n) && str2seconds(text).is_err() => {
                out.push(bad("a time such as 600, 10m, 1h30m or -1"));
            }
            "metrics" if crate::metrics::parse_address(text).is_err() => {
                out.push(bad(
                    "an address and port such as 127.0.0.1:9191, or a port alone",
                ));
            }
            "ai" if super::ai::Mode::parse(text).is_none() => {
                out.push(bad("off, observe, suggest or enforce"));
            }
            "usedns" if !matches!(text.to_lowercase().as_str(), "yes" | "warn" | "no" | "raw") => {
                out.push(bad("yes, warn, no or raw"));
            }
            "ignoreip"
                if text
                    .split(|c: char| c.is_whitespace() || c == ',')
                    .any(|w| {
                        w.starts_with("file:") && crate::jail::ignore::file_item(w).is_none()
                    }) =>
            {
                out.push(bad("addresses, networks, names or file:<path>"));
            }
            "backend" => {
                let base = text.split('[').next().unwrap_or_default().trim();
                if !matches!(base, "auto" | "pyinotify" | "gamin" | "polling" | "systemd") {
                    out.push(bad("auto, pyinotify, gamin, polling or systemd"));
                }
            }
            "loglevel" => {
                let known = [
                    "CRITICAL",
                    "ERROR",
                    "WARNING",
                    "NOTICE",
                    "INFO",
                    "DEBUG",
                    "TRACEDEBUG",
                    "HEAVYDEBUG",
                ];
                if !known.contains(&text.to_uppercase().as_str()) && text.parse::<u32>().is_err() {
                    out.push(bad("a log level such as INFO or DEBUG"));
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_are_named() {
        let mut o = IndexMap::new();
        o.insert("bantime".to_string(), PyValue::str("1 fortnight"));
        o.insert("findtime".to_string(), PyValue::str("10m"));
        o.insert("usedns".to_string(), PyValue::str("maybe"));
        let p = check_options(&o);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].0, "bantime");
        assert_eq!(p[1].0, "usedns");
    }
}

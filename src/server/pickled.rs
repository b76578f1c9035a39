//! fail2ban's own protocol on the control socket, for fail2ban-client and
//! the monitoring tools built on fail2ban's `CSocket`: each request is a
//! pickled command list ended by `<F2B_END_COMMAND>`, each answer the
//! pickle of `(0, value)` or `(1, exception)` ended the same way, and
//! `<F2B_CLOSE_COMMAND>` ends the connection (`fail2ban/protocol.py`,
//! `fail2ban/client/csocket.py`, `fail2ban/server/asyncserver.py`).
//!
//! The command runs through the same [`super::Server::command`] as a JSON
//! request; this module only turns the pickle into that command's words
//! and the answer into the shapes fail2ban's server returns, because
//! fail2ban's client formats the Python value itself: `status` rows and
//! a date pattern are tuples, a failed command is an exception of the
//! class fail2ban raises, whose class the client tests.

use serde_json::Value;
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

use crate::client::protocol::{CommandError, ErrorKind};
use crate::pickle::{encode, DecodeError, Limits, Py};

/// Ends every request and answer.
pub const END: &[u8] = b"<F2B_END_COMMAND>";
/// A request that closes the connection.
pub const CLOSE: &[u8] = b"<F2B_CLOSE_COMMAND>";

/// Whether a connection that starts with `first` speaks fail2ban's
/// protocol: its first request is a pickle, which starts with an opcode
/// (`\x80` since protocol 2), or it closes at once. A JSON request starts
/// with `[` or white space, which are none; anything else is answered in
/// JSON, as before fail3ban spoke both.
pub fn speaks_fail2ban(first: u8) -> bool {
    first == CLOSE[0] || crate::pickle::op::ALL.contains(&first)
}

/// What reading one frame found.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A request in the buffer, without its END.
    Message,
    /// `<F2B_CLOSE_COMMAND>`, or the client closed the connection.
    Close,
    /// More than `max` bytes without END.
    TooLong,
}

/// Reads up to the next END into `buf`, taking nothing after it from `r`.
pub async fn read_frame<R: AsyncBufRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Frame> {
    loop {
        let chunk = r.fill_buf().await?;
        if chunk.is_empty() {
            return Ok(Frame::Close);
        }
        // END may straddle two reads: search from where it could start.
        let from = buf.len().saturating_sub(END.len() - 1);
        let old = buf.len();
        buf.extend_from_slice(chunk);
        if let Some(i) = memchr::memmem::find(&buf[from..], END) {
            let end = from + i;
            r.consume(end + END.len() - old);
            buf.truncate(end);
            return Ok(if buf == CLOSE {
                Frame::Close
            } else if buf.len() > max {
                Frame::TooLong
            } else {
                Frame::Message
            });
        }
        let n = chunk.len();
        r.consume(n);
        if buf.len() > max + END.len() {
            return Ok(Frame::TooLong);
        }
    }
}

/// The command a request holds, or why it is refused: a pickle that is
/// not plain data, or is too large, is refused; one that is plain data
/// but no command list gets fail2ban's "Invalid command".
pub fn request(msg: &[u8]) -> Result<Result<Vec<Value>, CommandError>, DecodeError> {
    Ok(match crate::pickle::decode(msg, &Limits::SOCKET)? {
        Value::Array(words) if !words.is_empty() => Ok(words),
        _ => Err(CommandError::invalid()),
    })
}

/// The answer to `cmd`, framed.
pub fn answer(cmd: &[Value], result: &Result<Value, CommandError>) -> Vec<u8> {
    let ack = match result {
        Ok(v) => Py::Tuple(vec![Py::Int(0), shape(cmd, v)]),
        Err(e) => Py::Tuple(vec![Py::Int(1), exception(e)]),
    };
    framed(&ack)
}

/// What fail2ban's server answers to a pickle it cannot load (a string,
/// not an acknowledgement), framed.
pub fn refusal(why: &dyn std::fmt::Display) -> Vec<u8> {
    framed(&Py::Str(format!("ERROR: {why}")))
}

fn framed(v: &Py) -> Vec<u8> {
    let mut out = encode(v);
    out.extend_from_slice(END);
    out
}

/// The value in the shape fail2ban's server returns it.
fn shape(cmd: &[Value], v: &Value) -> Py {
    let word = |i: usize| cmd.get(i).and_then(Value::as_str).unwrap_or("");
    match (word(0), v) {
        ("status", Value::Array(rows)) if cmd.len() == 1 => rows_py(rows, plain),
        ("status", Value::Array(rows)) if word(1) != "--all" => rows_py(rows, |v| match v {
            Value::Array(inner) => rows_py(inner, plain),
            other => plain(other),
        }),
        // `stats` and `status --all stats`: {jail: [backend, (failed now,
        // in all), (banned now, in all)]}.
        ("stats" | "statistic" | "statistics", Value::Object(jails)) => stats_py(jails),
        ("status", Value::Object(jails)) if word(1) == "--all" && word(2) == "stats" => {
            stats_py(jails)
        }
        // `get|set JAIL datepattern`: (pattern, name).
        (_, Value::Array(pn)) if word(2) == "datepattern" && pn.len() == 2 => {
            Py::Tuple(pn.iter().map(plain).collect())
        }
        _ => plain(v),
    }
}

/// Each jail's statistics: a list whose pairs are tuples.
fn stats_py(jails: &serde_json::Map<String, Value>) -> Py {
    let pair = |v: &Value| match v {
        Value::Array(p) if p.len() == 2 => Py::Tuple(p.iter().map(plain).collect()),
        other => plain(other),
    };
    Py::Dict(
        jails
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::Array(items) => Py::List(items.iter().map(pair).collect()),
                    other => plain(other),
                };
                (Py::Str(k.clone()), v)
            })
            .collect(),
    )
}

/// Status rows: `(name, value)` tuples.
fn rows_py(rows: &[Value], value: impl Fn(&Value) -> Py) -> Py {
    Py::List(
        rows.iter()
            .map(|row| match row {
                Value::Array(kv) if kv.len() == 2 => Py::Tuple(vec![plain(&kv[0]), value(&kv[1])]),
                other => plain(other),
            })
            .collect(),
    )
}

fn plain(v: &Value) -> Py {
    match v {
        Value::Null => Py::None,
        Value::Bool(b) => Py::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Py::Int(i.into()),
            (_, Some(u)) => Py::Int(u.into()),
            _ => Py::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Py::Str(s.clone()),
        Value::Array(items) => Py::List(items.iter().map(plain).collect()),
        Value::Object(m) => Py::Dict(
            m.iter()
                .map(|(k, v)| (Py::Str(k.clone()), plain(v)))
                .collect(),
        ),
    }
}

/// The exception fail2ban raises for such a failure: fail2ban-client
/// words unknown and duplicate jails and an `IndexError` ("Sorry but the
/// command is invalid") by class, and prints any other's message.
fn exception(e: &CommandError) -> Py {
    let (module, name) = match e.kind {
        ErrorKind::UnknownJail => ("fail2ban.exceptions", "UnknownJailException"),
        ErrorKind::DuplicateJail => ("fail2ban.exceptions", "DuplicateJailException"),
        ErrorKind::InvalidCommand => ("builtins", "IndexError"),
        ErrorKind::InvalidValue => ("builtins", "ValueError"),
        _ => ("builtins", "Exception"),
    };
    Py::Call {
        module,
        name,
        args: vec![Py::Str(e.message.clone())],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn frames_split_anywhere() {
        let wire = b"abc<F2B_END_COMMAND>de<F2B_END_COMMAND><F2B_CLOSE_COMMAND><F2B_END_COMMAND>";
        // One byte per read: END always straddles reads.
        let mut r = tokio::io::BufReader::with_capacity(1, &wire[..]);
        let mut buf = Vec::new();
        assert_eq!(
            read_frame(&mut r, &mut buf, 100).await.unwrap(),
            Frame::Message
        );
        assert_eq!(buf, b"abc");
        buf.clear();
        assert_eq!(
            read_frame(&mut r, &mut buf, 100).await.unwrap(),
            Frame::Message
        );
        assert_eq!(buf, b"de");
        buf.clear();
        assert_eq!(
            read_frame(&mut r, &mut buf, 100).await.unwrap(),
            Frame::Close
        );
        let mut r = tokio::io::BufReader::new(&b"0123456789"[..]);
        buf.clear();
        assert_eq!(read_frame(&mut r, &mut buf, 4).await.unwrap(), Frame::Close);
        let long = [b'x'; 64];
        let mut r = tokio::io::BufReader::with_capacity(8, &long[..]);
        buf.clear();
        assert_eq!(
            read_frame(&mut r, &mut buf, 4).await.unwrap(),
            Frame::TooLong
        );
    }

    #[test]
    fn status_rows_are_tuples_and_lists_stay_lists() {
        let cmd = [json!("status"), json!("sshd")];
        let v = json!([["Filter", [["File list", ["/a", "/b"]]]]]);
        assert_eq!(
            shape(&cmd, &v),
            Py::List(vec![Py::Tuple(vec![
                Py::Str("Filter".into()),
                Py::List(vec![Py::Tuple(vec![
                    Py::Str("File list".into()),
                    Py::List(vec![Py::Str("/a".into()), Py::Str("/b".into())]),
                ])]),
            ])])
        );
    }
}

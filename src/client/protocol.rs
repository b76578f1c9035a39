//! The control socket's protocol: one JSON array of words per request line,
//! one JSON object per response line. fail2ban pickles Python objects over
//! its socket; a line of JSON carries the same commands and answers and can
//! be read by any tool.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The server's answer to one command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Response {
    /// The command's result.
    Ok(Value),
    /// Why the command failed.
    Error(CommandError),
}

/// A failed command, with a kind the client can word as fail2ban does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct CommandError {
    pub kind: ErrorKind,
    pub message: String,
}

/// What kind of failure, as fail2ban's exceptions tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The jail named does not exist (`UnknownJailException`).
    UnknownJail,
    /// A jail of that name exists already (`DuplicateJailException`).
    DuplicateJail,
    /// The command is not one the server knows, or misses arguments.
    InvalidCommand,
    /// A value was refused.
    InvalidValue,
    /// Anything else.
    Failed,
}

impl CommandError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> CommandError {
        CommandError {
            kind,
            message: message.into(),
        }
    }

    pub fn unknown_jail(name: &str) -> CommandError {
        CommandError::new(ErrorKind::UnknownJail, name)
    }

    pub fn invalid() -> CommandError {
        CommandError::new(ErrorKind::InvalidCommand, "Invalid command")
    }
}

/// One request line: the command's words (the configuration stream also
/// sends lists, hence values).
pub fn encode_request(words: &[Value]) -> String {
    let mut s = serde_json::to_string(words).expect("values serialise");
    s.push('\n');
    s
}

/// Reads one request line.
pub fn decode_request(line: &str) -> Result<Vec<Value>, CommandError> {
    let v: Value = serde_json::from_str(line)
        .map_err(|e| CommandError::new(ErrorKind::InvalidCommand, e.to_string()))?;
    match v {
        Value::Array(items) if !items.is_empty() => Ok(items),
        _ => Err(CommandError::invalid()),
    }
}

/// One response line.
pub fn encode_response(r: &Response) -> String {
    let mut s = serde_json::to_string(r).expect("responses serialise");
    s.push('\n');
    s
}

pub fn decode_response(line: &str) -> Result<Response, serde_json::Error> {
    serde_json::from_str(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let words = vec![Value::from("status"), Value::from("ss\"hd")];
        assert_eq!(
            decode_request(encode_request(&words).trim_end()).unwrap(),
            words
        );
        let r = Response::Error(CommandError::unknown_jail("x"));
        assert_eq!(decode_response(encode_response(&r).trim_end()).unwrap(), r);
        let r = Response::Ok(serde_json::json!([["Number of jail", 1]]));
        assert_eq!(decode_response(&encode_response(&r)).unwrap(), r);
        assert!(decode_request("{\"a\":1}").is_err());
    }
}

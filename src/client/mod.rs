//! The command-line tools' logic: `fail3ban-regex`, `fail3ban-client
//! migrate`, and the control socket's protocol and wording that
//! `fail3ban-client` shares with the server.

pub mod beautify;
pub mod json;
pub mod migrate;
pub mod protocol;
pub mod regex;

//! The command-line tools' logic: `fail3ban-regex`, and the control
//! socket's protocol and wording that `fail3ban-client` shares with the
//! server.

pub mod beautify;
pub mod protocol;
pub mod regex;

//! The command-line tools' logic: `fail3ban-regex` (and, with the server,
//! `fail3ban-client`'s protocol).

pub mod regex;

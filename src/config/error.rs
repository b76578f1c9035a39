//! Configuration errors: each names the file, section and option it is about.

use std::fmt;
use std::path::{Path, PathBuf};

/// A problem in a configuration tree, located as precisely as it can be.
/// Boxed: errors travel through every `Result` of the reader.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError(Box<Located>);

/// The parts of a [`ConfigError`].
#[derive(Debug, Clone, PartialEq)]
pub struct Located {
    pub file: Option<PathBuf>,
    pub section: Option<String>,
    pub option: Option<String>,
    pub kind: ErrorKind,
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    #[error("{0}")]
    Syntax(String),
    #[error("cannot read: {0}")]
    Unreadable(String),
    #[error("no configuration files found for {0:?}")]
    NotFound(String),
    #[error("no section [{0}]")]
    NoSection(String),
    #[error("option not set")]
    NoOption,
    #[error("refers to %({reference})s, which is not set (raw value: {raw:?})")]
    MissingReference { reference: String, raw: String },
    #[error("bad %-interpolation: {0}")]
    InterpolationSyntax(String),
    #[error("interpolation deeper than 10 levels, most likely a loop (raw value: {0:?})")]
    InterpolationDepth(String),
    #[error("tags refer to themselves and cannot be resolved: {0}")]
    TagRecursion(String),
    #[error("include loop: {0} is already being included")]
    IncludeLoop(PathBuf),
    #[error("unknown filter {0:?}: no filter.d/{0}.conf or .local")]
    UnknownFilter(String),
    #[error("unknown action {0:?}: no action.d/{0}.conf or .local")]
    UnknownAction(String),
    /// A jail names one of fail2ban's Python actions (`action.d/*.py`):
    /// fail3ban runs no Python, and a jail without its action would ban
    /// nothing, so it does not start.
    #[error("{}", python_action_text(.0))]
    PythonAction(PathBuf),
    #[error("bad option list {value:?}: {reason}")]
    OptionList { value: String, reason: String },
    #[error("expected {expected}, got {value:?}")]
    BadValue {
        expected: &'static str,
        value: String,
    },
    #[error("no log file found for {0:?}")]
    NoLogFile(String),
    /// A value the server could not use: a regex that does not compile,
    /// a failregex without a host group, a bad date pattern.
    #[error("\"{value}\": {reason}")]
    Unusable { value: String, reason: String },
}

impl ConfigError {
    pub fn new(file: impl AsRef<Path>, kind: ErrorKind) -> ConfigError {
        ConfigError(Box::new(Located {
            file: Some(file.as_ref().to_path_buf()),
            section: None,
            option: None,
            kind,
        }))
    }

    /// An error not yet tied to a file; the caller usually adds one.
    pub fn bare(kind: ErrorKind) -> ConfigError {
        ConfigError(Box::new(Located {
            file: None,
            section: None,
            option: None,
            kind,
        }))
    }

    pub fn in_section(mut self, section: &str) -> ConfigError {
        self.section = Some(section.to_string());
        self
    }

    pub fn for_option(mut self, option: &str) -> ConfigError {
        self.option = Some(option.to_string());
        self
    }

    pub fn in_file(mut self, file: impl AsRef<Path>) -> ConfigError {
        self.file = Some(file.as_ref().to_path_buf());
        self
    }

    /// Fills in the location parts that are still unknown.
    pub fn located(mut self, file: Option<&Path>, section: &str, option: &str) -> ConfigError {
        if self.file.is_none() {
            self.file = file.map(Path::to_path_buf);
        }
        if self.section.is_none() {
            self.section = Some(section.to_string());
        }
        if self.option.is_none() {
            self.option = Some(option.to_string());
        }
        self
    }
}

impl std::ops::Deref for ConfigError {
    type Target = Located;
    fn deref(&self) -> &Located {
        &self.0
    }
}

impl std::ops::DerefMut for ConfigError {
    fn deref_mut(&mut self) -> &mut Located {
        &mut self.0
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sep = "";
        if let Some(file) = &self.file {
            write!(f, "{}", file.display())?;
            sep = " ";
        }
        if let Some(s) = &self.section {
            write!(f, "{sep}[{s}]")?;
            sep = " ";
        }
        if let Some(o) = &self.option {
            write!(f, "{sep}{o}")?;
        }
        if self.file.is_some() || self.section.is_some() || self.option.is_some() {
            write!(f, ": ")?;
        }
        write!(f, "{}", self.kind)
    }
}

impl std::error::Error for ConfigError {}

/// The own actions that do what a Python action of fail2ban does, by the
/// Python file's name.
const PYTHON_ACTION_INSTEAD: &[(&str, &str)] = &[(
    "smtp.py",
    "smtp (the same options, mail through curl; matches is matchtype there)",
)];

fn python_action_text(file: &Path) -> String {
    let name = file.file_name().unwrap_or_default().to_string_lossy();
    let mut text = format!(
        "{} is a Python action of fail2ban, which fail3ban does not run",
        file.display()
    );
    if let Some((_, instead)) = PYTHON_ACTION_INSTEAD.iter().find(|(n, _)| *n == name) {
        text.push_str("; use the action ");
        text.push_str(instead);
        text.push_str(" instead");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_file_section_option() {
        let e = ConfigError::new(
            "jail.local",
            ErrorKind::BadValue {
                expected: "integer",
                value: "x".into(),
            },
        )
        .in_section("sshd")
        .for_option("maxretry");
        assert_eq!(
            e.to_string(),
            "jail.local [sshd] maxretry: expected integer, got \"x\""
        );
    }
}

//! fail2ban's configuration, read as fail2ban reads it.

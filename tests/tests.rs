// One integration test binary; one module per area.

// date detection against the reference fail2ban's DateDetector
mod date;

// One module per part, each its own set of integration tests.
// filter: regex engine and Filter against the reference fail2ban.
mod filter;

//! fail3ban-regex: tests a filter against a log, as fail2ban-regex does.

fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::ERROR)
        .without_time()
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = fail3ban::client::regex::run(&args, &mut std::io::stdout().lock());
    std::process::exit(code);
}

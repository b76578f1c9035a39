//! Many bans in one process, when the action's actionban is a plain set
//! insertion.
//!
//! Restoring 20,000 bans one `ipset add` at a time costs 20,000 forks of
//! `/bin/sh` and of ipset. When every rendered ban command of a batch is
//! one line that adds one element to a set, with nothing taken from a log
//! line left to the shell, the same insertions can be handed to one
//! `ipset restore` or one `nft -f`: the same sets, the same elements, the
//! same options (`-exist`, `timeout N`). Anything else is not joined, and
//! runs ban by ban as before.

use super::template::ShellCommand;

/// Bans per joined command: about 50 KiB of script, well under the 128
/// KiB the kernel allows one argument (the script is `sh -c`'s).
pub const CHUNK: usize = 1000;

/// Elements per `nft add element` statement, to keep lines short.
const NFT_CHUNK: usize = 1000;

/// Characters a joinable command may hold: what a set name, an address
/// and ipset/nft options are made of, and the `\{ \}` escapes of nft's
/// braces. No quote, `$`, `;` or newline: nothing the shell interprets.
fn plain(script: &str) -> bool {
    script.chars().all(|c| {
        c.is_ascii_alphanumeric()
            || matches!(
                c,
                ' ' | '\t' | '.' | ':' | '/' | '-' | '_' | '\\' | '{' | '}' | ',' | '!'
            )
    })
}

/// `ipset [opts] add SET ENTRY [options]`: the program and its global
/// options, and the restore line (`add SET ENTRY [options]`).
fn ipset_add(words: &[&str]) -> Option<(String, String)> {
    let prog = words.first()?;
    if !(*prog == "ipset" || prog.ends_with("/ipset")) {
        return None;
    }
    let add = words.iter().position(|w| *w == "add")?;
    if words[1..add].iter().any(|w| !w.starts_with('-')) || words.len() < add + 3 {
        return None;
    }
    Some((words[..add].join(" "), words[add..].join(" ")))
}

/// `nft [opts] add element FAMILY TABLE SET \{ ENTRY \}`: the program
/// with its options, the set (`FAMILY TABLE SET`) and the element.
fn nft_add(words: &[&str]) -> Option<(String, String, String)> {
    let prog = words.first()?;
    if !(*prog == "nft" || prog.ends_with("/nft")) {
        return None;
    }
    let add = words.iter().position(|w| *w == "add")?;
    if words[1..add]
        .iter()
        .any(|w| !w.starts_with('-') || *w == "-f")
    {
        return None;
    }
    match &words[add..] {
        ["add", "element", fam, table, set, "\\{", elem, "\\}"] if !elem.contains(',') => Some((
            words[..add].join(" "),
            format!("{fam} {table} {set}"),
            elem.to_string(),
        )),
        _ => None,
    }
}

/// One command doing what every command of `cmds` does, in order, when
/// they are all set insertions of one kind; `None` otherwise.
pub fn join(cmds: &[ShellCommand]) -> Option<ShellCommand> {
    if cmds.len() < 2
        || cmds
            .iter()
            .any(|c| !c.args.is_empty() || !plain(c.script.trim()))
    {
        return None;
    }
    let parsed: Vec<Vec<&str>> = cmds
        .iter()
        .map(|c| c.script.split_whitespace().collect())
        .collect();
    if let Some(v) = parsed
        .iter()
        .map(|w| ipset_add(w))
        .collect::<Option<Vec<_>>>()
    {
        let prog = &v[0].0;
        if v.iter().any(|(p, _)| p != prog) {
            return None;
        }
        let mut script = format!("{prog} restore <<'F3BATCH'\n");
        for (_, line) in &v {
            script.push_str(line);
            script.push('\n');
        }
        script.push_str("F3BATCH");
        return Some(ShellCommand::plain(script));
    }
    let v = parsed
        .iter()
        .map(|w| nft_add(w))
        .collect::<Option<Vec<_>>>()?;
    let prog = &v[0].0;
    if v.iter().any(|(p, _, _)| p != prog) {
        return None;
    }
    // Consecutive elements of one set go into one statement; order
    // between sets is kept.
    let mut script = format!("{prog} -f - <<'F3BATCH'\n");
    let mut i = 0;
    while i < v.len() {
        let set = &v[i].1;
        let mut elems = Vec::new();
        while i < v.len() && v[i].1 == *set && elems.len() < NFT_CHUNK {
            elems.push(v[i].2.as_str());
            i += 1;
        }
        script.push_str(&format!("add element {set} {{ {} }}\n", elems.join(", ")));
    }
    script.push_str("F3BATCH");
    Some(ShellCommand::plain(script))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmds(v: &[&str]) -> Vec<ShellCommand> {
        v.iter().map(|s| ShellCommand::plain(*s)).collect()
    }

    #[test]
    fn ipset_adds_become_one_restore() {
        let j = join(&cmds(&[
            "ipset -exist add f2b-sshd 192.0.2.1 timeout 0",
            "ipset -exist add f2b-sshd6 2001:db8::1 timeout 600",
        ]))
        .unwrap();
        assert_eq!(
            j.script,
            "ipset -exist restore <<'F3BATCH'\nadd f2b-sshd 192.0.2.1 timeout 0\nadd f2b-sshd6 2001:db8::1 timeout 600\nF3BATCH"
        );
    }

    #[test]
    fn nft_adds_become_one_file() {
        let j = join(&cmds(&[
            "nft add element inet f2b-table addr-set-sshd \\{ 192.0.2.1 \\}",
            "nft add element inet f2b-table addr-set-sshd \\{ 192.0.2.2 \\}",
            "nft add element inet f2b-table addr6-set-sshd \\{ 2001:db8::1 \\}",
        ]))
        .unwrap();
        assert_eq!(
            j.script,
            "nft -f - <<'F3BATCH'\nadd element inet f2b-table addr-set-sshd { 192.0.2.1, 192.0.2.2 }\nadd element inet f2b-table addr6-set-sshd { 2001:db8::1 }\nF3BATCH"
        );
    }

    #[test]
    fn anything_else_is_not_joined() {
        for v in [
            // A single ban gains nothing.
            &["ipset add s 192.0.2.1"][..],
            // Per-address iptables rules, mixed kinds, other verbs.
            &[
                "iptables -w -I f2b-sshd 1 -s 192.0.2.1 -j REJECT",
                "iptables -w -I f2b-sshd 1 -s 192.0.2.2 -j REJECT",
            ],
            &[
                "ipset add s 192.0.2.1",
                "nft add element inet t s \\{ 192.0.2.2 \\}",
            ],
            &["ipset del s 192.0.2.1", "ipset del s 192.0.2.2"],
            // More than one line, or anything the shell interprets.
            &["ipset add s 192.0.2.1\necho x", "ipset add s 192.0.2.2"],
            &["ipset add s 192.0.2.1; id", "ipset add s 192.0.2.2"],
            &["ipset add s $(id)", "ipset add s 192.0.2.2"],
            &[
                "nft add element inet t s \\{ 192.0.2.1, 192.0.2.3 \\}",
                "nft add element inet t s \\{ 192.0.2.2 \\}",
            ],
        ] {
            assert_eq!(join(&cmds(v)), None, "{v:?}");
        }
        let mut escaped = cmds(&["ipset add s 192.0.2.1", "ipset add s 192.0.2.2"]);
        escaped[1].args.push("x".into());
        assert_eq!(join(&escaped), None);
    }
}

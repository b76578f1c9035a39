//! A hand matcher for the template that wins on syslog lines
//! (`Oct 20 00:00:01 host ...`), so that a log of them costs no regex
//! search per line.
//!
//! It accepts only the plainest shape of that template's matches, where
//! the regex has exactly one way to match and takes the first choice at
//! every alternation; on anything else it answers `None` and the caller
//! runs the regex. It never claims that a line has no date.

/// The `datepattern` whose line-anchored copy the matcher stands in for.
pub(super) const SYSLOG_PATTERN: &str = r"{^LN-BEG}(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?";

/// What the template's regex captures on a line the matcher accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Syslog {
    /// Byte length of the date (it starts at 0).
    pub len: usize,
    pub month: i64,
    pub day: i64,
    pub hour: i64,
    pub minute: i64,
    pub second: i64,
}

const MONTHS: [&[u8; 3]; 12] = [
    b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov", b"dec",
];

fn digit(b: u8) -> Option<i64> {
    b.is_ascii_digit().then(|| i64::from(b - b'0'))
}

/// Two digits, the first within `0..=max_first`, as `[0-max]?\d` takes
/// them when a `:` or the end of the date follows.
fn two(b: &[u8], max_first: u8) -> Option<i64> {
    match b {
        [a, c] if (b'0'..=max_first).contains(a) => Some(digit(*a)? * 10 + digit(*c)?),
        _ => None,
    }
}

/// `MMM DD HH:MM:SS` at the line start, where the regex
/// `^(?:\W{0,2})?((?:%a )?%b %d ?%k:%M:%S(?:\.%f)?(?: %ExY)?)(?=\b|\W|$)`
/// (case-insensitive) matches exactly that text with those fields.
pub(super) fn syslog(line: &str) -> Option<Syslog> {
    let b = line.as_bytes();
    let head = b.get(..15)?;
    // A leading letter leaves `\W{0,2}` empty, and no month name is a
    // weekday name, so `(?:%a )?` is skipped.
    let mon = [head[0] | 0x20, head[1] | 0x20, head[2] | 0x20];
    if !head[..3].iter().all(u8::is_ascii_alphabetic) || head[3] != b' ' {
        return None;
    }
    let month = MONTHS.iter().position(|m| **m == mon)? as i64 + 1;
    // `%d` is `[1-2]\d|[0 ]?[1-9]|3[0-1]`: two chars, tried in that order.
    let day = match (head[4], head[5]) {
        (b'1'..=b'2', c) => 10 * digit(head[4])? + digit(c)?,
        (b'0' | b' ', c @ b'1'..=b'9') => digit(c)?,
        (b'3', c @ b'0'..=b'1') => 30 + digit(c)?,
        _ => return None,
    };
    // ` ?%k`: the optional space stays empty before a digit.
    if head[6] != b' ' || head[9] != b':' || head[12] != b':' {
        return None;
    }
    let hour = two(&head[7..9], b'2')?;
    let minute = two(&head[10..12], b'5')?;
    let second = two(&head[13..15], b'5')?;
    // After the seconds: `(?:\.%f)?` must not start, `(?: %ExY)?` must not
    // match and `(?=\b|\W|$)` must hold without backtracking.
    let ok = match b.get(15) {
        None => true,
        Some(b' ') => b
            .get(16)
            .is_none_or(|c| c.is_ascii() && !c.is_ascii_digit()),
        Some(&c) => c.is_ascii() && !c.is_ascii_alphanumeric() && c != b'_' && c != b'.',
    };
    ok.then_some(Syslog {
        len: 15,
        month,
        day,
        hour,
        minute,
        second,
    })
}

impl Syslog {
    /// The fields but the second, packed.
    fn minute_key(&self) -> i64 {
        ((self.month * 32 + self.day) * 32 + self.hour) * 64 + self.minute
    }
}

/// The time of second 0 of the last syslog minute converted, for the same
/// local `now` and zones.
///
/// Within a minute the time grows with the second, one for one, unless the
/// year rule (a date more than a day ahead of now is last year's) or a
/// zone switch cuts the minute: then second 0 and second 59 are not 59
/// seconds apart and nothing is cached. Zone offsets are whole minutes.
#[derive(Debug, Default, Clone)]
pub(super) struct MinuteCache {
    last: Option<(i64, i64, i64)>,
}

impl MinuteCache {
    pub(super) fn clear(&mut self) {
        self.last = None;
    }

    /// The time of `s` with local now `now`; `convert` converts the date at
    /// another second of the same minute.
    pub(super) fn time(
        &mut self,
        s: &Syslog,
        now: i64,
        mut convert: impl FnMut(i64) -> Option<i64>,
    ) -> Option<i64> {
        let key = s.minute_key();
        if let Some((n, k, base)) = self.last {
            if n == now && k == key {
                return Some(base + s.second);
            }
        }
        let (first, last) = (convert(0), convert(59));
        match (first, last) {
            (Some(a), Some(b)) if b - a == 59 => {
                self.last = Some((now, key, a));
                Some(a + s.second)
            }
            _ => convert(s.second),
        }
    }
}

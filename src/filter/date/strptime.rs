//! fail2ban's strptime: the `%` directives of a `datepattern`, and the
//! conversion of the captured fields into a Unix time.
//!
//! Python's `int()`, `datetime` and `mktime` rules are reproduced where they
//! change the result: out-of-range fields make the date invalid (no time),
//! a missing year or day is taken from "now" with fail2ban's roll-back rules.

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::Timestamp;

/// Regex and display name of a strptime directive (without the `%`).
///
/// The regexes are the ones fail2ban uses with Python's C locale; the
/// alternation order matters because it decides what a backtracking engine
/// matches first.
pub(super) fn directive(key: &str, ex_year: &str) -> Option<(String, &'static str)> {
    let (re, name): (&str, &str) = match key {
        "%" => ("%", "%"),
        "a" => ("(?P<a>mon|tue|wed|thu|fri|sat|sun)", "DAY"),
        "A" => (
            "(?P<A>wednesday|thursday|saturday|tuesday|monday|friday|sunday)",
            "DAYNAME",
        ),
        "b" => (
            "(?P<b>jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)",
            "MON",
        ),
        "B" => (
            "(?P<B>september|february|november|december|january|october|august|march|april|june|july|may)",
            "MONTH",
        ),
        "c" => (
            r"(?P<a>mon|tue|wed|thu|fri|sat|sun)\s+(?P<b>jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)\s+(?P<d>3[0-1]|[1-2]\d|0[1-9]|[1-9]| [1-9])\s+(?P<H>2[0-3]|[0-1]\d|\d):(?P<M>[0-5]\d|\d):(?P<S>6[0-1]|[0-5]\d|\d)\s+(?P<Y>\d\d\d\d)",
            "%c",
        ),
        "d" => (r"(?P<d>[1-2]\d|[0 ]?[1-9]|3[0-1])", "Day"),
        "f" => ("(?P<f>[0-9]{1,6})", "Microseconds"),
        "G" => (r"(?P<G>\d\d\d\d)", "%G"),
        "H" => (r"(?P<H>[0-1]?\d|2[0-3])", "24hour"),
        "I" => ("(?P<I>1[0-2]|0[1-9]|[1-9])", "12hour"),
        "j" => (
            r"(?P<j>36[0-6]|3[0-5]\d|[1-2]\d\d|0[1-9]\d|00[1-9]|[1-9]\d|0[1-9]|[1-9])",
            "Yearday",
        ),
        "k" => (r" ?(?P<H>[0-2]?\d)", "%k"),
        "l" => (r" ?(?P<I>1?\d)", "%l"),
        "m" => ("(?P<m>0?[1-9]|1[0-2])", "Month"),
        "M" => (r"(?P<M>[0-5]?\d)", "Minute"),
        "p" => ("(?P<p>am|pm)", "AMPM"),
        "S" => (r"(?P<S>[0-5]?\d|6[0-1])", "Second"),
        "u" => ("(?P<u>[1-7])", "%u"),
        "U" => (r"(?P<U>5[0-3]|[0-4]\d|\d)", "Yearweek"),
        "V" => (r"(?P<V>5[0-3]|0[1-9]|[1-4]\d|\d)", "%V"),
        "w" => ("(?P<w>[0-6])", "Weekday"),
        "W" => (r"(?P<W>5[0-3]|[0-4]\d|\d)", "Yearweek"),
        "x" => (
            r"(?P<m>1[0-2]|0[1-9]|[1-9])/(?P<d>3[0-1]|[1-2]\d|0[1-9]|[1-9]| [1-9])/(?P<y>\d\d)",
            "%x",
        ),
        "X" => (
            r"(?P<H>2[0-3]|[0-1]\d|\d):(?P<M>[0-5]\d|\d):(?P<S>6[0-1]|[0-5]\d|\d)",
            "%X",
        ),
        "y" => (r"(?P<y>\d\d)", "Year2"),
        "Y" => (r"(?P<Y>\d{4})", "Year"),
        "z" => (r"(?P<z>Z|UTC|GMT|[+-][01]\d(?::?\d{2})?)", "Zone offset"),
        "Z" => ("(?P<Z>Z|[A-Z]{3,5})", "Zone name"),
        "ExZ" => ("(?P<Z>[A-Z](?:[A-Z]{2,4})?)", "ExZone name"),
        "Exz" => (
            r"(?P<z>(?:[A-Z](?:[A-Z]{2,4})?)?[+-][01]\d(?::?\d{2})?|[A-Z](?:[A-Z]{2,4})?)",
            "ExZone offset",
        ),
        "Exd" => (r"(?P<d>[1-2]\d|0[1-9]|3[0-1])", "ExDay"),
        "Exm" => ("(?P<m>0[1-9]|1[0-2])", "ExMonth"),
        "ExH" => (r"(?P<H>[0-1]\d|2[0-3])", "Ex24hour"),
        "Exk" => (r" ?(?P<H>[0-1]?\d|2[0-3])", "%Exk"),
        "Exl" => (r" ?(?P<I>1[0-2]|\d)", "Ex%l"),
        "ExM" => (r"(?P<M>[0-5]\d)", "ExMinute"),
        "ExS" => (r"(?P<S>[0-5]\d|6[0-1])", "ExSecond"),
        "ExY" => return Some((ex_year.to_owned(), "ExYear")),
        "Exy" => (r"(?P<y>\d{2})", "ExYear2"),
        _ => return None,
    };
    Some((re.to_owned(), name))
}

/// `%ExY`: a four-digit year in a decade from 2000 up to the one of three
/// years from now, as fail2ban builds it when it starts.
pub(super) fn ex_year_regex(this_year: i32) -> String {
    let last = (this_year.max(2000) + 3) / 10;
    let decades: Vec<String> = (200..=last).map(|d| d.to_string()).collect();
    format!(r"(?P<Y>(?:{})\d)", decades.join("|"))
}

/// Splits a pattern into fail2ban's regex and display name by replacing
/// each directive. `None` if a `%` does not start a known directive.
pub(super) fn expand(pattern: &str, ex_year: &str) -> Option<(String, String)> {
    let mut regex = String::with_capacity(pattern.len() * 4);
    let mut name = String::with_capacity(pattern.len() * 2);
    let mut rest = pattern;
    while let Some(at) = rest.find('%') {
        regex.push_str(&rest[..at]);
        name.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let key = if after.starts_with('%') {
            "%"
        } else if after.len() >= 3
            && after.starts_with("Ex")
            && after.is_char_boundary(3)
            && directive(&after[..3], ex_year).is_some()
        {
            &after[..3]
        } else {
            let one = after.chars().next()?;
            if !one.is_ascii() || one == 'E' {
                return None;
            }
            &after[..1]
        };
        let (re, display) = directive(key, ex_year)?;
        regex.push_str(&re);
        name.push_str(display);
        rest = &after[key.len()..];
    }
    regex.push_str(rest);
    name.push_str(rest);
    Some((regex, name))
}

/// Whether fail2ban switches the pattern to case-insensitive matching: it
/// does so for a `%a %A %b %B %p %c` not written right after another `%`.
pub(super) fn wants_ignore_case(pattern: &str) -> bool {
    let b = pattern.as_bytes();
    (0..b.len().saturating_sub(1))
        .any(|i| b[i] == b'%' && b"aAbBpc".contains(&b[i + 1]) && (i == 0 || b[i - 1] != b'%'))
}

/// A strptime field that takes part in the time computation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Field {
    Year2,
    Year,
    Month,
    MonthName,
    MonthAbbr,
    Day,
    Hour,
    Hour12,
    Minute,
    Second,
    WeekdayName,
    WeekdayAbbr,
    Weekday,
    Yearday,
    WeekSun,
    WeekMon,
    Zone,
    AmPm,
}

impl Field {
    /// The field a named regex group stands for (Python groupdict key).
    pub(super) fn from_group(name: &str) -> Option<Field> {
        Some(match name {
            "y" => Field::Year2,
            "Y" => Field::Year,
            "m" => Field::Month,
            "B" => Field::MonthName,
            "b" => Field::MonthAbbr,
            "d" => Field::Day,
            "H" => Field::Hour,
            "I" => Field::Hour12,
            "M" => Field::Minute,
            "S" => Field::Second,
            "A" => Field::WeekdayName,
            "a" => Field::WeekdayAbbr,
            "w" => Field::Weekday,
            "j" => Field::Yearday,
            "U" => Field::WeekSun,
            "W" => Field::WeekMon,
            "z" | "Z" => Field::Zone,
            "p" => Field::AmPm,
            _ => return None,
        })
    }
}

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];
const DAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// Position of `v` in `names` (full or 3-letter), compared as Python
/// compares `v.lower()`.
fn name_index(names: &[&'static str], v: &str, abbr: bool) -> Option<usize> {
    let name = |n: &'static str| if abbr { &n[..3] } else { n };
    if v.is_ascii() {
        return names.iter().position(|n| name(n).eq_ignore_ascii_case(v));
    }
    let v = v.to_lowercase();
    names.iter().position(|n| name(n) == v)
}

/// Whether `w` is a month or weekday name, full or 3-letter, in ASCII
/// letters of any case: the words `%B`, `%b`, `%A` and `%a` read.
pub(crate) fn is_date_name(w: &str) -> bool {
    w.is_ascii()
        && [true, false]
            .into_iter()
            .any(|abbr| month_index(w, abbr).is_some() || weekday_index(w, abbr).is_some())
}

fn month_index(v: &str, abbr: bool) -> Option<i64> {
    name_index(&MONTHS, v, abbr).map(|i| i as i64 + 1)
}

fn weekday_index(v: &str, abbr: bool) -> Option<i64> {
    name_index(&DAYS, v, abbr).map(|i| i as i64)
}

/// Python's `int(str)`: surrounding whitespace, a sign, digits with single
/// underscores between them. Non-ASCII digits are not supported.
pub(super) fn py_int(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if !b.is_empty() && b.len() <= 18 && b.iter().all(u8::is_ascii_digit) {
        return Some(b.iter().fold(0, |v, &c| v * 10 + i64::from(c - b'0')));
    }
    let s = s.trim();
    let (neg, digits) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let b = digits.as_bytes();
    if b.is_empty() || b[0] == b'_' || b[b.len() - 1] == b'_' {
        return None;
    }
    let mut v: i64 = 0;
    let mut prev_us = false;
    for &c in b {
        if c == b'_' {
            if prev_us {
                return None;
            }
            prev_us = true;
            continue;
        }
        prev_us = false;
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(i64::from(c - b'0'))?;
    }
    Some(if neg { -v } else { v })
}

/// Offset in minutes of a zone abbreviation fail2ban knows (fixed offsets,
/// no daylight saving switch).
fn abbr_offset(abbr: &str) -> Option<i32> {
    let hours_x10: i32 = match abbr {
        "Y" => -120,
        "X" | "NUT" | "SST" => -110,
        "W" | "CKT" | "HAST" | "HST" | "TAHT" | "TKT" => -100,
        "V" | "AKST" | "GAMT" | "GIT" | "HADT" | "HNY" => -90,
        "U" | "AKDT" | "CIST" | "HAY" | "HNP" | "PST" | "PT" => -80,
        "T" | "HAP" | "HNR" | "MST" | "PDT" => -70,
        "S" | "CST" | "EAST" | "GALT" | "HAR" | "HNC" | "MDT" => -60,
        "R" | "CDT" | "COT" | "EASST" | "ECT" | "EST" | "ET" | "HAC" | "HNE" | "PET" => -50,
        "Q" | "AST" | "BOT" | "CLT" | "COST" | "EDT" | "FKT" | "GYT" | "HAE" | "HNA" | "PYT" => -40,
        "P" | "ADT" | "ART" | "BRT" | "CLST" | "FKST" | "GFT" | "HAA" | "PMST" | "PYST" | "SRT"
        | "UYT" | "WGT" => -30,
        "O" | "BRST" | "FNT" | "PMDT" | "UYST" | "WGST" => -20,
        "N" | "AZOT" | "CVT" | "EGT" => -10,
        "Z" | "EGST" | "GMT" | "UTC" | "WET" | "WT" => 0,
        "A" | "CET" | "DFT" | "WAT" | "WEDT" | "WEST" => 10,
        "B" | "CAT" | "CEDT" | "CEST" | "EET" | "SAST" | "WAST" => 20,
        "C" | "EAT" | "EEDT" | "EEST" | "IDT" | "MSK" => 30,
        "D" | "AMT" | "AZT" | "GET" | "GST" | "KUYT" | "MSD" | "MUT" | "RET" | "SAMT" | "SCT" => 40,
        "E" | "AMST" | "AQTT" | "AZST" | "HMT" | "MAWT" | "MVT" | "PKT" | "TFT" | "TJT" | "TMT"
        | "UZT" | "YEKT" => 50,
        "F" | "ALMT" | "BIOT" | "BTT" | "IOT" | "KGT" | "NOVT" | "OMST" | "YEKST" => 60,
        "G" | "CXT" | "DAVT" | "HOVT" | "ICT" | "KRAT" | "NOVST" | "OMSST" | "THA" | "WIB" => 70,
        "H" | "ACT" | "AWST" | "BDT" | "BNT" | "CAST" | "HKT" | "IRKT" | "KRAST" | "MYT"
        | "PHT" | "SGT" | "ULAT" | "WITA" | "WST" => 80,
        "I" | "AWDT" | "IRKST" | "JST" | "KST" | "PWT" | "TLT" | "WDT" | "WIT" | "YAKT" => 90,
        "K" | "AEST" | "ChST" | "PGT" | "VLAT" | "YAKST" | "YAPT" => 100,
        "L" | "AEDT" | "LHDT" | "MAGT" | "NCT" | "PONT" | "SBT" | "VLAST" | "VUT" => 110,
        "M" | "ANAST" | "ANAT" | "FJT" | "GILT" | "MAGST" | "MHT" | "NZST" | "PETST" | "PETT"
        | "TVT" | "WFT" => 120,
        "FJST" | "NZDT" => 130,
        "NFT" => 115,
        "ACDT" | "LHST" => 105,
        "ACST" => 95,
        "CCT" | "MMT" => 65,
        "NPT" => return Some(345),
        "SLT" => 55,
        "AFT" | "IRDT" => 45,
        "IRST" => 35,
        "HAT" | "NDT" => -25,
        "HNT" | "NST" | "NT" => -35,
        "HLV" | "VET" => -45,
        "MART" | "MIT" => -95,
        _ => return None,
    };
    Some(hours_x10 * 6)
}

/// Offset in minutes east of UTC for a zone as fail2ban accepts it in
/// `logtimezone` and in `%z`/`%Z` fields: an optional known abbreviation
/// (upper case, 1 or 3-5 letters) and an optional `[+-]hh[[:]mm]` offset
/// (hours 00-19). The empty string is UTC.
pub(super) fn zone_offset(tz: &str) -> Option<i32> {
    let tz = tz.strip_suffix('\n').unwrap_or(tz);
    let b = tz.as_bytes();
    let letters = b.iter().take_while(|c| c.is_ascii_uppercase()).count();
    let (abbr, rest) = match letters {
        0 => ("", tz),
        1 | 3..=5 => tz.split_at(letters),
        // a 2-letter run can only be a 1-letter abbreviation followed by
        // something that is not an offset, which never matches
        _ => return None,
    };
    let base = if abbr.is_empty() {
        0
    } else {
        abbr_offset(abbr)?
    };
    if rest.is_empty() {
        return Some(base);
    }
    let r = rest.as_bytes();
    let sign = match r[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digit = |i: usize| {
        r.get(i)
            .filter(|c| c.is_ascii_digit())
            .map(|c| i32::from(c - b'0'))
    };
    if !matches!(r.get(1), Some(b'0' | b'1')) {
        return None;
    }
    let hh = digit(1)? * 10 + digit(2)?;
    match r.len() {
        3 => Some(base + sign * hh * 60),
        5 => Some(base + sign * (hh * 60 + digit(3)? * 10 + digit(4)?)),
        6 if r[3] == b':' => Some(base + sign * (hh * 60 + digit(4)? * 10 + digit(5)?)),
        _ => None,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub(super) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Inverse of [`days_from_civil`].
pub(super) fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Seconds of a naive (zone-less) date-time since 1970-01-01T00:00, after
/// Python `datetime`'s range checks.
fn naive(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64) -> Option<i64> {
    let ok = (1..=9999).contains(&y)
        && (1..=12).contains(&mo)
        && d >= 1
        && d <= days_in_month(y, mo)
        && (0..24).contains(&h)
        && (0..60).contains(&mi)
        && (0..60).contains(&s);
    ok.then(|| days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s)
}

const MIN_NAIVE: i64 = -62_135_596_800; // 0001-01-01T00:00:00
const MAX_NAIVE: i64 = 253_402_300_799; // 9999-12-31T23:59:59

/// "Now" in local time, the base for dates without a year or a day.
#[derive(Debug, Clone, Copy)]
pub(super) struct Now {
    /// Whole seconds of local naive time (fractions cannot change a
    /// comparison with a whole-second date).
    pub local: i64,
    pub year: i64,
    pub month: i64,
    pub day: i64,
}

/// Local time conversions with a one-minute cache, since consecutive log
/// lines mostly share their minute.
#[derive(Debug, Clone)]
pub(super) struct LocalZone {
    pub tz: TimeZone,
    /// For a zone given as a POSIX TZ string (no IANA name), the offset glibc
    /// uses before 1970: it computes the rule's transitions within 1970 for
    /// any earlier year, so the offset of 1970-01-01 applies.
    pre_1970: Option<i64>,
    now_key: Option<(i64, Now)>,
    minute: Option<(i64, i64)>,
}

impl LocalZone {
    pub(super) fn new(tz: TimeZone) -> LocalZone {
        let pre_1970 = tz
            .iana_name()
            .is_none()
            .then(|| i64::from(tz.to_offset(Timestamp::UNIX_EPOCH).seconds()));
        LocalZone {
            tz,
            pre_1970,
            now_key: None,
            minute: None,
        }
    }

    pub(super) fn now(&mut self, now: f64) -> Option<Now> {
        if !now.is_finite() {
            return None;
        }
        // `floor` is a call into libm without SSE4.1, and this runs for
        // every line: the truncation, one down for negative fractions.
        let t = now as i64;
        let secs = if (t as f64) > now { t - 1 } else { t };
        if let Some((k, n)) = self.now_key {
            if k == secs {
                return Some(n);
            }
        }
        let ts = Timestamp::from_second(secs).ok()?;
        let off = i64::from(self.tz.to_offset(ts).seconds());
        let local = secs + off;
        let (year, month, day) = civil_from_days(local.div_euclid(86_400));
        let n = Now {
            local,
            year,
            month,
            day,
        };
        self.now_key = Some((secs, n));
        Some(n)
    }

    /// Unix time of a local naive time; a time in a gap or an overlap is
    /// resolved like glibc's `mktime` with `tm_isdst = -1` (the offset in
    /// force before the transition).
    fn unix_of(&mut self, local: i64) -> Option<i64> {
        if let Some(off) = self.pre_1970.filter(|_| local < 0) {
            return Some(local - off);
        }
        let key = local.div_euclid(60);
        if let Some((k, base)) = self.minute {
            if k == key {
                return Some(base + local.rem_euclid(60));
            }
        }
        let start = key * 60;
        let (y, mo, d) = civil_from_days(start.div_euclid(86_400));
        let tod = start.rem_euclid(86_400);
        let dt = DateTime::new(
            i16::try_from(y).ok()?,
            mo as i8,
            d as i8,
            (tod / 3600) as i8,
            (tod / 60 % 60) as i8,
            0,
            0,
        )
        .ok()?;
        let base = self
            .tz
            .to_ambiguous_timestamp(dt)
            .compatible()
            .ok()?
            .as_second();
        self.minute = Some((key, base));
        Some(base + local.rem_euclid(60))
    }
}

/// Most strptime groups a regex can have: group names are unique, and few
/// name a field.
pub(super) const MAX_FIELDS: usize = 32;

/// The strptime fields found in one match (no allocation: this runs for
/// every line).
#[derive(Debug)]
pub(super) struct Fields<'a> {
    found: [(Field, &'a str); MAX_FIELDS],
    len: usize,
    /// The `p` group: absent, present but unmatched, or its text.
    pub ampm: Option<Option<&'a str>>,
}

impl<'a> Fields<'a> {
    pub(super) fn new() -> Fields<'a> {
        Fields {
            found: [(Field::AmPm, ""); MAX_FIELDS],
            len: 0,
            ampm: None,
        }
    }

    /// Adds a captured field, in the order of the groups in the regex.
    pub(super) fn push(&mut self, field: Field, text: &'a str) {
        if self.len < MAX_FIELDS {
            self.found[self.len] = (field, text);
            self.len += 1;
        }
    }

    fn iter(&self) -> impl Iterator<Item = &(Field, &'a str)> {
        self.found[..self.len].iter()
    }
}

/// Unix time of the captured fields, as fail2ban computes it; `None` where
/// fail2ban fails to convert (its ValueError and other exceptions).
pub(super) fn fields_to_time(
    fields: &Fields<'_>,
    default_tz: Option<i32>,
    now: Now,
    zone: &mut LocalZone,
) -> Option<i64> {
    let (mut year, mut month, mut day) = (None, None, None);
    let (mut hour, mut minute, mut second) = (0, 0, 0);
    let mut tzoffset: Option<i32> = None;
    let (mut weekday, mut julian, mut week) = (None, None, None);
    for &(field, val) in fields.iter() {
        match field {
            Field::Year2 => {
                let y = py_int(val)?;
                year = Some(if y <= 2000 { y + 2000 } else { y });
            }
            Field::Year => year = Some(py_int(val)?),
            Field::Month => month = Some(py_int(val)?),
            Field::MonthName => month = Some(month_index(val, false)?),
            Field::MonthAbbr => month = Some(month_index(val, true)?),
            Field::Day => day = Some(py_int(val)?),
            Field::Hour => hour = py_int(val)?,
            Field::Hour12 => {
                hour = py_int(val)?;
                let ampm = match fields.ampm {
                    None => String::new(),
                    Some(None) => return None,
                    Some(Some(p)) => p.to_lowercase(),
                };
                if ampm.is_empty() || ampm == "am" {
                    if hour == 12 {
                        hour = 0;
                    }
                } else if ampm == "pm" && hour != 12 {
                    hour += 12;
                }
            }
            Field::Minute => minute = py_int(val)?,
            Field::Second => second = py_int(val)?,
            Field::WeekdayName => weekday = Some(weekday_index(val, false)?),
            Field::WeekdayAbbr => weekday = Some(weekday_index(val, true)?),
            Field::Weekday => {
                let w = py_int(val)? - 1;
                weekday = Some(if w < 0 { 6 } else { w });
            }
            Field::Yearday => julian = Some(py_int(val)?),
            Field::WeekSun => week = Some((py_int(val)?, false)),
            Field::WeekMon => week = Some((py_int(val)?, true)),
            Field::Zone => {
                tzoffset = Some(if matches!(val, "Z" | "UTC" | "GMT") {
                    0
                } else {
                    zone_offset(val)?
                })
            }
            Field::AmPm => {}
        }
    }

    let assume_year = year.is_none();
    let year = year.unwrap_or(now.year);
    if month.is_none() || day.is_none() {
        if julian.is_none() {
            if let (Some((w, starts_mon)), Some(wd)) = (week, weekday) {
                julian = Some(julian_from_week(year, w, wd, starts_mon)?);
            }
        }
        if let Some(j) = julian {
            if !(1..=9999).contains(&year) {
                return None;
            }
            let days = days_from_civil(year, 1, 1).checked_add(j.checked_sub(1)?)?;
            if !(MIN_NAIVE.div_euclid(86_400)..=MAX_NAIVE.div_euclid(86_400)).contains(&days) {
                return None;
            }
            let (y, m, d) = civil_from_days(days);
            // the week/yearday may move the date into another year
            return finish(
                y,
                m,
                d,
                [hour, minute, second],
                tzoffset.or(default_tz),
                assume_year,
                false,
                now,
                zone,
            );
        }
    }
    let assume_today = month.is_none() && day.is_none();
    let (month, day) = if assume_today {
        (now.month, now.day)
    } else {
        (month?, day?)
    };
    finish(
        year,
        month,
        day,
        [hour, minute, second],
        tzoffset.or(default_tz),
        assume_year,
        assume_today,
        now,
        zone,
    )
}

#[allow(clippy::too_many_arguments)]
pub(super) fn finish(
    year: i64,
    month: i64,
    day: i64,
    [h, mi, s]: [i64; 3],
    tzoffset: Option<i32>,
    assume_year: bool,
    assume_today: bool,
    now: Now,
    zone: &mut LocalZone,
) -> Option<i64> {
    let mut t = naive(year, month, day, h, mi, s)?;
    if let Some(off) = tzoffset {
        t -= i64::from(off) * 60;
        if !(MIN_NAIVE..=MAX_NAIVE).contains(&t) {
            return None;
        }
    }
    if assume_today && t > now.local {
        t -= 86_400;
        if t < MIN_NAIVE {
            return None;
        }
    }
    if assume_year && t > now.local + 86_400 {
        // fail2ban keeps the time of day (after the zone shift) but puts back
        // the month and day it started from
        let tod = t.rem_euclid(86_400);
        t = naive(year - 1, month, day, 0, 0, 0)? + tod;
    }
    match tzoffset {
        Some(_) => Some(t),
        None => zone.unix_of(t),
    }
}

/// Day of the year from a week number and a weekday (Monday = 0), as
/// Python's strptime computes it.
fn julian_from_week(year: i64, week: i64, weekday: i64, starts_mon: bool) -> Option<i64> {
    if !(1..=9999).contains(&year) {
        return None;
    }
    // 1970-01-01 was a Thursday (Monday = 0 -> 3)
    let mut first = (days_from_civil(year, 1, 1) + 3).rem_euclid(7);
    let mut weekday = weekday;
    if !starts_mon {
        first = (first + 1) % 7;
        weekday = (weekday + 1) % 7;
    }
    let week0 = (7 - first) % 7;
    if week == 0 {
        Some(1 + weekday - first)
    } else {
        7i64.checked_mul(week.checked_sub(1)?)?
            .checked_add(1 + week0 + weekday)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_names_full_or_three_letters() {
        for w in ["jan", "May", "SEPTEMBER", "tue", "Sunday", "dec"] {
            assert!(is_date_name(w), "{w}");
        }
        for w in ["janu", "mo", "sept", "jan.", "mayday", "", "m\u{e4}r"] {
            assert!(!is_date_name(w), "{w}");
        }
    }

    #[test]
    fn civil_round_trip() {
        for days in [-719_468, -1, 0, 1, 11_016, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(days_from_civil(2005, 8, 14), 13_009);
    }

    #[test]
    fn python_int() {
        assert_eq!(py_int(" 5"), Some(5));
        assert_eq!(py_int("05"), Some(5));
        assert_eq!(py_int("-02"), Some(-2));
        assert_eq!(py_int("1_0"), Some(10));
        assert_eq!(py_int("1__0"), None);
        assert_eq!(py_int("x"), None);
        assert_eq!(py_int(""), None);
    }

    #[test]
    fn zones() {
        assert_eq!(zone_offset(""), Some(0));
        assert_eq!(zone_offset("UTC"), Some(0));
        assert_eq!(zone_offset("UTC+0300"), Some(180));
        assert_eq!(zone_offset("UTC-0430"), Some(-270));
        assert_eq!(zone_offset("GMT+12"), Some(720));
        assert_eq!(zone_offset("CET+01:30"), Some(150));
        assert_eq!(zone_offset("CEST-01"), Some(60));
        assert_eq!(zone_offset("-10:45"), Some(-645));
        assert_eq!(zone_offset("NPT"), Some(345));
        assert_eq!(zone_offset("+2000"), None);
        assert_eq!(zone_offset("WRONG-TZ"), None);
        assert_eq!(zone_offset("utc"), None);
        assert_eq!(zone_offset("XYZ"), None);
    }

    #[test]
    fn expand_directives() {
        let y = ex_year_regex(2026);
        assert_eq!(y, r"(?P<Y>(?:200|201|202)\d)");
        let (re, name) = expand("%%d %ExY %k", &y).unwrap();
        assert_eq!(name, "%d ExYear %k");
        assert!(re.starts_with("%d (?P<Y>"));
        assert!(expand("%q", &y).is_none());
        assert!(expand("%Exq", &y).is_none());
        assert!(expand("50%", &y).is_none());
        assert!(wants_ignore_case("%d %b"));
        assert!(!wants_ignore_case("%%b"));
    }
}

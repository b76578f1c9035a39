//! Cases from fail2ban's own date detector tests, with its test clock:
//! now = 2005-08-14 12:00 CEST, local zone CET/CEST.

use super::*;
use std::collections::HashSet;

const NOW: f64 = 1_124_013_600.0;

fn cet() -> TimeZone {
    TimeZone::posix("CET-01CEST-02,M3.5.0,M10.5.0").unwrap()
}

fn dd(pattern: Option<&str>) -> DateDetector {
    let mut dd = match pattern {
        None => DateDetector::new_default(),
        Some(p) => DateDetector::from_pattern(p).unwrap(),
    };
    dd.set_local_timezone(cet());
    dd
}

fn get(dd: &mut DateDetector, line: &str) -> Option<(f64, String)> {
    let m = dd.match_time(line, NOW)?;
    Some((m.time, line[m.span].to_owned()))
}

#[test]
fn default_template_names() {
    let d = dd(None);
    let names: Vec<&str> = d.templates().map(|t| t.name).collect();
    assert_eq!(names.len(), 31);
    assert_eq!(
        names[1],
        r"{^LN-BEG}(?:DAY )?MON Day %k:Minute:Second(?:\.Microseconds)?(?: ExYear)?"
    );
    assert!(names.contains(&"{^LN-BEG}Epoch"));
    assert!(names.contains(&"TAI64N"));
    assert_eq!(names.iter().collect::<HashSet<_>>().len(), 31);
}

#[test]
fn various_times() {
    let cases: &[(bool, bool, &str, Option<&str>)] = &[
        (false, true, "Jan 23 21:59:59", None),
        (false, false, "Sun Jan 23 21:59:59 2005", None),
        (false, false, "Sun Jan 23 21:59:59", None),
        (false, false, "Sun Jan 23 2005 21:59:59", None),
        (false, true, "2005/01/23 21:59:59", None),
        (false, true, "2005.01.23 21:59:59", None),
        (false, true, "23/01/2005 21:59:59", None),
        (false, true, "23/01/05 21:59:59", None),
        (false, true, "23/Jan/2005:21:59:59", None),
        (false, true, "23/Jan/2005:21:59:59 +0100", None),
        (false, true, "01/23/2005:21:59:59", None),
        (false, true, "2005-01-23 21:59:59", None),
        (false, true, "2005-01-23 21:59:59,000", None),
        (false, true, "23-Jan-2005 21:59:59", None),
        (false, true, "23-Jan-2005 21:59:59.02", None),
        (false, true, "23-Jan-2005 21:59:59 +0100", None),
        (false, true, "23-01-2005 21:59:59", None),
        (true, true, "1106513999", None),
        (false, true, "01-23-2005 21:59:59.252", None),
        (false, false, "@4000000041f4104f00000000", None),
        (false, true, "2005-01-23T20:59:59.252Z", None),
        (false, true, "2005-01-23T15:59:59-05:00", None),
        (false, true, "20050123T215959", None),
        (false, true, "20050123 215959", None),
        (true, true, "<01/23/05@21:59:59>", None),
        (false, true, "050123 21:59:59", None),
        (true, true, "Jan-23-05 21:59:59", None),
        (false, true, "Jan 23, 2005 9:59:59 PM", None),
        (true, true, "1106513999.000", None),
        (true, true, "[1106513999.000]", Some("1106513999.000")),
        (
            false,
            true,
            "audit(1106513999.000:987)",
            Some("1106513999.000"),
        ),
    ];
    let mut d = dd(None);
    for &(anchored, bound, sdate, rdate) in cases {
        let rdate = rdate.unwrap_or(sdate);
        for (should, prefix) in [
            (true, ""),
            (!anchored, "bogus-prefix "),
            (false, "word-boundary"),
        ] {
            if !bound && prefix == "word-boundary" {
                continue;
            }
            let line = format!("{prefix}{sdate}[sshd] error: PAM: Authentication failure");
            let got = get(&mut d, &line);
            if should {
                assert_eq!(got, Some((1_106_513_999.0, rdate.to_owned())), "{line}");
            } else {
                assert_eq!(got, None, "{line}");
            }
        }
    }
    assert_eq!(get(&mut d, "no date line"), None);
}

#[test]
fn epoch() {
    let mut d = dd(Some("EPOCH"));
    for unix in ["1138049999", "32535244799"] {
        for fmt in ["{}", "[{}]", "[{}.555]", "audit({}.555:101)"] {
            let line = fmt.replace("{}", unix) + " [sshd] error: PAM: Authentication failure";
            let (t, _) = get(&mut d, &line).unwrap_or_else(|| panic!("{line}"));
            assert_eq!(t.trunc() as i64, unix.parse::<i64>().unwrap());
        }
    }
    for bad in [
        "123456789",
        "9999999999999999",
        "1138049999A",
        "A1138049999",
    ] {
        let line = format!("{bad} [sshd] error");
        assert_eq!(get(&mut d, &line), None, "{line}");
    }
    // The unanchored epoch starts only at the line start, after a leading
    // `[` or after `audit(`; elsewhere in the line it is no date.
    let line = "type=AVC msg=audit(1138049999.555:101): avc: denied";
    assert_eq!(get(&mut d, line).unwrap().0.trunc(), 1_138_049_999.0);
    assert_eq!(get(&mut d, "x 1138049999 [sshd] error"), None);
    assert_eq!(get(&mut d, "x[1138049999] [sshd] error"), None);
    let mut d = dd(Some("LEPOCH"));
    for fact in [1i64, 1000, 1_000_000] {
        let line = format!("[{}] error", 1_138_049_999i64 * fact);
        assert_eq!(get(&mut d, &line).unwrap().0.trunc(), 1_138_049_999.0);
    }
    let mut d = dd(Some(r"(?<=\|\s){LEPOCH}(?=\s\|)"));
    let line = "auth-error | 1138049999000 | invalid password";
    assert_eq!(
        get(&mut d, line),
        Some((1_138_049_999.0, "1138049999000".to_owned()))
    );
    assert_eq!(get(&mut d, "test1138049999000123"), None);
}

#[test]
fn default_time_zone() {
    let mut d = dd(Some(r"^%ExY-%Exm-%Exd %H:%M:%S(?: ?%Exz)?"));
    let at = |y, mo, day, h, mi| {
        strptime::days_from_civil(y, mo, day) as f64 * 86400.0 + f64::from(h * 3600 + mi * 60)
    };
    let logdt = "2017-01-23 15:00:00";
    let cases: &[(Option<&str>, &str, f64)] = &[
        (Some("UTC+0300"), "", at(2017, 1, 23, 12, 0)),
        (Some("UTC"), "", at(2017, 1, 23, 15, 0)),
        (Some("UTC-0430"), "", at(2017, 1, 23, 19, 30)),
        (Some("GMT+12"), "", at(2017, 1, 23, 3, 0)),
        (None, "", at(2017, 1, 23, 14, 0)),
        (Some("CET"), "", at(2017, 1, 23, 14, 0)),
        (Some("+0100"), "", at(2017, 1, 23, 14, 0)),
        (Some("CEST-01"), "", at(2017, 1, 23, 14, 0)),
        (Some("CEST"), "", at(2017, 1, 23, 13, 0)),
        (Some("CET+0130"), "", at(2017, 1, 23, 12, 30)),
        (Some("UTC+0300"), " GMT", at(2017, 1, 23, 15, 0)),
        (Some("UTC"), " -1045", at(2017, 1, 24, 1, 45)),
        (None, " -10:45", at(2017, 1, 24, 1, 45)),
        (None, " +09:45", at(2017, 1, 23, 5, 15)),
        (Some("UTC+0300"), " Z", at(2017, 1, 23, 15, 0)),
        (Some("GMT+12"), " CET", at(2017, 1, 23, 14, 0)),
        (Some("GMT+12"), " CEST", at(2017, 1, 23, 13, 0)),
        (Some("GMT+12"), " CET+0130", at(2017, 1, 23, 12, 30)),
    ];
    for &(tz, suffix, want) in cases {
        d.set_timezone(tz).unwrap();
        let line = format!("{logdt}{suffix}");
        assert_eq!(get(&mut d, &line).map(|g| g.0), Some(want), "{line} {tz:?}");
    }
    assert!(d.set_timezone(Some("WRONG-TZ")).is_err());
}

#[test]
fn format_specs() {
    let cases: &[(f64, &str, &str)] = &[
        (
            1106438399.0,
            "^%B %Exd %I:%ExM:%ExS**",
            "January 23 12:59:59",
        ),
        (
            985208399.0,
            "^%y %U %A %ExH:%ExM:%ExS**",
            "01 11 Wednesday 21:59:59",
        ),
        (
            984603599.0,
            "^%y %W %A %ExH:%ExM:%ExS**",
            "01 11 Wednesday 21:59:59",
        ),
        (
            984949199.0,
            "^%y %W %w %ExH:%ExM:%ExS**",
            "01 11 0 21:59:59",
        ),
        (
            984862799.0,
            "^%y %W %w %ExH:%ExM:%ExS**",
            "01 11 6 21:59:59",
        ),
        (1123963199.0, "^%ExH:%ExM:%ExS**", "21:59:59"),
        (1123970401.0, "^%ExH:%ExM:%ExS**", "00:00:01"),
        (1094068799.0, "^%m/%d %ExH:%ExM:%ExS**", "09/01 21:59:59"),
        (1093989600.0, "^%Y-%m-%d**", "2004-09-01"),
        (1093996800.0, "^%Y-%m-%d%z**", "2004-09-01Z"),
    ];
    for &(want, pattern, line) in cases {
        let mut d = dd(Some(pattern));
        assert_eq!(
            get(&mut d, line).map(|g| g.0),
            Some(want),
            "{pattern} {line}"
        );
    }
}

#[test]
fn ambiguous_patterns() {
    let cases: &[(Option<&str>, Option<&str>, &str)] = &[
        (
            Some("Jan 23 21:59:59"),
            None,
            "Test failure Jan 23 21:59:59 for 192.0.2.1",
        ),
        (
            None,
            None,
            "Test failure TestJan 23 21:59:59.011 2015 for 192.0.2.1",
        ),
        (
            None,
            None,
            "Test failure Jan 23 21:59:59123456789 for 192.0.2.1",
        ),
        (
            Some("Aug 8 11:25:50"),
            None,
            "Aug 8 11:25:50 20030f2329b8 Authentication failed from 192.0.2.1",
        ),
        (
            Some("Aug 8 11:25:50 2014"),
            None,
            "Aug 8 11:25:50 2014 20030f2329b8 Authentication failed",
        ),
        (
            Some("20:00:00 01.02.2003"),
            Some(r"%H:%M:%S %d.%m.%Y$"),
            "192.0.2.1 at 20:00:00 01.02.2003",
        ),
        (
            Some("[20:00:00 01.02.2003]"),
            Some(r"\[%H:%M:%S %d.%m.%Y\]"),
            "192.0.2.1[20:00:00 01.02.2003]",
        ),
        (
            Some("[17/Jun/2011 17:00:45]"),
            Some(r"^\[%d/%b/%Y %H:%M:%S\]"),
            "[17/Jun/2011 17:00:45] Attempt",
        ),
        (
            None,
            Some(r"%H:%M:%S %d.%m.%Y"),
            "192.0.2.1x20:00:00 01.02.2003",
        ),
        (
            Some("20:00:00 01.02.2003"),
            Some(r"**%H:%M:%S %d.%m.%Y**"),
            "192.0.2.1x20:00:00 01.02.2003",
        ),
        (
            Some("*20:00:00 01.02.2003*"),
            Some(r"\**%H:%M:%S %d.%m.%Y\**"),
            "test*20:00:00 01.02.2003*test",
        ),
        (
            Some("2003-12-30 00:00:00"),
            Some("%ExY-%Exm-%Exd %ExH:%ExM:%ExS"),
            "0000-12-30 00:00:00 - 2003-12-30 00:00:00",
        ),
        (
            Some("2003-12-30 00:00:00"),
            None,
            "0000-12-30 00:00:00 - 2003-12-30 00:00:00",
        ),
        (
            Some("200333 010203"),
            Some("%Y%m%d %H%M%S"),
            "text:200333 010203 | date:20031230 010203",
        ),
        (
            Some("20031230 010203"),
            None,
            "text:200333 010203 | date:20031230 010203",
        ),
        (
            None,
            Some("{^LN-BEG}%ExY%Exm%Exd %ExH%ExM%ExS"),
            "00001230 010203 - 20030101 000000",
        ),
        (
            Some("20031230010203"),
            Some("{^LN-BEG}%ExY%Exm%Exd%ExH%ExM%ExS**"),
            "##2003123001020320030101000000",
        ),
        (
            Some("20031230010203"),
            Some("{^LN-BEG}%ExY%Exm%Exd%ExH%ExM%ExS"),
            "[20031230010203]20030101000000",
        ),
    ];
    for &(want, pattern, line) in cases {
        let mut d = dd(pattern);
        assert_eq!(
            get(&mut d, line).map(|g| g.1),
            want.map(str::to_owned),
            "{pattern:?} {line}"
        );
    }
    let mut d = dd(Some("%Y-%Exm-%Exd %ExH:%ExM:%ExS"));
    assert_eq!(
        get(&mut d, "0000-12-30 00:00:00 - 2003-12-30 00:00:00"),
        None
    );
    for (want, suffix) in [
        (1072746123.0 - 3600.0, ""),
        (1072746123.0, " UTC"),
        (1072746123.0, " Z"),
        (1072746123.0, " +0000"),
    ] {
        let mut d = dd(Some("{^LN-BEG}%ExY-%Exm-%Exd %ExH:%ExM:%ExS(?: %z)?"));
        let line = format!("[2003-12-30 01:02:03{suffix}] server ...");
        assert_eq!(get(&mut d, &line).map(|g| g.0), Some(want), "{line}");
    }
}

#[test]
fn ordered_templates() {
    let mut d = dd(None);
    let cases: &[(&str, &str, usize)] = &[
        ("030324  0:03:59", "some free text 030324  0:03:59 -- 2003-03-07 17:05:01 ...", 1),
        ("2003-03-07 17:05:01", "some free text 2003-03-07 17:05:01 test ...", 15),
        ("030324  0:04:00", "server mysqld[1000]: 030324  0:04:00 [Warning] Access denied ... foreign-input just some free text 2003-03-07 17:05:01 test", 10),
        ("Sep 16 21:30:26", "server mysqld[1020]: Sep 16 21:30:26 server mysqld: 030916 21:30:26 [Warning] Access denied", 15),
        ("2005-10-07 06:09:42", "server mysqld[5906]: 2005-10-07 06:09:42 5907 [Warning] Access denied", 20),
        ("2005-10-08T15:26:18.237955", "server mysqld[5906]: 2005-10-08T15:26:18.237955 6 [Note] Access denied", 20),
        ("051009 10:05:30", "server mysqld[1000]: 051009 10:05:30 [Warning] Access denied ...", 50),
    ];
    for &(want, line, n) in cases {
        for _ in 0..n {
            let f = d.find(line, NOW).unwrap();
            assert_eq!(&line[f.span], want);
        }
    }
}

#[test]
fn not_anchored_collision() {
    for pattern in ["%H:%M:%S", "{UNB}%H:%M:%S"] {
        let mut d = dd(Some(pattern));
        for fmt in ["{} test", "{:>8} test", "test {}", "test {:>8}"] {
            for dt in [
                "00:01:02", "00:01:2", "00:1:2", "0:1:2", "00:1:2", "00:01:2", "00:01:02", "0:1:2",
            ] {
                let line = if fmt.contains(":>8") {
                    fmt.replace("{:>8}", &format!("{dt:>8}"))
                } else {
                    fmt.replace("{}", dt)
                };
                assert_eq!(
                    get(&mut d, &line),
                    Some((1_123_970_462.0, dt.to_owned())),
                    "{line}"
                );
            }
        }
    }
}

#[test]
fn full_year_gh130() {
    let mut d = dd(None);
    let mu = 1_349_915_837.0;
    assert_eq!(
        get(&mut d, "2012/10/11 02:37:17 [error] 18434#0")
            .unwrap()
            .0,
        mu
    );
    for _ in 0..10 {
        assert_eq!(
            get(&mut d, "11/10/2012 02:37:17 [error] 18434#0").unwrap(),
            (mu, "11/10/2012 02:37:17".to_owned())
        );
    }
    assert_eq!(
        get(&mut d, "2012/10/11 02:37:17 [error] 18434#0")
            .unwrap()
            .0,
        mu
    );
}

#[test]
fn patterns_and_errors() {
    assert!(DateDetector::from_pattern("%q").is_err());
    assert!(DateDetector::from_pattern("(%ExY%Exm%Exd").is_err());
    assert!(matches!(
        DateDetector::from_pattern("EPOCH\nEPOCH"),
        Err(DateError::Duplicate(_))
    ));
    let d = DateDetector::from_pattern("{^LN-BEG}").unwrap();
    assert!(d
        .templates()
        .all(|t| t.name.starts_with("{^LN-BEG}") || t.name.starts_with('^')));
    let d = DateDetector::from_pattern("^[^\\[]*\\[({DATE})\n{^LN-BEG}").unwrap();
    assert!(d
        .templates()
        .next()
        .unwrap()
        .name
        .starts_with("^[^\\[]*\\[(ExYear"));
    let mut d = dd(Some("{NONE}"));
    let f = d.find("anything", NOW).unwrap();
    assert!(f.span.is_empty() && f.time.is_none());
    assert_eq!(d.match_time("anything", NOW), None);
    let mut d = dd(Some("^%Y %b %d"));
    for line in ["2005 jun 03", "2005 Jun 03", "2005 JUN 03"] {
        assert_eq!(get(&mut d, line).unwrap().1, line);
    }
}

#[test]
fn hostile_lines() {
    let mut d = dd(None);
    let long = "a1:2:3 Jan ".repeat(100_000);
    assert!(d.find(&long, NOW).is_none() || d.find(&long, NOW).is_some());
    let nul = "\0\0Jan 23 21:59:59\0 é 2005-01-23 \u{fffd}\u{fffd}";
    let _ = d.find(nul, NOW);
    let _ = d.find("", NOW);
    let mut d = dd(Some("{NONE}"));
    let _ = d.find("", NOW);
    let mut d = dd(None);
    let m = get(&mut d, "é Jan 23 21:59:59 x").unwrap();
    assert_eq!(m.1, "Jan 23 21:59:59");
    let _ = get(&mut d, "ééé Jan 23 21:59:59 x");
    let _ = get(&mut d, "Jan 23 21:59:59");
    assert_eq!(d.match_time("Jan 23 21:59:59", f64::NAN), None);
}

#[test]
fn catastrophic_pattern_is_bounded() {
    let mut d = dd(Some("{UNB}(a+)+%H:%M:%S"));
    let line = "a".repeat(40) + "x";
    let t = std::time::Instant::now();
    assert_eq!(d.find(&line, NOW), None);
    assert!(t.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn huge_numbers_do_not_overflow() {
    for p in [
        r"^(?P<j>\d+) %H:%M",
        r"^%Y (?P<U>\d+) (?P<w>\d+)",
        r"^(?P<Y>\d+)-(?P<m>\d+)-(?P<d>\d+)",
    ] {
        let mut d = dd(Some(p));
        for line in [
            "999999999999999999 10:00",
            "2005 999999999999999999 1",
            "999999999999999999-1-1",
        ] {
            let _ = d.find(line, NOW);
        }
    }
}

#[test]
fn detector_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<DateDetector>();
}

/// Lines around the syslog shape the hand matcher takes: it must agree
/// with the regex on each (span, time, template order and hits), whether
/// it takes the line or leaves it to the regex.
fn syslog_variants() -> Vec<String> {
    let mut v: Vec<String> = [
        "Oct 20 00:00:01 bastion sshd[1024]: Invalid user x from 192.0.2.1",
        "Jan 23 21:59:59",
        "jan 23 21:59:59 lower-case month",
        "JAN 23 21:59:59 upper-case month",
        "Jan  5 21:59:59 space-padded day",
        "Jan 05 21:59:59 zero-padded day",
        "Jan 5 21:59:59 unpadded day",
        "Jan 31 23:59:59 x",
        "Feb 30 12:00:00 invalid day",
        "Feb 29 12:00:00 leap day",
        "Jan 32 12:00:00 x",
        "Jan 00 12:00:00 x",
        "Jan 23 24:00:00 hour out of range",
        "Jan 23 29:59:59 x",
        "Jan 23 30:00:00 x",
        "Jan 23  1:02:03 x",
        "Jan 23 1:02:03 x",
        "Jan 23 21:60:00 x",
        "Jan 23 21:59:60 leap second",
        "Jan 23 21:59:61 x",
        "Jan 23 21:59:62 x",
        "Jan 23 21:59:5 x",
        "Jan 23 21:59:59.123456 micro",
        "Jan 23 21:59:59. dot",
        "Jan 23 21:59:59 2005 year",
        "Jan 23 21:59:59 2099 year out of range",
        "Jan 23 21:59:59 1999 x",
        "Jan 23 21:59:59 ",
        "Jan 23 21:59:59,x",
        "Jan 23 21:59:59:x",
        "Jan 23 21:59:59x",
        "Jan 23 21:59:590",
        "Jan 23 21:59:59_x",
        "Jan 23 21:59:59é",
        "Jan 23 21:59:59 é",
        "Jan 23 21:59:59 \u{663}",
        "Jan 23 21:59:59\n",
        "Sun Jan 23 21:59:59 x",
        "Mon Jan 23 21:59:59 2005 x",
        "Jab 23 21:59:59 x",
        "Ja  23 21:59:59 x",
        "Aug 14 12:00:00 now",
        "Aug 15 11:59:59 a day ahead",
        "Aug 15 12:00:00 a day ahead",
        "Aug 15 12:00:01 past a day ahead: last year",
        "Dec 31 23:59:59 last year",
        "Mar 27 02:30:00 CET gap",
        "Oct 30 02:30:00 CEST overlap",
        "[Jan 23 21:59:59] bracket",
        "Jan 23 21:59:59 x 2005-01-23 21:59:59",
        "2005-01-23 21:59:59 another template",
        "Jan 23 21:59:59 back",
        "",
        "Jan 23 21:59:5",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // every one-byte change of a plain line
    let base = "Jan 23 21:59:59 host x";
    for i in 0..18 {
        for c in [
            " ", "0", "1", "2", "3", "5", "6", "9", ":", ".", "a", "J", "-", "é",
        ] {
            let mut l = base.to_owned();
            l.replace_range(i..i + 1, c);
            v.push(l);
            v.push(base.to_owned());
        }
    }
    // minutes that the year rule or a zone switch cuts, seconds both ways
    for minute in [
        "Aug 15 11:59",
        "Aug 15 12:00",
        "Aug 15 12:01",
        "Mar 27 01:59",
        "Mar 27 02:00",
        "Mar 27 02:59",
        "Oct 30 01:59",
        "Oct 30 02:00",
        "Oct 30 02:59",
        "Oct 30 03:00",
        "Dec 31 23:59",
        "Jan  1 00:00",
    ] {
        for sec in (0..60).step_by(7).chain((0..60).rev().step_by(5)) {
            v.push(format!("{minute}:{sec:02} host x"));
        }
    }
    // a `%Z` template wins here and stays the last winner: no hand matcher
    v.push("host Jan 23 21:59:59 inside".to_owned());
    v.push("Jan 23 21:59:59 back again".to_owned());
    v
}

#[test]
fn syslog_hand_matcher_agrees_with_the_regex() {
    for (tz, now) in [
        (None, NOW),
        (Some("UTC"), NOW),
        (Some("+0130"), 1_104_537_600.0),
        (None, 1_103_500_000.0),
        (None, NOW + 30.5),
        (Some("-0045"), NOW + 59.0),
    ] {
        for pattern in [None, Some("{^LN-BEG}"), Some(fast::SYSLOG_PATTERN)] {
            let mut fast = dd(pattern);
            let mut slow = dd(pattern);
            slow.no_fast = true;
            fast.set_timezone(tz).unwrap();
            slow.set_timezone(tz).unwrap();
            let mut taken = 0;
            for line in syslog_variants() {
                let by_hand = fast
                    .entries
                    .get(fast.last_idx)
                    .is_some_and(|e| e.tpl.syslog)
                    && fast::syslog(&line).is_some();
                taken += usize::from(by_hand);
                assert_eq!(
                    fast.find(&line, now),
                    slow.find(&line, now),
                    "{pattern:?} {tz:?} {line:?}"
                );
                assert_eq!(fast.last_template(), slow.last_template(), "{line:?}");
            }
            let hits = |d: &DateDetector| {
                d.entries
                    .iter()
                    .map(|e| (e.tpl.name.clone(), e.hits, e.matched, e.distance))
                    .collect::<Vec<_>>()
            };
            assert_eq!(hits(&fast), hits(&slow), "{pattern:?}");
            assert!(taken > 200, "{pattern:?}: {taken} lines by hand");
        }
    }
}

#[test]
fn syslog_hand_matcher_leaves_unusual_shapes_to_the_regex() {
    for line in [
        "Jan 23 21:59:59.5",
        "Jan 23 21:59:59 2005",
        "Sun Jan 23 21:59:59",
        "Jan 5 21:59:59",
        "Jan 23 1:02:03",
        "Jan 23 21:59:60",
        "Jan 23 21:59:59é",
        "Jan 23 21:59:59 \u{663}",
        "Jan 23 21:59:59x",
        " Jan 23 21:59:59",
    ] {
        assert_eq!(fast::syslog(line), None, "{line:?}");
    }
    let s = fast::syslog("Oct  9 07:08:09 host").unwrap();
    assert_eq!(
        (s.len, s.month, s.day, s.hour, s.minute, s.second),
        (15, 10, 9, 7, 8, 9)
    );
}

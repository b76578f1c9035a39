//! fail2ban's time strings: `600`, `10m`, `1h30m`, `1d 12h`, `-1`,
//! `1year-6mo`, `2*1h`. Units follow a number (or a space); adjacent terms
//! add up; `+ - * /` and parentheses work as in arithmetic.

/// Seconds per unit, by every spelling fail2ban accepts, and whether
/// fail2ban writes it as a float (months and years). `m` is minutes;
/// months are `mo`/`mon`/`month(s)`, a twelfth of an average year.
fn unit_seconds(word: &str) -> Option<(f64, bool)> {
    const DAY: f64 = 86400.0;
    const YEAR: f64 = (365.0 * 3.0 + 366.0) * DAY / 4.0;
    Some(match word.to_ascii_lowercase().as_str() {
        "day" | "days" | "da" | "d" | "dd" => (DAY, false),
        "week" | "weeks" | "we" | "wee" | "w" | "ww" => (7.0 * DAY, false),
        "month" | "months" | "mo" | "mon" => (YEAR / 12.0, true),
        "year" | "years" | "ye" | "yea" | "y" | "yy" => (YEAR, true),
        "second" | "seconds" | "se" | "sec" | "s" | "ss" => (1.0, false),
        "minute" | "minutes" | "mi" | "min" | "m" | "mm" => (60.0, false),
        "hour" | "hours" | "ho" | "hou" | "h" | "hh" => (3600.0, false),
        _ => return None,
    })
}

/// Why a text is not a fail2ban time string.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TimeError {
    #[error("bad number {0:?}")]
    BadNumber(String),
    #[error("unknown unit {0:?}")]
    UnknownUnit(String),
    #[error("unexpected {0:?}")]
    Unexpected(char),
    #[error("missing ')'")]
    MissingClose,
    #[error("expected a number")]
    ExpectedNumber,
    #[error("empty time")]
    Empty,
    #[error("trailing text")]
    TrailingText,
    #[error("not a finite time")]
    NotFinite,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// A number and whether Python would hold it as a float (a literal
    /// with a point, or times a month or a year).
    Num(f64, bool),
    Op(char),
    Open,
    Close,
}

fn tokenize(s: &str) -> Result<Vec<Tok>, TimeError> {
    let mut out = Vec::new();
    let b: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() || c == '.' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_digit() || b[i] == '.') {
                i += 1;
            }
            let text: String = b[start..i].iter().collect();
            let mut n: f64 = text
                .parse()
                .map_err(|_| TimeError::BadNumber(text.clone()))?;
            let mut float = text.contains('.');
            let mut j = i;
            while j < b.len() && b[j].is_whitespace() {
                j += 1;
            }
            let wstart = j;
            while j < b.len() && b[j].is_ascii_alphabetic() {
                j += 1;
            }
            if j > wstart {
                let word: String = b[wstart..j].iter().collect();
                let (unit, f) =
                    unit_seconds(&word).ok_or_else(|| TimeError::UnknownUnit(word.clone()))?;
                float |= f;
                n *= unit;
                i = j;
            }
            // Adjacent terms add up: `1h 30m` is `1h + 30m`.
            if matches!(out.last(), Some(Tok::Num(..)) | Some(Tok::Close)) {
                out.push(Tok::Op('+'));
            }
            out.push(Tok::Num(n, float));
        } else if "+-*/".contains(c) {
            out.push(Tok::Op(c));
            i += 1;
        } else if c == '(' {
            out.push(Tok::Open);
            i += 1;
        } else if c == ')' {
            out.push(Tok::Close);
            i += 1;
        } else {
            return Err(TimeError::Unexpected(c));
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn expr(&mut self) -> Result<(f64, bool), TimeError> {
        let (mut v, mut float) = self.term()?;
        while let Some(Tok::Op(op @ ('+' | '-'))) = self.peek().cloned() {
            self.pos += 1;
            let (r, f) = self.term()?;
            v = if op == '+' { v + r } else { v - r };
            float |= f;
        }
        Ok((v, float))
    }

    fn term(&mut self) -> Result<(f64, bool), TimeError> {
        let (mut v, mut float) = self.factor()?;
        while let Some(Tok::Op(op @ ('*' | '/'))) = self.peek().cloned() {
            self.pos += 1;
            let (r, f) = self.factor()?;
            v = if op == '*' { v * r } else { v / r };
            // Python's `/` always gives a float.
            float |= f || op == '/';
        }
        Ok((v, float))
    }

    fn factor(&mut self) -> Result<(f64, bool), TimeError> {
        match self.peek().cloned() {
            Some(Tok::Num(n, float)) => {
                self.pos += 1;
                Ok((n, float))
            }
            Some(Tok::Op('-')) => {
                self.pos += 1;
                let (v, float) = self.factor()?;
                Ok((-v, float))
            }
            Some(Tok::Op('+')) => {
                self.pos += 1;
                self.factor()
            }
            Some(Tok::Open) => {
                self.pos += 1;
                let v = self.expr()?;
                if self.peek() != Some(&Tok::Close) {
                    return Err(TimeError::MissingClose);
                }
                self.pos += 1;
                Ok(v)
            }
            _ => Err(TimeError::ExpectedNumber),
        }
    }
}

/// Seconds that a fail2ban time string stands for.
pub fn str2seconds(s: &str) -> Result<f64, TimeError> {
    str2seconds_typed(s).map(|(v, _)| v)
}

/// The seconds as fail2ban prints them (`fail2ban-client --str2sec`):
/// Python's `int` (`5400`) unless a float took part (`31557600.0`).
pub fn str2seconds_text(s: &str) -> Result<String, TimeError> {
    let (v, float) = str2seconds_typed(s)?;
    Ok(if float || v.abs() >= 9.0e15 {
        crate::config::stream::py_float(v)
    } else {
        format!("{}", v as i64)
    })
}

/// The seconds, and whether Python's evaluation would give a float.
fn str2seconds_typed(s: &str) -> Result<(f64, bool), TimeError> {
    let toks = tokenize(s)?;
    if toks.is_empty() {
        return Err(TimeError::Empty);
    }
    let mut p = Parser { toks, pos: 0 };
    let (v, float) = p.expr()?;
    if p.pos != p.toks.len() {
        return Err(TimeError::TrailingText);
    }
    if !v.is_finite() {
        return Err(TimeError::NotFinite);
    }
    Ok((v, float))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail2ban_time_strings() {
        assert_eq!(str2seconds("600"), Ok(600.0));
        assert_eq!(str2seconds("10m"), Ok(600.0));
        assert_eq!(str2seconds("1h30m"), Ok(5400.0));
        assert_eq!(str2seconds("0d 1h 30m"), Ok(5400.0));
        assert_eq!(str2seconds("1hour+30min"), Ok(5400.0));
        assert_eq!(str2seconds("-1"), Ok(-1.0));
        assert_eq!(str2seconds("1w"), Ok(604800.0));
        assert_eq!(str2seconds("1year-6mo"), Ok(15778800.0));
        assert_eq!(str2seconds("6 months"), Ok(15778800.0));
        assert_eq!(str2seconds("2*1h"), Ok(7200.0));
        assert!(str2seconds("ten minutes").is_err());
        assert!(str2seconds("10x").is_err());
        assert!(str2seconds("").is_err());
    }

    #[test]
    fn printed_as_python_prints_them() {
        let t = |s: &str| str2seconds_text(s).unwrap();
        assert_eq!(t("1h30m"), "5400");
        assert_eq!(t("1w 1d"), "691200");
        assert_eq!(t("1y"), "31557600.0");
        assert_eq!(t("1mo"), "2629800.0");
        assert_eq!(t("1.5h"), "5400.0");
        assert_eq!(t("10/4"), "2.5");
        assert_eq!(t("-1"), "-1");
    }
}

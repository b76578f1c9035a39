//! The model's reply, read strictly: one JSON object with exactly the
//! schema's keys. Anything else (actions, extra options, prose) is a
//! rejected answer, whatever the model meant.

use serde::{Deserialize, Serialize};

/// What the model may say about a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Judgement {
    /// Someone attacks this service.
    Attack,
    /// Normal traffic.
    Benign,
}

/// A reply that passed the schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Answer {
    /// attack or benign.
    pub verdict: Judgement,
    /// 0 to 1.
    pub confidence: f64,
    /// A short word for the kind of attack.
    pub category: String,
    /// One sentence.
    pub reason: String,
    /// For an attack: a fail2ban failregex with `<HOST>`.
    pub failregex: Option<String>,
    /// Suggested maxretry.
    pub maxretry: Option<u32>,
    /// Suggested findtime, seconds.
    pub findtime: Option<u64>,
    /// Suggested bantime, seconds.
    pub bantime: Option<u64>,
}

/// Why a reply was rejected.
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum AnswerError {
    /// Not JSON, or not the schema (unknown keys included).
    #[error("answer is not the expected JSON object: {0}")]
    Schema(String),
    /// JSON of the right shape with values out of bounds.
    #[error("answer has a bad value: {0}")]
    Value(String),
}

/// Bounds on the suggested numbers: a model cannot ask for a permanent ban
/// or a hair trigger.
const MAXRETRY: (u32, u32) = (1, 50);
const FINDTIME: (u64, u64) = (10, 7 * 86_400);
const BANTIME: (u64, u64) = (10, 30 * 86_400);

/// The JSON schema sent with structured outputs.
pub fn schema() -> serde_json::Value {
    let num = |t: &str| serde_json::json!({ "type": [t, "null"] });
    serde_json::json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["verdict", "confidence", "category", "reason", "failregex",
                     "maxretry", "findtime", "bantime"],
        "properties": {
            "verdict": { "type": "string", "enum": ["attack", "benign"] },
            "confidence": { "type": "number" },
            "category": { "type": "string" },
            "reason": { "type": "string" },
            "failregex": num("string"),
            "maxretry": num("integer"),
            "findtime": num("integer"),
            "bantime": num("integer"),
        }
    })
}

/// Local servers in JSON mode often wrap the object in a Markdown fence;
/// that much is forgiven, nothing more.
fn unfence(text: &str) -> &str {
    let t = text.trim();
    let Some(rest) = t.strip_prefix("```") else {
        return t;
    };
    let rest = rest.strip_prefix("json").unwrap_or(rest);
    rest.strip_suffix("```").unwrap_or(rest).trim()
}

fn printable(s: &str, max: usize) -> String {
    let clean: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    super::cut(clean.trim(), max).to_string()
}

/// Reads a reply.
pub fn parse(text: &str) -> Result<Answer, AnswerError> {
    let mut a: Answer =
        serde_json::from_str(unfence(text)).map_err(|e| AnswerError::Schema(e.to_string()))?;
    if !(0.0..=1.0).contains(&a.confidence) {
        return Err(AnswerError::Value(format!("confidence {}", a.confidence)));
    }
    a.category = printable(&a.category, 64);
    a.reason = printable(&a.reason, 300);
    if a.verdict == Judgement::Attack {
        let Some(re) = &a.failregex else {
            return Err(AnswerError::Value("an attack without a failregex".into()));
        };
        if re.chars().any(char::is_control) || re.len() > 1000 {
            return Err(AnswerError::Value(
                "failregex has control characters or is too long".into(),
            ));
        }
        // The filter file is INI: there a ";" after white space starts a
        // comment, and the value is trimmed. What is validated must be what
        // fail2ban and fail3ban will read back.
        if re.trim() != re || re.split_whitespace().skip(1).any(|w| w.starts_with(';')) {
            return Err(AnswerError::Value(
                "failregex would not survive the filter file (edge spaces or \" ;\")".into(),
            ));
        }
        let check = |name: &str, v: Option<u64>, (lo, hi): (u64, u64)| match v {
            Some(v) if v < lo || v > hi => Err(AnswerError::Value(format!(
                "{name} {v} outside {lo}..={hi}"
            ))),
            _ => Ok(()),
        };
        check(
            "maxretry",
            a.maxretry.map(u64::from),
            (u64::from(MAXRETRY.0), u64::from(MAXRETRY.1)),
        )?;
        check("findtime", a.findtime, FINDTIME)?;
        check("bantime", a.bantime, BANTIME)?;
    }
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"verdict":"attack","confidence":0.9,"category":"wordpress",
        "reason":"xmlrpc brute force","failregex":"^<HOST> \\S+ \\S+ \\[\\] \"POST /xmlrpc\\.php",
        "maxretry":3,"findtime":600,"bantime":3600}"#;

    #[test]
    fn reads_a_good_answer_even_fenced() {
        let a = parse(GOOD).unwrap();
        assert_eq!(a.verdict, Judgement::Attack);
        assert_eq!(parse(&format!("```json\n{GOOD}\n```")).unwrap(), a);
    }

    #[test]
    fn rejects_extra_keys_and_bad_values() {
        let extra = GOOD.replace("\"maxretry\":3", "\"action\":\"iptables\",\"maxretry\":3");
        assert!(matches!(parse(&extra), Err(AnswerError::Schema(_))));
        let big = GOOD.replace("\"bantime\":3600", "\"bantime\":999999999");
        assert!(matches!(parse(&big), Err(AnswerError::Value(_))));
        assert!(matches!(
            parse("Sure! here it is"),
            Err(AnswerError::Schema(_))
        ));
        let no_re = GOOD.replace(
            r#""failregex":"^<HOST> \\S+ \\S+ \\[\\] \"POST /xmlrpc\\.php","#,
            r#""failregex":null,"#,
        );
        assert!(matches!(parse(&no_re), Err(AnswerError::Value(_))));
        let comment = GOOD.replace("xmlrpc\\\\.php", "xmlrpc\\\\.php ;x");
        assert_ne!(comment, GOOD);
        assert!(matches!(parse(&comment), Err(AnswerError::Value(_))));
    }
}

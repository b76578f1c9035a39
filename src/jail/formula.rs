//! The arithmetic of `bantime.formula` and `bantime.factor`.
//!
//! fail2ban hands these options to Python's `eval`. Only the part of Python
//! that a ban-time formula needs is accepted here (numbers, `+ - * / // %
//! ** << >>`, comparisons, `and`/`or`/`not`, `x if c else y`, `min`, `max`,
//! `abs`, `int`, `float`, `round`, `math.*`, `ban.Time`, `ban.Count`,
//! `banFactor`); anything else is refused when the option is read, rather
//! than failing at the first ban as fail2ban does. Integers stay integers
//! as in Python, because `<<` only takes integers and `/` always gives a
//! float.

use std::fmt;

/// Why a formula was refused or could not be evaluated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum FormulaError {
    /// Not an expression this evaluator understands.
    #[error("syntax error at offset {pos}: {msg}")]
    Syntax {
        /// Byte offset in the formula.
        pos: usize,
        /// What was expected.
        msg: String,
    },
    /// A name other than the known ones.
    #[error("unknown name {0:?} (known: ban.Time, ban.Count, banFactor, math.e, math.pi)")]
    UnknownName(String),
    /// A function other than the known ones.
    #[error("unknown function {0:?} (known: min, max, abs, int, float, round, math.exp, math.log, math.sqrt, math.pow, math.floor, math.ceil)")]
    UnknownFunction(String),
    /// A function called with the wrong number of arguments.
    #[error("{name}() takes {expected} argument(s), got {got}")]
    Arity {
        /// The function.
        name: String,
        /// What it takes.
        expected: &'static str,
        /// What it got.
        got: usize,
    },
    /// An operation on the wrong kind of number (`1.5 << 2`).
    #[error("{0}")]
    Type(String),
    /// Division or modulo by zero.
    #[error("division by zero")]
    ZeroDivision,
    /// A result too large or not a number.
    #[error("{0}")]
    Math(String),
}

/// A Python number: integers are kept apart from floats.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    /// An `int` (bounded here, promoted to float on overflow where Python
    /// would go on exactly).
    Int(i128),
    /// A `float`.
    Float(f64),
}

impl Value {
    /// The value as a float.
    pub fn as_f64(self) -> f64 {
        match self {
            Value::Int(i) => i as f64,
            Value::Float(f) => f,
        }
    }

    /// An integral float becomes an int, as fail2ban's time strings do.
    pub fn from_seconds(f: f64) -> Value {
        if f.fract() == 0.0 && f.abs() < 1e30 {
            Value::Int(f as i128)
        } else {
            Value::Float(f)
        }
    }

    /// Python's `*` on two numbers.
    pub fn times(self, other: Value) -> Result<Value, FormulaError> {
        binop(BinOp::Mul, self, other)
    }

    fn truthy(self) -> bool {
        self.as_f64() != 0.0
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x:?}"),
        }
    }
}

/// What a formula can refer to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Name {
    BanTime,
    BanCount,
    BanFactor,
    E,
    Pi,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Func {
    Min,
    Max,
    Abs,
    Int,
    Float,
    Round,
    Exp,
    Log,
    Sqrt,
    Pow,
    Floor,
    Ceil,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    FloorDiv,
    Mod,
    Pow,
    Shl,
    Shr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CmpOp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Num(Value),
    Name(Name),
    Neg(Box<Expr>),
    Pos(Box<Expr>),
    Invert(Box<Expr>),
    Not(Box<Expr>),
    Bin(BinOp, Box<Expr>, Box<Expr>),
    Cmp(Box<Expr>, Vec<(CmpOp, Expr)>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    If(Box<Expr>, Box<Expr>, Box<Expr>),
    Call(Func, Vec<Expr>),
}

/// The values a formula is evaluated with.
#[derive(Debug, Clone, Copy)]
pub struct Env {
    /// `ban.Time`: the jail's bantime.
    pub time: Value,
    /// `ban.Count`: how many times the id was banned before.
    pub count: Value,
    /// `banFactor`: the evaluated `bantime.factor`.
    pub factor: Value,
}

/// A parsed formula.
#[derive(Debug, Clone, PartialEq)]
pub struct Formula {
    text: String,
    expr: Expr,
    uses_ban: bool,
}

impl fmt::Display for Formula {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Formula {
    /// Parses a formula.
    pub fn parse(text: &str) -> Result<Formula, FormulaError> {
        let toks = lex(text)?;
        let mut p = Parser { toks, pos: 0 };
        let expr = p.test()?;
        if let Some((pos, t)) = p.toks.get(p.pos) {
            return Err(FormulaError::Syntax {
                pos: *pos,
                msg: format!("unexpected {t:?}"),
            });
        }
        let uses_ban = mentions_ban(&expr);
        Ok(Formula {
            text: text.to_string(),
            expr,
            uses_ban,
        })
    }

    /// Evaluates a formula that needs no `ban.*` or `banFactor` (the
    /// factor itself).
    pub fn eval_const(&self) -> Result<Value, FormulaError> {
        if self.uses_ban {
            return Err(FormulaError::UnknownName(
                "ban.Time, ban.Count or banFactor".into(),
            ));
        }
        let env = Env {
            time: Value::Int(0),
            count: Value::Int(0),
            factor: Value::Int(1),
        };
        eval(&self.expr, &env)
    }

    /// Evaluates the formula.
    pub fn eval(&self, env: &Env) -> Result<Value, FormulaError> {
        eval(&self.expr, env)
    }
}

fn mentions_ban(e: &Expr) -> bool {
    match e {
        Expr::Num(_) => false,
        Expr::Name(n) => matches!(n, Name::BanTime | Name::BanCount | Name::BanFactor),
        Expr::Neg(a) | Expr::Pos(a) | Expr::Invert(a) | Expr::Not(a) => mentions_ban(a),
        Expr::Bin(_, a, b) | Expr::And(a, b) | Expr::Or(a, b) => mentions_ban(a) || mentions_ban(b),
        Expr::Cmp(a, rest) => mentions_ban(a) || rest.iter().any(|(_, e)| mentions_ban(e)),
        Expr::If(a, b, c) => mentions_ban(a) || mentions_ban(b) || mentions_ban(c),
        Expr::Call(_, args) => args.iter().any(mentions_ban),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(Value),
    Ident(String),
    Op(&'static str),
}

const OPS: [&str; 22] = [
    "**", "//", "<<", ">>", "<=", ">=", "==", "!=", "+", "-", "*", "/", "%", "<", ">", "(", ")",
    ",", "~", ".", "&", "|",
];

fn lex(s: &str) -> Result<Vec<(usize, Tok)>, FormulaError> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        if c.is_ascii_digit() || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit)) {
            let mut float = false;
            while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.' || b[i] == b'_') {
                float |= b[i] == b'.';
                i += 1;
            }
            if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
                float = true;
                i += 1;
                if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
                    i += 1;
                }
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
            }
            let text = s[start..i].replace('_', "");
            let bad = || FormulaError::Syntax {
                pos: start,
                msg: format!("bad number {:?}", &s[start..i]),
            };
            let v = if float {
                Value::Float(text.parse().map_err(|_| bad())?)
            } else {
                if text.len() > 1 && text.starts_with('0') && text.bytes().any(|d| d != b'0') {
                    return Err(bad());
                }
                Value::Int(text.parse().map_err(|_| bad())?)
            };
            out.push((start, Tok::Num(v)));
        } else if c.is_ascii_alphabetic() || c == b'_' {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push((start, Tok::Ident(s[start..i].to_string())));
        } else if let Some(op) = OPS.iter().find(|op| s[i..].starts_with(**op)) {
            i += op.len();
            out.push((start, Tok::Op(op)));
        } else {
            return Err(FormulaError::Syntax {
                pos: start,
                msg: format!(
                    "unexpected character {:?}",
                    s[start..].chars().next().unwrap_or(' ')
                ),
            });
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<(usize, Tok)>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(_, t)| t)
    }

    fn offset(&self) -> usize {
        self.toks
            .get(self.pos)
            .map(|(p, _)| *p)
            .unwrap_or_else(|| self.toks.last().map(|(p, _)| p + 1).unwrap_or(0))
    }

    fn err<T>(&self, msg: &str) -> Result<T, FormulaError> {
        Err(FormulaError::Syntax {
            pos: self.offset(),
            msg: msg.to_string(),
        })
    }

    fn eat_op(&mut self, op: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Op(o)) if *o == op) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn eat_kw(&mut self, kw: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Ident(o)) if o == kw) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect_op(&mut self, op: &str) -> Result<(), FormulaError> {
        if self.eat_op(op) {
            Ok(())
        } else {
            self.err(&format!("expected {op:?}"))
        }
    }

    /// `or_test ['if' or_test 'else' test]`
    fn test(&mut self) -> Result<Expr, FormulaError> {
        let body = self.or_test()?;
        if self.eat_kw("if") {
            let cond = self.or_test()?;
            if !self.eat_kw("else") {
                return self.err("expected 'else'");
            }
            let other = self.test()?;
            return Ok(Expr::If(Box::new(cond), Box::new(body), Box::new(other)));
        }
        Ok(body)
    }

    fn or_test(&mut self) -> Result<Expr, FormulaError> {
        let mut e = self.and_test()?;
        while self.eat_kw("or") {
            e = Expr::Or(Box::new(e), Box::new(self.and_test()?));
        }
        Ok(e)
    }

    fn and_test(&mut self) -> Result<Expr, FormulaError> {
        let mut e = self.not_test()?;
        while self.eat_kw("and") {
            e = Expr::And(Box::new(e), Box::new(self.not_test()?));
        }
        Ok(e)
    }

    fn not_test(&mut self) -> Result<Expr, FormulaError> {
        if self.eat_kw("not") {
            return Ok(Expr::Not(Box::new(self.not_test()?)));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr, FormulaError> {
        let first = self.shift()?;
        let mut rest = Vec::new();
        loop {
            let op = match self.peek() {
                Some(Tok::Op("<")) => CmpOp::Lt,
                Some(Tok::Op("<=")) => CmpOp::Le,
                Some(Tok::Op(">")) => CmpOp::Gt,
                Some(Tok::Op(">=")) => CmpOp::Ge,
                Some(Tok::Op("==")) => CmpOp::Eq,
                Some(Tok::Op("!=")) => CmpOp::Ne,
                _ => break,
            };
            self.pos += 1;
            rest.push((op, self.shift()?));
        }
        if rest.is_empty() {
            Ok(first)
        } else {
            Ok(Expr::Cmp(Box::new(first), rest))
        }
    }

    fn shift(&mut self) -> Result<Expr, FormulaError> {
        let mut e = self.arith()?;
        loop {
            let op = if self.eat_op("<<") {
                BinOp::Shl
            } else if self.eat_op(">>") {
                BinOp::Shr
            } else {
                return Ok(e);
            };
            e = Expr::Bin(op, Box::new(e), Box::new(self.arith()?));
        }
    }

    fn arith(&mut self) -> Result<Expr, FormulaError> {
        let mut e = self.term()?;
        loop {
            let op = if self.eat_op("+") {
                BinOp::Add
            } else if self.eat_op("-") {
                BinOp::Sub
            } else {
                return Ok(e);
            };
            e = Expr::Bin(op, Box::new(e), Box::new(self.term()?));
        }
    }

    fn term(&mut self) -> Result<Expr, FormulaError> {
        let mut e = self.factor()?;
        loop {
            let op = if self.eat_op("*") {
                BinOp::Mul
            } else if self.eat_op("//") {
                BinOp::FloorDiv
            } else if self.eat_op("/") {
                BinOp::Div
            } else if self.eat_op("%") {
                BinOp::Mod
            } else {
                return Ok(e);
            };
            e = Expr::Bin(op, Box::new(e), Box::new(self.factor()?));
        }
    }

    fn factor(&mut self) -> Result<Expr, FormulaError> {
        if self.eat_op("-") {
            return Ok(Expr::Neg(Box::new(self.factor()?)));
        }
        if self.eat_op("+") {
            return Ok(Expr::Pos(Box::new(self.factor()?)));
        }
        if self.eat_op("~") {
            return Ok(Expr::Invert(Box::new(self.factor()?)));
        }
        self.power()
    }

    fn power(&mut self) -> Result<Expr, FormulaError> {
        let base = self.atom()?;
        if self.eat_op("**") {
            // Right-associative, and binds tighter than a unary minus on
            // its left but not on its right: -2**-1 is -(2**(-1)).
            let exp = self.factor()?;
            return Ok(Expr::Bin(BinOp::Pow, Box::new(base), Box::new(exp)));
        }
        Ok(base)
    }

    fn atom(&mut self) -> Result<Expr, FormulaError> {
        let Some((pos, tok)) = self.toks.get(self.pos).cloned() else {
            return self.err("unexpected end of formula");
        };
        self.pos += 1;
        match tok {
            Tok::Num(v) => Ok(Expr::Num(v)),
            Tok::Op("(") => {
                let e = self.test()?;
                self.expect_op(")")?;
                Ok(e)
            }
            Tok::Ident(first) => {
                let mut name = first;
                while self.eat_op(".") {
                    match self.toks.get(self.pos) {
                        Some((_, Tok::Ident(n))) => {
                            name.push('.');
                            name.push_str(n);
                            self.pos += 1;
                        }
                        _ => return self.err("expected a name after '.'"),
                    }
                }
                if self.eat_op("(") {
                    let func = match name.as_str() {
                        "min" => Func::Min,
                        "max" => Func::Max,
                        "abs" => Func::Abs,
                        "int" => Func::Int,
                        "float" => Func::Float,
                        "round" => Func::Round,
                        "math.exp" => Func::Exp,
                        "math.log" => Func::Log,
                        "math.sqrt" => Func::Sqrt,
                        "math.pow" => Func::Pow,
                        "math.floor" => Func::Floor,
                        "math.ceil" => Func::Ceil,
                        _ => return Err(FormulaError::UnknownFunction(name)),
                    };
                    let mut args = Vec::new();
                    if !self.eat_op(")") {
                        loop {
                            args.push(self.test()?);
                            if self.eat_op(")") {
                                break;
                            }
                            self.expect_op(",")?;
                            // Python allows a trailing comma.
                            if self.eat_op(")") {
                                break;
                            }
                        }
                    }
                    return Ok(Expr::Call(func, args));
                }
                let n = match name.as_str() {
                    "ban.Time" => Name::BanTime,
                    "ban.Count" => Name::BanCount,
                    "banFactor" => Name::BanFactor,
                    "math.e" => Name::E,
                    "math.pi" => Name::Pi,
                    "True" => return Ok(Expr::Num(Value::Int(1))),
                    "False" => return Ok(Expr::Num(Value::Int(0))),
                    "if" | "else" | "and" | "or" | "not" => {
                        return Err(FormulaError::Syntax {
                            pos,
                            msg: format!("unexpected {name:?}"),
                        })
                    }
                    _ => return Err(FormulaError::UnknownName(name)),
                };
                Ok(Expr::Name(n))
            }
            Tok::Op(op) => Err(FormulaError::Syntax {
                pos,
                msg: format!("unexpected {op:?}"),
            }),
        }
    }
}

fn float_result(f: f64) -> Result<Value, FormulaError> {
    if f.is_finite() {
        Ok(Value::Float(f))
    } else {
        Err(FormulaError::Math("result out of range".into()))
    }
}

fn int_or_float(i: Option<i128>, f: f64) -> Result<Value, FormulaError> {
    match i {
        Some(i) => Ok(Value::Int(i)),
        None => float_result(f),
    }
}

fn py_floor_div(a: i128, b: i128) -> i128 {
    let q = a / b;
    if (a % b != 0) && ((a < 0) != (b < 0)) {
        q - 1
    } else {
        q
    }
}

fn binop(op: BinOp, a: Value, b: Value) -> Result<Value, FormulaError> {
    use Value::Int;
    let (fa, fb) = (a.as_f64(), b.as_f64());
    match (op, a, b) {
        (BinOp::Add, Int(x), Int(y)) => int_or_float(x.checked_add(y), fa + fb),
        (BinOp::Sub, Int(x), Int(y)) => int_or_float(x.checked_sub(y), fa - fb),
        (BinOp::Mul, Int(x), Int(y)) => int_or_float(x.checked_mul(y), fa * fb),
        (BinOp::Add, ..) => float_result(fa + fb),
        (BinOp::Sub, ..) => float_result(fa - fb),
        (BinOp::Mul, ..) => float_result(fa * fb),
        (BinOp::Div, ..) => {
            if fb == 0.0 {
                Err(FormulaError::ZeroDivision)
            } else {
                float_result(fa / fb)
            }
        }
        (BinOp::FloorDiv | BinOp::Mod, _, _) if fb == 0.0 => Err(FormulaError::ZeroDivision),
        (BinOp::FloorDiv, Int(x), Int(y)) => Ok(Int(py_floor_div(x, y))),
        (BinOp::FloorDiv, ..) => float_result((fa / fb).floor()),
        (BinOp::Mod, Int(x), Int(y)) => Ok(Int(x - y * py_floor_div(x, y))),
        (BinOp::Mod, ..) => {
            let r = fa % fb;
            float_result(if r != 0.0 && (r < 0.0) != (fb < 0.0) {
                r + fb
            } else {
                r
            })
        }
        (BinOp::Pow, Int(x), Int(y)) if y >= 0 => {
            let exact = u32::try_from(y).ok().and_then(|e| x.checked_pow(e));
            int_or_float(exact, fa.powf(fb))
        }
        (BinOp::Pow, ..) => {
            if fa == 0.0 && fb < 0.0 {
                return Err(FormulaError::ZeroDivision);
            }
            if fa < 0.0 && fb.fract() != 0.0 {
                return Err(FormulaError::Math(
                    "negative number to a fractional power".into(),
                ));
            }
            float_result(fa.powf(fb))
        }
        (BinOp::Shl | BinOp::Shr, Int(x), Int(y)) => {
            if y < 0 {
                return Err(FormulaError::Math("negative shift count".into()));
            }
            if op == BinOp::Shr {
                return Ok(Int(if y >= 127 {
                    if x < 0 {
                        -1
                    } else {
                        0
                    }
                } else {
                    x >> y
                }));
            }
            let r = u32::try_from(y)
                .ok()
                .filter(|s| *s < 127)
                .map(|s| x << s)
                .filter(|r| r >> y == x);
            r.map(Int)
                .ok_or_else(|| FormulaError::Math("shift result too large".into()))
        }
        (BinOp::Shl | BinOp::Shr, ..) => Err(FormulaError::Type(format!(
            "unsupported operand type(s) for shift: {a} and {b} (shifts need integers)"
        ))),
    }
}

fn compare(op: CmpOp, a: Value, b: Value) -> bool {
    let ord = match (a, b) {
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(&y)),
        _ => a.as_f64().partial_cmp(&b.as_f64()),
    };
    let Some(o) = ord else {
        return op == CmpOp::Ne;
    };
    use std::cmp::Ordering::*;
    match op {
        CmpOp::Lt => o == Less,
        CmpOp::Le => o != Greater,
        CmpOp::Gt => o == Greater,
        CmpOp::Ge => o != Less,
        CmpOp::Eq => o == Equal,
        CmpOp::Ne => o != Equal,
    }
}

fn arity(name: &str, args: &[Value], ok: bool, expected: &'static str) -> Result<(), FormulaError> {
    if ok {
        Ok(())
    } else {
        Err(FormulaError::Arity {
            name: name.into(),
            expected,
            got: args.len(),
        })
    }
}

fn to_int(f: f64) -> Result<Value, FormulaError> {
    if f.is_finite() && f.abs() < 1.7e38 {
        Ok(Value::Int(f as i128))
    } else {
        Err(FormulaError::Math(format!("cannot convert {f} to integer")))
    }
}

fn call(func: Func, args: &[Value]) -> Result<Value, FormulaError> {
    let one = |name: &str| arity(name, args, args.len() == 1, "1");
    match func {
        Func::Min | Func::Max => {
            let name = if func == Func::Min { "min" } else { "max" };
            arity(name, args, !args.is_empty(), "at least 1")?;
            // Like Python, the first of equal extremes wins and keeps its type.
            let mut best = args[0];
            for &v in &args[1..] {
                let better = if func == Func::Min {
                    compare(CmpOp::Lt, v, best)
                } else {
                    compare(CmpOp::Gt, v, best)
                };
                if better {
                    best = v;
                }
            }
            Ok(best)
        }
        Func::Abs => {
            one("abs")?;
            Ok(match args[0] {
                Value::Int(i) => Value::Int(i.abs()),
                Value::Float(f) => Value::Float(f.abs()),
            })
        }
        Func::Int => {
            one("int")?;
            match args[0] {
                Value::Int(i) => Ok(Value::Int(i)),
                Value::Float(f) => to_int(f.trunc()),
            }
        }
        Func::Float => {
            one("float")?;
            Ok(Value::Float(args[0].as_f64()))
        }
        Func::Round => {
            one("round")?;
            match args[0] {
                Value::Int(i) => Ok(Value::Int(i)),
                Value::Float(f) => to_int(super::ticket::py_round(f)),
            }
        }
        Func::Exp => {
            one("math.exp")?;
            let r = args[0].as_f64().exp();
            if r.is_infinite() {
                return Err(FormulaError::Math("math range error".into()));
            }
            Ok(Value::Float(r))
        }
        Func::Log => {
            arity("math.log", args, matches!(args.len(), 1 | 2), "1 or 2")?;
            let x = args[0].as_f64();
            if x <= 0.0 {
                return Err(FormulaError::Math("math domain error".into()));
            }
            match args.get(1) {
                None => Ok(Value::Float(x.ln())),
                Some(b) => {
                    let b = b.as_f64();
                    if b <= 0.0 || b == 1.0 {
                        return Err(FormulaError::Math("math domain error".into()));
                    }
                    Ok(Value::Float(x.ln() / b.ln()))
                }
            }
        }
        Func::Sqrt => {
            one("math.sqrt")?;
            let x = args[0].as_f64();
            if x < 0.0 {
                return Err(FormulaError::Math("math domain error".into()));
            }
            Ok(Value::Float(x.sqrt()))
        }
        Func::Pow => {
            arity("math.pow", args, args.len() == 2, "2")?;
            float_result(args[0].as_f64().powf(args[1].as_f64()))
        }
        Func::Floor => {
            one("math.floor")?;
            to_int(args[0].as_f64().floor())
        }
        Func::Ceil => {
            one("math.ceil")?;
            to_int(args[0].as_f64().ceil())
        }
    }
}

fn eval(e: &Expr, env: &Env) -> Result<Value, FormulaError> {
    Ok(match e {
        Expr::Num(v) => *v,
        Expr::Name(n) => match n {
            Name::BanTime => env.time,
            Name::BanCount => env.count,
            Name::BanFactor => env.factor,
            Name::E => Value::Float(std::f64::consts::E),
            Name::Pi => Value::Float(std::f64::consts::PI),
        },
        Expr::Neg(a) => match eval(a, env)? {
            Value::Int(i) => Value::Int(-i),
            Value::Float(f) => Value::Float(-f),
        },
        Expr::Pos(a) => eval(a, env)?,
        Expr::Invert(a) => match eval(a, env)? {
            Value::Int(i) => Value::Int(!i),
            v @ Value::Float(_) => {
                return Err(FormulaError::Type(format!(
                    "bad operand type for unary ~: {v} (needs an integer)"
                )))
            }
        },
        Expr::Not(a) => Value::Int(i128::from(!eval(a, env)?.truthy())),
        Expr::Bin(op, a, b) => binop(*op, eval(a, env)?, eval(b, env)?)?,
        Expr::Cmp(first, rest) => {
            let mut left = eval(first, env)?;
            for (op, e) in rest {
                let right = eval(e, env)?;
                if !compare(*op, left, right) {
                    return Ok(Value::Int(0));
                }
                left = right;
            }
            Value::Int(1)
        }
        Expr::And(a, b) => {
            let l = eval(a, env)?;
            if l.truthy() {
                eval(b, env)?
            } else {
                l
            }
        }
        Expr::Or(a, b) => {
            let l = eval(a, env)?;
            if l.truthy() {
                l
            } else {
                eval(b, env)?
            }
        }
        Expr::If(c, a, b) => {
            if eval(c, env)?.truthy() {
                eval(a, env)?
            } else {
                eval(b, env)?
            }
        }
        Expr::Call(f, args) => {
            let vals = args
                .iter()
                .map(|a| eval(a, env))
                .collect::<Result<Vec<_>, _>>()?;
            call(*f, &vals)?
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(s: &str, time: i128, count: i128, factor: Value) -> Value {
        let env = Env {
            time: Value::Int(time),
            count: Value::Int(count),
            factor,
        };
        Formula::parse(s).unwrap().eval(&env).unwrap()
    }

    fn c(s: &str) -> Value {
        Formula::parse(s).unwrap().eval_const().unwrap()
    }

    #[test]
    fn default_formula() {
        let f = "ban.Time * (1<<(ban.Count if ban.Count<20 else 20)) * banFactor";
        assert_eq!(ev(f, 600, 1, Value::Int(1)), Value::Int(1200));
        assert_eq!(ev(f, 600, 3, Value::Int(2)), Value::Int(9600));
        assert_eq!(ev(f, 600, 30, Value::Int(1)), Value::Int(600 << 20));
    }

    #[test]
    fn exp_formula() {
        let f = "ban.Time * math.exp(float(ban.Count+1)*banFactor)/math.exp(1*banFactor)";
        let factor = c("2.0 / 2.885385");
        let v = ev(f, 600, 1, factor).as_f64();
        assert_eq!(v as i64, 1200);
    }

    #[test]
    fn python_arithmetic() {
        assert_eq!(c("7 / 2"), Value::Float(3.5));
        assert_eq!(c("7 // 2"), Value::Int(3));
        assert_eq!(c("-7 // 2"), Value::Int(-4));
        assert_eq!(c("-7 % 3"), Value::Int(2));
        assert_eq!(c("2 ** 10"), Value::Int(1024));
        assert_eq!(c("2 ** -1"), Value::Float(0.5));
        assert_eq!(c("-2 ** 2"), Value::Int(-4));
        assert_eq!(c("2 ** 3 ** 2"), Value::Int(512));
        assert_eq!(c("1 << 4 >> 1"), Value::Int(8));
        assert_eq!(c("1 + 2 << 1"), Value::Int(6));
        assert_eq!(c("1 < 2 < 3"), Value::Int(1));
        assert_eq!(c("3 > 2 > 2"), Value::Int(0));
        assert_eq!(c("min(3, 1.5, 2)"), Value::Float(1.5));
        assert_eq!(c("max(2, 2.0)"), Value::Int(2));
        assert_eq!(c("int(2.9) + abs(-1)"), Value::Int(3));
        assert_eq!(c("0 or 5"), Value::Int(5));
        assert_eq!(c("2 and 0"), Value::Int(0));
        assert_eq!(c("not 0"), Value::Int(1));
        assert_eq!(c("1.5e3"), Value::Float(1500.0));
        assert_eq!(c("round(2.5)"), Value::Int(2));
        assert_eq!(c("5 if 0 else 6 if 1 else 7"), Value::Int(6));
    }

    #[test]
    fn refuses_the_rest() {
        assert!(matches!(
            Formula::parse("__import__('os')"),
            Err(FormulaError::UnknownFunction(_)) | Err(FormulaError::Syntax { .. })
        ));
        assert_eq!(
            Formula::parse("banCount * 2"),
            Err(FormulaError::UnknownName("banCount".into()))
        );
        assert!(matches!(
            Formula::parse("1 +"),
            Err(FormulaError::Syntax { .. })
        ));
        assert!(matches!(
            Formula::parse("(1"),
            Err(FormulaError::Syntax { .. })
        ));
        assert!(matches!(
            Formula::parse("1 2"),
            Err(FormulaError::Syntax { .. })
        ));
        assert!(matches!(
            Formula::parse("x[0]"),
            Err(FormulaError::Syntax { .. }) | Err(FormulaError::UnknownName(_))
        ));
        assert_eq!(
            Formula::parse("1.5 << 1").unwrap().eval_const(),
            Err(FormulaError::Type(
                "unsupported operand type(s) for shift: 1.5 and 1 (shifts need integers)".into()
            ))
        );
        assert_eq!(
            Formula::parse("1 / 0").unwrap().eval_const(),
            Err(FormulaError::ZeroDivision)
        );
        assert!(Formula::parse("ban.Time").unwrap().eval_const().is_err());
    }
}

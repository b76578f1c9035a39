//! The decoder: a pickle of plain data to a JSON value.
//!
//! Python's unpickler is a small stack machine; this is the same machine
//! with only the opcodes that build plain data. Objects live in an arena
//! and the stack, marks and memo hold their indices, so that a list that
//! is memoised and filled afterwards (as Python's pickler writes every
//! list) is the same list wherever the memo names it; the value is built
//! from the arena at STOP, within [`Limits::max_depth`], `max_items` and
//! `max_bytes`, which also stop a list that contains itself.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::{op, Limits};

/// Why a pickle was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    #[error("pickle longer than {0} bytes")]
    TooLong(usize),
    #[error("pickle truncated at byte {0}")]
    Truncated(usize),
    #[error("opcode {name} at byte {at} refused: only plain data is accepted")]
    Refused { name: &'static str, at: usize },
    #[error("unknown opcode 0x{code:02x} at byte {at}")]
    Unknown { code: u8, at: usize },
    #[error("malformed pickle at byte {at}: {why}")]
    Malformed { at: usize, why: &'static str },
    #[error("pickle holds too many {0}")]
    TooLarge(&'static str),
    #[error("pickle nested deeper than {0}")]
    TooDeep(usize),
}

/// Decodes one pickle of plain data: lists, tuples, sets and frozensets
/// become arrays, dicts objects (string keys only), bytes and strings
/// strings (UTF-8 only), and numbers, booleans and None their JSON
/// counterparts. Anything else, and anything beyond `limits`, is an error.
pub fn decode(input: &[u8], limits: &Limits) -> Result<Value, DecodeError> {
    if input.len() > limits.max_input {
        return Err(DecodeError::TooLong(limits.max_input));
    }
    let mut d = Decoder {
        input,
        pos: 0,
        at: 0,
        limits,
        nodes: Vec::new(),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        entries: 0,
    };
    let root = d.run()?;
    let mut budget = Budget { items: 0, bytes: 0 };
    d.value(root, 0, &mut budget)
}

enum Node {
    /// None, a boolean, a number or a string.
    Scalar(Value),
    List(Vec<usize>),
    /// Also a frozenset: neither can change once built.
    Tuple(Vec<usize>),
    Dict(Vec<(usize, usize)>),
    Set(Vec<usize>),
}

struct Decoder<'a> {
    input: &'a [u8],
    pos: usize,
    /// Where the current opcode starts, for errors.
    at: usize,
    limits: &'a Limits,
    nodes: Vec<Node>,
    stack: Vec<usize>,
    /// The stack's length at each open MARK.
    marks: Vec<usize>,
    memo: HashMap<u64, usize>,
    /// Items put in containers so far: a list filled by APPEND after
    /// APPEND never holds more than the stack at once.
    entries: usize,
}

struct Budget {
    items: usize,
    bytes: usize,
}

type R<T> = Result<T, DecodeError>;

/// What a dict counts against [`Limits::max_items`] beyond its entries.
const DICT_COST: usize = 16;

impl<'a> Decoder<'a> {
    fn run(&mut self) -> R<usize> {
        loop {
            self.at = self.pos;
            let code = self.byte()?;
            match code {
                op::PROTO => {
                    if self.byte()? > 5 {
                        return self.bad("unsupported protocol");
                    }
                }
                // A length hint for buffered readers; the input is whole.
                op::FRAME => {
                    self.take(8)?;
                }
                op::STOP => return self.pop(),
                op::MARK => {
                    self.bound(self.marks.len(), "marks")?;
                    self.marks.push(self.stack.len());
                }
                op::POP => {
                    if self.stack.len() > self.base() {
                        self.stack.pop();
                    } else {
                        self.pop_mark()?;
                    }
                }
                op::POP_MARK => {
                    self.pop_mark()?;
                }
                op::DUP => {
                    let top = self.top()?;
                    self.push(top)?;
                }
                op::NONE => self.scalar(Value::Null)?,
                op::NEWTRUE => self.scalar(Value::Bool(true))?,
                op::NEWFALSE => self.scalar(Value::Bool(false))?,
                op::INT => {
                    let v = match self.line()? {
                        b"00" => Value::Bool(false),
                        b"01" => Value::Bool(true),
                        l => Value::from(self.int_text(l)?),
                    };
                    self.scalar(v)?
                }
                op::LONG => {
                    let l = self.line()?;
                    let v = self.int_text(l.strip_suffix(b"L").unwrap_or(l))?;
                    self.scalar(Value::from(v))?
                }
                op::BININT => {
                    let v = i32::from_le_bytes(self.array()?);
                    self.scalar(Value::from(v))?
                }
                op::BININT1 => {
                    let v = self.byte()?;
                    self.scalar(Value::from(v))?
                }
                op::BININT2 => {
                    let v = u16::from_le_bytes(self.array()?);
                    self.scalar(Value::from(v))?
                }
                op::LONG1 => {
                    let n = self.byte()?;
                    self.long(n.into())?
                }
                op::LONG4 => {
                    let n = i32::from_le_bytes(self.array()?);
                    match u64::try_from(n) {
                        Ok(n) => self.long(n)?,
                        Err(_) => return self.bad("negative length"),
                    }
                }
                op::FLOAT => {
                    let l = self.line()?;
                    let f = std::str::from_utf8(l)
                        .ok()
                        .and_then(|s| s.trim().parse().ok());
                    match f {
                        Some(f) => self.float(f)?,
                        None => return self.bad("bad float"),
                    }
                }
                op::BINFLOAT => {
                    let f = f64::from_be_bytes(self.array()?);
                    self.float(f)?
                }
                op::STRING => {
                    let l = self.line()?;
                    let bytes = self.quoted(l)?;
                    self.text(&bytes)?
                }
                op::UNICODE => {
                    let l = self.line()?;
                    let s = self.raw_unicode_escape(l)?;
                    self.scalar(Value::String(s))?
                }
                op::SHORT_BINSTRING | op::SHORT_BINBYTES | op::SHORT_BINUNICODE => {
                    let n = self.byte()?;
                    let b = self.take(n.into())?;
                    self.text(b)?
                }
                op::BINSTRING => {
                    let n = i32::from_le_bytes(self.array()?);
                    let Ok(n) = u64::try_from(n) else {
                        return self.bad("negative length");
                    };
                    let b = self.take(n)?;
                    self.text(b)?
                }
                op::BINUNICODE | op::BINBYTES => {
                    let n = u32::from_le_bytes(self.array()?);
                    let b = self.take(n.into())?;
                    self.text(b)?
                }
                op::BINUNICODE8 | op::BINBYTES8 | op::BYTEARRAY8 => {
                    let n = u64::from_le_bytes(self.array()?);
                    let b = self.take(n)?;
                    self.text(b)?
                }
                op::EMPTY_LIST => self.object(Node::List(Vec::new()))?,
                op::EMPTY_TUPLE => self.object(Node::Tuple(Vec::new()))?,
                op::EMPTY_DICT => self.object(Node::Dict(Vec::new()))?,
                op::EMPTY_SET => self.object(Node::Set(Vec::new()))?,
                op::LIST => {
                    let items = self.pop_mark()?;
                    self.object(Node::List(items))?
                }
                op::TUPLE | op::FROZENSET => {
                    let items = self.pop_mark()?;
                    self.object(Node::Tuple(items))?
                }
                op::TUPLE1 | op::TUPLE2 | op::TUPLE3 => {
                    let n = usize::from(code - op::TUPLE1 + 1);
                    if self.stack.len() < self.base() + n {
                        return self.bad("stack underflow");
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.object(Node::Tuple(items))?
                }
                op::DICT => {
                    let items = self.pop_mark()?;
                    let pairs = self.pairs(items)?;
                    self.object(Node::Dict(pairs))?
                }
                op::APPEND => {
                    let v = self.pop()?;
                    self.extend(vec![v])?
                }
                op::APPENDS => {
                    let items = self.pop_mark()?;
                    self.extend(items)?
                }
                op::ADDITEMS => {
                    let items = self.pop_mark()?;
                    self.fill(items.len())?;
                    let top = self.top()?;
                    match &mut self.nodes[top] {
                        Node::Set(s) => s.extend(items),
                        _ => return self.bad("ADDITEMS to a non-set"),
                    }
                }
                op::SETITEM => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.set_items(vec![(k, v)])?
                }
                op::SETITEMS => {
                    let items = self.pop_mark()?;
                    let pairs = self.pairs(items)?;
                    self.set_items(pairs)?
                }
                op::GET => {
                    let l = self.line()?;
                    let i = self.index_text(l)?;
                    self.get(i)?
                }
                op::BINGET => {
                    let i = self.byte()?;
                    self.get(i.into())?
                }
                op::LONG_BINGET => {
                    let i = u32::from_le_bytes(self.array()?);
                    self.get(i.into())?
                }
                op::PUT => {
                    let l = self.line()?;
                    let i = self.index_text(l)?;
                    self.put(i)?
                }
                op::BINPUT => {
                    let i = self.byte()?;
                    self.put(i.into())?
                }
                op::LONG_BINPUT => {
                    let i = u32::from_le_bytes(self.array()?);
                    self.put(i.into())?
                }
                op::MEMOIZE => self.put(self.memo.len() as u64)?,
                _ => {
                    return Err(match refused_name(code) {
                        Some(name) => DecodeError::Refused { name, at: self.at },
                        None => DecodeError::Unknown { code, at: self.at },
                    })
                }
            }
        }
    }

    fn bad<T>(&self, why: &'static str) -> R<T> {
        Err(DecodeError::Malformed { at: self.at, why })
    }

    fn bound(&self, len: usize, what: &'static str) -> R<()> {
        if len >= self.limits.max_objects {
            return Err(DecodeError::TooLarge(what));
        }
        Ok(())
    }

    fn byte(&mut self) -> R<u8> {
        let b = *self
            .input
            .get(self.pos)
            .ok_or(DecodeError::Truncated(self.pos))?;
        self.pos += 1;
        Ok(b)
    }

    /// The next `n` bytes: checked against what is left before anything
    /// is allocated for them.
    fn take(&mut self, n: u64) -> R<&'a [u8]> {
        let left = self.input.len() - self.pos;
        match usize::try_from(n) {
            Ok(n) if n <= left => {
                let s = &self.input[self.pos..self.pos + n];
                self.pos += n;
                Ok(s)
            }
            _ => Err(DecodeError::Truncated(self.input.len())),
        }
    }

    fn array<const N: usize>(&mut self) -> R<[u8; N]> {
        let s = self.take(N as u64)?;
        Ok(s.try_into().expect("take returns N bytes"))
    }

    /// A protocol 0 argument: up to the newline, which is consumed.
    fn line(&mut self) -> R<&'a [u8]> {
        let rest = &self.input[self.pos..];
        let n = memchr::memchr(b'\n', rest).ok_or(DecodeError::Truncated(self.input.len()))?;
        self.pos += n + 1;
        Ok(&rest[..n])
    }

    fn int_text(&self, l: &[u8]) -> R<i64> {
        match std::str::from_utf8(l).ok().map(str::trim) {
            Some(s) => match s.parse() {
                Ok(i) => Ok(i),
                Err(_)
                    if !s.is_empty()
                        && s.trim_start_matches(['-', '+'])
                            .bytes()
                            .all(|b| b.is_ascii_digit()) =>
                {
                    Err(DecodeError::TooLarge("digits in an integer"))
                }
                Err(_) => self.bad("bad integer"),
            },
            None => self.bad("bad integer"),
        }
    }

    fn index_text(&self, l: &[u8]) -> R<u64> {
        match self.int_text(l)? {
            i if i >= 0 => Ok(i as u64),
            _ => self.bad("negative memo index"),
        }
    }

    /// LONG1 and LONG4: `n` bytes of little-endian two's complement.
    fn long(&mut self, n: u64) -> R<()> {
        let b = self.take(n)?;
        if b.len() > 8 {
            // Python writes the fewest bytes, so longer means larger.
            return Err(DecodeError::TooLarge("digits in an integer"));
        }
        let fill = if b.last().is_some_and(|l| l & 0x80 != 0) {
            0xff
        } else {
            0
        };
        let mut all = [fill; 8];
        all[..b.len()].copy_from_slice(b);
        self.scalar(Value::from(i64::from_le_bytes(all)))
    }

    fn float(&mut self, f: f64) -> R<()> {
        match serde_json::Number::from_f64(f) {
            Some(n) => self.scalar(Value::Number(n)),
            None => self.bad("infinite or NaN float"),
        }
    }

    fn text(&mut self, b: &[u8]) -> R<()> {
        match std::str::from_utf8(b) {
            Ok(s) => self.scalar(Value::String(s.to_owned())),
            Err(_) => self.bad("string not UTF-8"),
        }
    }

    /// STRING's argument: a Python string literal in quotes, with its
    /// backslash escapes.
    fn quoted(&self, l: &[u8]) -> R<Vec<u8>> {
        let inner = match l {
            [q @ (b'\'' | b'"'), inner @ .., e] if q == e => inner,
            _ => return self.bad("STRING not quoted"),
        };
        let mut out = Vec::with_capacity(inner.len());
        let mut i = 0;
        while i < inner.len() {
            let c = inner[i];
            i += 1;
            if c != b'\\' {
                out.push(c);
                continue;
            }
            let Some(&e) = inner.get(i) else {
                return self.bad("trailing backslash");
            };
            i += 1;
            match e {
                b'n' => out.push(b'\n'),
                b't' => out.push(b'\t'),
                b'r' => out.push(b'\r'),
                b'a' => out.push(7),
                b'b' => out.push(8),
                b'f' => out.push(12),
                b'v' => out.push(11),
                b'\n' => {}
                b'x' => {
                    let h = inner
                        .get(i..i + 2)
                        .and_then(|h| std::str::from_utf8(h).ok());
                    match h.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                        Some(v) => out.push(v),
                        None => return self.bad("bad \\x escape"),
                    }
                    i += 2;
                }
                b'0'..=b'7' => {
                    let mut v = u32::from(e - b'0');
                    for _ in 0..2 {
                        match inner.get(i) {
                            Some(d @ b'0'..=b'7') => {
                                v = v * 8 + u32::from(d - b'0');
                                i += 1;
                            }
                            _ => break,
                        }
                    }
                    out.push(v as u8);
                }
                b'\\' | b'\'' | b'"' => out.push(e),
                other => out.extend([b'\\', other]),
            }
        }
        Ok(out)
    }

    /// UNICODE's argument: Latin-1 with `\uXXXX` and `\UXXXXXXXX`.
    fn raw_unicode_escape(&self, l: &[u8]) -> R<String> {
        let mut out = String::with_capacity(l.len());
        let mut i = 0;
        while i < l.len() {
            let width = match (l[i], l.get(i + 1)) {
                (b'\\', Some(b'u')) => 4,
                (b'\\', Some(b'U')) => 8,
                (c, _) => {
                    out.push(char::from(c));
                    i += 1;
                    continue;
                }
            };
            let digits = l
                .get(i + 2..i + 2 + width)
                .and_then(|h| std::str::from_utf8(h).ok());
            match digits
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .and_then(char::from_u32)
            {
                Some(c) => out.push(c),
                None => return self.bad("bad \\u escape"),
            }
            i += 2 + width;
        }
        Ok(out)
    }

    fn base(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn push(&mut self, id: usize) -> R<()> {
        self.bound(self.stack.len(), "stack entries")?;
        self.stack.push(id);
        Ok(())
    }

    fn object(&mut self, n: Node) -> R<()> {
        self.bound(self.nodes.len(), "objects")?;
        if let Node::List(items) | Node::Tuple(items) | Node::Set(items) = &n {
            self.fill(items.len())?;
        }
        if let Node::Dict(pairs) = &n {
            self.fill(pairs.len())?;
        }
        self.nodes.push(n);
        self.push(self.nodes.len() - 1)
    }

    fn scalar(&mut self, v: Value) -> R<()> {
        self.object(Node::Scalar(v))
    }

    /// The top of the stack above the innermost mark, as Python sees it.
    fn top(&self) -> R<usize> {
        match self.stack.last() {
            Some(&id) if self.stack.len() > self.base() => Ok(id),
            _ => self.bad("stack underflow"),
        }
    }

    fn pop(&mut self) -> R<usize> {
        let id = self.top()?;
        self.stack.pop();
        Ok(id)
    }

    fn pop_mark(&mut self) -> R<Vec<usize>> {
        match self.marks.pop() {
            Some(m) => Ok(self.stack.split_off(m)),
            None => self.bad("no MARK"),
        }
    }

    fn fill(&mut self, n: usize) -> R<()> {
        self.entries += n;
        if self.entries > self.limits.max_objects {
            return Err(DecodeError::TooLarge("container items"));
        }
        Ok(())
    }

    fn pairs(&self, items: Vec<usize>) -> R<Vec<(usize, usize)>> {
        if items.len() % 2 != 0 {
            return self.bad("odd number of dict items");
        }
        Ok(items.chunks_exact(2).map(|kv| (kv[0], kv[1])).collect())
    }

    fn extend(&mut self, items: Vec<usize>) -> R<()> {
        self.fill(items.len())?;
        let top = self.top()?;
        match &mut self.nodes[top] {
            Node::List(l) => {
                l.extend(items);
                Ok(())
            }
            _ => self.bad("APPEND to a non-list"),
        }
    }

    fn set_items(&mut self, pairs: Vec<(usize, usize)>) -> R<()> {
        self.fill(pairs.len())?;
        let top = self.top()?;
        match &mut self.nodes[top] {
            Node::Dict(d) => {
                d.extend(pairs);
                Ok(())
            }
            _ => self.bad("SETITEM on a non-dict"),
        }
    }

    fn get(&mut self, i: u64) -> R<()> {
        match self.memo.get(&i) {
            Some(&id) => self.push(id),
            None => self.bad("memo index not set"),
        }
    }

    fn put(&mut self, i: u64) -> R<()> {
        let top = self.top()?;
        if !self.memo.contains_key(&i) {
            self.bound(self.memo.len(), "memo entries")?;
        }
        self.memo.insert(i, top);
        Ok(())
    }

    /// The value of object `id`, within the limits on what is returned.
    fn value(&self, id: usize, depth: usize, b: &mut Budget) -> R<Value> {
        b.items += 1;
        if b.items > self.limits.max_items {
            return Err(DecodeError::TooLarge("items"));
        }
        let items = match &self.nodes[id] {
            Node::Scalar(v) => {
                if let Value::String(s) = v {
                    self.spend(b, s.len())?;
                }
                return Ok(v.clone());
            }
            Node::List(items) | Node::Tuple(items) | Node::Set(items) => items,
            Node::Dict(pairs) => {
                // A map's nodes cost far more than a vector's slot.
                b.items += DICT_COST;
                if b.items > self.limits.max_items {
                    return Err(DecodeError::TooLarge("items"));
                }
                self.deeper(depth)?;
                let mut m = Map::new();
                for &(k, v) in pairs {
                    let Node::Scalar(Value::String(k)) = &self.nodes[k] else {
                        return Err(DecodeError::Malformed {
                            at: self.input.len(),
                            why: "dict key not a string",
                        });
                    };
                    self.spend(b, k.len())?;
                    let v = self.value(v, depth + 1, b)?;
                    m.insert(k.clone(), v);
                }
                return Ok(Value::Object(m));
            }
        };
        self.deeper(depth)?;
        let mut out = Vec::with_capacity(items.len().min(self.limits.max_items));
        for &i in items {
            out.push(self.value(i, depth + 1, b)?);
        }
        Ok(Value::Array(out))
    }

    fn deeper(&self, depth: usize) -> R<()> {
        if depth >= self.limits.max_depth {
            return Err(DecodeError::TooDeep(self.limits.max_depth));
        }
        Ok(())
    }

    fn spend(&self, b: &mut Budget, bytes: usize) -> R<()> {
        b.bytes += bytes;
        if b.bytes > self.limits.max_bytes {
            return Err(DecodeError::TooLarge("bytes of strings"));
        }
        Ok(())
    }
}

/// The name of a refused opcode, as `pickletools` calls it.
fn refused_name(code: u8) -> Option<&'static str> {
    Some(match code {
        op::PERSID => "PERSID",
        op::BINPERSID => "BINPERSID",
        op::REDUCE => "REDUCE",
        op::BUILD => "BUILD",
        op::GLOBAL => "GLOBAL",
        op::INST => "INST",
        op::OBJ => "OBJ",
        op::NEWOBJ => "NEWOBJ",
        op::EXT1 => "EXT1",
        op::EXT2 => "EXT2",
        op::EXT4 => "EXT4",
        op::NEWOBJ_EX => "NEWOBJ_EX",
        op::STACK_GLOBAL => "STACK_GLOBAL",
        op::NEXT_BUFFER => "NEXT_BUFFER",
        op::READONLY_BUFFER => "READONLY_BUFFER",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn d(b: &[u8]) -> R<Value> {
        decode(b, &Limits::SOCKET)
    }

    /// Pickles Python 3.11 wrote (`pickle.dumps(..., protocol)`).
    #[test]
    fn pythons_pickles() {
        // ['status', 'sshd'], protocol 5, framed.
        let p5 = b"\x80\x05\x95\x15\x00\x00\x00\x00\x00\x00\x00]\x94(\x8c\x06status\x94\x8c\x04sshd\x94e.";
        assert_eq!(d(p5).unwrap(), json!(["status", "sshd"]));
        // (0, [('a', 1), ('b', [1.5, None, True])]), protocol 2.
        let p2 = b"\x80\x02K\x00]q\x00(X\x01\x00\x00\x00aq\x01K\x01\x86q\x02X\x01\x00\x00\x00bq\x03]q\x04(G?\xf8\x00\x00\x00\x00\x00\x00N\x88e\x86q\x05e\x86q\x06.";
        assert_eq!(
            d(p2).unwrap(),
            json!([0, [["a", 1], ["b", [1.5, null, true]]]])
        );
        // ['x', {'k': -3}], protocol 0.
        let p0 = b"(lp0\nVx\np1\na(dp2\nVk\np3\nI-3\nsa.";
        assert_eq!(d(p0).unwrap(), json!(["x", {"k": -3}]));
    }

    #[test]
    fn a_memoised_list_is_the_same_list() {
        // x = []; [x, x] with x filled after being memoised.
        let p = b"\x80\x02](]q\x00h\x00eq\x01h\x00K\x01a.";
        // ] ( ] put0 get0 e  -> outer=[x, x]; put1; get0 -> x; 1 append to x
        // The stack ends [outer, x]; STOP returns x = [1].
        assert_eq!(d(p).unwrap(), json!([1]));
        let p = b"\x80\x02]q\x00(]q\x01h\x01e0h\x01K\x07a0h\x00.";
        assert_eq!(d(p).unwrap(), json!([[7], [7]]));
    }

    #[test]
    fn refuses_what_is_not_plain_data() {
        let os_system = b"\x80\x02cos\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03.";
        assert_eq!(
            d(os_system),
            Err(DecodeError::Refused {
                name: "GLOBAL",
                at: 2
            })
        );
        let own_loop = b"\x80\x02]q\x00h\x00a.";
        assert_eq!(d(own_loop), Err(DecodeError::TooDeep(32)));
        assert!(matches!(
            d(b"\x80\x02\x8d\xff\xff\xff\xff\xff\xff\xff\x7f."),
            Err(DecodeError::Truncated(_))
        ));
    }
}

//! The pickle decoder against generated and mutated pickles (issue 19):
//! plain data in every encoding Python may write decodes to its value,
//! every opcode that is not plain data is refused wherever it appears, and
//! no input, however broken, panics or allocates beyond what the limits
//! allow. A counting allocator measures the decoder's peak allocation on
//! the calling thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::HashMap;

use fail3ban::pickle::{decode, op, DecodeError, Limits};
use serde_json::{Map, Value};

struct Counting;

thread_local! {
    static TRACKING: Cell<bool> = const { Cell::new(false) };
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn note(delta: isize) {
    let _ = TRACKING.try_with(|t| {
        if t.get() {
            let live = LIVE.get() + delta;
            LIVE.set(live);
            PEAK.set(PEAK.get().max(live));
        }
    });
}

// SAFETY: every call is System's; the counters are thread-local cells
// that allocate nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = System.alloc(l);
        if !p.is_null() {
            note(l.size() as isize);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l);
        note(-(l.size() as isize));
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = System.realloc(p, l, new);
        if !q.is_null() {
            note(new as isize - l.size() as isize);
        }
        q
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Small limits, so that the bounds are reached often.
const LIMITS: Limits = Limits {
    max_input: 1 << 16,
    max_objects: 2000,
    max_depth: 12,
    max_items: 5000,
    max_bytes: 50_000,
};

/// The most the decoder may allocate at once under [`LIMITS`] for an input
/// of `len` bytes: the arena, stack, marks and memo (each entry a few
/// words, vectors doubling), the strings read (at most the input), and the
/// value returned.
fn bound(len: usize) -> isize {
    // Object, stack entry, mark, memo entry, container item (a pair in a
    // dict), each in a vector or table that may be twice its length.
    let objects = LIMITS.max_objects * (48 + 8 + 8 + 48 + 16) * 2;
    let value = LIMITS.max_items * 64 + LIMITS.max_bytes;
    (objects + 2 * len + value + (64 << 10)) as isize
}

/// Decodes `input`, checking the peak allocation.
fn measured(input: &[u8]) -> Result<Value, DecodeError> {
    LIVE.set(0);
    PEAK.set(0);
    TRACKING.set(true);
    let r = decode(input, &LIMITS);
    TRACKING.set(false);
    let peak = PEAK.get();
    assert!(
        peak <= bound(input.len()),
        "{peak} bytes allocated for a {}-byte pickle: {:?}",
        input.len(),
        String::from_utf8_lossy(input)
    );
    r
}

/// Python values, and the JSON the decoder must make of them.
#[derive(Clone, Debug)]
enum V {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<V>),
    Tuple(Vec<V>),
    Set(Vec<V>),
    Dict(Vec<(String, V)>),
}

impl V {
    fn json(&self) -> Value {
        match self {
            V::None => Value::Null,
            V::Bool(b) => Value::Bool(*b),
            V::Int(i) => Value::from(*i),
            V::Float(f) => Value::from(*f),
            V::Str(s) => Value::String(s.clone()),
            V::List(l) | V::Tuple(l) | V::Set(l) => Value::Array(l.iter().map(V::json).collect()),
            V::Dict(d) => Value::Object(
                d.iter()
                    .map(|(k, v)| (k.clone(), v.json()))
                    .collect::<Map<_, _>>(),
            ),
        }
    }
}

fn random_string(rng: &mut fastrand::Rng) -> String {
    const CHARS: &[char] = &[
        'a', 'Z', '0', ' ', '\'', '"', '\\', '\n', '\r', '\t', '\0', 'é', 'ÿ', 'ı', '€', '😀',
        '\u{7f}', '\u{80}',
    ];
    let n = rng.usize(0..12);
    (0..n).map(|_| CHARS[rng.usize(..CHARS.len())]).collect()
}

fn random_value(rng: &mut fastrand::Rng, depth: usize) -> V {
    let leaf = depth >= 4 || rng.u8(..4) == 0;
    match rng.u8(..if leaf { 5 } else { 9 }) {
        0 => V::None,
        1 => V::Bool(rng.bool()),
        2 => V::Int(match rng.u8(..4) {
            0 => rng.i64(0..256),
            1 => rng.i64(-70_000..70_000),
            2 => rng.i32(..).into(),
            _ => rng.i64(..),
        }),
        3 => V::Float(match rng.u8(..3) {
            0 => rng.f64(),
            1 => f64::from(rng.i32(..)) * 1e-3,
            _ => f64::from_bits(rng.u64(..)).clamp(-1e300, 1e300),
        })
        .finite(),
        4 => V::Str(random_string(rng)),
        5 => V::List(
            (0..rng.usize(0..5))
                .map(|_| random_value(rng, depth + 1))
                .collect(),
        ),
        6 => V::Tuple(
            (0..rng.usize(0..5))
                .map(|_| random_value(rng, depth + 1))
                .collect(),
        ),
        7 => V::Set(
            (0..rng.usize(0..4))
                .map(|_| random_value(rng, depth + 1))
                .collect(),
        ),
        _ => {
            let mut keys: Vec<String> = (0..rng.usize(0..4)).map(|_| random_string(rng)).collect();
            keys.sort();
            keys.dedup();
            V::Dict(
                keys.into_iter()
                    .map(|k| (k, random_value(rng, depth + 1)))
                    .collect(),
            )
        }
    }
}

impl V {
    fn finite(self) -> V {
        match self {
            V::Float(f) if !f.is_finite() => V::Float(0.0),
            v => v,
        }
    }
}

/// A pickler that writes each value in a randomly chosen one of the
/// encodings Python's picklers (protocols 0 to 5) may use, with memo
/// entries, frames and stack noise, and records where each opcode starts.
struct Pickler<'r> {
    rng: &'r mut fastrand::Rng,
    out: Vec<u8>,
    starts: Vec<usize>,
    /// The decoder's memo: the scalar stored at each index, `None` for a
    /// container (never fetched: it is filled after being stored).
    memo: HashMap<u64, Option<V>>,
}

impl Pickler<'_> {
    fn op(&mut self, code: u8) {
        self.starts.push(self.out.len());
        self.out.push(code);
    }

    fn bytes(&mut self, b: &[u8]) {
        self.out.extend_from_slice(b);
    }

    fn line(&mut self, text: &str) {
        self.bytes(text.as_bytes());
        self.out.push(b'\n');
    }

    fn pickle(mut self, v: &V) -> (Vec<u8>, Vec<usize>) {
        if self.rng.bool() {
            self.op(op::PROTO);
            let proto = self.rng.u8(0..6);
            self.out.push(proto);
            if self.rng.bool() {
                self.op(op::FRAME);
                let len = self.rng.u64(..);
                self.bytes(&len.to_le_bytes());
            }
        }
        self.value(v);
        self.op(op::STOP);
        (self.out, self.starts)
    }

    fn value(&mut self, v: &V) {
        if self.rng.u8(..8) == 0 {
            self.noise();
        }
        let scalar = !matches!(v, V::List(_) | V::Tuple(_) | V::Set(_) | V::Dict(_));
        // A scalar stored earlier: fetched from the memo instead.
        if scalar && self.rng.u8(..4) == 0 {
            let same = self
                .memo
                .iter()
                .find(|(_, m)| m.as_ref().is_some_and(|m| m.json() == v.json()))
                .map(|(i, _)| *i);
            if let Some(i) = same {
                self.get(i);
                return;
            }
        }
        match v {
            V::None => self.op(op::NONE),
            V::Bool(b) => {
                if self.rng.bool() {
                    self.op(if *b { op::NEWTRUE } else { op::NEWFALSE });
                } else {
                    self.op(op::INT);
                    self.line(if *b { "01" } else { "00" });
                }
            }
            V::Int(i) => self.int(*i),
            V::Float(f) => {
                if self.rng.bool() {
                    self.op(op::BINFLOAT);
                    self.bytes(&f.to_be_bytes());
                } else {
                    self.op(op::FLOAT);
                    self.line(&format!("{f:?}"));
                }
            }
            V::Str(s) => self.string(s),
            V::List(items) => self.list(items),
            V::Tuple(items) => self.tuple(items),
            V::Set(items) => {
                if self.rng.bool() {
                    self.op(op::EMPTY_SET);
                    self.maybe_put(None);
                    self.op(op::MARK);
                    items.iter().for_each(|i| self.value(i));
                    self.op(op::ADDITEMS);
                } else {
                    self.op(op::MARK);
                    items.iter().for_each(|i| self.value(i));
                    self.op(op::FROZENSET);
                }
            }
            V::Dict(pairs) => match self.rng.u8(..3) {
                0 => {
                    self.op(op::MARK);
                    self.pairs(pairs);
                    self.op(op::DICT);
                }
                1 => {
                    self.op(op::EMPTY_DICT);
                    self.maybe_put(None);
                    for (k, v) in pairs {
                        self.string(k);
                        self.value(v);
                        self.op(op::SETITEM);
                    }
                }
                _ => {
                    self.op(op::EMPTY_DICT);
                    self.maybe_put(None);
                    self.op(op::MARK);
                    self.pairs(pairs);
                    self.op(op::SETITEMS);
                }
            },
        }
        if scalar {
            self.maybe_put(Some(v));
        }
    }

    fn pairs(&mut self, pairs: &[(String, V)]) {
        for (k, v) in pairs {
            self.string(k);
            self.value(v);
        }
    }

    fn list(&mut self, items: &[V]) {
        match self.rng.u8(..3) {
            0 => {
                self.op(op::MARK);
                items.iter().for_each(|i| self.value(i));
                self.op(op::LIST);
            }
            1 => {
                self.op(op::EMPTY_LIST);
                self.maybe_put(None);
                for i in items {
                    self.value(i);
                    self.op(op::APPEND);
                }
            }
            _ => {
                self.op(op::EMPTY_LIST);
                self.maybe_put(None);
                for chunk in items.chunks(2) {
                    self.op(op::MARK);
                    chunk.iter().for_each(|i| self.value(i));
                    self.op(op::APPENDS);
                }
            }
        }
    }

    fn tuple(&mut self, items: &[V]) {
        match (items.len(), self.rng.bool()) {
            (0, true) => self.op(op::EMPTY_TUPLE),
            (n @ 1..=3, true) => {
                items.iter().for_each(|i| self.value(i));
                self.op(op::TUPLE1 + n as u8 - 1);
            }
            _ => {
                self.op(op::MARK);
                items.iter().for_each(|i| self.value(i));
                self.op(op::TUPLE);
            }
        }
    }

    fn int(&mut self, i: i64) {
        match self.rng.u8(..5) {
            0 if (0..256).contains(&i) => {
                self.op(op::BININT1);
                self.out.push(i as u8);
            }
            1 if (0..65536).contains(&i) => {
                self.op(op::BININT2);
                self.bytes(&(i as u16).to_le_bytes());
            }
            2 if i32::try_from(i).is_ok() => {
                self.op(op::BININT);
                self.bytes(&(i as i32).to_le_bytes());
            }
            3 => {
                let text = i.to_string();
                if self.rng.bool() {
                    self.op(op::INT);
                    self.line(&text);
                } else {
                    self.op(op::LONG);
                    self.line(&format!("{text}L"));
                }
            }
            _ => {
                // Two's complement, not always the fewest bytes.
                let all = i.to_le_bytes();
                let fits = |n: usize| {
                    let negative = n > 0 && all[n - 1] & 0x80 != 0;
                    let mut b = [if negative { 0xff } else { 0 }; 8];
                    b[..n].copy_from_slice(&all[..n]);
                    i64::from_le_bytes(b) == i
                };
                let fewest = (0..=8).find(|&n| fits(n)).unwrap_or(8);
                let n = self.rng.usize(fewest..=8);
                if self.rng.bool() {
                    self.op(op::LONG1);
                    self.out.push(n as u8);
                } else {
                    self.op(op::LONG4);
                    self.bytes(&(n as i32).to_le_bytes());
                }
                self.bytes(&all[..n]);
            }
        }
    }

    fn string(&mut self, s: &str) {
        let b = s.as_bytes();
        let short = b.len() < 256;
        match self.rng.u8(..11) {
            0 if short => {
                self.op(op::SHORT_BINUNICODE);
                self.out.push(b.len() as u8);
            }
            1 if short => {
                self.op(op::SHORT_BINSTRING);
                self.out.push(b.len() as u8);
            }
            2 if short => {
                self.op(op::SHORT_BINBYTES);
                self.out.push(b.len() as u8);
            }
            3 => {
                self.op(op::BINSTRING);
                self.bytes(&(b.len() as i32).to_le_bytes());
            }
            4 => {
                self.op(op::BINBYTES);
                self.bytes(&(b.len() as u32).to_le_bytes());
            }
            5 => {
                self.op(op::BINUNICODE8);
                self.bytes(&(b.len() as u64).to_le_bytes());
            }
            6 => {
                self.op(op::BINBYTES8);
                self.bytes(&(b.len() as u64).to_le_bytes());
            }
            7 => {
                self.op(op::BYTEARRAY8);
                self.bytes(&(b.len() as u64).to_le_bytes());
            }
            8 => {
                // Python's raw-unicode-escape, as protocol 0 writes it.
                self.op(op::UNICODE);
                for c in s.chars() {
                    match c as u32 {
                        0x5c | 0x0a | 0x0d | 0 => {
                            self.bytes(format!("\\u{:04x}", c as u32).as_bytes())
                        }
                        n @ 0..=0xff => self.out.push(n as u8),
                        n @ 0x100..=0xffff => self.bytes(format!("\\u{n:04x}").as_bytes()),
                        n => self.bytes(format!("\\U{n:08x}").as_bytes()),
                    }
                }
                self.out.push(b'\n');
                return;
            }
            9 => {
                // Python 2's repr of the UTF-8 bytes.
                self.op(op::STRING);
                self.out.push(b'\'');
                for &c in b {
                    match c {
                        b'\\' | b'\'' => self.bytes(&[b'\\', c]),
                        0x20..=0x7e => self.out.push(c),
                        b'\n' => self.bytes(b"\\n"),
                        _ if self.rng.bool() => self.bytes(format!("\\x{c:02x}").as_bytes()),
                        _ => self.bytes(format!("\\{c:03o}").as_bytes()),
                    }
                }
                self.bytes(b"'\n");
                return;
            }
            _ => {
                self.op(op::BINUNICODE);
                self.bytes(&(b.len() as u32).to_le_bytes());
            }
        }
        self.bytes(b);
    }

    /// Sometimes stores the top of the stack in the memo; a scalar stored
    /// may later be fetched instead of written again.
    fn maybe_put(&mut self, scalar: Option<&V>) {
        if self.rng.u8(..3) != 0 {
            return;
        }
        let i = match self.rng.u8(..4) {
            0 => {
                self.op(op::MEMOIZE);
                self.memo.len() as u64
            }
            1 => {
                let i = self.rng.u8(..);
                self.op(op::BINPUT);
                self.out.push(i);
                i.into()
            }
            2 => {
                let i = self.rng.u32(..);
                self.op(op::LONG_BINPUT);
                self.bytes(&i.to_le_bytes());
                i.into()
            }
            _ => {
                let i = self.rng.u32(..1000);
                self.op(op::PUT);
                self.line(&i.to_string());
                i.into()
            }
        };
        self.memo.insert(i, scalar.cloned());
    }

    fn get(&mut self, i: u64) {
        match self.rng.u8(..3) {
            0 if i < 256 => {
                self.op(op::BINGET);
                self.out.push(i as u8);
            }
            1 if i <= u32::MAX.into() => {
                self.op(op::LONG_BINGET);
                self.bytes(&(i as u32).to_le_bytes());
            }
            _ => {
                self.op(op::GET);
                self.line(&i.to_string());
            }
        }
    }

    /// Opcodes that leave the stack as it was.
    fn noise(&mut self) {
        match self.rng.u8(..3) {
            0 => {
                self.op(op::MARK);
                self.op(op::POP_MARK);
            }
            1 => {
                self.op(op::NONE);
                self.op(op::DUP);
                self.op(op::POP);
                self.op(op::POP);
            }
            _ => {
                self.op(op::MARK);
                self.op(op::NONE);
                self.op(op::POP);
                self.op(op::POP);
            }
        }
    }
}

fn pickled(rng: &mut fastrand::Rng, v: &V) -> (Vec<u8>, Vec<usize>) {
    let mut seed = fastrand::Rng::with_seed(rng.u64(..));
    Pickler {
        rng: &mut seed,
        out: Vec::new(),
        starts: Vec::new(),
        memo: HashMap::new(),
    }
    .pickle(v)
}

/// A refused opcode with arguments of its shape, as an exploit writes it.
fn refused(rng: &mut fastrand::Rng) -> Vec<u8> {
    let code = op::REFUSED[rng.usize(..op::REFUSED.len())];
    let mut b = vec![code];
    match code {
        op::GLOBAL | op::INST => b.extend(b"os\nsystem\n"),
        op::PERSID => b.extend(b"1\n"),
        op::EXT1 => b.push(1),
        op::EXT2 => b.extend([1, 0]),
        op::EXT4 => b.extend([1, 0, 0, 0]),
        _ => {}
    }
    b
}

/// Random bytes where an opcode's argument goes: sometimes well formed,
/// sometimes a length far beyond the input.
fn random_argument(rng: &mut fastrand::Rng, out: &mut Vec<u8>) {
    match rng.u8(..6) {
        0 => {}
        1 => out.extend((0..rng.usize(0..9)).map(|_| rng.u8(..))),
        2 => {
            out.extend(rng.i64(-1000..1000).to_string().as_bytes());
            out.push(b'\n');
        }
        3 => out.extend(u64::MAX.to_le_bytes()),
        4 => out.extend((rng.u32(..) as u64 | 1 << 40).to_le_bytes()),
        _ => {
            out.push(rng.u8(..));
            out.extend(b"ab'\n");
        }
    }
}

fn mutate(rng: &mut fastrand::Rng, p: &mut Vec<u8>, other: &[u8]) {
    for _ in 0..rng.usize(1..4) {
        let at = rng.usize(..=p.len());
        match rng.u8(..7) {
            0 if !p.is_empty() => {
                let i = rng.usize(..p.len());
                p[i] ^= 1 << rng.u8(..8);
            }
            1 if !p.is_empty() => {
                let i = rng.usize(..p.len());
                p[i] = op::ALL[rng.usize(..op::ALL.len())];
            }
            2 => p.insert(at, op::ALL[rng.usize(..op::ALL.len())]),
            3 => {
                let end = rng.usize(at..=p.len());
                p.drain(at..end);
            }
            4 => p.truncate(at),
            5 if !other.is_empty() => {
                let from = rng.usize(..other.len());
                let to = rng.usize(from..=other.len());
                p.splice(at..at, other[from..to].iter().copied());
            }
            _ => {
                let end = rng.usize(at..=p.len());
                let copy = p[at..end].to_vec();
                p.splice(at..at, copy);
            }
        }
    }
}

/// 100,000 pickles: 40,000 of plain data in every encoding (each decodes
/// to its value), 20,000 of them with a refused opcode inserted at an
/// opcode boundary (each refused), 30,000 mutated (bit flips, opcodes
/// written, inserted, cut, spliced, repeated) and 10,000 random opcode
/// streams: none panics or allocates beyond the bound, and every opcode,
/// plain or refused, is tried.
#[test]
fn random_and_mutated_pickles() {
    let mut rng = fastrand::Rng::with_seed(19);
    let mut seen = [0usize; 256];
    let mut seen_plain = [0usize; 256];
    let mut prev = Vec::new();
    let (mut accepted, mut refused_n) = (0, 0);
    for n in 0..100_000 {
        match n % 10 {
            0..=3 => {
                let v = random_value(&mut rng, 0);
                let (p, starts) = pickled(&mut rng, &v);
                for &s in &starts {
                    seen_plain[usize::from(p[s])] += 1;
                    seen[usize::from(p[s])] += 1;
                }
                match measured(&p) {
                    Ok(got) => {
                        assert_eq!(got, v.json(), "{v:?} as {:?}", String::from_utf8_lossy(&p))
                    }
                    // Only the small limits may stop a valid pickle.
                    Err(DecodeError::TooLarge(_) | DecodeError::TooDeep(_)) => {}
                    Err(e) => panic!("{v:?} as {:?}: {e}", String::from_utf8_lossy(&p)),
                }
                accepted += 1;
                prev = p;
            }
            4 | 5 => {
                let v = random_value(&mut rng, 0);
                let (mut p, starts) = pickled(&mut rng, &v);
                let at = starts[rng.usize(..starts.len())];
                let bad = refused(&mut rng);
                seen[usize::from(bad[0])] += 1;
                p.splice(at..at, bad);
                match measured(&p) {
                    Err(DecodeError::Refused { at: where_, .. }) => assert_eq!(where_, at),
                    other => panic!("{:?}: {other:?}", String::from_utf8_lossy(&p)),
                }
                refused_n += 1;
            }
            6..=8 => {
                let v = random_value(&mut rng, 0);
                let (mut p, _) = pickled(&mut rng, &v);
                mutate(&mut rng, &mut p, &prev);
                let _ = measured(&p);
            }
            _ => {
                let mut p = Vec::new();
                for _ in 0..rng.usize(1..40) {
                    let code = op::ALL[rng.usize(..op::ALL.len())];
                    seen[usize::from(code)] += 1;
                    p.push(code);
                    random_argument(&mut rng, &mut p);
                }
                if rng.bool() {
                    p.push(op::STOP);
                }
                let _ = measured(&p);
            }
        }
    }
    let unseen = |seen: &[usize; 256], plain: bool| -> Vec<String> {
        op::ALL
            .iter()
            .filter(|c| !(plain && op::REFUSED.contains(c)) && seen[usize::from(**c)] == 0)
            .map(|c| format!("0x{c:02x}"))
            .collect()
    };
    assert_eq!(
        unseen(&seen, false),
        Vec::<String>::new(),
        "opcodes never tried"
    );
    assert_eq!(
        unseen(&seen_plain, true),
        Vec::<String>::new(),
        "plain-data opcodes never in a valid pickle"
    );
    assert_eq!((accepted, refused_n), (40_000, 20_000));
}

/// Pickles made to exhaust the decoder: lengths of 2^64 - 1, a string
/// named a million times through the memo, a list inside itself, nesting
/// past the limit, a flood of marks and memo entries. Each is refused
/// within the bound.
#[test]
fn pickles_that_ask_for_too_much() {
    let mut huge_len = vec![op::PROTO, 4, op::BINUNICODE8];
    huge_len.extend(u64::MAX.to_le_bytes());
    assert!(matches!(
        measured(&huge_len),
        Err(DecodeError::Truncated(_))
    ));

    // a = ["aaaaa"] * 900; [a] * 900, by memo: 810,000 items.
    let mut fanout = b"\x80\x04\x8c\x05aaaaa\x94(".to_vec();
    fanout.extend(std::iter::repeat_n(*b"h\x00", 900).flatten());
    fanout.extend(b"l\x94(");
    fanout.extend(std::iter::repeat_n(*b"h\x01", 900).flatten());
    fanout.extend(b"l.");
    assert_eq!(measured(&fanout), Err(DecodeError::TooLarge("items")));

    // One None appended 20,000 times to a list: never more than two on
    // the stack, and one object.
    let mut appends = b"\x80\x02]N\x940".to_vec();
    appends.extend(std::iter::repeat_n(*b"h\x00a", 20_000).flatten());
    appends.push(b'.');
    assert_eq!(
        measured(&appends),
        Err(DecodeError::TooLarge("container items"))
    );

    let own = b"\x80\x02]q\x00h\x00a.";
    assert_eq!(measured(own), Err(DecodeError::TooDeep(LIMITS.max_depth)));

    let mut deep = b"\x80\x02".to_vec();
    deep.extend(std::iter::repeat_n(b'(', 100));
    deep.extend(std::iter::repeat_n(b'l', 100));
    deep.push(b'.');
    assert_eq!(measured(&deep), Err(DecodeError::TooDeep(LIMITS.max_depth)));

    let marks = vec![op::MARK; 60_000];
    assert_eq!(measured(&marks), Err(DecodeError::TooLarge("marks")));

    let mut memo = b"\x80\x02N".to_vec();
    for i in 0..3000u32 {
        memo.push(op::LONG_BINPUT);
        memo.extend(i.to_le_bytes());
    }
    memo.push(op::STOP);
    assert_eq!(measured(&memo), Err(DecodeError::TooLarge("memo entries")));

    let long = vec![op::NONE; LIMITS.max_input + 1];
    assert_eq!(measured(&long), Err(DecodeError::TooLong(LIMITS.max_input)));
}

//! The encoder: Python values to a protocol 2 pickle, which every Python 3
//! unpickles. It writes no memo: answers are trees, never shared objects.

use super::op;

/// A Python value to pickle.
#[derive(Debug, Clone, PartialEq)]
pub enum Py {
    None,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    List(Vec<Py>),
    Tuple(Vec<Py>),
    Dict(Vec<(Py, Py)>),
    /// `module.name(*args)`: how Python pickles an exception. Only the
    /// server writes one (fail2ban answers a failed command with the
    /// exception); the decoder refuses it.
    Call {
        module: &'static str,
        name: &'static str,
        args: Vec<Py>,
    },
}

/// The pickle of `v`, STOP included.
pub fn encode(v: &Py) -> Vec<u8> {
    let mut out = vec![op::PROTO, 2];
    write(&mut out, v);
    out.push(op::STOP);
    out
}

fn write(out: &mut Vec<u8>, v: &Py) {
    match v {
        Py::None => out.push(op::NONE),
        Py::Bool(true) => out.push(op::NEWTRUE),
        Py::Bool(false) => out.push(op::NEWFALSE),
        Py::Int(i) => int(out, *i),
        Py::Float(f) => {
            out.push(op::BINFLOAT);
            out.extend(f.to_be_bytes());
        }
        Py::Str(s) => {
            out.push(op::BINUNICODE);
            // Strings are far below 4 GiB: requests are bounded, and so
            // is everything the server holds.
            out.extend(u32::try_from(s.len()).unwrap_or(u32::MAX).to_le_bytes());
            out.extend(s.as_bytes());
        }
        Py::List(items) => {
            out.push(op::EMPTY_LIST);
            if !items.is_empty() {
                out.push(op::MARK);
                items.iter().for_each(|i| write(out, i));
                out.push(op::APPENDS);
            }
        }
        Py::Tuple(items) => tuple(out, items),
        Py::Dict(pairs) => {
            out.push(op::EMPTY_DICT);
            if !pairs.is_empty() {
                out.push(op::MARK);
                for (k, v) in pairs {
                    write(out, k);
                    write(out, v);
                }
                out.push(op::SETITEMS);
            }
        }
        Py::Call { module, name, args } => {
            out.push(op::GLOBAL);
            for part in [module, name] {
                out.extend(part.as_bytes());
                out.push(b'\n');
            }
            tuple(out, args);
            out.push(op::REDUCE);
        }
    }
}

fn tuple(out: &mut Vec<u8>, items: &[Py]) {
    match items.len() {
        0 => out.push(op::EMPTY_TUPLE),
        n @ 1..=3 => {
            items.iter().for_each(|i| write(out, i));
            out.push(op::TUPLE1 + n as u8 - 1);
        }
        _ => {
            out.push(op::MARK);
            items.iter().for_each(|i| write(out, i));
            out.push(op::TUPLE);
        }
    }
}

fn int(out: &mut Vec<u8>, i: i128) {
    match i {
        0..=0xff => out.extend([op::BININT1, i as u8]),
        0x100..=0xffff => {
            out.push(op::BININT2);
            out.extend((i as u16).to_le_bytes());
        }
        _ if i32::try_from(i).is_ok() => {
            out.push(op::BININT);
            out.extend((i as i32).to_le_bytes());
        }
        _ => {
            // The fewest little-endian two's complement bytes that keep
            // the sign.
            let bytes = i.to_le_bytes();
            let mut n = bytes.len();
            while n > 1 {
                let (last, prev) = (bytes[n - 1], bytes[n - 2]);
                let redundant =
                    (last == 0 && prev & 0x80 == 0) || (last == 0xff && prev & 0x80 != 0);
                if !redundant {
                    break;
                }
                n -= 1;
            }
            out.extend([op::LONG1, n as u8]);
            out.extend(&bytes[..n]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pickle::{decode, Limits};
    use serde_json::json;

    #[test]
    fn plain_values_round_trip() {
        let v = Py::Tuple(vec![
            Py::Int(0),
            Py::List(vec![
                Py::Tuple(vec![Py::Str("Number of jail".into()), Py::Int(300)]),
                Py::Dict(vec![(Py::Str("k".into()), Py::Float(1.5))]),
                Py::Int(-1),
                Py::Int(1 << 40),
                Py::Int(-(1 << 40)),
                Py::Int(70000),
                Py::Bool(false),
                Py::None,
                Py::Tuple(vec![Py::Int(1), Py::Int(2), Py::Int(3), Py::Int(4)]),
            ]),
        ]);
        assert_eq!(
            decode(&encode(&v), &Limits::SOCKET).unwrap(),
            json!([
                0,
                [
                    ["Number of jail", 300],
                    {"k": 1.5},
                    -1,
                    1u64 << 40,
                    -(1i64 << 40),
                    70000,
                    false,
                    null,
                    [1, 2, 3, 4]
                ]
            ])
        );
    }

    #[test]
    fn an_exception_as_python_pickles_it() {
        let e = Py::Call {
            module: "fail2ban.exceptions",
            name: "UnknownJailException",
            args: vec![Py::Str("nope".into())],
        };
        assert_eq!(
            encode(&e),
            b"\x80\x02cfail2ban.exceptions\nUnknownJailException\nX\x04\x00\x00\x00nope\x85R."
        );
    }
}

//! Python pickles of plain data: what fail2ban's control socket carries.
//!
//! fail2ban's client and the tools built on its `CSocket` pickle the
//! command list, and fail2ban-server pickles its answer. Unpickling in
//! Python runs whatever the pickle names (`os.system` by GLOBAL and
//! REDUCE); this decoder has no such path: it knows only the opcodes that
//! build lists, tuples, dicts, sets, strings, bytes, numbers, booleans and
//! None, refuses every other one, and bounds the input, the objects it
//! builds, the memo, the nesting and the value it returns ([`Limits`]).
//! The encoder may name a class (fail2ban's answer to a failed command is
//! an exception object); the decoder never accepts one.

mod decode;
mod encode;

pub use decode::{decode, DecodeError};
pub use encode::{encode, Py};

/// How much a pickle may hold. The objects, stack entries, marks, memo
/// entries and container items the decoder keeps are each bounded by
/// `max_objects`, its strings together by the input's length, and the
/// value returned by `max_items` (a dict counts 16 more) and `max_bytes`
/// (a memo lets a short pickle name one object many times). What the
/// decoder allocates is thus a few dozen bytes per object, plus the
/// input's length, plus a few dozen bytes per item and the bytes of the
/// value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest pickle, in bytes.
    pub max_input: usize,
    /// Most objects, stack entries, marks, memo entries or container
    /// items.
    pub max_objects: usize,
    /// Deepest nesting of containers in the value returned.
    pub max_depth: usize,
    /// Most values (containers, scalars, dict keys) in the value returned.
    pub max_items: usize,
    /// Most bytes of strings in the value returned.
    pub max_bytes: usize,
}

impl Limits {
    /// What the control socket accepts: far above any real command (the
    /// longest are `banip` with many addresses and the configuration
    /// stream), far below what would hurt the server.
    pub const SOCKET: Limits = Limits {
        max_input: 16 << 20,
        // A few dozen bytes each: about 67 MB at the most for a pickle
        // that fills every bound, where 1 << 20 allowed some 270 MB.
        max_objects: 1 << 18,
        max_depth: 32,
        max_items: 1 << 17,
        max_bytes: 32 << 20,
    };
}

/// The opcodes of pickle protocols 0 to 5 (Python's `pickletools`).
pub mod op {
    pub const MARK: u8 = b'(';
    pub const STOP: u8 = b'.';
    pub const POP: u8 = b'0';
    pub const POP_MARK: u8 = b'1';
    pub const DUP: u8 = b'2';
    pub const FLOAT: u8 = b'F';
    pub const INT: u8 = b'I';
    pub const BININT: u8 = b'J';
    pub const BININT1: u8 = b'K';
    pub const LONG: u8 = b'L';
    pub const BININT2: u8 = b'M';
    pub const NONE: u8 = b'N';
    pub const PERSID: u8 = b'P';
    pub const BINPERSID: u8 = b'Q';
    pub const REDUCE: u8 = b'R';
    pub const STRING: u8 = b'S';
    pub const BINSTRING: u8 = b'T';
    pub const SHORT_BINSTRING: u8 = b'U';
    pub const UNICODE: u8 = b'V';
    pub const BINUNICODE: u8 = b'X';
    pub const APPEND: u8 = b'a';
    pub const BUILD: u8 = b'b';
    pub const GLOBAL: u8 = b'c';
    pub const DICT: u8 = b'd';
    pub const EMPTY_DICT: u8 = b'}';
    pub const APPENDS: u8 = b'e';
    pub const GET: u8 = b'g';
    pub const BINGET: u8 = b'h';
    pub const INST: u8 = b'i';
    pub const LONG_BINGET: u8 = b'j';
    pub const LIST: u8 = b'l';
    pub const EMPTY_LIST: u8 = b']';
    pub const OBJ: u8 = b'o';
    pub const PUT: u8 = b'p';
    pub const BINPUT: u8 = b'q';
    pub const LONG_BINPUT: u8 = b'r';
    pub const SETITEM: u8 = b's';
    pub const TUPLE: u8 = b't';
    pub const EMPTY_TUPLE: u8 = b')';
    pub const SETITEMS: u8 = b'u';
    pub const BINFLOAT: u8 = b'G';
    pub const PROTO: u8 = 0x80;
    pub const NEWOBJ: u8 = 0x81;
    pub const EXT1: u8 = 0x82;
    pub const EXT2: u8 = 0x83;
    pub const EXT4: u8 = 0x84;
    pub const TUPLE1: u8 = 0x85;
    pub const TUPLE2: u8 = 0x86;
    pub const TUPLE3: u8 = 0x87;
    pub const NEWTRUE: u8 = 0x88;
    pub const NEWFALSE: u8 = 0x89;
    pub const LONG1: u8 = 0x8a;
    pub const LONG4: u8 = 0x8b;
    pub const BINBYTES: u8 = b'B';
    pub const SHORT_BINBYTES: u8 = b'C';
    pub const SHORT_BINUNICODE: u8 = 0x8c;
    pub const BINUNICODE8: u8 = 0x8d;
    pub const BINBYTES8: u8 = 0x8e;
    pub const EMPTY_SET: u8 = 0x8f;
    pub const ADDITEMS: u8 = 0x90;
    pub const FROZENSET: u8 = 0x91;
    pub const NEWOBJ_EX: u8 = 0x92;
    pub const STACK_GLOBAL: u8 = 0x93;
    pub const MEMOIZE: u8 = 0x94;
    pub const FRAME: u8 = 0x95;
    pub const BYTEARRAY8: u8 = 0x96;
    pub const NEXT_BUFFER: u8 = 0x97;
    pub const READONLY_BUFFER: u8 = 0x98;

    /// Every opcode, for tests that must try each.
    pub const ALL: [u8; 68] = [
        MARK,
        STOP,
        POP,
        POP_MARK,
        DUP,
        FLOAT,
        INT,
        BININT,
        BININT1,
        LONG,
        BININT2,
        NONE,
        PERSID,
        BINPERSID,
        REDUCE,
        STRING,
        BINSTRING,
        SHORT_BINSTRING,
        UNICODE,
        BINUNICODE,
        APPEND,
        BUILD,
        GLOBAL,
        DICT,
        EMPTY_DICT,
        APPENDS,
        GET,
        BINGET,
        INST,
        LONG_BINGET,
        LIST,
        EMPTY_LIST,
        OBJ,
        PUT,
        BINPUT,
        LONG_BINPUT,
        SETITEM,
        TUPLE,
        EMPTY_TUPLE,
        SETITEMS,
        BINFLOAT,
        PROTO,
        NEWOBJ,
        EXT1,
        EXT2,
        EXT4,
        TUPLE1,
        TUPLE2,
        TUPLE3,
        NEWTRUE,
        NEWFALSE,
        LONG1,
        LONG4,
        BINBYTES,
        SHORT_BINBYTES,
        SHORT_BINUNICODE,
        BINUNICODE8,
        BINBYTES8,
        EMPTY_SET,
        ADDITEMS,
        FROZENSET,
        NEWOBJ_EX,
        STACK_GLOBAL,
        MEMOIZE,
        FRAME,
        BYTEARRAY8,
        NEXT_BUFFER,
        READONLY_BUFFER,
    ];

    /// The opcodes that name, build or call anything but plain data:
    /// refused wherever they appear.
    pub const REFUSED: [u8; 15] = [
        PERSID,
        BINPERSID,
        REDUCE,
        BUILD,
        GLOBAL,
        INST,
        OBJ,
        NEWOBJ,
        EXT1,
        EXT2,
        EXT4,
        NEWOBJ_EX,
        STACK_GLOBAL,
        NEXT_BUFFER,
        READONLY_BUFFER,
    ];
}

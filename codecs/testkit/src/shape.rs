//! Envelope shapes written once as data: [`Shape`], a small value tree any
//! codec can write through serde, and [`javascript_cases`], the envelopes the
//! JavaScript package (ws-messaging@2.0.0) refuses or accepts.

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

/// A value as a JavaScript peer would see it, written through serde: maps
/// keep their order and any repeated key, so a shape can spell envelopes no
/// typed encoder would write.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// `null`.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float (`NaN` included).
    Float(f64),
    /// A string.
    Str(&'static str),
    /// A byte string (binary formats; JSON writes a list of numbers).
    Bytes(Vec<u8>),
    /// An array.
    List(Vec<Shape>),
    /// A map, entries in this order (keys of any shape, repeats kept).
    Map(Vec<(Shape, Shape)>),
}

impl Serialize for Shape {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Shape::Null => s.serialize_unit(),
            Shape::Bool(b) => s.serialize_bool(*b),
            Shape::Int(i) => s.serialize_i64(*i),
            Shape::Float(f) => s.serialize_f64(*f),
            Shape::Str(text) => s.serialize_str(text),
            Shape::Bytes(bytes) => s.serialize_bytes(bytes),
            Shape::List(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Shape::Map(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (key, value) in entries {
                    map.serialize_entry(key, value)?;
                }
                map.end()
            }
        }
    }
}

/// A map with string keys, in this order.
pub fn obj(entries: &[(&'static str, Shape)]) -> Shape {
    Shape::Map(entries.iter().map(|(k, v)| (Shape::Str(k), v.clone())).collect())
}

/// The event `{name: "x", args: []}` followed by `extra` entries.
pub fn msg(extra: &[(&'static str, Shape)]) -> Shape {
    let mut entries = vec![("name", Shape::Str("x")), ("args", Shape::List(vec![]))];
    entries.extend(extra.iter().cloned());
    obj(&entries)
}

/// What a JavaScript peer does with a frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Expect {
    /// Refused: a `Validation error` (the frame decodes, the envelope is bad).
    Invalid,
    /// Accepted as the message `{name: "x", args: [], id}`.
    Message {
        /// The invoke id, `None` for an event.
        id: Option<u64>,
    },
    /// Accepted as an ack.
    Reply {
        /// The id answered.
        id: u64,
        /// The result (`Ok`) or error (`Err`) it carries.
        outcome: Result<Shape, Shape>,
    },
    /// The frame is `{name: N, id: 1, result: null}` and `N` is falsy in
    /// JavaScript: the envelope reader reports a falsy name, and without
    /// strict validation the frame is the ack of id 1.
    FalsyName,
    /// The frame is `{name: N}` and `N` is truthy but not a string: the
    /// envelope reader reports another kind of name.
    TruthyName,
}

/// One validation case: a frame as data and what JavaScript does with it.
#[derive(Debug, Clone)]
pub struct JsCase {
    /// What the case checks (the assertion message).
    pub what: &'static str,
    /// The frame.
    pub frame: Shape,
    /// What must come of it.
    pub expect: Expect,
}

/// The envelopes the JavaScript package refuses or accepts, for every codec
/// (see [`Kit::javascript_cases`](crate::Kit::javascript_cases)).
pub fn javascript_cases() -> Vec<JsCase> {
    use Shape::{Bool, Float, Int, List, Map, Null, Str};
    let invalid = |what, frame| JsCase {
        what,
        frame,
        expect: Expect::Invalid,
    };
    let mut cases = vec![
        invalid("an array", List(vec![Int(1), Int(2)])),
        invalid("a string", Str("str")),
        invalid("a number", Int(42)),
        invalid("null", Null),
        invalid("an empty map", obj(&[])),
        invalid("an unknown key alone", obj(&[("foo", Int(1))])),
        invalid("args a map", obj(&[("name", Str("x")), ("args", obj(&[]))])),
        invalid("an event with id 0", msg(&[("id", Int(0))])),
        invalid("a negative id", msg(&[("id", Int(-1))])),
        invalid("a fractional id", msg(&[("id", Float(1.5))])),
        invalid("a string id", msg(&[("id", Str("1"))])),
        invalid("a null id", msg(&[("id", Null)])),
        invalid("an extra key", msg(&[("extra", Int(1))])),
        invalid("a number as name", obj(&[("name", Int(5)), ("args", List(vec![]))])),
        invalid("a name without args", obj(&[("name", Str("x"))])),
        invalid(
            "an ack with a fractional id",
            obj(&[("id", Float(1.5)), ("result", Int(1))]),
        ),
        invalid("an ack with neither result nor error", obj(&[("id", Int(1))])),
        invalid(
            "an ack with result and error",
            obj(&[("id", Int(1)), ("result", Int(1)), ("error", Int(2))]),
        ),
        invalid("an ack with id 0", obj(&[("id", Int(0)), ("result", Null)])),
        invalid(
            "an empty name with an id (falsy: an ack with extra keys)",
            obj(&[("name", Str("")), ("args", List(vec![])), ("id", Int(1))]),
        ),
        invalid(
            "an empty name without id (falsy: an ack without id)",
            obj(&[("name", Str("")), ("args", List(vec![]))]),
        ),
        invalid(
            "a non-string key is one more key",
            Map(vec![
                (Int(1), Str("x")),
                (Str("name"), Str("x")),
                (Str("args"), List(vec![])),
            ]),
        ),
        invalid("an empty key is one more key", msg(&[("id", Int(1)), ("", Null)])),
        invalid(
            "a falsy name makes an ack: without result",
            obj(&[("name", Null), ("id", Int(1))]),
        ),
        JsCase {
            what: "an event",
            frame: msg(&[]),
            expect: Expect::Message { id: None },
        },
        JsCase {
            what: "a call",
            frame: msg(&[("id", Int(9))]),
            expect: Expect::Message { id: Some(9) },
        },
        JsCase {
            what: "a null error is an error",
            frame: obj(&[("id", Int(1)), ("error", Null)]),
            expect: Expect::Reply {
                id: 1,
                outcome: Err(Null),
            },
        },
        JsCase {
            what: "a repeated key keeps its last value and counts once",
            frame: msg(&[("id", Int(1)), ("id", Int(2))]),
            expect: Expect::Message { id: Some(2) },
        },
        JsCase {
            what: "a repeated result keeps its last value",
            frame: obj(&[("result", List(vec![Int(1)])), ("id", Int(9)), ("result", Int(2))]),
            expect: Expect::Reply {
                id: 9,
                outcome: Ok(Int(2)),
            },
        },
    ];
    let names = |expect: &Expect, values: Vec<Shape>| -> Vec<JsCase> {
        let falsy = *expect == Expect::FalsyName;
        values
            .into_iter()
            .map(|name| JsCase {
                what: if falsy { "a falsy name" } else { "a truthy name" },
                frame: if falsy {
                    obj(&[("name", name), ("id", Int(1)), ("result", Null)])
                } else {
                    obj(&[("name", name)])
                },
                expect: expect.clone(),
            })
            .collect()
    };
    cases.extend(names(
        &Expect::FalsyName,
        vec![
            Null,
            Bool(false),
            Int(0),
            Float(0.0),
            Float(-0.0),
            Float(f64::NAN),
            Str(""),
        ],
    ));
    cases.extend(names(
        &Expect::TruthyName,
        vec![Bool(true), Int(-1), Float(0.5), List(vec![]), obj(&[])],
    ));
    cases
}

//! Envelope shapes ([protocol § Envelopes](crate::protocol#envelopes)) and
//! the validation rules ([protocol § Validation](crate::protocol#validation)),
//! shared by every codec.
//!
//! A codec decodes a frame into a [`RawEnvelope`], a loose description of
//! what the frame held; [`validate`] applies the rules of the JavaScript
//! package (`validate()` in its `Client.js`) and yields a [`Frame`].

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

use crate::error::PreprocessError;
use bytes::Bytes;
use bytestring::ByteString;
use serde::ser::{Serialize, SerializeMap, Serializer};

/// An event or procedure name as received: UTF-8 text that is usually a
/// slice of the frame it came in, so reading a name neither copies nor
/// allocates. It reads as a `&str` (`Deref`, [`as_str`](Name::as_str)) and
/// compares with strings.
///
/// ```
/// use bytes::Bytes;
/// use ws_messaging_core::envelope::Name;
///
/// let frame = Bytes::from_static(br#"{"name":"echo","args":[]}"#);
/// let name = Name::from_utf8(frame.slice(9..13)).unwrap();
/// assert_eq!(name, "echo");
/// assert_eq!(name.len(), 4);
/// assert_eq!(String::from(name), "echo");
/// ```
//
// The bytes are checked as UTF-8 once, when the name is made, and kept in a
// `ByteString`, which reads them as `&str` without checking again. Hashing
// goes through the `&str`, so that `Borrow<str>` lookups find it.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Name(ByteString);

impl Name {
    /// A name from a string constant (no allocation).
    pub const fn from_static(name: &'static str) -> Self {
        Name(ByteString::from_static(name))
    }

    /// A name from bytes that must be UTF-8 (they are kept, not copied).
    #[inline]
    pub fn from_utf8(bytes: Bytes) -> Result<Self, std::str::Utf8Error> {
        ByteString::try_from(bytes).map(Name)
    }

    /// A name from bytes, invalid UTF-8 sequences replaced with U+FFFD
    /// (what the JavaScript package's binary decoders do). Valid bytes are
    /// kept, not copied.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use ws_messaging_core::envelope::Name;
    ///
    /// assert_eq!(Name::from_utf8_lossy(Bytes::from_static(b"echo")), "echo");
    /// assert_eq!(Name::from_utf8_lossy(Bytes::from_static("été".as_bytes())), "été");
    /// assert_eq!(Name::from_utf8_lossy(Bytes::from_static(b"\xe9t\xc3\xa9")), "\u{fffd}t\u{e9}");
    /// ```
    #[inline]
    pub fn from_utf8_lossy(bytes: Bytes) -> Self {
        // Looked at before it is handed over (no second reference to
        // count): ASCII, the usual name, at a glance.
        if !bytes.is_ascii() && std::str::from_utf8(&bytes).is_err() {
            return Name::from(String::from_utf8_lossy(&bytes).into_owned());
        }
        Name::from_utf8(bytes).unwrap_or_default()
    }

    /// The name as a string slice.
    #[inline]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Hash for Name {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl Deref for Name {
    type Target = str;

    #[inline]
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for Name {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<String> for Name {
    fn from(name: String) -> Self {
        Name(ByteString::from(name))
    }
}

impl From<&str> for Name {
    fn from(name: &str) -> Self {
        Name(ByteString::from(name))
    }
}

impl From<Name> for String {
    fn from(name: Name) -> Self {
        name.as_str().to_owned()
    }
}

impl PartialEq<str> for Name {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Name {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Name {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other.as_str()
    }
}

impl PartialEq<Name> for str {
    fn eq(&self, other: &Name) -> bool {
        other == self
    }
}

impl PartialEq<Name> for &str {
    fn eq(&self, other: &Name) -> bool {
        other == self
    }
}

/// A message's arguments, each still encoded in the codec's format (a raw
/// slice of the frame, as a rule). It reads as a slice of [`Bytes`]
/// (`Deref`), iterates by value, and holds one argument, the usual case,
/// without allocating.
///
/// ```
/// use bytes::Bytes;
/// use ws_messaging_core::envelope::ArgList;
///
/// let mut args = ArgList::new();
/// args.push(Bytes::from_static(b"1"));
/// assert_eq!(args.len(), 1);
/// assert_eq!(&args[0][..], b"1");
/// args.push(Bytes::from_static(b"[2]"));
/// let all: Vec<Bytes> = args.into_iter().collect();
/// assert_eq!(all.len(), 2);
/// ```
#[derive(Clone, Default)]
pub struct ArgList {
    args: Args,
    /// Every argument is a slice that the codec's own envelope reader
    /// checked (see [`Codec::decode_enveloped`](crate::Codec::decode_enveloped)).
    enveloped: bool,
}

#[derive(Clone, Default)]
enum Args {
    #[default]
    None,
    One(Bytes),
    Many(Vec<Bytes>),
}

impl ArgList {
    /// No arguments.
    pub const fn new() -> Self {
        ArgList {
            args: Args::None,
            enveloped: false,
        }
    }

    /// Adds an argument at the end.
    #[inline]
    pub fn push(&mut self, arg: Bytes) {
        // An argument from elsewhere was not checked by an envelope reader.
        self.enveloped = false;
        match &mut self.args {
            Args::None => self.args = Args::One(arg),
            Args::Many(all) => all.push(arg),
            Args::One(_) => {
                if let Args::One(first) = std::mem::take(&mut self.args) {
                    self.args = Args::Many(vec![first, arg]);
                }
            }
        }
    }

    /// The arguments as a `Vec`.
    #[inline]
    pub fn into_vec(self) -> Vec<Bytes> {
        match self.args {
            Args::None => Vec::new(),
            Args::One(arg) => vec![arg],
            Args::Many(all) => all,
        }
    }

    /// Marks the arguments as slices that a codec's
    /// [`decode_envelope`](crate::Codec::decode_envelope) took out of a
    /// frame and checked, so that [`FromArgs`](crate::FromArgs) decodes
    /// them with [`Codec::decode_enveloped`](crate::Codec::decode_enveloped).
    /// For codecs: call it on the list an envelope reader built, when that
    /// reader checks arguments as `decode_value` would. Adding an argument
    /// afterwards ([`push`](Self::push)) removes the mark.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use ws_messaging_core::envelope::ArgList;
    ///
    /// let mut args = ArgList::from(vec![Bytes::from_static(b"1")]).into_enveloped();
    /// assert!(args.is_enveloped());
    /// args.push(Bytes::from_static(b"2"));
    /// assert!(!args.is_enveloped());
    /// ```
    #[inline]
    pub fn into_enveloped(mut self) -> Self {
        self.mark_enveloped();
        self
    }

    /// [`into_enveloped`](Self::into_enveloped) in place, for a list that
    /// a reader fills where it lies.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use ws_messaging_core::envelope::{ArgList, ArgsField};
    ///
    /// let mut field = ArgsField::List(ArgList::new());
    /// if let ArgsField::List(args) = &mut field {
    ///     args.push(Bytes::from_static(b"1"));
    ///     args.mark_enveloped();
    /// }
    /// assert!(matches!(field, ArgsField::List(args) if args.is_enveloped()));
    /// ```
    #[inline]
    pub fn mark_enveloped(&mut self) {
        self.enveloped = true;
    }

    /// Whether the arguments are marked as checked by a codec's envelope
    /// reader ([`into_enveloped`](Self::into_enveloped)).
    #[inline]
    pub fn is_enveloped(&self) -> bool {
        self.enveloped
    }
}

impl Deref for ArgList {
    type Target = [Bytes];

    #[inline]
    fn deref(&self) -> &[Bytes] {
        match &self.args {
            Args::None => &[],
            Args::One(arg) => std::slice::from_ref(arg),
            Args::Many(all) => all,
        }
    }
}

impl PartialEq for ArgList {
    fn eq(&self, other: &ArgList) -> bool {
        self[..] == other[..]
    }
}

impl Eq for ArgList {}

impl fmt::Debug for ArgList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl From<Vec<Bytes>> for ArgList {
    fn from(all: Vec<Bytes>) -> Self {
        match all.len() {
            0 => ArgList::new(),
            1 => all.into_iter().collect(),
            _ => ArgList {
                args: Args::Many(all),
                enveloped: false,
            },
        }
    }
}

impl From<ArgList> for Vec<Bytes> {
    fn from(args: ArgList) -> Self {
        args.into_vec()
    }
}

impl FromIterator<Bytes> for ArgList {
    fn from_iter<I: IntoIterator<Item = Bytes>>(iter: I) -> Self {
        let mut args = ArgList::new();
        for arg in iter {
            args.push(arg);
        }
        args
    }
}

impl<'a> IntoIterator for &'a ArgList {
    type Item = &'a Bytes;
    type IntoIter = std::slice::Iter<'a, Bytes>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl IntoIterator for ArgList {
    type Item = Bytes;
    type IntoIter = ArgIter;

    fn into_iter(self) -> ArgIter {
        ArgIter(match self.args {
            Args::None => Iter::One(None),
            Args::One(arg) => Iter::One(Some(arg)),
            Args::Many(all) => Iter::Many(all.into_iter()),
        })
    }
}

/// The arguments of an [`ArgList`], by value.
#[derive(Debug)]
pub struct ArgIter(Iter);

#[derive(Debug)]
enum Iter {
    One(Option<Bytes>),
    Many(std::vec::IntoIter<Bytes>),
}

impl Iterator for ArgIter {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        match &mut self.0 {
            Iter::One(arg) => arg.take(),
            Iter::Many(all) => all.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.0 {
            Iter::One(arg) => (usize::from(arg.is_some()), Some(usize::from(arg.is_some()))),
            Iter::Many(all) => all.size_hint(),
        }
    }
}

impl ExactSizeIterator for ArgIter {}

/// The `name` field as found in a frame, classified the way JavaScript's
/// truthiness sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum NameField {
    /// No `name` key.
    #[default]
    Absent,
    /// A falsy value: `null`, `false`, `0`, `""` (the frame is then an ack).
    Falsy,
    /// A non-empty string.
    Str(Name),
    /// Any other truthy value (a number, an array...): an invalid message.
    Other,
}

/// The `id` field as found in a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IdField {
    /// No `id` key.
    #[default]
    Absent,
    /// A whole number greater than 0 (a float such as `2.0` counts, as in
    /// JavaScript).
    Valid(u64),
    /// Present but not a whole number greater than 0 (or beyond `u64`).
    Invalid,
}

impl IdField {
    /// Classifies a float id the way JavaScript's `validateId` does.
    #[inline]
    pub fn from_f64(v: f64) -> Self {
        if v.is_finite() && v.fract() == 0.0 && v > 0.0 && v <= u64::MAX as f64 {
            IdField::Valid(v as u64)
        } else {
            IdField::Invalid
        }
    }

    /// Classifies a signed integer id.
    #[inline]
    pub fn from_i64(v: i64) -> Self {
        if v > 0 {
            IdField::Valid(v as u64)
        } else {
            IdField::Invalid
        }
    }

    /// Classifies an unsigned integer id.
    #[inline]
    pub fn from_u64(v: u64) -> Self {
        if v > 0 {
            IdField::Valid(v)
        } else {
            IdField::Invalid
        }
    }
}

/// The `args` field as found in a frame.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ArgsField {
    /// No `args` key.
    #[default]
    Absent,
    /// An array: each element as a raw slice in the codec's format.
    List(ArgList),
    /// Present but not an array.
    Invalid,
}

/// A key of an envelope map, as a codec reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// `name`
    Name,
    /// `args`
    Args,
    /// `id`
    Id,
    /// `result`
    Result,
    /// `error`
    Error,
    /// Any other key.
    Other,
}

impl Key {
    /// Classifies a key given as UTF-8 bytes.
    #[inline]
    pub fn from_bytes(key: &[u8]) -> Key {
        match key {
            b"name" => Key::Name,
            b"args" => Key::Args,
            b"id" => Key::Id,
            b"result" => Key::Result,
            b"error" => Key::Error,
            _ => Key::Other,
        }
    }
}

/// Counts the keys of an envelope map for [`RawEnvelope::keys`], the way
/// `Object.keys` does for a decoded JavaScript object: a repeated known key
/// counts once (its last value wins). Every unknown key counts, which can
/// only make an already invalid envelope more so.
#[derive(Debug, Clone, Copy, Default)]
pub struct KeyCount {
    seen: [bool; 5],
    unknown: usize,
}

impl KeyCount {
    /// Notes one key.
    #[inline]
    pub fn add(&mut self, key: Key) {
        match key {
            Key::Other => self.unknown += 1,
            known => self.seen[known as usize] = true,
        }
    }

    /// The number of distinct keys.
    #[inline]
    pub fn total(&self) -> usize {
        self.unknown + self.seen.iter().filter(|s| **s).count()
    }
}

/// What a codec found in a frame, before validation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RawEnvelope {
    /// Whether the frame's top level is a map (object). Anything else fails
    /// validation.
    pub is_map: bool,
    /// Number of distinct keys in the map, known or not.
    pub keys: usize,
    /// The `name` key.
    pub name: NameField,
    /// The `args` key.
    pub args: ArgsField,
    /// The `id` key.
    pub id: IdField,
    /// The raw `result` value, if the key is present.
    pub result: Option<Bytes>,
    /// The raw `error` value, if the key is present.
    pub error: Option<Bytes>,
}

impl RawEnvelope {
    /// The envelope of a frame whose top level is not a map.
    pub fn not_a_map() -> Self {
        RawEnvelope::default()
    }
}

/// A validated envelope, arguments and results still raw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// An event (`id` is `None`) or an invoke call.
    Message {
        /// The event or procedure name.
        name: Name,
        /// The positional arguments, each still encoded.
        args: ArgList,
        /// The invoke id.
        id: Option<u64>,
    },
    /// The reply to an invoke: `Ok(result)` or `Err(error)`, still encoded.
    Reply {
        /// The id of the invoke being answered.
        id: u64,
        /// The raw result or error.
        outcome: Result<Bytes, Bytes>,
    },
}

impl Frame {
    /// The message name, for a message.
    pub fn name(&self) -> Option<&str> {
        match self {
            Frame::Message { name, .. } => Some(name),
            Frame::Reply { .. } => None,
        }
    }
}

/// Applies the envelope rules ([protocol § Envelopes](crate::protocol#envelopes),
/// [protocol § Validation](crate::protocol#validation)).
///
/// With `strict == false` (the "skip validation" switch) the key counts and
/// id checks are not enforced; a frame that cannot be routed at all (no
/// string name and no usable id) is still refused.
#[inline]
pub fn validate(raw: RawEnvelope, strict: bool) -> Result<Frame, PreprocessError> {
    if !raw.is_map {
        return Err(PreprocessError::Validation);
    }
    match raw.name {
        NameField::Str(name) => {
            let args = match raw.args {
                ArgsField::List(args) => args,
                ArgsField::Absent if !strict => ArgList::new(),
                _ => return Err(PreprocessError::Validation),
            };
            let id = match (raw.keys, raw.id) {
                (2, IdField::Absent) => None,
                (3, IdField::Valid(id)) => Some(id),
                (_, IdField::Valid(id)) if !strict => Some(id),
                (_, _) if !strict => None,
                _ => return Err(PreprocessError::Validation),
            };
            Ok(Frame::Message { name, args, id })
        }
        NameField::Other => Err(PreprocessError::Validation),
        NameField::Absent | NameField::Falsy => {
            let IdField::Valid(id) = raw.id else {
                return Err(PreprocessError::Validation);
            };
            if strict && raw.keys != 2 {
                return Err(PreprocessError::Validation);
            }
            let outcome = match (raw.error, raw.result) {
                (Some(error), _) => Err(error),
                (None, Some(result)) => Ok(result),
                (None, None) => return Err(PreprocessError::Validation),
            };
            Ok(Frame::Reply { id, outcome })
        }
    }
}

/// A message envelope ready to serialize with serde, as the map
/// `{name, args}` or `{name, args, id}` in that key order. Serde-based codecs
/// (JSON, MessagePack, CBOR) serialize it directly.
pub struct MessageOut<'a, A: ?Sized> {
    /// The name.
    pub name: &'a str,
    /// The argument sequence.
    pub args: &'a A,
    /// The invoke id.
    pub id: Option<u64>,
}

impl<A: ?Sized> fmt::Debug for MessageOut<'_, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageOut")
            .field("name", &self.name)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl<A: Serialize + ?Sized> Serialize for MessageOut<'_, A> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(if self.id.is_some() { 3 } else { 2 }))?;
        map.serialize_entry("name", self.name)?;
        map.serialize_entry("args", self.args)?;
        if let Some(id) = self.id {
            map.serialize_entry("id", &id)?;
        }
        map.end()
    }
}

/// An ack envelope ready to serialize with serde, as the map `{id, result}`
/// or `{id, error}` in that key order.
pub struct ReplyOut<'a, T: ?Sized> {
    /// The id of the invoke being answered.
    pub id: u64,
    /// The result, or the formatted error.
    pub reply: Result<&'a T, &'a serde_json::Value>,
}

impl<T: ?Sized> fmt::Debug for ReplyOut<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplyOut").field("id", &self.id).finish_non_exhaustive()
    }
}

impl<T: Serialize + ?Sized> Serialize for ReplyOut<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry("id", &self.id)?;
        match self.reply {
            Ok(result) => map.serialize_entry("result", result)?,
            Err(error) => map.serialize_entry("error", error)?,
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(keys: usize, name: NameField, args: ArgsField, id: IdField) -> RawEnvelope {
        RawEnvelope {
            is_map: true,
            keys,
            name,
            args,
            id,
            result: None,
            error: None,
        }
    }

    #[test]
    fn message_rules() {
        let ok = msg(
            2,
            NameField::Str("a".into()),
            ArgsField::List(ArgList::new()),
            IdField::Absent,
        );
        assert!(matches!(validate(ok, true), Ok(Frame::Message { id: None, .. })));
        let call = msg(
            3,
            NameField::Str("a".into()),
            ArgsField::List(ArgList::new()),
            IdField::Valid(7),
        );
        assert!(matches!(validate(call, true), Ok(Frame::Message { id: Some(7), .. })));
        for bad in [
            msg(
                3,
                NameField::Str("a".into()),
                ArgsField::List(ArgList::new()),
                IdField::Invalid,
            ),
            msg(
                3,
                NameField::Str("a".into()),
                ArgsField::List(ArgList::new()),
                IdField::Absent,
            ),
            msg(2, NameField::Str("a".into()), ArgsField::Invalid, IdField::Absent),
            msg(1, NameField::Str("a".into()), ArgsField::Absent, IdField::Absent),
            msg(2, NameField::Other, ArgsField::List(ArgList::new()), IdField::Absent),
            msg(
                4,
                NameField::Str("a".into()),
                ArgsField::List(ArgList::new()),
                IdField::Valid(1),
            ),
        ] {
            assert_eq!(validate(bad, true), Err(PreprocessError::Validation));
        }
        assert_eq!(
            validate(RawEnvelope::not_a_map(), true),
            Err(PreprocessError::Validation)
        );
    }

    #[test]
    fn ack_rules() {
        let mut ack = msg(2, NameField::Absent, ArgsField::Absent, IdField::Valid(1));
        ack.result = Some(Bytes::from_static(b"1"));
        assert!(matches!(
            validate(ack.clone(), true),
            Ok(Frame::Reply { id: 1, outcome: Ok(_) })
        ));
        ack.keys = 3;
        assert_eq!(validate(ack.clone(), true), Err(PreprocessError::Validation));
        assert!(validate(ack, false).is_ok());
        let mut no_value = msg(2, NameField::Falsy, ArgsField::Absent, IdField::Valid(1));
        assert_eq!(validate(no_value.clone(), true), Err(PreprocessError::Validation));
        no_value.error = Some(Bytes::from_static(b"\"e\""));
        assert!(matches!(
            validate(no_value, true),
            Ok(Frame::Reply { outcome: Err(_), .. })
        ));
    }

    #[test]
    fn names_hash_compare_and_order_as_their_text() {
        use std::collections::{BTreeSet, HashMap};
        use std::hash::BuildHasher;

        let hasher = std::collections::hash_map::RandomState::new();
        let frame = Bytes::from_static(b"xx\xc3\xa9t\xc3\xa9");
        for name in [
            Name::from_static("echo"),
            Name::from("echo".to_string()),
            Name::from_utf8(frame.slice(2..)).unwrap(),
            Name::default(),
        ] {
            assert_eq!(hasher.hash_one(&name), hasher.hash_one(name.as_str()), "{name:?}");
        }
        let mut listeners = HashMap::new();
        listeners.insert(Name::from_utf8(frame.slice(2..)).unwrap(), 1);
        assert_eq!(listeners.get("été"), Some(&1));
        let sorted: Vec<String> = ["b", "é", "a", "ab", ""]
            .into_iter()
            .map(Name::from)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .map(String::from)
            .collect();
        assert_eq!(sorted, ["", "a", "ab", "b", "é"]);
        let name = Name::from_utf8(frame.slice(2..)).unwrap();
        assert_eq!(name, "été");
        assert_eq!("été", name);
        assert_eq!(name, *"été");
        assert_eq!(*"été", name);
        assert_eq!(name, "été".to_string());
        assert_ne!(name, "ét");
        assert_ne!("étés", name);
        assert!(Name::from_utf8(frame.slice(3..)).is_err());
        assert_eq!(Name::from_utf8_lossy(frame.slice(3..)), "\u{fffd}t\u{e9}");
    }

    #[test]
    fn ids_follow_javascript() {
        assert_eq!(IdField::from_f64(2.0), IdField::Valid(2));
        assert_eq!(IdField::from_f64(1.5), IdField::Invalid);
        assert_eq!(IdField::from_f64(0.0), IdField::Invalid);
        assert_eq!(IdField::from_f64(-3.0), IdField::Invalid);
        assert_eq!(IdField::from_f64(f64::NAN), IdField::Invalid);
        assert_eq!(IdField::from_i64(-1), IdField::Invalid);
        assert_eq!(IdField::from_u64(0), IdField::Invalid);
    }
}

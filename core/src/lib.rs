//! The codec kit of ws-messaging: everything a wire format needs, and
//! nothing of the runtime (no tokio, no WebSocket library).
//!
//! A codec crate (JSON, MessagePack, CBOR, protobuf, bincode, or your own)
//! depends on this crate alone; applications use the `ws-messaging` crate,
//! which re-exports all of it under the same paths (`ws_messaging::Codec`,
//! `ws_messaging::envelope::validate`, ...), and pick a codec crate.
//!
//! What is here:
//! - [`Codec`]: the trait a wire format implements, and its contract;
//! - [`envelope`]: the shapes a codec reads a frame into ([`RawEnvelope`](envelope::RawEnvelope))
//!   and the validation rules shared by every format ([`envelope::validate`] gives a [`Frame`]);
//! - the payload layer: [`Args`] (argument lists to encode), [`FromArgs`]
//!   (argument lists decoded straight into a handler's types),
//!   [`RawArgs`] and [`RawValue`];
//! - [`protocol`]: the protocol's account, its constants and close codes;
//! - [`reader`]: a bounds-checked envelope reader for binary formats whose
//!   values start with a self-delimiting head (MessagePack, CBOR), written
//!   once, with the nesting limit;
//! - [`writer`]: the envelope writers, written once: for formats whose
//!   envelope is a map (JSON, MessagePack, CBOR) over the format's
//!   primitives ([`writer::Format`]), and the argument-list splitter of
//!   formats that frame each argument on its own (bincode, protobuf);
//! - [`lenient`]: number leniency for values written by JavaScript encoders;
//! - [`schema`]: a codec that wraps another and refuses frames its rules reject;
//! - the codec-side errors: [`CodecError`], [`CheckError`],
//!   [`PreprocessError`], [`SharedError`], [`BoxError`].
//!
//! ```
//! use ws_messaging_core::envelope::{validate, ArgList, ArgsField, IdField, NameField, RawEnvelope};
//! use ws_messaging_core::Frame;
//!
//! // What a codec read from `{"name":"echo","args":[],"id":7}`.
//! let raw = RawEnvelope {
//!     is_map: true,
//!     keys: 3,
//!     name: NameField::Str("echo".into()),
//!     args: ArgsField::List(ArgList::new()),
//!     id: IdField::Valid(7),
//!     result: None,
//!     error: None,
//! };
//! let frame = validate(raw, true).unwrap();
//! assert!(matches!(frame, Frame::Message { id: Some(7), .. }));
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod codec;
pub mod envelope;
mod error;
pub mod lenient;
mod payload;
pub mod protocol;
pub mod reader;
pub mod schema;
pub mod writer;

pub use codec::{Codec, FrameKind};
pub use envelope::{ArgList, Frame, Name};
pub use error::{BoxError, CheckError, CodecError, PreprocessError, SharedError};
pub use payload::{Args, FromArgs, RawArgs, RawValue};
pub use protocol::{CloseCode, RESERVED_NAMES, SUBPROTOCOL};

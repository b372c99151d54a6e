//! What nodes say to each other on the bus: one binary message per Redis
//! PUBLISH. Every message starts with the format version, its kind and the
//! sending node's id; frames travel as the codec encoded them, untouched.
//!
//! A message that does not parse (another program publishing on the
//! channel, a newer format) is ignored.
//!
//! Version 2 is version 1 with a third list in a target, the connections
//! it names by id ([`Target::connections`]), after its rooms and its
//! exceptions; a message is written in version 2 only when its target
//! names connections, so everything else stays readable by version-1
//! nodes, and a version-1 node ignores a send to a connection rather than
//! taking the id for a room.

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use ws_messaging::adapter::{Appended, Described, Target};

/// The format version of messages whose target names no connection; a
/// node ignores messages of a version it does not know.
const VERSION: u8 = 1;
/// The format version of messages whose target names connections.
const VERSION_CONNECTIONS: u8 = 2;

/// The most rooms one list of a target (its rooms, or its exceptions) may
/// name on the bus: a message claiming more is ignored, and a send naming
/// more is refused before it is published.
pub(crate) const MAX_ROOMS: usize = 1 << 20;

/// The most connection ids one node's answer to `Ids` may carry; a longer
/// answer is ignored.
const MAX_IDS: usize = 1 << 22;

/// One message on the bus.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Bus {
    /// An event frame for the connections `target` selects.
    Broadcast { target: Target, frame: Bytes },
    /// The sender is alive.
    Heartbeat,
    /// The sender leaves the cluster.
    Bye,
    /// Close the connections `target` selects.
    Disconnect { target: Target, code: u16, reason: String },
    /// How many connections does `target` select on your node?
    Count { request: u64, target: Target },
    /// Which connections does `target` select on your node?
    Ids { request: u64, target: Target },
    /// Which connections does `target` select on your node, with their
    /// rooms and info?
    Describe { request: u64, target: Target },
    /// Invoke `frame` (invoke id `id`) on the connections `target` selects.
    Invoke {
        request: u64,
        target: Target,
        id: u64,
        timeout: Duration,
        frame: Bytes,
    },
    /// The answer to `Count`.
    Counted { request: u64, count: u64 },
    /// The answer to `Ids`.
    Listed { request: u64, ids: Vec<String> },
    /// The answer to `Describe`.
    Described { request: u64, connections: Vec<Described> },
    /// One connection's answer to `Invoke`.
    Ack {
        request: u64,
        connection: String,
        outcome: Outcome,
    },
    /// Every answer of this node to `Invoke` was sent.
    AckDone { request: u64 },
    /// Put the connections `target` selects on your node in `room`, then
    /// answer `Counted` once your node hears the room.
    Join { request: u64, target: Target, room: String },
    /// Take the connections `target` selects on your node out of `room`,
    /// then answer `Counted`.
    Leave { request: u64, target: Target, room: String },
    /// A recoverable event, as the append script published it: where it
    /// was appended (each partition, epoch, offset), when (microseconds of
    /// the Redis clock), and the event for the connections `target`
    /// selects. Never encoded by a node: the script writes it
    /// ([`logged_header`], [`logged_body`]).
    Logged {
        appended: Vec<Appended>,
        time: u64,
        target: Target,
        frame: Bytes,
    },
}

impl Bus {
    /// The target a message selects connections with, if it has one.
    pub(crate) fn target(&self) -> Option<&Target> {
        match self {
            Bus::Broadcast { target, .. }
            | Bus::Disconnect { target, .. }
            | Bus::Count { target, .. }
            | Bus::Ids { target, .. }
            | Bus::Describe { target, .. }
            | Bus::Invoke { target, .. }
            | Bus::Join { target, .. }
            | Bus::Leave { target, .. } => Some(target),
            _ => None,
        }
    }
}

/// The larger list of `target` (rooms or exceptions) when it names more than
/// [`MAX_ROOMS`]: no node would accept the message.
pub(crate) fn oversized(target: &Target) -> Option<usize> {
    let longest = target.rooms().len().max(target.except().len());
    (longest > MAX_ROOMS).then_some(longest)
}

/// [`ws_messaging::adapter::AckOutcome`] on the bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    Result(Bytes),
    Error(Bytes),
    Timeout,
    Closed,
}

/// A message with the node that sent it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Envelope {
    pub(crate) sender: String,
    pub(crate) message: Bus,
}

const BROADCAST: u8 = 1;
const HEARTBEAT: u8 = 2;
const BYE: u8 = 3;
const DISCONNECT: u8 = 4;
const COUNT: u8 = 5;
const IDS: u8 = 6;
const INVOKE: u8 = 7;
const COUNTED: u8 = 8;
const LISTED: u8 = 9;
const ACK: u8 = 10;
const ACK_DONE: u8 = 11;
const LOGGED: u8 = 12;
const JOIN: u8 = 13;
const LEAVE: u8 = 14;
const DESCRIBE: u8 = 15;
const DESCRIBED: u8 = 16;

/// The start of a `Logged` message from `sender`: the append script adds
/// the positions and the time (each a 4-byte big-endian length and its
/// text), then the [`logged_body`].
pub(crate) fn logged_header(sender: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(8 + sender.len());
    out.put_u8(VERSION);
    out.put_u8(LOGGED);
    put_str(&mut out, sender);
    out.freeze()
}

/// A recoverable event's target and frame, as a log entry keeps them: the
/// target's format version, the target, the frame.
pub(crate) fn logged_body(target: &Target, frame: &[u8]) -> Bytes {
    let version = if target.connections().is_empty() {
        VERSION
    } else {
        VERSION_CONNECTIONS
    };
    let mut out = BytesMut::with_capacity(16 + frame.len());
    out.put_u8(version);
    put_target(&mut out, target, version);
    out.put_slice(frame);
    out.freeze()
}

/// The target and frame of a [`logged_body`].
pub(crate) fn decode_logged_body(mut data: Bytes) -> Option<(Target, Bytes)> {
    let version = get_u8(&mut data)?;
    if version != VERSION && version != VERSION_CONNECTIONS {
        return None;
    }
    let target = get_target(&mut data, version)?;
    Some((target, data))
}

/// Parses the positions an append script wrote: `P:EPOCH:OFFSET`,
/// comma-separated.
pub(crate) fn parse_appended(text: &str) -> Option<Vec<Appended>> {
    text.split(',')
        .map(|item| {
            let mut parts = item.split(':');
            let (Some(p), Some(epoch), Some(offset), None) = (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return None;
            };
            Some(Appended {
                partition: p.parse().ok()?,
                epoch: epoch.to_string(),
                offset: offset.parse().ok()?,
            })
        })
        .collect()
}

pub(crate) fn encode(sender: &str, message: &Bus) -> Bytes {
    let mut out = BytesMut::with_capacity(64);
    let version = match message {
        Bus::Broadcast { target, .. }
        | Bus::Disconnect { target, .. }
        | Bus::Count { target, .. }
        | Bus::Ids { target, .. }
        | Bus::Describe { target, .. }
        | Bus::Invoke { target, .. }
        | Bus::Join { target, .. }
        | Bus::Leave { target, .. }
            if !target.connections().is_empty() =>
        {
            VERSION_CONNECTIONS
        }
        _ => VERSION,
    };
    out.put_u8(version);
    let kind = match message {
        Bus::Broadcast { .. } => BROADCAST,
        Bus::Heartbeat => HEARTBEAT,
        Bus::Bye => BYE,
        Bus::Disconnect { .. } => DISCONNECT,
        Bus::Count { .. } => COUNT,
        Bus::Ids { .. } => IDS,
        Bus::Describe { .. } => DESCRIBE,
        Bus::Described { .. } => DESCRIBED,
        Bus::Invoke { .. } => INVOKE,
        Bus::Logged { .. } => LOGGED,
        Bus::Join { .. } => JOIN,
        Bus::Leave { .. } => LEAVE,
        Bus::Counted { .. } => COUNTED,
        Bus::Listed { .. } => LISTED,
        Bus::Ack { .. } => ACK,
        Bus::AckDone { .. } => ACK_DONE,
    };
    out.put_u8(kind);
    put_str(&mut out, sender);
    match message {
        Bus::Heartbeat | Bus::Bye => {}
        Bus::Broadcast { target, frame } => {
            put_target(&mut out, target, version);
            out.put_slice(frame);
        }
        Bus::Disconnect { target, code, reason } => {
            put_target(&mut out, target, version);
            out.put_u16(*code);
            put_str(&mut out, reason);
        }
        Bus::Count { request, target } | Bus::Ids { request, target } | Bus::Describe { request, target } => {
            out.put_u64(*request);
            put_target(&mut out, target, version);
        }
        Bus::Invoke {
            request,
            target,
            id,
            timeout,
            frame,
        } => {
            out.put_u64(*request);
            put_target(&mut out, target, version);
            out.put_u64(*id);
            out.put_u64(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX));
            out.put_slice(frame);
        }
        Bus::Counted { request, count } => {
            out.put_u64(*request);
            out.put_u64(*count);
        }
        Bus::Join { request, target, room } | Bus::Leave { request, target, room } => {
            out.put_u64(*request);
            put_target(&mut out, target, version);
            put_str(&mut out, room);
        }
        Bus::Listed { request, ids } => {
            out.put_u64(*request);
            out.put_u32(ids.len() as u32);
            for id in ids {
                put_str(&mut out, id);
            }
        }
        Bus::Described { request, connections } => {
            out.put_u64(*request);
            out.put_u32(connections.len() as u32);
            for connection in connections {
                put_str(&mut out, &connection.id);
                out.put_u32(connection.rooms.len() as u32);
                for room in &connection.rooms {
                    put_str(&mut out, room);
                }
                match &connection.info {
                    None => out.put_u8(0),
                    Some(info) => {
                        out.put_u8(1);
                        out.put_u32(info.len() as u32);
                        out.put_slice(info);
                    }
                }
            }
        }
        Bus::Ack {
            request,
            connection,
            outcome,
        } => {
            out.put_u64(*request);
            put_str(&mut out, connection);
            match outcome {
                Outcome::Result(raw) => {
                    out.put_u8(0);
                    out.put_slice(raw);
                }
                Outcome::Error(raw) => {
                    out.put_u8(1);
                    out.put_slice(raw);
                }
                Outcome::Timeout => out.put_u8(2),
                Outcome::Closed => out.put_u8(3),
            }
        }
        Bus::AckDone { request } => out.put_u64(*request),
        Bus::Logged {
            appended,
            time,
            target,
            frame,
        } => {
            let text: Vec<String> = appended
                .iter()
                .map(|a| format!("{}:{}:{}", a.partition, a.epoch, a.offset))
                .collect();
            put_str(&mut out, &text.join(","));
            put_str(&mut out, &time.to_string());
            out.put_slice(&logged_body(target, frame));
        }
    }
    out.freeze()
}

/// Reads a bus message; `None` for anything malformed or of another
/// version.
pub(crate) fn decode(mut data: Bytes) -> Option<Envelope> {
    let data = &mut data;
    let version = get_u8(data)?;
    if version != VERSION && version != VERSION_CONNECTIONS {
        return None;
    }
    let kind = get_u8(data)?;
    let sender = get_str(data)?;
    let message = match kind {
        BROADCAST => Bus::Broadcast {
            target: get_target(data, version)?,
            frame: std::mem::take(data),
        },
        HEARTBEAT => Bus::Heartbeat,
        BYE => Bus::Bye,
        DISCONNECT => Bus::Disconnect {
            target: get_target(data, version)?,
            code: get_u16(data)?,
            reason: get_str(data)?,
        },
        COUNT => Bus::Count {
            request: get_u64(data)?,
            target: get_target(data, version)?,
        },
        JOIN => Bus::Join {
            request: get_u64(data)?,
            target: get_target(data, version)?,
            room: get_str(data)?,
        },
        LEAVE => Bus::Leave {
            request: get_u64(data)?,
            target: get_target(data, version)?,
            room: get_str(data)?,
        },
        IDS => Bus::Ids {
            request: get_u64(data)?,
            target: get_target(data, version)?,
        },
        DESCRIBE => Bus::Describe {
            request: get_u64(data)?,
            target: get_target(data, version)?,
        },
        DESCRIBED => {
            let request = get_u64(data)?;
            let n = get_u32(data)? as usize;
            if n > MAX_IDS {
                return None;
            }
            let mut connections = Vec::with_capacity(n.min(1024));
            for _ in 0..n {
                let id = get_str(data)?;
                let rooms = get_list(data, MAX_ROOMS)?;
                let info = match get_u8(data)? {
                    0 => None,
                    1 => {
                        let len = get_u32(data)? as usize;
                        if data.len() < len {
                            return None;
                        }
                        Some(data.split_to(len))
                    }
                    _ => return None,
                };
                connections.push(Described { id, rooms, info });
            }
            Bus::Described { request, connections }
        }
        INVOKE => Bus::Invoke {
            request: get_u64(data)?,
            target: get_target(data, version)?,
            id: get_u64(data)?,
            timeout: Duration::from_millis(get_u64(data)?),
            frame: std::mem::take(data),
        },
        COUNTED => Bus::Counted {
            request: get_u64(data)?,
            count: get_u64(data)?,
        },
        LISTED => {
            let request = get_u64(data)?;
            Bus::Listed {
                request,
                ids: get_list(data, MAX_IDS)?,
            }
        }
        ACK => {
            let request = get_u64(data)?;
            let connection = get_str(data)?;
            let outcome = match get_u8(data)? {
                0 => Outcome::Result(std::mem::take(data)),
                1 => Outcome::Error(std::mem::take(data)),
                2 => Outcome::Timeout,
                3 => Outcome::Closed,
                _ => return None,
            };
            Bus::Ack {
                request,
                connection,
                outcome,
            }
        }
        ACK_DONE => Bus::AckDone {
            request: get_u64(data)?,
        },
        LOGGED => {
            let appended = parse_appended(&get_str(data)?)?;
            let time = get_str(data)?.parse().ok()?;
            let (target, frame) = decode_logged_body(std::mem::take(data))?;
            Bus::Logged {
                appended,
                time,
                target,
                frame,
            }
        }
        _ => return None,
    };
    Some(Envelope { sender, message })
}

fn put_str(out: &mut BytesMut, s: &str) {
    out.put_u32(s.len() as u32);
    out.put_slice(s.as_bytes());
}

fn put_target(out: &mut BytesMut, target: &Target, version: u8) {
    let lists = [target.rooms(), target.except(), target.connections()];
    let lists = if version == VERSION { &lists[..2] } else { &lists[..] };
    for names in lists {
        out.put_u32(names.len() as u32);
        for name in *names {
            put_str(out, name);
        }
    }
}

fn get_u8(data: &mut Bytes) -> Option<u8> {
    (data.remaining() >= 1).then(|| data.get_u8())
}

fn get_u16(data: &mut Bytes) -> Option<u16> {
    (data.remaining() >= 2).then(|| data.get_u16())
}

fn get_u32(data: &mut Bytes) -> Option<u32> {
    (data.remaining() >= 4).then(|| data.get_u32())
}

fn get_u64(data: &mut Bytes) -> Option<u64> {
    (data.remaining() >= 8).then(|| data.get_u64())
}

fn get_str(data: &mut Bytes) -> Option<String> {
    let n = get_u32(data)? as usize;
    if n > data.remaining() {
        return None;
    }
    String::from_utf8(data.split_to(n).to_vec()).ok()
}

/// A counted list of strings: at most `max` of them, and no more than the
/// bytes left could hold (each takes at least its 4-byte length), so a
/// claimed count allocates nothing the message does not back.
fn get_list(data: &mut Bytes, max: usize) -> Option<Vec<String>> {
    let n = get_u32(data)? as usize;
    if n > max || n > data.remaining() / 4 {
        return None;
    }
    let mut list = Vec::with_capacity(n);
    for _ in 0..n {
        list.push(get_str(data)?);
    }
    Some(list)
}

/// A target; linear in the number of rooms and connections
/// (`Target::new` drops repeats with a hash set).
fn get_target(data: &mut Bytes, version: u8) -> Option<Target> {
    let rooms = get_list(data, MAX_ROOMS)?;
    let except = get_list(data, MAX_ROOMS)?;
    let target = Target::new(rooms, except);
    if version == VERSION_CONNECTIONS {
        let ids = get_list(data, MAX_ROOMS)?;
        return Some(target.with_connections(ids));
    }
    Some(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Bus> {
        let target = Target::new(["a", "b"], ["c"]);
        vec![
            Bus::Broadcast {
                target: target.clone(),
                frame: Bytes::from_static(br#"{"name":"x","args":[]}"#),
            },
            Bus::Heartbeat,
            Bus::Bye,
            Bus::Join {
                request: 5,
                target: Target::connection("id1"),
                room: "vip".into(),
            },
            Bus::Leave {
                request: 6,
                target: target.clone(),
                room: "hall".into(),
            },
            Bus::Logged {
                appended: vec![
                    Appended {
                        partition: 3,
                        epoch: "0123abcd".into(),
                        offset: 17,
                    },
                    Appended {
                        partition: 64,
                        epoch: "ffff".into(),
                        offset: 1,
                    },
                ],
                time: 1_765_000_000_123_456,
                target: Target::new(["a"], ["c"]).with_connection("id1"),
                frame: Bytes::from_static(br#"{"name":"x","args":[]}"#),
            },
            Bus::Disconnect {
                target: Target::all(),
                code: 4000,
                reason: "bye".into(),
            },
            Bus::Count {
                request: 7,
                target: target.clone(),
            },
            Bus::Ids { request: 8, target },
            Bus::Broadcast {
                target: Target::connection("c1"),
                frame: Bytes::from_static(br#"{"name":"x","args":[]}"#),
            },
            Bus::Invoke {
                request: 10,
                target: Target::new(["r"], ["c2"]).with_connection("c1"),
                id: 1 << 52,
                timeout: Duration::from_millis(1500),
                frame: Bytes::from_static(b"\x01\x02"),
            },
            Bus::Invoke {
                request: 9,
                target: Target::new(["r"], None::<String>),
                id: 1 << 52,
                timeout: Duration::from_millis(1500),
                frame: Bytes::from_static(b"\x01\x02"),
            },
            Bus::Counted { request: 7, count: 3 },
            Bus::Listed {
                request: 8,
                ids: vec!["x".into(), "yy".into()],
            },
            Bus::Describe {
                request: 11,
                target: Target::new(["r"], None::<String>).with_connection("c1"),
            },
            Bus::Described {
                request: 11,
                connections: vec![
                    Described {
                        id: "c1".into(),
                        rooms: vec!["r".into(), "s".into()],
                        info: Some(Bytes::from_static(br#"{"name":"alice"}"#)),
                    },
                    Described {
                        id: "c2".into(),
                        rooms: Vec::new(),
                        info: None,
                    },
                ],
            },
            Bus::Ack {
                request: 9,
                connection: "id".into(),
                outcome: Outcome::Result(Bytes::from_static(b"42")),
            },
            Bus::Ack {
                request: 9,
                connection: "id".into(),
                outcome: Outcome::Error(Bytes::from_static(b"\"no\"")),
            },
            Bus::Ack {
                request: 9,
                connection: "id".into(),
                outcome: Outcome::Timeout,
            },
            Bus::Ack {
                request: 9,
                connection: "id".into(),
                outcome: Outcome::Closed,
            },
            Bus::AckDone { request: 9 },
        ]
    }

    #[test]
    fn every_message_round_trips() {
        for message in samples() {
            let bytes = encode("node-1", &message);
            let back = decode(bytes).unwrap_or_else(|| panic!("{message:?} decodes"));
            assert_eq!(back.sender, "node-1");
            assert_eq!(back.message, message);
        }
    }

    fn rooms(prefix: &str, n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{prefix}{i}")).collect()
    }

    #[test]
    fn a_broadcast_naming_forty_thousand_rooms_decodes_whole_and_in_order() {
        let target = Target::new(rooms("room-", 40_000), rooms("out-", 40_000));
        let message = Bus::Broadcast {
            target: target.clone(),
            frame: Bytes::from_static(br#"{"name":"x","args":[]}"#),
        };
        let back = decode(encode("node-1", &message)).expect("decodes");
        assert_eq!(back.message, message);
        assert_eq!(back.message.target().map(|t| t.rooms().len()), Some(40_000));
        assert_eq!(target.rooms()[39_999], "room-39999");
    }

    #[test]
    fn repeated_rooms_on_the_bus_count_once_in_their_first_order() {
        // What another program (or an older node) may publish: repeats.
        let mut out = BytesMut::new();
        out.put_u8(VERSION);
        out.put_u8(BROADCAST);
        put_str(&mut out, "node-1");
        let names = ["b", "a", "b", "c", "a"];
        out.put_u32(names.len() as u32);
        for name in names {
            put_str(&mut out, name);
        }
        out.put_u32(2);
        put_str(&mut out, "x");
        put_str(&mut out, "x");
        out.put_slice(b"frame");
        let back = decode(out.freeze()).expect("decodes");
        let Bus::Broadcast { target, frame } = back.message else {
            panic!("a broadcast")
        };
        assert_eq!(target.rooms(), ["b", "a", "c"]);
        assert_eq!(target.except(), ["x"]);
        assert_eq!(&frame[..], b"frame");
    }

    #[test]
    fn a_list_longer_than_its_bound_is_ignored_and_a_send_of_one_is_flagged() {
        // MAX_ROOMS + 1 empty room names: 4 bytes each, all present.
        let n = MAX_ROOMS + 1;
        let mut out = BytesMut::with_capacity(16 + 4 * n);
        out.put_u8(VERSION);
        out.put_u8(COUNT);
        put_str(&mut out, "node-1");
        out.put_u64(1);
        out.put_u32(n as u32);
        out.put_bytes(0, 4 * n);
        out.put_u32(0);
        assert_eq!(decode(out.freeze()), None);
        let target = Target::new(rooms("r", n), None::<String>);
        assert_eq!(oversized(&target), Some(n));
        assert_eq!(oversized(&Target::new(rooms("r", 10), rooms("x", 20))), None);
    }

    #[test]
    fn only_a_target_naming_connections_changes_the_format() {
        let rooms = encode(
            "n",
            &Bus::Count {
                request: 1,
                target: Target::new(["a"], ["b"]),
            },
        );
        // Version 1, as before connections had a list of their own.
        assert_eq!(
            &rooms[..],
            b"\x01\x05\0\0\0\x01n\0\0\0\0\0\0\0\x01\0\0\0\x01\0\0\0\x01a\0\0\0\x01\0\0\0\x01b"
        );
        let one = encode(
            "n",
            &Bus::Count {
                request: 1,
                target: Target::connection("c"),
            },
        );
        assert_eq!(one[0], VERSION_CONNECTIONS);
        assert!(one.ends_with(b"\0\0\0\0\0\0\0\0\0\0\0\x01\0\0\0\x01c"));
    }

    #[test]
    fn truncated_or_foreign_messages_are_ignored() {
        for message in samples() {
            let bytes = encode("node-1", &message);
            for cut in 0..bytes.len() {
                // A prefix may parse only where the message ends in a
                // frame or has nothing after the sender; never a panic.
                let _ = decode(bytes.slice(..cut));
            }
        }
        assert_eq!(decode(Bytes::from_static(b"hello")), None);
        assert_eq!(decode(Bytes::from_static(b"\x01\x63\0\0\0\0")), None);
        // A huge claimed count allocates nothing.
        assert_eq!(
            decode(Bytes::from_static(
                b"\x01\x09\0\0\0\0\0\0\0\0\0\0\0\x01\xff\xff\xff\xff"
            )),
            None
        );
    }
}

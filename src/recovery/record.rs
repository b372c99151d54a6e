//! A session as a shared store keeps it (`docs/recovery.md`, "Across
//! nodes"): its key, derived from the secret token, and its record, a
//! versioned binary form of what a resume on another node needs.

use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use sha2::{Digest, Sha256};

use tokio_tungstenite::tungstenite::Message;

use super::position::Epoch;
use super::Membership;

/// The record's format version.
const VERSION: u8 = 1;
/// The most rooms (or starts, or epochs) a record holds.
const MAX_ITEMS: usize = 1 << 20;

/// The store's key for the session of `token`: its SHA-256, hexadecimal.
/// The store never sees the token itself.
pub(crate) fn session_key(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    let mut out = String::with_capacity(64);
    for byte in digest {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

/// What a session's record holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Record {
    /// The public connection id, kept across resumes.
    pub(crate) id: Arc<str>,
    /// What the connection hook accepted.
    pub(crate) identity: Box<[u8]>,
    pub(crate) membership: Membership,
    /// How many of the client's messages the server has received.
    pub(crate) received: u64,
    /// A connection of the session is open (on the record's owner).
    pub(crate) open: bool,
    /// The replies kept for the client's invokes (when it is closed): a
    /// resume on another node sends those it still waits for.
    pub(crate) replies: Vec<(u64, Message)>,
}

impl Record {
    pub(crate) fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(64 + self.identity.len());
        out.put_u8(VERSION);
        out.put_u8(u8::from(self.open));
        out.put_u64(self.received);
        put_bytes(&mut out, self.id.as_bytes());
        put_bytes(&mut out, &self.identity);
        let m = &self.membership;
        out.put_u32(m.rooms.len() as u32);
        for (room, p, at) in &m.rooms {
            put_bytes(&mut out, room.as_bytes());
            out.put_u16(*p);
            out.put_u64(*at);
        }
        out.put_u32(m.started.len() as u32);
        for (p, at) in &m.started {
            out.put_u16(*p);
            out.put_u64(*at);
        }
        out.put_u32(m.epochs.len() as u32);
        for (p, epoch) in &m.epochs {
            out.put_u16(*p);
            put_bytes(&mut out, epoch.as_ref().map_or("", |e| e.as_str()).as_bytes());
        }
        out.put_u32(self.replies.len() as u32);
        for (id, reply) in &self.replies {
            out.put_u64(*id);
            match reply {
                Message::Text(text) => {
                    out.put_u8(0);
                    put_bytes(&mut out, text.as_bytes());
                }
                other => {
                    out.put_u8(1);
                    put_bytes(&mut out, &other.clone().into_data());
                }
            }
        }
        out.freeze()
    }

    /// The record in `data`; `None` when it is not one (another version,
    /// truncated, oversized).
    pub(crate) fn decode(mut data: Bytes) -> Option<Self> {
        if get_u8(&mut data)? != VERSION {
            return None;
        }
        let open = get_u8(&mut data)? != 0;
        let received = get_u64(&mut data)?;
        let id: Arc<str> = get_str(&mut data)?.into();
        let identity = get_bytes(&mut data)?.to_vec().into_boxed_slice();
        let mut membership = Membership::default();
        for _ in 0..count(&mut data)? {
            let room: Arc<str> = get_str(&mut data)?.into();
            membership.rooms.push((room, get_u16(&mut data)?, get_u64(&mut data)?));
        }
        for _ in 0..count(&mut data)? {
            membership.started.push((get_u16(&mut data)?, get_u64(&mut data)?));
        }
        for _ in 0..count(&mut data)? {
            let p = get_u16(&mut data)?;
            let text = get_str(&mut data)?;
            let epoch = if text.is_empty() {
                None
            } else {
                Some(Epoch::parse(&text)?)
            };
            membership.epochs.push((p, epoch));
        }
        let mut replies = Vec::new();
        for _ in 0..count(&mut data)? {
            let id = get_u64(&mut data)?;
            let reply = match get_u8(&mut data)? {
                0 => Message::text(get_str(&mut data)?),
                1 => Message::binary(get_bytes(&mut data)?),
                _ => return None,
            };
            replies.push((id, reply));
        }
        data.is_empty().then_some(Record {
            id,
            identity,
            membership,
            received,
            open,
            replies,
        })
    }
}

fn put_bytes(out: &mut BytesMut, bytes: &[u8]) {
    out.put_u32(bytes.len() as u32);
    out.put_slice(bytes);
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

fn count(data: &mut Bytes) -> Option<usize> {
    let n = get_u32(data)? as usize;
    (n <= MAX_ITEMS).then_some(n)
}

fn get_bytes(data: &mut Bytes) -> Option<Bytes> {
    let n = get_u32(data)? as usize;
    (data.remaining() >= n).then(|| data.split_to(n))
}

fn get_str(data: &mut Bytes) -> Option<String> {
    String::from_utf8(get_bytes(data)?.to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_and_a_damaged_one_is_refused() {
        let epoch = Epoch::random();
        let record = Record {
            id: "c1".into(),
            identity: b"{\"user\":\"alice\"}".to_vec().into_boxed_slice(),
            membership: Membership {
                rooms: vec![("lobby".into(), 3, 17), ("é".into(), 9, 0)],
                started: vec![(64, 5), (12, 0)],
                epochs: vec![(3, Some(epoch.clone())), (9, None), (64, Some(epoch))],
            },
            received: 42,
            open: true,
            replies: vec![
                (7, Message::text(r#"{"id":7,"result":70}"#)),
                (9, Message::binary(vec![0x81, 0x02])),
            ],
        };
        let data = record.encode();
        assert_eq!(Record::decode(data.clone()), Some(record));
        assert_eq!(Record::decode(data.slice(..data.len() - 1)), None, "truncated");
        let mut longer = data.to_vec();
        longer.push(0);
        assert_eq!(Record::decode(longer.into()), None, "trailing bytes");
        assert_eq!(Record::decode(Bytes::from_static(&[2])), None, "another version");
    }

    #[test]
    fn the_key_is_the_tokens_sha256_never_the_token() {
        // SHA-256 of "abc", the standard's first vector.
        assert_eq!(
            session_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}

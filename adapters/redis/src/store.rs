//! The recovery extension's history and sessions in Redis
//! ([`RecoveryStore`]; `docs/recovery.md`, "Across nodes").
//!
//! - Partition `p`'s log is the stream `{PREFIX:p}:log`, its epoch and
//!   newest offset the hash `{PREFIX:p}:meta` (the hash tag keeps both on
//!   one slot). An append is one script over the event's partitions: for
//!   each, the epoch (created if missing), the next offset (`HINCRBY`),
//!   `XADD` with the id `OFFSET-0` (bounded with `MAXLEN ~`, the stream
//!   expiring a session time after its last append); then one `PUBLISH` on
//!   the cluster's channel with every position. Every node, this one too,
//!   delivers it when it comes back, in offset order.
//! - A session is the hash `PREFIX:session:KEY` (`o`: the owning node,
//!   `d`: the record), its key the SHA-256 of the token. The owner writes
//!   it; a write of a node that no longer owns it (the session resumed
//!   elsewhere) is dropped by a script. An open session's expiry is pushed
//!   back while its node lives; a node that dies stops pushing, and its
//!   sessions expire a session time later.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use redis::aio::MultiplexedConnection;
use redis::Value;
use ws_messaging::adapter::{AdapterFuture, LogRead, LoggedEvent, RecoveryStore, StoredSession, Target};
use ws_messaging::{AdapterError, Codec, EncodedMessage};

use crate::bus::{self, Bus};
use crate::{Command, Shared};

/// Appends an event to the logs of its partitions and publishes it.
/// KEYS: meta and log of each partition, in pairs. ARGV: the epoch for a
/// log that has none, the most entries kept, how long a log is kept
/// (ms), the channel, the message's header, the entry's body, then each
/// partition's number.
pub(crate) const APPEND: &str = r"
local n = #KEYS / 2
local t = redis.call('TIME')
local now = string.format('%.0f', tonumber(t[1]) * 1000000 + tonumber(t[2]))
local parts = {}
for i = 1, n do
  local meta, log = KEYS[2 * i - 1], KEYS[2 * i]
  local epoch = redis.call('HGET', meta, 'epoch')
  if not epoch then
    epoch = ARGV[1]
    redis.call('HSET', meta, 'epoch', epoch)
  end
  local top = redis.call('HINCRBY', meta, 'top', 1)
  parts[i] = ARGV[6 + i] .. ':' .. epoch .. ':' .. top
end
local where = table.concat(parts, ',')
for i = 1, n do
  local log = KEYS[2 * i]
  local top = string.match(parts[i], ':(%d+)$')
  -- A log whose ids run ahead of its metadata (edited by hand) loses
  -- the entry: a resume that needs it fails as trimmed.
  redis.pcall('XADD', log, 'MAXLEN', '~', ARGV[2], top .. '-0', 'a', where, 't', now, 'b', ARGV[6])
  redis.call('PEXPIRE', log, ARGV[3])
end
local function be32(s)
  local n = #s
  return string.char(math.floor(n / 16777216) % 256, math.floor(n / 65536) % 256, math.floor(n / 256) % 256, n % 256) .. s
end
redis.call('PUBLISH', ARGV[4], ARGV[5] .. be32(where) .. be32(now) .. ARGV[6])
return 1
";

/// Writes a session's record if this node owns it still. KEYS: the
/// session. ARGV: the node, the record, the expiry (ms).
pub(crate) const UPDATE: &str = r"
if redis.call('HGET', KEYS[1], 'o') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'd', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return 1
end
return 0
";

/// The scripts' SHA-1s, as `EVALSHA` names them (none on a cluster).
#[derive(Debug, Clone, Default)]
pub(crate) struct Scripts {
    pub(crate) append: String,
    pub(crate) update: String,
}

/// Loads the scripts on a new publishing connection (a Redis that
/// restarted has forgotten them); their names are their SHA-1s, the same
/// at every load.
pub(crate) async fn load_scripts(connection: &mut MultiplexedConnection) -> Result<Scripts, redis::RedisError> {
    let mut pipe = redis::pipe();
    pipe.cmd("SCRIPT").arg("LOAD").arg(APPEND);
    pipe.cmd("SCRIPT").arg("LOAD").arg(UPDATE);
    let (append, update) = pipe.query_async::<(String, String)>(connection).await?;
    Ok(Scripts { append, update })
}

/// The open sessions this node owns, with their expiry: pushed back while
/// the node lives.
#[derive(Debug, Default)]
pub(crate) struct OpenSessions {
    keys: HashMap<String, Duration>,
}

/// The Redis adapter as a [`RecoveryStore`].
pub(crate) struct RedisStore<C: Codec> {
    pub(crate) shared: Arc<Shared<C>>,
}

impl<C: Codec> RedisStore<C> {
    fn meta(&self, p: u16) -> String {
        format!("{{{}:{p}}}:meta", self.shared.config.prefix)
    }

    fn log(&self, p: u16) -> String {
        format!("{{{}:{p}}}:log", self.shared.config.prefix)
    }

    fn session(&self, key: &str) -> String {
        format!("{}:session:{key}", self.shared.config.prefix)
    }

    fn open_sessions(&self) -> std::sync::MutexGuard<'_, OpenSessions> {
        self.shared.open_sessions.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// How long an open session's key lives past its last push: the session
/// time and the push interval.
pub(crate) fn open_ttl(ttl: Duration) -> Duration {
    ttl + push_interval(ttl)
}

/// How often open sessions' expiry is pushed back.
pub(crate) fn push_interval(ttl: Duration) -> Duration {
    (ttl / 4).max(Duration::from_millis(250))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

fn unavailable(error: impl std::fmt::Display) -> AdapterError {
    AdapterError::Unavailable(format!("Redis: {error}"))
}

impl<C: Codec> RedisStore<C> {
    /// Runs `pipe` on the read connection within the response timeout; a
    /// failure drops the connection (the next read makes another).
    async fn query<T: redis::FromRedisValue>(&self, pipe: &redis::Pipeline) -> Result<T, AdapterError> {
        let mut connection = self.shared.reader().await.map_err(unavailable)?;
        let limit = self.shared.config.response_timeout;
        let failure = match tokio::time::timeout(limit, pipe.query_async(&mut connection)).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) => unavailable(error),
            Err(_) => unavailable(format!("no answer within {limit:?}")),
        };
        self.shared.drop_reader();
        Err(failure)
    }
}

impl<C: Codec> RecoveryStore for RedisStore<C> {
    fn node(&self) -> &str {
        &self.shared.node
    }

    fn is_live(&self, node: &str) -> bool {
        node == self.shared.node || self.shared.live_nodes().contains(node)
    }

    fn append(
        &self,
        partitions: &[u16],
        target: &Target,
        frame: &EncodedMessage,
        history_len: usize,
        keep: Duration,
    ) -> Result<(), AdapterError> {
        if let Some(n) = bus::oversized(target) {
            return Err(AdapterError::Other(ws_messaging::SharedError::new(
                crate::Error::TooManyRooms(n),
            )));
        }
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(&self.shared.scripts.append).arg(partitions.len() * 2);
        for p in partitions {
            cmd.arg(self.meta(*p)).arg(self.log(*p));
        }
        cmd.arg(format!("{:016x}", rand::random::<u64>()))
            .arg(history_len.max(1))
            .arg(millis(keep))
            .arg(&*self.shared.all)
            .arg(&bus::logged_header(&self.shared.node)[..])
            .arg(&bus::logged_body(target, frame.as_bytes())[..]);
        for p in partitions {
            cmd.arg(*p);
        }
        self.shared.queue_command(Command::Cmds(vec![cmd]))
    }

    fn read(&self, partition: u16, after: u64, max: usize) -> AdapterFuture<'_, Result<LogRead, AdapterError>> {
        Box::pin(async move {
            let mut pipe = redis::pipe();
            pipe.cmd("HMGET").arg(self.meta(partition)).arg("epoch").arg("top");
            if max > 0 {
                let from = after.saturating_add(1);
                pipe.cmd("XRANGE")
                    .arg(self.log(partition))
                    .arg(format!("{from}-0"))
                    .arg("+")
                    .arg("COUNT")
                    .arg(max);
            }
            let replies: Vec<Value> = self.query(&pipe).await?;
            let mut replies = replies.into_iter();
            let (epoch, top): (Option<String>, Option<u64>) =
                redis::from_redis_value(replies.next().unwrap_or(Value::Nil)).map_err(unavailable)?;
            let mut events = Vec::new();
            if let Some(Value::Array(entries)) = replies.next() {
                for entry in entries {
                    if let Some(event) = logged_event::<C>(entry) {
                        events.push(event);
                    }
                }
            }
            Ok(LogRead {
                epoch,
                top: top.unwrap_or(0),
                events,
            })
        })
    }

    fn tops(&self, partitions: u16) -> AdapterFuture<'_, Result<Vec<LogRead>, AdapterError>> {
        Box::pin(async move {
            let mut pipe = redis::pipe();
            for p in 0..=partitions {
                pipe.cmd("HMGET").arg(self.meta(p)).arg("epoch").arg("top");
            }
            let replies: Vec<(Option<String>, Option<u64>)> = self.query(&pipe).await?;
            Ok(replies
                .into_iter()
                .map(|(epoch, top)| LogRead {
                    epoch,
                    top: top.unwrap_or(0),
                    events: Vec::new(),
                })
                .collect())
        })
    }

    fn save_session(
        &self,
        key: &str,
        record: Bytes,
        open: bool,
        ttl: Duration,
        claim: bool,
    ) -> Result<(), AdapterError> {
        let name = self.session(key);
        let expiry = if open { open_ttl(ttl) } else { ttl };
        let cmd = if claim {
            // MULTI/EXEC: never a key without its expiry.
            let mut set = redis::cmd("HSET");
            set.arg(&name).arg("o").arg(&self.shared.node).arg("d").arg(&record[..]);
            let mut expire = redis::cmd("PEXPIRE");
            expire.arg(&name).arg(millis(expiry));
            Command::Cmds(vec![redis::cmd("MULTI"), set, expire, redis::cmd("EXEC")])
        } else {
            let mut cmd = redis::cmd("EVALSHA");
            cmd.arg(&self.shared.scripts.update)
                .arg(1)
                .arg(&name)
                .arg(&self.shared.node)
                .arg(&record[..])
                .arg(millis(expiry));
            Command::Cmds(vec![cmd])
        };
        {
            let mut sessions = self.open_sessions();
            if open {
                sessions.keys.insert(name, ttl);
            } else {
                sessions.keys.remove(&name);
            }
        }
        self.shared.queue_command(cmd)
    }

    fn load_session<'a>(&'a self, key: &'a str) -> AdapterFuture<'a, Result<Option<StoredSession>, AdapterError>> {
        Box::pin(async move {
            let mut pipe = redis::pipe();
            pipe.cmd("HMGET").arg(self.session(key)).arg("o").arg("d");
            let found: Vec<(Option<String>, Option<Vec<u8>>)> = self.query(&pipe).await?;
            Ok(match found.into_iter().next() {
                Some((Some(owner), Some(record))) => Some(StoredSession {
                    owner,
                    record: record.into(),
                }),
                _ => None,
            })
        })
    }

    fn remove_session(&self, key: &str) -> Result<(), AdapterError> {
        let name = self.session(key);
        self.open_sessions().keys.remove(&name);
        let mut cmd = redis::cmd("DEL");
        cmd.arg(name);
        self.shared.queue_command(Command::Cmds(vec![cmd]))
    }

    fn release(&self, id: &str) -> Result<(), AdapterError> {
        let shared = &self.shared;
        shared.send(
            &shared.all,
            &Bus::Disconnect {
                target: Target::connection(id),
                code: ws_messaging::CloseCode::FORBIDDEN.into(),
                reason: "session resumed elsewhere".into(),
            },
            None,
        )
    }
}

/// One `XRANGE` entry: `[id, [field, value, …]]` with the fields `a`
/// (positions), `t` (time) and `b` (body).
fn logged_event<C: Codec>(entry: Value) -> Option<LoggedEvent> {
    let Value::Array(mut pair) = entry else { return None };
    let Value::Array(fields) = pair.pop()? else { return None };
    let mut appended = None;
    let mut time = None;
    let mut body = None;
    let mut fields = fields.into_iter();
    while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
        let name: String = redis::from_redis_value(name).ok()?;
        let value: Vec<u8> = redis::from_redis_value(value).ok()?;
        match name.as_str() {
            "a" => appended = bus::parse_appended(std::str::from_utf8(&value).ok()?),
            "t" => time = std::str::from_utf8(&value).ok()?.parse().ok(),
            "b" => body = Some(Bytes::from(value)),
            _ => {}
        }
    }
    let (target, frame) = bus::decode_logged_body(body?)?;
    Some(LoggedEvent {
        appended: appended?,
        time: time?,
        target,
        frame: EncodedMessage::from_bytes::<C>(frame).ok()?,
    })
}

/// Pushes back the expiry of the open sessions this node owns, each
/// quarter of the session time.
pub(crate) async fn push_open_sessions<C: Codec>(shared: Arc<Shared<C>>) {
    let mut shutdown = shared.shutdown.subscribe();
    let mut last: HashMap<Duration, tokio::time::Instant> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = crate::stopped(&mut shutdown) => return,
        }
        let now = tokio::time::Instant::now();
        let due: Vec<(String, Duration)> = {
            let sessions = shared.open_sessions.lock().unwrap_or_else(|e| e.into_inner());
            sessions
                .keys
                .iter()
                .filter(|(_, ttl)| {
                    last.get(*ttl)
                        .is_none_or(|at| now.duration_since(*at) >= push_interval(**ttl))
                })
                .map(|(key, ttl)| (key.clone(), *ttl))
                .collect()
        };
        if due.is_empty() {
            continue;
        }
        for (_, ttl) in &due {
            last.insert(*ttl, now);
        }
        for chunk in due.chunks(512) {
            // PEXPIRE touches only a key that exists: one removed since is
            // not revived.
            let cmds = chunk
                .iter()
                .map(|(key, ttl)| {
                    let mut cmd = redis::cmd("PEXPIRE");
                    cmd.arg(key).arg(millis(open_ttl(*ttl)));
                    cmd
                })
                .collect();
            let _ = shared.queue_command(Command::Cmds(cmds));
        }
    }
}

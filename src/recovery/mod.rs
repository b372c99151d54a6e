//! Session recovery (`docs/recovery.md`): the pieces the negotiated
//! `ws-messaging.resume.1` extension is built from. Work in progress: not
//! yet wired into the server or the client.
#![allow(dead_code)]

pub(crate) mod log;
pub(crate) mod position;
pub(crate) mod route;
pub(crate) mod session;

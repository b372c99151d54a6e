//! The receive path: decode → validate → receive hook → dispatch
//! (PROTOCOL.md §3–4).

use std::task::Poll;

use bytes::Bytes;

use crate::codec::Codec;
use crate::endpoint::{Endpoint, Role, BLACKLIST};
use crate::envelope::{validate, Frame};
use crate::error::{HandlerError, PreprocessError};
use crate::events::LocalEvent;

impl<C: Codec> Endpoint<C> {
    /// Handles one incoming data frame of the current connection.
    pub(crate) async fn receive(&self, generation: u64, data: Bytes) {
        match self.preprocess(&data) {
            Ok(frame) => self.dispatch(generation, frame).await,
            Err(error) => self.report_preprocessing_error(&error).await,
        }
    }

    fn preprocess(&self, data: &Bytes) -> Result<Frame, HandlerError> {
        let inner = &self.inner;
        let raw = inner
            .codec
            .decode_envelope(data)
            .map_err(|e| HandlerError::from(PreprocessError::Decode(e)))?;
        let frame = validate(raw, !inner.options.skip_validation)?;
        inner
            .codec
            .check(&frame)
            .map_err(|e| HandlerError::from(PreprocessError::Refused(e)))?;
        if let Some(hook) = &inner.options.receive_hook {
            hook(&frame)?;
        }
        Ok(frame)
    }

    async fn report_preprocessing_error(&self, error: &HandlerError) {
        let value = (self.inner.options.error_formatter)(error);
        // Like the JavaScript package: only a connected side reports it.
        let _ = self.send_unchecked("preprocessingError", &(value,)).await;
    }

    async fn dispatch(&self, generation: u64, frame: Frame) {
        match frame {
            Frame::Reply { id, outcome } => self.settle(id, outcome),
            Frame::Message { name, args, id } => {
                if BLACKLIST.contains(&name.as_str()) {
                    return;
                }
                if name == "connect" {
                    if self.inner.role == Role::Client && !self.is_connected() {
                        let reply = match args.into_iter().next() {
                            Some(reply) => reply,
                            None => null_value(&*self.inner.codec),
                        };
                        self.set_connected(generation, reply);
                    }
                    return;
                }
                match id {
                    Some(id) => match self.procedure(&name) {
                        Some(procedure) => {
                            // At most `max_concurrent_calls` handlers run per
                            // connection; past that the reader waits, which
                            // pushes back on the peer instead of piling up tasks.
                            let Ok(permit) = self.inner.calls.clone().acquire_owned().await else {
                                return;
                            };
                            let mut call = procedure(self.clone(), id, args);
                            // A handler that finishes at once (no await point
                            // pending) is answered right here, saving a task;
                            // any other continues in a task of its own.
                            let pending =
                                std::future::poll_fn(|cx| Poll::Ready(call.as_mut().poll(cx).is_pending())).await;
                            if pending {
                                tokio::spawn(async move {
                                    call.await;
                                    drop(permit);
                                });
                            }
                        }
                        None => {
                            let reply = self.encode_error_reply(id, &HandlerError::no_procedure());
                            self.send_reply(id, reply).await;
                        }
                    },
                    None => {
                        if name == "preprocessingError" {
                            let value = args
                                .first()
                                .and_then(|raw| self.inner.codec.decode_error(raw).ok())
                                .unwrap_or(serde_json::Value::Null);
                            self.emit(LocalEvent::PreprocessingError(value));
                        }
                        self.call_listeners(&name, args);
                    }
                }
            }
        }
    }
}

/// The codec's encoding of `null`, for an auth reply that is missing.
fn null_value<C: Codec>(codec: &C) -> Bytes {
    let mut buf = Vec::new();
    match codec.encode_value(&(), &mut buf) {
        Ok(()) => buf.into(),
        Err(_) => Bytes::new(),
    }
}

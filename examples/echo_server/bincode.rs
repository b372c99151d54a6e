//! `--codec bincode`: bincode is not self-describing, so the contract is
//! typed: the auth value is `Auth { token }`, the reply `User { user }`,
//! and echoed values and event arguments are strings.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use ws_messaging::{Endpoint, HandlerError};
use ws_messaging_bincode::Bincode;

use super::{Settings, Start};

/// The auth value.
#[derive(Debug, Deserialize, Serialize)]
pub(crate) struct Auth {
    /// `secret`, `slow`, or anything else (refused).
    pub token: String,
}

/// The auth reply.
#[derive(Debug, Deserialize, Serialize)]
pub(crate) struct User {
    /// `alice` or `slow`.
    pub user: String,
}

/// Runs the conformance server with the bincode codec.
pub(crate) async fn run(settings: &Settings) -> Result<(), String> {
    let counters = settings.counters;
    settings
        .builder::<Bincode>()
        .await?
        .on_connection(move |_: Endpoint<Bincode>, auth: Auth| async move {
            let user = match auth.token.as_str() {
                "secret" => "alice",
                "slow" => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    "slow"
                }
                _ => return Err(HandlerError::text("bad token")),
            };
            Ok(User { user: user.into() })
        })
        .start(settings, |server| super::setup::<Bincode, String>(server, counters))
        .await
}

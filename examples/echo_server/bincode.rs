//! `--codec bincode`: bincode is not self-describing, so the contract is
//! typed: the auth value is `Auth { token }`, the reply `User { user }`,
//! and echoed values and event arguments are strings.

use serde::{Deserialize, Serialize};
use ws_messaging::Endpoint;
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
            let user = super::user(&auth.token).await?;
            Ok(User { user: user.into() })
        })
        .start(settings, |server| {
            ws_messaging_conformance::register::<Bincode, String>(server, counters)
        })
        .await
}

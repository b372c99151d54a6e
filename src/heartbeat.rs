//! The ping loop (PROTOCOL.md §6).

use crate::codec::Codec;
use crate::endpoint::WeakEndpoint;
use crate::events::LocalEvent;

/// Every `ping_interval`, invokes `ping` with `ping_timeout`; a failed ping
/// closes connection `generation` with 4008 `Ping timeout`. Ends when the
/// connection is torn down (the task is aborted) or the endpoint is gone.
pub(crate) async fn run<C: Codec>(endpoint: WeakEndpoint<C>, generation: u64) {
    let Some(options) = endpoint.upgrade().map(|e| e.options().clone()) else {
        return;
    };
    loop {
        tokio::time::sleep(options.ping_interval).await;
        let Some(endpoint) = endpoint.upgrade() else { return };
        endpoint.emit(LocalEvent::Ping);
        match endpoint.invoke_raw("ping", &(), options.ping_timeout).await {
            Ok(_) => endpoint.emit(LocalEvent::Pong),
            Err(_) => {
                endpoint.close_connection(generation, 4008, "Ping timeout");
                return;
            }
        }
    }
}

//! [`Request`]: what a client's WebSocket upgrade request said, for the
//! connection hook (cookie or header auth, the query string, the peer).

use std::net::SocketAddr;

use tokio_tungstenite::tungstenite::http::{HeaderMap, Uri};

/// The HTTP upgrade request a connection came with: its path, query,
/// headers, cookies and the peer's address.
///
/// A server's connection hook reads it with
/// [`Endpoint::request`](crate::Endpoint::request). It is dropped once the
/// hook has returned (connections stay small): copy what the connection
/// needs later into its [`data`](crate::Endpoint::set_data).
///
/// ```no_run
/// use ws_messaging::{HandlerError, Server};
/// use ws_messaging_json::Json;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let server = Server::<Json>::builder()
///     .on_connection(|endpoint, _auth: serde_json::Value| async move {
///         let request = endpoint.request().expect("inside the connection hook");
///         match request.cookie("session") {
///             Some(session) if session == "valid" => Ok(()),
///             _ => Err(HandlerError::new("no session")),
///         }
///     })
///     .bind("127.0.0.1:8000")
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct Request {
    uri: Uri,
    headers: HeaderMap,
    peer: Option<SocketAddr>,
}

impl Request {
    /// A request made of its parts: what an integration that runs the
    /// upgrade itself passes to
    /// [`Server::serve_upgraded`](crate::Server::serve_upgraded).
    pub fn new(uri: Uri, headers: HeaderMap, peer: Option<SocketAddr>) -> Self {
        Request { uri, headers, peer }
    }

    /// The request target (path and query).
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// The path (`/ws`).
    pub fn path(&self) -> &str {
        self.uri.path()
    }

    /// The query string, without the `?`.
    pub fn query(&self) -> Option<&str> {
        self.uri.query()
    }

    /// The first value of the query parameter `name`, percent-decoded
    /// (`+` is a space).
    ///
    /// ```
    /// let request = ws_messaging::Request::new("/ws?token=a%20b&x=1".parse().unwrap(), Default::default(), None);
    /// assert_eq!(request.query_param("token").as_deref(), Some("a b"));
    /// assert_eq!(request.query_param("y"), None);
    /// ```
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query()?.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key) == name).then(|| percent_decode(value))
        })
    }

    /// Every header.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The first value of the header `name`, when it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)?.to_str().ok()
    }

    /// The value of the cookie `name` (from every `Cookie` header).
    ///
    /// ```
    /// let mut headers = ws_messaging::http::HeaderMap::new();
    /// headers.insert("cookie", "a=1; session=xyz".parse().unwrap());
    /// let request = ws_messaging::Request::new("/".parse().unwrap(), headers, None);
    /// assert_eq!(request.cookie("session"), Some("xyz"));
    /// ```
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .get_all("cookie")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(';'))
            .find_map(|pair| {
                let (key, value) = pair.trim().split_once('=')?;
                (key.trim() == name).then(|| value.trim().trim_matches('"'))
            })
    }

    /// The peer's address, when the server knows it (its own listener,
    /// [`Server::serve_stream_from`](crate::Server::serve_stream_from), or
    /// an integration that passes it).
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer
    }
}

/// `%XX` and `+` decoded; invalid escapes kept as they are.
fn percent_decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(high), Some(low)) => {
                    out.push((high * 16 + low) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

//! The server's limits on requests and connections, read by the
//! connection loop (`conn`) and the body guard (`body_guard`) alike.

use std::time::Duration;

/// Largest accepted request body (1 MiB); larger ones get 413.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// Connection limits of the HTTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Time a connection has to send a complete request head, counted from
    /// when it opens or from its previous response; also the idle timeout of
    /// keep-alive connections. Default 10 s.
    pub header_read_timeout: Duration,
    /// Most connections open at once (keep it below the open-files limit).
    /// Default 1024.
    pub max_connections: usize,
    /// Time a request body has to arrive once its head has, on top of what
    /// [`HttpLimits::min_body_bytes_per_sec`] allows for its size; a slower
    /// client gets a 408 and its connection is closed. Default 10 s.
    pub body_read_timeout: Duration,
    /// The slowest body upload accepted, in bytes per second (adds
    /// `size / rate` to the body's time). Default 64 KiB/s: a 1 MiB body
    /// may take 26 s.
    pub min_body_bytes_per_sec: u32,
    /// Bytes of request bodies held in memory at once, across connections;
    /// a body that does not fit waits (up to `body_read_timeout`, unread)
    /// and then gets a 503. Default 64 MiB (raised to one maximal body if
    /// set lower).
    pub max_body_bytes_in_flight: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 1024,
            body_read_timeout: Duration::from_secs(10),
            min_body_bytes_per_sec: 64 * 1024,
            max_body_bytes_in_flight: 64 << 20,
        }
    }
}

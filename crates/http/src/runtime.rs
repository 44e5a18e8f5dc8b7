//! The server runtime, apart from the API: the serving loop (a task per connection, TLS, HTTP/1 and
//! HTTP/2, the connection cap and which connection makes room at it, the bounded drain), TLS configuration, the limits and what enforces them,
//! and zero-copy blob responses. It knows nothing of the distribution API: it serves whatever router it
//! is given (`crate::serve_with`).

pub(crate) mod client_auth;
pub mod limits;
pub mod sendfile;
pub(crate) mod server;
pub(crate) mod shed;
pub(crate) mod spec_errors;
pub mod stall;
pub mod tls;

//! Request ids: 128 random bits in lowercase base32 (RFC 4648 alphabet, no padding), 26
//! characters. Unguessable, so one request's id reveals no other; and checked on every use
//! before it becomes part of a path, so `../`, separators, long or non-ASCII ids never reach
//! the file system.

pub use bottle_core::access_request::{RequestId, ID_LEN};

//! One finding's span in the scanned bytes, before it becomes a public `Finding`. Its own
//! module because the engine, the PII classes and the URL scanner all produce it.

use crate::Encoding;

#[derive(Clone, Copy, Debug)]
pub(crate) struct Hit {
    pub det: &'static str,
    pub start: usize,
    pub end: usize,
    pub enc: Encoding,
}

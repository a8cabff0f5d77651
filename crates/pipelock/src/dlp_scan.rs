//! DLP on everything pipelock forwards: URL, headers and streaming bodies.
//! (Detector integration lands once bottle-dlp is ready; until then this passes everything.)

use std::sync::{Arc, Mutex};

use bottle_core::BoxBody;
use http::{HeaderMap, Request, Uri};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::filter::Denied;
use crate::state::{State, Subject};

/// Holds a refusal found while streaming a body (the request then fails upstream).
#[derive(Clone, Default)]
pub struct FindingSlot(Arc<Mutex<Option<Denied>>>);

impl FindingSlot {
    pub fn set(&self, d: Denied) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(d);
    }
    pub fn take_denied(&self) -> Option<Denied> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// The path of a URI without its query (what the audit log gets when nothing was found).
pub fn path_only(uri: &Uri) -> String {
    uri.path().to_string()
}

#[derive(Default)]
pub struct DlpScanner {}

impl DlpScanner {
    pub fn new() -> DlpScanner {
        DlpScanner {}
    }

    pub fn check_connect(&self, _state: &State, _req: &Request<Incoming>, _subject: &Subject) -> Option<Denied> {
        None
    }

    pub fn check_head(
        &self,
        _state: &State,
        _url: &str,
        _headers: &HeaderMap,
        _subject: &mut Subject,
    ) -> Result<Option<String>, Denied> {
        Ok(None)
    }

    pub fn wrap_body(
        &self,
        _state: &State,
        body: Incoming,
        _headers: &mut HeaderMap,
        _slot: FindingSlot,
    ) -> Result<BoxBody, Denied> {
        Ok(body.map_err(|e| -> bottle_core::BoxError { Box::new(e) }).boxed())
    }
}

//! Anomaly heuristics and exfiltration shapes (issue 13).
//!
//! Pure functions and one bounded tracker; the caller (pipelock) decides which
//! run in which profile:
//!
//! | id | what | profile |
//! |---|---|---|
//! | [`HOST_ENTROPY`] | a host label (beyond the registrable parent) that looks like encoded data | strict |
//! | [`SUBDOMAIN_VOLUME`] | more than [`host::MAX_SUBDOMAIN_BYTES`] of label text beyond the parent | strict |
//! | [`SUBDOMAIN_BURST`] | more new subdomains of one parent within a window than [`BurstLimits::max_new`] (or [`BurstLimits::max_new_data`] that read as data) | strict |
//! | [`PATH_ENTROPY`] | a path segment, query value or invented `X-` header value that looks like encoded data, or too many hash-sized values | strict |
//! | [`DIGEST_BUDGET`] | more new hash-sized bytes (digests, UUIDs, signatures) to one parent within a window than [`BudgetLimits`] allow | strict |
//! | [`ENCODING_LAYERS`] | a token that needs two or more decoding layers to read as text | strict |
//! | [`ENV_DUMP`] | credential-like `NAME=value` pairs (2 in default, 1 in strict) | both |
//! | [`CREDENTIAL_FILE`] | AWS credentials, `.netrc`, URL with `user:password@`, `/etc/shadow` hash lines | both |
//!
//! Findings hold no matched text, like every other [`Finding`].

mod body;
mod budget;
mod burst;
mod exfil;
mod host;
mod layers;
mod shape;
mod url;
mod window;

pub use body::{scan_body, unescape, BodyWatch, CARRY};
pub use budget::{BudgetLimits, DigestBudget};
pub use burst::{BurstLimits, SubdomainTracker};
pub use exfil::{credential_name, secret_value, ENV_DUMP_PAIRS, ENV_DUMP_SPAN};
pub use host::{registrable_domain, scan_host, subdomain_part, MAX_SUBDOMAIN_BYTES};
pub use layers::layers;
pub use shape::{data_shaped, digest_sized, is_digest, DigestSized};
pub use url::{digest_values, scan_header, scan_header_block, scan_url, MAX_DIGESTS_PER_URL};

/// A host label that looks like encoded data.
pub const HOST_ENTROPY: &str = "anomaly-host-entropy";
/// Too much label text beyond the registrable parent in one host.
pub const SUBDOMAIN_VOLUME: &str = "anomaly-subdomain-volume";
/// Too many new subdomains of one parent in a short time.
pub const SUBDOMAIN_BURST: &str = "anomaly-subdomain-burst";
/// A path segment or query value that looks like encoded data.
pub const PATH_ENTROPY: &str = "anomaly-path-entropy";
/// Too many new hash-sized bytes to one parent in a short time.
pub const DIGEST_BUDGET: &str = "anomaly-digest-budget";
/// Two or more encoding layers.
pub const ENCODING_LAYERS: &str = "anomaly-encoding-layers";
/// An environment dump: credential-like `NAME=value` pairs.
pub const ENV_DUMP: &str = "exfil-env-dump";
/// The shape of a credential file.
pub const CREDENTIAL_FILE: &str = "exfil-credential-file";

/// Every id above (for docs and metrics).
pub const IDS: [&str; 8] = [
    HOST_ENTROPY,
    SUBDOMAIN_VOLUME,
    SUBDOMAIN_BURST,
    PATH_ENTROPY,
    DIGEST_BUDGET,
    ENCODING_LAYERS,
    ENV_DUMP,
    CREDENTIAL_FILE,
];

//! Host names: the registrable parent, encoded-looking labels, label volume.

use super::shape::{data_shaped, is_uuid, reads_as_words};
use super::{HOST_ENTROPY, SUBDOMAIN_VOLUME};
use crate::{Encoding, Finding};

/// Bytes of label text (dots not counted) a host may carry beyond its
/// registrable parent. The longest ordinary names (ELB, VPC endpoint, S3 and
/// preview-deploy hosts) stay under 80.
pub const MAX_SUBDOMAIN_BYTES: usize = 100;

/// Multi-label public suffixes (the registrable domain is one label more):
/// country-code registries and the shared hosting platforms where every
/// subdomain is a different owner. A short list by design (not the
/// Public Suffix List): a missing entry only makes two owners share a parent,
/// which makes the burst check stricter, never weaker.
const PUBLIC_SUFFIXES: &[&str] = &[
    "co.uk",
    "org.uk",
    "ac.uk",
    "gov.uk",
    "me.uk",
    "com.au",
    "net.au",
    "org.au",
    "edu.au",
    "co.nz",
    "co.jp",
    "ne.jp",
    "or.jp",
    "co.kr",
    "com.br",
    "com.cn",
    "com.tw",
    "com.hk",
    "co.in",
    "co.za",
    "com.mx",
    "com.ar",
    "com.tr",
    "com.sg",
    "co.il",
    // shared platforms
    "github.io",
    "gitlab.io",
    "vercel.app",
    "netlify.app",
    "herokuapp.com",
    "pages.dev",
    "workers.dev",
    "web.app",
    "firebaseapp.com",
    "appspot.com",
    "azurewebsites.net",
    "cloudfront.net",
    "fly.dev",
    "onrender.com",
    "deno.dev",
    "ngrok.io",
    "ngrok-free.app",
    "readthedocs.io",
    "blogspot.com",
    "s3.amazonaws.com",
    "run.app",
    "github.dev",
];

/// Suffixes whose leftmost labels are resource ids the *provider* assigns
/// (accounts, functions, distributions, buckets): long random labels are their
/// ordinary shape there, and a made-up label reaches nobody the agent controls.
/// Only the entropy check is skipped under them; volume and burst still apply.
const PROVIDER_ID_SUFFIXES: &[&str] = &[
    "amazonaws.com",
    "on.aws",
    "cloudfront.net",
    "cloudflarestorage.com",
    "windows.net",
    "azurewebsites.net",
    "azurefd.net",
    "googleapis.com",
    "googleusercontent.com",
    "run.app",
    "supabase.co",
    "netlify.app",
    "akamaiedge.net",
    "akamaized.net",
];

fn ends_with_label_suffix(host: &str, suffix: &str) -> bool {
    host == suffix
        || host
            .strip_suffix(suffix)
            .is_some_and(|rest| rest.ends_with('.'))
}

/// The registrable parent of `host` (lower-case, no trailing dot): its last
/// two labels, or last three when the last two are a listed second-level
/// suffix. An IP literal or a single label is its own parent.
pub fn registrable_domain(host: &str) -> &str {
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.parse::<std::net::IpAddr>().is_ok() || host.starts_with('[') {
        return host;
    }
    // The longest listed suffix the host ends with (as whole labels), else
    // its last label; the parent is that plus one more label.
    let lower = host.to_ascii_lowercase();
    let suffix_len = PUBLIC_SUFFIXES
        .iter()
        .filter(|s| lower.len() > s.len() && ends_with_label_suffix(&lower, s))
        .map(|s| s.len())
        .max()
        .unwrap_or_else(|| host.len() - host.rfind('.').map_or(0, |i| i + 1));
    if suffix_len >= host.len() {
        return host;
    }
    let rest = &host[..host.len() - suffix_len - 1];
    match rest.rfind('.') {
        Some(i) => &host[i + 1..],
        None => host,
    }
}

/// The part of `host` left of its registrable parent (`""` for the apex).
pub fn subdomain_part(host: &str) -> &str {
    let host = host.strip_suffix('.').unwrap_or(host);
    let parent = registrable_domain(host);
    host.strip_suffix(parent)
        .map(|s| s.strip_suffix('.').unwrap_or(s))
        .unwrap_or("")
}

fn label_shaped(label: &str) -> bool {
    let lower = label.to_ascii_lowercase();
    // An IDN label is judged by its punycode payload: `xn--` carries no data.
    let l = lower.strip_prefix("xn--").unwrap_or(&lower);
    if is_uuid(l.as_bytes()) {
        return false;
    }
    let undashed: Vec<u8> = l.bytes().filter(|&b| b != b'-').collect();
    data_shaped(l.as_bytes())
        || data_shaped(&undashed)
        || l.split('-').any(|p| data_shaped(p.as_bytes()))
}

/// Strict-profile host checks: a label beyond the registrable parent that
/// looks like encoded data (or the labels joined), and more than
/// [`MAX_SUBDOMAIN_BYTES`] of label text beyond the parent. `host` may carry
/// a `:port`. Offsets point into `host`.
pub fn scan_host(host: &str) -> Vec<Finding> {
    let name = strip_port(host);
    let name = name.strip_suffix('.').unwrap_or(name);
    let sub = subdomain_part(name);
    if sub.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    let whole = Finding {
        detector: SUBDOMAIN_VOLUME,
        offset: 0,
        len: sub.len(),
        encoding: Encoding::Raw,
    };
    let volume: usize = sub.bytes().filter(|&b| b != b'.').count();
    if volume > MAX_SUBDOMAIN_BYTES {
        out.push(whole.clone());
    }
    let exempt = PROVIDER_ID_SUFFIXES
        .iter()
        .any(|s| ends_with_label_suffix(&name.to_ascii_lowercase(), s));
    if !exempt {
        let mut at = 0;
        let mut hit = None;
        for label in sub.split('.') {
            if label_shaped(label) {
                hit = Some((at, label.len()));
                break;
            }
            at += label.len() + 1;
        }
        if hit.is_none() && sub.contains('.') {
            // Data cut into short labels: judge the labels that do not read
            // as words joined (`d1a2b3c4.cloudfront` is one id and a word).
            let pieces: Vec<&str> = sub
                .split('.')
                .filter(|l| !is_uuid(l.as_bytes()) && !reads_as_words(l))
                .collect();
            let joined: String = pieces
                .iter()
                .flat_map(|l| l.bytes())
                .filter(|&b| b != b'-')
                .map(|b| b.to_ascii_lowercase() as char)
                .collect();
            if pieces.len() >= 2 && data_shaped(joined.as_bytes()) {
                hit = Some((0, sub.len()));
            }
        }
        if let Some((offset, len)) = hit {
            out.push(Finding {
                detector: HOST_ENTROPY,
                offset,
                len,
                encoding: Encoding::Raw,
            });
        }
    }
    out
}

/// `host:port` -> `host`; `[v6]:port` -> `[v6]`.
pub fn strip_port(authority: &str) -> &str {
    if authority.starts_with('[') {
        return match authority.find(']') {
            Some(i) => &authority[..=i],
            None => authority,
        };
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => authority,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registrable_domains() {
        let cases = [
            ("a.b.example.com", "example.com"),
            ("example.com", "example.com"),
            ("x.y.bbc.co.uk", "bbc.co.uk"),
            (
                "my-app-git-x-team.vercel.app",
                "my-app-git-x-team.vercel.app",
            ),
            ("bucket.s3.amazonaws.com", "bucket.s3.amazonaws.com"),
            ("s1.exfil.test", "exfil.test"),
            ("127.0.0.1", "127.0.0.1"),
            ("localhost", "localhost"),
            ("a.b.exfil.test.", "exfil.test"),
        ];
        for (h, want) in cases {
            assert_eq!(registrable_domain(h), want, "{h}");
        }
        assert_eq!(subdomain_part("x.y.exfil.test"), "x.y");
        assert_eq!(subdomain_part("exfil.test"), "");
    }

    #[test]
    fn host_table() {
        let long = "ab".repeat(30);
        let cases: Vec<(String, Option<&str>)> = vec![
            (
                "mfrggzdfmztwq2lknnwg23tpobyxe43u.exfil.test:443".into(),
                Some(HOST_ENTROPY),
            ),
            (
                "6b810c90aa9a99858230c3d5ed47.exfil.test".into(),
                Some(HOST_ENTROPY),
            ),
            (
                "mfrg-gzdf-mztw-q2lk-nnwg-23tp.exfil.test".into(),
                Some(HOST_ENTROPY),
            ),
            (
                "mfrggzdfm.ztwq2lknn.wg23tpob.exfil.test".into(),
                Some(HOST_ENTROPY),
            ),
            (format!("{long}.{long}.exfil.test"), Some(SUBDOMAIN_VOLUME)),
            ("www.example.com".into(), None),
            ("my-app-git-feature-x-team.vercel.app".into(), None),
            ("registry-1.docker.io".into(), None),
            ("d111111abcdef8.cloudfront.net".into(), None),
            (
                "123e4567-e89b-12d3-a456-426614174000.mock.pstmn.io".into(),
                None,
            ),
            ("exfil.test".into(), None),
            ("[::1]:443".into(), None),
        ];
        for (h, want) in cases {
            let got = scan_host(&h);
            match want {
                Some(id) => assert!(got.iter().any(|f| f.detector == id), "{h}: {got:?}"),
                None => assert!(got.is_empty(), "{h}: {got:?}"),
            }
        }
    }
}

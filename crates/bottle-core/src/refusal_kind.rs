//! Every kind of refusal any sidecar makes, with what each kind implies: the HTTP status, the
//! metric label, whether the agent may ask the operator for access, and the audit decision.
//! A new refusal is one variant here plus one row in the table test below.

use http::StatusCode;

/// What the agent could ask the operator for, if anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Askable {
    /// Nothing: asking would mean asking to exfiltrate, to reach an internal address, or to
    /// change how the sidecar works. The body never invites it.
    No,
    /// A host for the allowlist (supervise `kind: host`).
    Host,
    /// An egress route (supervise `kind: route`).
    Route,
    /// A git push rule (supervise `kind: git-ref`).
    GitRef,
}

/// One kind of refusal. The label is a fixed, low-cardinality metric label; existing
/// pipelock labels keep their spelling so dashboards do not move.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefusalKind {
    /// No allowlist entry or route covers the host.
    HostNotAllowed,
    /// A route names the host, but no route's path globs cover the path.
    PathNotAllowed,
    /// A route covers host and path, but not the method.
    MethodNotAllowed,
    /// The host is (or resolves to) a private, loopback, link-local or metadata address.
    PrivateAddress,
    /// A secret or exfiltration pattern in the request (URL, header, body, WebSocket frame).
    Dlp,
    /// A request body coded so it cannot be scanned.
    DlpEncoding,
    /// Prompt injection in what came back.
    Injection,
    /// A method override (header, query or `_method` field) the route's rules refuse.
    MethodOverride,
    /// A path override header on a route with path rules.
    PathOverride,
    /// A path whose spelling is ambiguous (encoded separators, dot segments) on a route with
    /// path rules.
    AmbiguousPath,
    /// A credential would be injected over cleartext `http://`.
    CleartextCredential,
    /// A git push over HTTPS: pushes go through git-gate.
    GitPushOverHttps,
    /// A protocol upgrade the sidecar cannot inspect.
    UpgradeRefused,
    /// A WebSocket extension the sidecar cannot inspect.
    WebsocketExtension,
    /// CONNECT to egress for a host that is not a `tls_passthrough` route.
    ConnectNotPassthrough,
    /// The next proxy refused a passthrough tunnel (its own answer is passed on to the agent).
    UpstreamRefused,
    /// CONNECT inside an intercepted tunnel.
    NestedConnect,
    /// The request's Host and target disagree.
    AuthorityMismatch,
    /// A request body larger than the sidecar will hold to judge it.
    BodyTooLarge,
    /// A request body that did not arrive in time.
    BodyTimeout,
    /// A malformed request.
    BadRequest,
    /// A malformed target (host, port, URL).
    BadTarget,
    /// A request without the key only the bottle's own pipelock holds.
    Unauthenticated,
    /// Too many tunnels open.
    TunnelLimit,
    /// The host name could not be resolved.
    Resolve,
    /// The upstream failed.
    UpstreamError,
    /// The upstream did not answer in time.
    UpstreamTimeout,
    /// The upstream (or the next proxy) could not be reached.
    UpstreamUnreachable,
    /// The upstream's answer is coded so it cannot be checked.
    UndecodableResponse,
    /// Not a git smart-HTTP endpoint.
    NotGitEndpoint,
    /// The dumb git HTTP protocol.
    DumbHttp,
    /// A method a git endpoint does not take.
    EndpointMethod,
    /// A repository git-gate does not serve.
    UnknownRepository,
    /// A content type or coding the endpoint does not take.
    UnsupportedMediaType,
    /// The sidecar cannot serve it right now (mirror not ready, too many pushes).
    Unavailable,
}

impl RefusalKind {
    /// Every variant, for table tests and docs.
    pub const ALL: [RefusalKind; 35] = [
        RefusalKind::HostNotAllowed,
        RefusalKind::PathNotAllowed,
        RefusalKind::MethodNotAllowed,
        RefusalKind::PrivateAddress,
        RefusalKind::Dlp,
        RefusalKind::DlpEncoding,
        RefusalKind::Injection,
        RefusalKind::MethodOverride,
        RefusalKind::PathOverride,
        RefusalKind::AmbiguousPath,
        RefusalKind::CleartextCredential,
        RefusalKind::GitPushOverHttps,
        RefusalKind::UpgradeRefused,
        RefusalKind::WebsocketExtension,
        RefusalKind::ConnectNotPassthrough,
        RefusalKind::UpstreamRefused,
        RefusalKind::NestedConnect,
        RefusalKind::AuthorityMismatch,
        RefusalKind::BodyTooLarge,
        RefusalKind::BodyTimeout,
        RefusalKind::BadRequest,
        RefusalKind::BadTarget,
        RefusalKind::Unauthenticated,
        RefusalKind::TunnelLimit,
        RefusalKind::Resolve,
        RefusalKind::UpstreamError,
        RefusalKind::UpstreamTimeout,
        RefusalKind::UpstreamUnreachable,
        RefusalKind::UndecodableResponse,
        RefusalKind::NotGitEndpoint,
        RefusalKind::DumbHttp,
        RefusalKind::EndpointMethod,
        RefusalKind::UnknownRepository,
        RefusalKind::UnsupportedMediaType,
        RefusalKind::Unavailable,
    ];

    /// The usual status. A site may override it (`Refusal::with_status`) where the same kind
    /// has answered with another status until now.
    pub fn status(self) -> StatusCode {
        use RefusalKind::*;
        match self {
            HostNotAllowed
            | PathNotAllowed
            | MethodNotAllowed
            | PrivateAddress
            | Dlp
            | Injection
            | MethodOverride
            | PathOverride
            | AmbiguousPath
            | CleartextCredential
            | GitPushOverHttps
            | UpgradeRefused
            | ConnectNotPassthrough
            | UpstreamRefused
            | AuthorityMismatch
            | DumbHttp => StatusCode::FORBIDDEN,
            DlpEncoding | UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            NestedConnect | EndpointMethod => StatusCode::METHOD_NOT_ALLOWED,
            BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            BadRequest | BadTarget => StatusCode::BAD_REQUEST,
            Unauthenticated => StatusCode::PROXY_AUTHENTICATION_REQUIRED,
            TunnelLimit | Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Resolve | UpstreamError | UpstreamUnreachable | UndecodableResponse
            | WebsocketExtension => StatusCode::BAD_GATEWAY,
            NotGitEndpoint | UnknownRepository => StatusCode::NOT_FOUND,
        }
    }

    /// The metric label: fixed, snake_case, one per kind.
    pub fn label(self) -> &'static str {
        use RefusalKind::*;
        match self {
            HostNotAllowed => "host_not_allowed",
            PathNotAllowed => "path_not_allowed",
            MethodNotAllowed => "method_not_allowed",
            PrivateAddress => "private_address",
            Dlp => "dlp",
            DlpEncoding => "dlp_encoding",
            Injection => "injection",
            MethodOverride => "method_override",
            PathOverride => "path_override",
            AmbiguousPath => "ambiguous_path",
            CleartextCredential => "cleartext_credential",
            GitPushOverHttps => "git_push_over_https",
            UpgradeRefused => "upgrade_refused",
            WebsocketExtension => "websocket_extension",
            ConnectNotPassthrough => "connect_not_passthrough",
            UpstreamRefused => "upstream_refused",
            NestedConnect => "nested_connect",
            AuthorityMismatch => "authority_mismatch",
            BodyTooLarge => "body_too_large",
            BodyTimeout => "body_timeout",
            BadRequest => "bad_request",
            BadTarget => "bad_target",
            Unauthenticated => "unauthenticated",
            TunnelLimit => "tunnel_limit",
            Resolve => "resolve",
            UpstreamError => "upstream_error",
            UpstreamTimeout => "upstream_timeout",
            UpstreamUnreachable => "upstream_unreachable",
            UndecodableResponse => "undecodable_response",
            NotGitEndpoint => "not_git_endpoint",
            DumbHttp => "dumb_http",
            EndpointMethod => "endpoint_method",
            UnknownRepository => "unknown_repository",
            UnsupportedMediaType => "unsupported_media_type",
            Unavailable => "unavailable",
        }
    }

    /// What the agent may ask for. Only the operator's own choices of reach (a host, a
    /// route) are askable here; a ref rule is asked for from git-gate's push report
    /// (`git_gate::ask`), not from an HTTP refusal; never a DLP or injection finding, never an address
    /// class SSRF protects, never a protocol safeguard.
    pub fn askable(self) -> Askable {
        match self {
            RefusalKind::HostNotAllowed => Askable::Host,
            RefusalKind::PathNotAllowed | RefusalKind::MethodNotAllowed => Askable::Route,
            _ => Askable::No,
        }
    }
}

impl std::fmt::Display for RefusalKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// Every variant's status, label and askability, written out: a change to any is a
    /// visible change to this table.
    #[test]
    fn every_kind_has_its_status_label_and_askability() {
        use Askable as A;
        use RefusalKind as K;
        let table: &[(K, u16, &str, A)] = &[
            (K::HostNotAllowed, 403, "host_not_allowed", A::Host),
            (K::PathNotAllowed, 403, "path_not_allowed", A::Route),
            (K::MethodNotAllowed, 403, "method_not_allowed", A::Route),
            (K::PrivateAddress, 403, "private_address", A::No),
            (K::Dlp, 403, "dlp", A::No),
            (K::DlpEncoding, 415, "dlp_encoding", A::No),
            (K::Injection, 403, "injection", A::No),
            (K::MethodOverride, 403, "method_override", A::No),
            (K::PathOverride, 403, "path_override", A::No),
            (K::AmbiguousPath, 403, "ambiguous_path", A::No),
            (K::CleartextCredential, 403, "cleartext_credential", A::No),
            (K::GitPushOverHttps, 403, "git_push_over_https", A::No),
            (K::UpgradeRefused, 403, "upgrade_refused", A::No),
            (K::WebsocketExtension, 502, "websocket_extension", A::No),
            (
                K::ConnectNotPassthrough,
                403,
                "connect_not_passthrough",
                A::No,
            ),
            (K::UpstreamRefused, 403, "upstream_refused", A::No),
            (K::NestedConnect, 405, "nested_connect", A::No),
            (K::AuthorityMismatch, 403, "authority_mismatch", A::No),
            (K::BodyTooLarge, 413, "body_too_large", A::No),
            (K::BodyTimeout, 408, "body_timeout", A::No),
            (K::BadRequest, 400, "bad_request", A::No),
            (K::BadTarget, 400, "bad_target", A::No),
            (K::Unauthenticated, 407, "unauthenticated", A::No),
            (K::TunnelLimit, 503, "tunnel_limit", A::No),
            (K::Resolve, 502, "resolve", A::No),
            (K::UpstreamError, 502, "upstream_error", A::No),
            (K::UpstreamTimeout, 504, "upstream_timeout", A::No),
            (K::UpstreamUnreachable, 502, "upstream_unreachable", A::No),
            (K::UndecodableResponse, 502, "undecodable_response", A::No),
            (K::NotGitEndpoint, 404, "not_git_endpoint", A::No),
            (K::DumbHttp, 403, "dumb_http", A::No),
            (K::EndpointMethod, 405, "endpoint_method", A::No),
            (K::UnknownRepository, 404, "unknown_repository", A::No),
            (
                K::UnsupportedMediaType,
                415,
                "unsupported_media_type",
                A::No,
            ),
            (K::Unavailable, 503, "unavailable", A::No),
        ];
        assert_eq!(table.len(), RefusalKind::ALL.len(), "a row per variant");
        for (k, status, label, ask) in table {
            assert_eq!(k.status().as_u16(), *status, "{k:?}");
            assert_eq!(k.label(), *label, "{k:?}");
            assert_eq!(k.askable(), *ask, "{k:?}");
        }
        let kinds: HashSet<_> = table.iter().map(|r| r.0).collect();
        assert_eq!(
            kinds,
            RefusalKind::ALL.into_iter().collect(),
            "ALL lists each"
        );
        let labels: HashSet<_> = RefusalKind::ALL.iter().map(|k| k.label()).collect();
        assert_eq!(labels.len(), RefusalKind::ALL.len(), "labels are distinct");
        for l in labels {
            assert!(
                l.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{l}"
            );
        }
    }

    /// An agent is never invited to ask for what a secret, injection or SSRF finding blocked.
    #[test]
    fn findings_and_address_classes_are_never_askable() {
        for k in [
            RefusalKind::Dlp,
            RefusalKind::DlpEncoding,
            RefusalKind::Injection,
            RefusalKind::PrivateAddress,
            RefusalKind::CleartextCredential,
            RefusalKind::GitPushOverHttps,
            RefusalKind::MethodOverride,
            RefusalKind::Unauthenticated,
        ] {
            assert_eq!(k.askable(), Askable::No, "{k:?}");
        }
    }
}

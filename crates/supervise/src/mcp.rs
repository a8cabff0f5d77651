//! The same operations as MCP tools over streamable HTTP (`/mcp`), with rmcp, the official
//! Rust MCP SDK. Each tool calls [`State`] exactly as the JSON API does.

use std::sync::Arc;

use rmcp::handler::server::wrapper::Parameters;
use rmcp::schemars::{self, JsonSchema};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{tool, tool_handler, tool_router, ServerHandler};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::state::{state_json, State, Submitted};

/// The `/mcp` endpoint.
pub type McpService = Arc<StreamableHttpService<SuperviseMcp, LocalSessionManager>>;

/// Builds the `/mcp` service. `allowed_hosts` are the `Host` values accepted (rmcp's
/// DNS-rebinding guard): the name the agent uses (`supervise`) and loopback for tests.
pub fn service(app: Arc<State>, allowed_hosts: Vec<String>) -> McpService {
    // Stateless: no per-client session kept in memory, so opening sessions in a loop costs
    // the agent a request each and supervise nothing that accumulates.
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_allowed_hosts(allowed_hosts)
        .with_max_request_body_bytes(crate::limits::MAX_MCP_BODY_BYTES);
    Arc::new(StreamableHttpService::new(
        move || Ok(SuperviseMcp { app: app.clone() }),
        Arc::new(LocalSessionManager::default()),
        config,
    ))
}

#[derive(Clone)]
pub struct SuperviseMcp {
    app: Arc<State>,
}

/// `request_access` arguments: the body of `POST /v1/requests`, plus how long to wait.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct AccessArgs {
    /// `host` (an allowlist entry), `route` (an egress route) or `git-ref` (a push rule).
    pub kind: String,
    /// For `host` and `route`: the host, `*.domain`, address or CIDR, optional `:port`.
    pub host: Option<String>,
    /// For `route`: URL path globs (`/repos/acme/**`).
    pub paths: Option<Vec<String>>,
    /// For `route`: HTTP methods.
    pub methods: Option<Vec<String>>,
    /// For `git-ref`: the repository name at git-gate.
    pub repo: Option<String>,
    /// For `git-ref`: the ref or glob (`refs/heads/agent/**`).
    #[serde(rename = "ref")]
    #[schemars(rename = "ref")]
    pub refname: Option<String>,
    /// For `git-ref`: create, update, force, delete.
    pub allow: Option<Vec<String>>,
    /// Why the access is needed (one line, at most 1 KiB): the operator reads it.
    pub reason: String,
    /// Seconds to wait for the operator's decision (0 = answer at once).
    pub wait_secs: Option<u64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct BlocksArgs {
    /// Most refusals to list (default 20, at most 200).
    pub limit: Option<usize>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct CheckArgs {
    /// Absolute http:// or https:// URL.
    pub url: String,
    /// HTTP method (default GET).
    pub method: Option<String>,
}

#[tool_router]
impl SuperviseMcp {
    #[tool(
        description = "Ask the operator for access: a host for the allowlist, an egress route, or a git ref push rule. Returns the request id and its status (pending, approved, denied, expired)."
    )]
    async fn request_access(&self, Parameters(args): Parameters<AccessArgs>) -> String {
        let wait = args.wait_secs.unwrap_or(0);
        let mut body = Map::new();
        body.insert("kind".into(), args.kind.into());
        let mut put = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                body.insert(k.into(), v);
            }
        };
        put("host", args.host.map(Value::from));
        put("paths", args.paths.map(Value::from));
        put("methods", args.methods.map(Value::from));
        put("repo", args.repo.map(Value::from));
        put("ref", args.refname.map(Value::from));
        put("allow", args.allow.map(Value::from));
        body.insert("reason".into(), args.reason.into());
        let answer = match self.app.submit(&Value::Object(body), "mcp") {
            Submitted::Created { id } | Submitted::Duplicate { id } if wait > 0 => {
                match self.app.wait(&id, wait).await {
                    Some(st) => state_json(&id, &st),
                    None => json!({"error": "the request file vanished"}),
                }
            }
            Submitted::Created { id } | Submitted::Duplicate { id } => {
                json!({"id": id.as_str(), "status": "pending"})
            }
            Submitted::Invalid(why) => json!({"error": why}),
            Submitted::RateLimited(after) => {
                json!({"error": "rate limited: too many access requests", "retry_after_secs": after.as_secs().max(1)})
            }
            Submitted::TooManyPending => {
                json!({"error": "too many requests pending: wait for the operator"})
            }
            Submitted::Failed(why) => json!({"error": why}),
        };
        answer.to_string()
    }

    #[tool(
        description = "List this bottle's recent refusals (newest first) with the component and the reason."
    )]
    async fn list_recent_blocks(&self, Parameters(args): Parameters<BlocksArgs>) -> String {
        json!({"blocks": self.app.blocks(args.limit.unwrap_or(20)).await}).to_string()
    }

    #[tool(
        description = "Check whether a request to a URL would pass the bottle's allowlist and routes, and which rule decides."
    )]
    async fn check_url(&self, Parameters(args): Parameters<CheckArgs>) -> String {
        match self.app.check(&args.url, args.method.as_deref()) {
            Ok(v) => json!(v).to_string(),
            Err(why) => json!({"error": why}).to_string(),
        }
    }
}

#[tool_handler(
    name = "bottle-supervise",
    instructions = "Ask the bottle's operator for network or git access, see why requests were refused, and check a URL before trying it."
)]
impl ServerHandler for SuperviseMcp {}

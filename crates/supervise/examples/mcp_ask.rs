//! A minimal MCP client on rmcp's own streamable HTTP transport, for the end-to-end test that
//! runs it inside a bottle's agent container (static build, copied in):
//!
//! `mcp_ask URL TOOL 'JSON-ARGUMENTS'` prints the tool's text result on stdout; exit 1 on any
//! protocol error, 2 on bad usage. `mcp_ask URL --list` prints the tool names, one a line.
#![forbid(unsafe_code)]

use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::ServiceExt;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (url, tool, arguments) = match args.as_slice() {
        [url, list] if list == "--list" => (url.clone(), None, None),
        [url, tool, json] => match serde_json::from_str::<serde_json::Value>(json) {
            Ok(serde_json::Value::Object(map)) => (url.clone(), Some(tool.clone()), Some(map)),
            _ => {
                eprintln!("mcp_ask: the arguments must be one JSON object");
                return std::process::ExitCode::from(2);
            }
        },
        _ => {
            eprintln!("usage: mcp_ask URL TOOL 'JSON-ARGUMENTS' | mcp_ask URL --list");
            return std::process::ExitCode::from(2);
        }
    };
    match run(&url, tool, arguments).await {
        Ok(out) => {
            println!("{out}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mcp_ask: {e}");
            std::process::ExitCode::from(1)
        }
    }
}

async fn run(
    url: &str,
    tool: Option<String>,
    arguments: Option<serde_json::Map<String, serde_json::Value>>,
) -> Result<String, Box<dyn std::error::Error>> {
    let client = ().serve(StreamableHttpClientTransport::from_uri(url)).await?;
    let out = match (tool, arguments) {
        (Some(tool), Some(arguments)) => {
            let res = client
                .call_tool(CallToolRequestParams::new(tool).with_arguments(arguments))
                .await?;
            res.content
                .iter()
                .filter_map(|c| c.as_text().map(|t| t.text.clone()))
                .collect::<Vec<_>>()
                .join("\n")
        }
        _ => client
            .list_all_tools()
            .await?
            .into_iter()
            .map(|t| t.name.to_string())
            .collect::<Vec<_>>()
            .join("\n"),
    };
    client.cancel().await?;
    Ok(out)
}

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Header that carries the caller's API key; the value itself comes from the environment.
pub const API_KEY_HEADER: &str = "X-Api-Key";
pub const MAX_TOKENS: usize = 4096;
const SHA256_EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const ZERO_UUID: &str = "00000000-0000-0000-0000-000000000000";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransformRequest {
    pub id: uuid::Uuid,
    pub source: String,
    pub width: u32,
    pub height: u32,
    pub format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Png,
    Jpeg,
    Webp,
}

#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("missing field `{0}`")]
    Missing(&'static str),
    #[error("invalid dimension {0}: must be between 1 and 8192")]
    Dimension(u32),
    #[error("unsupported format {0:?}")]
    Format(String),
}

impl TransformRequest {
    pub fn parse(fields: &HashMap<String, String>) -> Result<Self, ParseError> {
        let source = fields.get("source").ok_or(ParseError::Missing("source"))?.clone();
        let width = dim(fields, "width")?;
        let height = dim(fields, "height")?;
        let format = match fields.get("format").map(String::as_str) {
            Some("png") | None => Format::Png,
            Some("jpeg") | Some("jpg") => Format::Jpeg,
            Some("webp") => Format::Webp,
            Some(other) => return Err(ParseError::Format(other.to_string())),
        };
        Ok(TransformRequest { id: uuid::Uuid::new_v4(), source, width, height, format })
    }
}

fn dim(fields: &HashMap<String, String>, name: &'static str) -> Result<u32, ParseError> {
    let raw = fields.get(name).ok_or(ParseError::Missing(name))?;
    let v: u32 = raw.parse().map_err(|_| ParseError::Dimension(0))?;
    if v == 0 || v > 8192 {
        return Err(ParseError::Dimension(v));
    }
    Ok(v)
}

pub struct Settings {
    pub listen: std::net::SocketAddr,
    pub database_url: String,
    pub api_key_env: String,
    pub request_timeout: Duration,
}

impl Settings {
    pub fn from_env() -> Result<Self, String> {
        let database_url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://localhost/app".into());
        let api_key_env = std::env::var("API_KEY_ENV").unwrap_or_else(|_| "SERVICE_API_KEY".into());
        Ok(Settings {
            listen: "127.0.0.1:8080".parse().map_err(|e| format!("{e}"))?,
            database_url,
            api_key_env,
            request_timeout: Duration::from_secs(30),
        })
    }
}

pub fn hex_digest(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_digest() {
        assert_eq!(SHA256_EMPTY.len(), 64);
        assert_eq!(ZERO_UUID.len(), 36);
        let started = Instant::now();
        let mut fields = HashMap::new();
        fields.insert("source".to_string(), "s3://bucket/key.png".to_string());
        fields.insert("width".to_string(), "640".to_string());
        fields.insert("height".to_string(), "480".to_string());
        let req = TransformRequest::parse(&fields).unwrap();
        assert_eq!(req.format, Format::Png);
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}

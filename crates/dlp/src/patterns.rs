//! The built-in detector table.
//!
//! Every pattern has literal anchors (fed to the Aho-Corasick prefilter), a
//! bounded regex that is only run in a window around an anchor hit, and
//! optional boundary checks and validators that keep false positives down.

mod validate;

use validate::*;
pub(crate) use validate::{is_wif, placeholder_like, BITCOIN_WIF};

/// What may sit right before / after a match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Boundary {
    /// Anything.
    None,
    /// Not an ASCII letter or digit (a `\n`, `\t`, `\r` JSON escape counts as a boundary).
    Alnum,
    /// Not a letter, digit, `+`, `/` or `=`: for short anchors whose tokens
    /// would otherwise show up by chance inside long base64 blobs.
    Base64,
}

pub(crate) struct PatternDef {
    /// Stable id reported in findings.
    pub id: &'static str,
    /// Literal strings of which at least one occurs in every match.
    pub anchors: &'static [&'static str],
    /// Bounded regex (bytes, ASCII classes).
    pub regex: &'static str,
    /// How far before an anchor occurrence a match may start.
    pub back: usize,
    /// Longest possible match.
    pub max_len: usize,
    pub left: Boundary,
    pub right: Boundary,
    /// Extra check on the matched bytes.
    pub validate: Option<fn(&[u8]) -> bool>,
    /// Cheap check at an anchor position (haystack, anchor start) before the
    /// regex window is scanned; for anchors that are common words.
    pub near: Option<fn(&[u8], usize) -> bool>,
}

const fn p(
    id: &'static str,
    anchors: &'static [&'static str],
    regex: &'static str,
    back: usize,
    max_len: usize,
) -> PatternDef {
    PatternDef {
        id,
        anchors,
        regex,
        back,
        max_len,
        left: Boundary::Alnum,
        right: Boundary::Alnum,
        validate: None,
        near: None,
    }
}

impl PatternDef {
    const fn bounds(mut self, left: Boundary, right: Boundary) -> Self {
        self.left = left;
        self.right = right;
        self
    }
    const fn check(mut self, f: fn(&[u8]) -> bool) -> Self {
        self.validate = Some(f);
        self
    }
    const fn near(mut self, f: fn(&[u8], usize) -> bool) -> Self {
        self.near = Some(f);
        self
    }
}

use Boundary::{Alnum, Base64, None as Free};

/// Id of the Discord bot token detector, which has no literal anchor and is
/// triggered from the token-shape scan instead.
pub(crate) const DISCORD_BOT_TOKEN: &str = "discord-bot-token";

/// Patterns whose anchor can occur outside a run of 16+ base64/base64url
/// characters (anchors or tokens with `.`, `=`, `:`, `~`, `$`, spaces, or
/// short tokens). Their anchors are searched in the whole input; the anchors
/// of every other pattern only inside such runs (see `engine::find_runs`).
/// The true-positive table test checks every detector on both paths.
pub(crate) const TEXT_IDS: &[&str] = &[
    "aws-secret-access-key",
    "gcp-service-account-key",
    "google-oauth-access-token",
    "google-oauth-client-id",
    "azure-storage-account-key",
    "azure-ad-client-secret",
    "hashicorp-vault-token",
    "terraform-cloud-token",
    "dynatrace-token",
    "doppler-token",
    "bitbucket-app-password",
    "slack-token",
    "slack-webhook",
    "discord-webhook",
    "telegram-bot-token",
    "sendgrid-api-key",
    "mapbox-secret-token",
    "private-key",
    "jwt",
    "hex-private-key",
    "connection-string-password",
    "url-credential-param",
    "env-secret-assignment",
    "braintree-access-token",
];

pub(crate) static PATTERNS: &[PatternDef] = &[
    // ---------------------------------------------------------------- cloud
    p(
        "aws-access-key-id",
        &["AKIA", "ASIA", "AGPA", "AIDA", "AROA", "AIPA", "ANPA", "ANVA", "ABIA", "ACCA", "A3T"],
        r"(?:A3T[A-Z0-9]|AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|ABIA|ACCA)[A-Z2-7]{16}",
        0,
        20,
    )
    .check(not_aws_example),
    p(
        "aws-secret-access-key",
        &[
            "ecret_access_key",
            "ECRET_ACCESS_KEY",
            "ecretAccessKey",
            "ecret-access-key",
            "ws_secret_key",
            "WS_SECRET_KEY",
        ],
        r#"(?i:secret_?access_?key|secret-access-key|aws_secret_key)\\?["']?[ \t]{0,5}(?:=|:|=>)[ \t]{0,5}\\?["']?[A-Za-z0-9/+]{40}"#,
        5,
        110,
    )
    .bounds(Free, Base64)
    .check(aws_secret_value),
    p(
        "gcp-service-account-key",
        &["service_account"],
        r#"\\?"type\\?"[ \t]{0,5}:[ \t]{0,5}\\?"service_account\\?""#,
        40,
        70,
    )
    .bounds(Free, Free),
    p("google-api-key", &["AIza"], r"AIza[0-9A-Za-z_\-]{35}", 0, 39),
    p("google-oauth-client-secret", &["GOCSPX-"], r"GOCSPX-[0-9A-Za-z_\-]{28}", 0, 35),
    p("google-oauth-access-token", &["ya29."], r"ya29\.[0-9A-Za-z_\-]{30,2000}", 0, 2005),
    p("google-oauth-refresh-token", &["1//0"], r"1//0[0-9A-Za-z_\-]{40,500}", 0, 504),
    p(
        "google-oauth-client-id",
        &[".apps.googleusercontent.com"],
        r"[0-9]{6,20}-[0-9a-z]{32}\.apps\.googleusercontent\.com",
        60,
        90,
    ),
    p(
        "azure-storage-account-key",
        &["AccountKey="],
        r"AccountKey=[A-Za-z0-9+/]{86}==",
        0,
        99,
    )
    .bounds(Free, Free),
    p(
        "azure-ad-client-secret",
        &["Q~"],
        r"[A-Za-z0-9_~.\-]{3}[0-9]Q~[A-Za-z0-9_~.\-]{31,34}",
        4,
        40,
    ),
    p("alibaba-access-key-id", &["LTAI"], r"LTAI[A-Za-z0-9]{12,20}", 0, 24).bounds(Base64, Base64),
    p(
        "digitalocean-token",
        &["dop_v1_", "doo_v1_", "dor_v1_"],
        r"do[por]_v1_[a-f0-9]{64}",
        0,
        71,
    ),
    p("hashicorp-vault-token", &["hvs.", "hvb."], r"hv[sb]\.[A-Za-z0-9_\-]{24,400}", 0, 404),
    p(
        "terraform-cloud-token",
        &[".atlasv1."],
        r"[A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_\-]{60,100}",
        14,
        124,
    ),
    p(
        "vercel-token",
        &["vercel_", "vcp_", "vci_", "vca_", "vcr_", "vck_"],
        r"(?:vercel_|vc[piark]_)[A-Za-z0-9]{24,100}",
        0,
        107,
    ),
    p(
        "supabase-key",
        &["sb_secret_", "sbp_"],
        r"sb_secret_[A-Za-z0-9_\-]{20,100}|sbp_[a-f0-9]{40}",
        0,
        110,
    ),
    p("heroku-api-key", &["HRKU-"], r"HRKU-[A-Za-z0-9_\-]{60,70}", 0, 75),
    p("netlify-token", &["nfp_"], r"nfp_[A-Za-z0-9]{36}", 0, 40),
    p(
        "fly-io-token",
        &["fm1a_", "fm1r_", "fm2_"],
        r"fm(?:1[ar]|2)_[A-Za-z0-9+/=_\-]{100,2000}",
        0,
        2005,
    )
    .bounds(Alnum, Free),
    p(
        "tailscale-key",
        &["tskey-"],
        r"tskey-(?:api|auth|client|scim|webhook)-[A-Za-z0-9]{6,20}-[A-Za-z0-9]{20,60}",
        0,
        96,
    ),
    p(
        "dynatrace-token",
        &["dt0c01."],
        r"dt0c01\.[A-Z0-9]{24}\.[A-Z0-9]{64}",
        0,
        96,
    ),
    p(
        "doppler-token",
        &["dp.pt.", "dp.st.", "dp.sa.", "dp.ct.", "dp.scim.", "dp.audit."],
        r"dp\.(?:pt|st|sa|ct|scim|audit)\.[A-Za-z0-9]{40,44}",
        0,
        54,
    ),
    p(
        "1password-service-account-token",
        &["ops_eyJ"],
        r"ops_eyJ[A-Za-z0-9+/=_\-]{100,2000}",
        0,
        2007,
    )
    .bounds(Alnum, Free),
    // ------------------------------------------------------ source control
    p("github-pat", &["ghp_"], r"ghp_[A-Za-z0-9]{36}", 0, 40),
    p("github-oauth-token", &["gho_"], r"gho_[A-Za-z0-9]{36}", 0, 40),
    p("github-user-token", &["ghu_"], r"ghu_[A-Za-z0-9]{36}", 0, 40),
    p("github-app-token", &["ghs_"], r"ghs_[A-Za-z0-9]{36}", 0, 40),
    p("github-refresh-token", &["ghr_"], r"ghr_[A-Za-z0-9]{36,76}", 0, 80),
    p(
        "github-fine-grained-pat",
        &["github_pat_"],
        r"github_pat_[A-Za-z0-9_]{70,100}",
        0,
        111,
    ),
    p("gitlab-pat", &["glpat-"], r"glpat-[A-Za-z0-9_\-.]{20,120}", 0, 126),
    p(
        "gitlab-token",
        &["gldt-", "glrt-", "glptt-", "glcbt-", "glsoat-", "glft-", "glimt-", "glagent-", "GR1348941"],
        r"(?:gl(?:dt|rt|ptt|cbt|soat|ft|imt|agent)-|GR1348941)[A-Za-z0-9_\-.]{20,120}",
        0,
        130,
    ),
    p(
        "bitbucket-app-password",
        &["ATBB"],
        r"ATBB[A-Za-z0-9_=.\-]{32,60}",
        0,
        64,
    ),
    p(
        "atlassian-api-token",
        &["ATATT3", "ATCTT3"],
        r"AT[AC]TT3[A-Za-z0-9_\-=]{60,300}",
        0,
        306,
    ),
    // ------------------------------------------------------------ registries
    p("npm-token", &["npm_"], r"npm_[A-Za-z0-9]{36}", 0, 40),
    p("pypi-token", &["pypi-AgE"], r"pypi-AgE[A-Za-z0-9_\-]{50,400}", 0, 408),
    p("rubygems-api-key", &["rubygems_"], r"rubygems_[0-9a-f]{48}", 0, 57),
    p("nuget-api-key", &["oy2"], r"oy2[a-z0-9]{43}", 0, 46).bounds(Base64, Base64),
    p("crates-io-token", &["cio"], r"cio[A-Za-z0-9]{32}", 0, 35).bounds(Base64, Base64),
    p("dockerhub-pat", &["dckr_pat_"], r"dckr_pat_[A-Za-z0-9_\-]{27,40}", 0, 49),
    p(
        "jfrog-token",
        &["AKCp", "cmVmdGtu"],
        r"AKCp[A-Za-z0-9]{69}|cmVmdGtu[A-Za-z0-9]{56}",
        0,
        73,
    )
    .bounds(Base64, Base64),
    p("sonarqube-token", &["sqp_", "squ_", "sqa_"], r"sq[pua]_[a-f0-9]{40}", 0, 44),
    p("buildkite-token", &["bkua_"], r"bkua_[a-f0-9]{40}", 0, 45),
    p(
        "circleci-token",
        &["CCIPAT_"],
        r"CCIPAT_[A-Za-z0-9]{22}_[a-f0-9]{40}",
        0,
        70,
    ),
    p(
        "postman-api-key",
        &["PMAK-"],
        r"PMAK-[a-f0-9]{24}-[a-f0-9]{34}",
        0,
        64,
    ),
    // ------------------------------------------------------ chat / saas
    p(
        "slack-token",
        &["xoxb-", "xoxp-", "xoxa-", "xoxr-", "xoxs-", "xoxo-", "xoxe-", "xoxe."],
        r"xox(?:[bpaors]|e\.xox[bp]|e)-[0-9A-Za-z\-]{10,250}",
        0,
        260,
    ),
    p(
        "slack-app-token",
        &["xapp-"],
        r"xapp-[0-9]-[A-Z0-9]{6,20}-[0-9]{6,20}-[a-z0-9]{32,80}",
        0,
        130,
    ),
    p(
        "slack-webhook",
        &["hooks.slack.com/"],
        r"hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_/+\-]{30,150}",
        0,
        180,
    )
    .bounds(Free, Free),
    p(
        DISCORD_BOT_TOKEN,
        &[],
        r"[MNO][A-Za-z0-9_\-]{23,27}\.[A-Za-z0-9_\-]{6}\.[A-Za-z0-9_\-]{27,40}",
        0,
        76,
    ),
    p(
        "discord-webhook",
        &["discord.com/api/webhooks/", "discordapp.com/api/webhooks/"],
        r"discord(?:app)?\.com/api/webhooks/[0-9]{15,25}/[A-Za-z0-9_\-]{60,80}",
        0,
        130,
    )
    .bounds(Free, Alnum),
    p(
        "telegram-bot-token",
        &[":AA"],
        r"[0-9]{8,10}:AA[A-Za-z0-9_\-]{33}",
        10,
        46,
    )
    // `/bot<token>/getMe` is how the API is called.
    .bounds(Free, Alnum),
    p(
        "twilio-api-key",
        &["SK"],
        r"SK[0-9a-f]{32}",
        0,
        34,
    )
    .bounds(Base64, Base64),
    p(
        "sendgrid-api-key",
        &["SG."],
        r"SG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}",
        0,
        69,
    ),
    p("mailgun-api-key", &["key-"], r"key-[0-9a-f]{32}", 0, 36).bounds(Base64, Base64),
    p(
        "mailchimp-api-key",
        &["-us"],
        r"[0-9a-f]{32}-us[0-9]{1,2}",
        32,
        37,
    ),
    p("newrelic-api-key", &["NRAK-"], r"NRAK-[A-Z0-9]{27}", 0, 32),
    p("linear-api-key", &["lin_api_"], r"lin_api_[A-Za-z0-9]{40}", 0, 48),
    p("notion-token", &["ntn_"], r"ntn_[A-Za-z0-9]{40,50}", 0, 54),
    p(
        "sentry-token",
        &["sntrys_", "sntryu_"],
        r"sntrys_[A-Za-z0-9+/=_\-]{40,400}|sntryu_[a-f0-9]{64}",
        0,
        407,
    )
    .bounds(Alnum, Free),
    p(
        "shopify-token",
        &["shpat_", "shpca_", "shppa_", "shpss_"],
        r"shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}",
        0,
        38,
    ),
    p(
        "grafana-token",
        &["glsa_", "glc_"],
        r"glsa_[A-Za-z0-9]{32}_[a-f0-9]{8}|glc_[A-Za-z0-9+/]{32,400}={0,2}",
        0,
        406,
    )
    .bounds(Alnum, Free),
    p("figma-token", &["figd_"], r"figd_[A-Za-z0-9_\-]{40,50}", 0, 55),
    // ------------------------------------------------------------ payments
    p(
        "stripe-secret-key",
        &["sk_live_", "sk_test_", "rk_live_", "rk_test_"],
        r"[sr]k_(?:live|test)_[A-Za-z0-9]{24,247}",
        0,
        255,
    ),
    p(
        "stripe-webhook-secret",
        &["whsec_"],
        r"whsec_[A-Za-z0-9+/=]{32,100}",
        0,
        106,
    )
    .bounds(Alnum, Free),
    p(
        "square-token",
        &["sq0atp-", "sq0csp-"],
        r"sq0(?:atp|csp)-[A-Za-z0-9_\-]{22,60}",
        0,
        67,
    ),
    p(
        "braintree-access-token",
        &["access_token$production$"],
        r"access_token\$production\$[0-9a-z]{16}\$[0-9a-f]{32}",
        0,
        73,
    ),
    // --------------------------------------------------------- LLM / AI
    p(
        "anthropic-api-key",
        &["sk-ant-"],
        r"sk-ant-(?:api|admin|oat|sid)[0-9]{2}-[A-Za-z0-9_\-]{40,200}",
        0,
        220,
    ),
    p(
        "openai-api-key",
        &["sk-proj-", "sk-svcacct-", "sk-admin-", "T3BlbkFJ"],
        r"sk-(?:proj|svcacct|admin)-[A-Za-z0-9_\-]{40,300}|sk-[A-Za-z0-9_\-]{20,100}T3BlbkFJ[A-Za-z0-9_\-]{20,100}",
        110,
        320,
    ),
    p(
        "openrouter-api-key",
        &["sk-or-v1-"],
        r"sk-or-v1-[0-9a-f]{64}",
        0,
        73,
    ),
    p("llm-api-key", &["sk-"], r"sk-[A-Za-z0-9]{32,64}", 0, 67),
    p(
        "huggingface-token",
        &["hf_", "api_org_"],
        r"(?:hf_|api_org_)[A-Za-z0-9]{34,40}",
        0,
        48,
    ),
    p("replicate-api-token", &["r8_"], r"r8_[A-Za-z0-9]{37}", 0, 40),
    p("groq-api-key", &["gsk_"], r"gsk_[A-Za-z0-9]{52}", 0, 56),
    p("xai-api-key", &["xai-"], r"xai-[A-Za-z0-9]{80}", 0, 84),
    p("perplexity-api-key", &["pplx-"], r"pplx-[A-Za-z0-9]{48}", 0, 53),
    p("fireworks-api-key", &["fw_"], r"fw_[A-Za-z0-9]{24,64}", 0, 67),
    p("together-api-key", &["tok_"], r"tok_[A-Za-z0-9]{40,80}", 0, 84),
    p(
        "pinecone-api-key",
        &["pcsk_"],
        r"pcsk_[A-Za-z0-9]{4,10}_[A-Za-z0-9]{40,100}",
        0,
        116,
    ),
    p("databricks-token", &["dapi"], r"dapi[0-9a-f]{32}(?:-[0-9])?", 0, 38).bounds(Base64, Base64),
    p(
        "langsmith-api-key",
        &["lsv2_"],
        r"lsv2_(?:pt|sk)_[0-9a-f]{32}_[0-9a-f]{10}",
        0,
        51,
    ),
    p("elevenlabs-api-key", &["sk_"], r"sk_[a-f0-9]{48}", 0, 51),
    p(
        "mapbox-secret-token",
        &["sk.eyJ"],
        r"sk\.eyJ[A-Za-z0-9_\-]{50,300}\.[A-Za-z0-9_\-]{20,100}",
        0,
        410,
    ),
    // ---------------------------------------------------- crypto material
    p(
        "private-key",
        &["-----BEGIN "],
        r"-----BEGIN (?:[A-Z0-9]{1,12} ){0,2}PRIVATE KEY(?: BLOCK)?-----(?:\\[rn]|[ \t\r\n])(?s:.){0,400}?[A-Za-z0-9+/]{40}",
        0,
        520,
    )
    .bounds(Free, Free),
    p(
        "putty-private-key",
        &["PuTTY-User-Key-File-"],
        r"PuTTY-User-Key-File-[1-3]: [a-z0-9\-]{3,40}(?:\\[rn]|[\r\n]){1,4}Encryption: ",
        0,
        90,
    )
    .bounds(Free, Free),
    p(
        "age-secret-key",
        &["AGE-SECRET-KEY-1"],
        r"AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}",
        0,
        74,
    ),
    p(
        "jwt",
        &["eyJ"],
        r"eyJ[A-Za-z0-9_\-]{10,2000}\.eyJ[A-Za-z0-9_\-]{10,6000}\.[A-Za-z0-9_\-]{20,2000}",
        0,
        10_000,
    )
    .bounds(Alnum, Free)
    .check(not_jwt_io_example),
    p(
        "bip32-extended-private-key",
        &["xprv", "yprv", "zprv", "tprv"],
        r"[xyzt]prv[1-9A-HJ-NP-Za-km-z]{107,108}",
        0,
        112,
    ),
    p(
        "hex-private-key",
        &[
            "rivate_key",
            "rivateKey",
            "rivate-key",
            "RIVATE_KEY",
            "rivkey",
            "ecret_key",
            "ecretKey",
            "ECRET_KEY",
        ],
        r#"(?i:priv(?:ate)?[_\-]?key|secret[_\-]?key)\\?["']?[ \t]{0,5}[:=][ \t]{0,5}\\?["']?(?:0x)?[0-9a-fA-F]{64}"#,
        2,
        110,
    )
    .bounds(Free, Alnum),
    // ------------------------------------------------- connection strings
    p(
        "connection-string-password",
        &[
            "postgres", "mysql://", "mariadb://", "mongodb", "redis", "amqp", "mssql://",
            "sqlserver://",
        ],
        r#"(?i:postgres(?:ql)?|mysql|mariadb|mongodb(?:\+srv)?|rediss?|amqps?|mssql|sqlserver)://[^\s:/@"'<>\\]{0,100}:[^\s@/"'<>\\]{1,200}@[A-Za-z0-9.\-\[\]_]{1,255}"#,
        0,
        580,
    )
    .bounds(Alnum, Free)
    .check(connection_string_password)
    .near(scheme_then_slashes),
    // ------------------------------------------------------------ generic
    p(
        "url-credential-param",
        &["password=", "passwd=", "pwd=", "secret=", "token=", "api_key=", "apikey=", "api-key="],
        r#"[?&;](?:password|passwd|pwd|secret|client_secret|token|access_token|auth_token|refresh_token|private_token|api_key|apikey|api-key)=[^&\s#"'<>\\]{12,300}"#,
        15,
        330,
    )
    .bounds(Free, Free)
    .check(credential_param),
    p(
        "env-secret-assignment",
        &[
            "SECRET", "PASSWORD", "PASSWD", "TOKEN", "API_KEY", "APIKEY", "ACCESS_KEY",
            "PRIVATE_KEY", "AUTH_KEY",
        ],
        r#"[A-Z][A-Z0-9_]{0,60}\\?["']?[ \t]{0,3}[=:][ \t]{0,3}\\?["']?[A-Za-z0-9+/=_\-.~!@#%^&*]{12,300}"#,
        62,
        400,
    )
    .bounds(Alnum, Free)
    .check(env_assignment)
    .near(name_then_assign),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_kebab() {
        let mut seen = std::collections::HashSet::new();
        for p in PATTERNS {
            assert!(seen.insert(p.id), "duplicate id {}", p.id);
            assert!(p
                .id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
        }
        assert!(PATTERNS.len() >= 48, "only {} patterns", PATTERNS.len());
    }

    #[test]
    fn wif_checksum() {
        // The private key 1 (compressed and uncompressed), a standard test vector.
        assert!(is_wif(
            b"KwDiBf89QgGbjEhKnhXJuH7LrciVrZi3qYjgd9M7rFU73sVHnoWn"
        ));
        assert!(is_wif(
            b"5HpHagT65TZzG1PH3CSu63k8DbpvD8s5ip4nEB3kEsreAnchuDf"
        ));
        assert!(!is_wif(
            b"KwDiBf89QgGbjEhKnhXJuH7LrciVrZi3qYjgd9M7rFU73sVHnoWm"
        ));
        assert!(!is_wif(
            b"5HpHagT65TZzG1PH3CSu63k8DbpvD8s5ip4nEB3kEsreAnchuDg"
        ));
    }
}

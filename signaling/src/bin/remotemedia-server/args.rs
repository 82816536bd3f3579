//! The server's configuration from its flags and the environment (flags win).

use std::net::{AddrParseError, SocketAddr};
use std::num::ParseIntError;
use std::time::Duration;

use remotemedia_signaling::grpc::auth::CallRate;
use remotemedia_signaling::grpc::server::{self, ServerConfig};

pub const HELP: &str = "remotemedia-server: RemoteMedia gRPC + WebSocket signaling and pipeline execution

Flags (each overrides the environment variable named after it):
  --grpc-bind ADDR        GRPC_BIND_ADDRESS     gRPC address (default 0.0.0.0:50051)
  --ws-bind ADDR|off      WS_BIND_ADDRESS       JSON-RPC WebSocket signaling (default 0.0.0.0:8080)
  --metrics-bind ADDR|off METRICS_BIND_ADDRESS  Prometheus metrics at /metrics (default 0.0.0.0:9090)
  --require-auth          GRPC_REQUIRE_AUTH     require 'authorization: Bearer <token>' (true/false)
  --auth-tokens T1,T2     GRPC_AUTH_TOKENS      accepted tokens, comma-separated
  --ws-auth-tokens T1,T2  WS_AUTH_TOKENS        tokens the WebSocket needs as ?token= (default: the
                                                gRPC tokens when --require-auth is set, else none)
  --max-memory-mb N       GRPC_MAX_MEMORY_MB    data one execution may hold (default 512)
  --max-timeout-sec N     GRPC_MAX_TIMEOUT_SEC  longest execution, idle stream gap (default 30)
  --max-message-mb N      GRPC_MAX_MESSAGE_MB   largest gRPC message (default 16)
  --calls-per-sec N       GRPC_CALLS_PER_SEC    calls one connection may open per second (default 100)
  --tls-cert PEM          GRPC_TLS_CERT         serve TLS (grpcs://) with this certificate chain
  --tls-key PEM           GRPC_TLS_KEY          ... and this key
  --json-logging          GRPC_JSON_LOGGING     log JSON lines instead of text (true/false)
Logging level: RUST_LOG (default info).";

pub struct Args {
    pub config: ServerConfig,
    pub json_logging: bool,
}

/// What the command line asks for.
pub enum Command {
    Serve(Box<Args>),
    Help,
}

/// Why the flags and the environment do not make a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ArgsError {
    #[error("unknown flag {0:?}\n\n{HELP}")]
    UnknownFlag(String),
    #[error("{0} needs a value")]
    NoValue(String),
    #[error("{env}={value:?}: not an address like 127.0.0.1:50051 ({source})")]
    Address {
        env: &'static str,
        value: String,
        #[source]
        source: AddrParseError,
    },
    #[error("{env}={value:?}: not a whole number")]
    Number {
        env: &'static str,
        value: String,
        #[source]
        source: ParseIntError,
    },
    #[error("{env}={value:?}: not true or false")]
    Flag { env: &'static str, value: String },
    #[error("GRPC_REQUIRE_AUTH is set but GRPC_AUTH_TOKENS names no token")]
    AuthWithoutTokens,
    #[error("GRPC_TLS_CERT and GRPC_TLS_KEY go together")]
    HalfTls,
    #[error("cannot read {path}: {source}")]
    Unreadable {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("GRPC_BIND_ADDRESS cannot be off")]
    GrpcOff,
}

pub fn parse() -> Result<Command, ArgsError> {
    let mut values: std::collections::HashMap<&'static str, String> = Default::default();
    let names: [(&str, &'static str); 13] = [
        ("--grpc-bind", "GRPC_BIND_ADDRESS"),
        ("--ws-bind", "WS_BIND_ADDRESS"),
        ("--metrics-bind", "METRICS_BIND_ADDRESS"),
        ("--require-auth", "GRPC_REQUIRE_AUTH"),
        ("--auth-tokens", "GRPC_AUTH_TOKENS"),
        ("--ws-auth-tokens", "WS_AUTH_TOKENS"),
        ("--max-memory-mb", "GRPC_MAX_MEMORY_MB"),
        ("--max-timeout-sec", "GRPC_MAX_TIMEOUT_SEC"),
        ("--max-message-mb", "GRPC_MAX_MESSAGE_MB"),
        ("--calls-per-sec", "GRPC_CALLS_PER_SEC"),
        ("--tls-cert", "GRPC_TLS_CERT"),
        ("--tls-key", "GRPC_TLS_KEY"),
        ("--json-logging", "GRPC_JSON_LOGGING"),
    ];
    for (_, env) in names {
        if let Ok(v) = std::env::var(env) {
            values.insert(env, v);
        }
    }
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--help" || arg == "-h" {
            return Ok(Command::Help);
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f.to_owned(), Some(v.to_owned())),
            None => (arg.clone(), None),
        };
        let (_, env) = names
            .iter()
            .find(|(f, _)| *f == flag)
            .ok_or_else(|| ArgsError::UnknownFlag(arg.clone()))?;
        let boolean = matches!(flag.as_str(), "--require-auth" | "--json-logging");
        let value = match inline {
            Some(v) => v,
            None if boolean => "true".into(),
            None => args.next().ok_or(ArgsError::NoValue(flag))?,
        };
        values.insert(env, value);
    }

    let addr = |env: &'static str, default: Option<SocketAddr>| match values
        .get(env)
        .map(String::as_str)
    {
        None => Ok(default),
        Some("off") => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|source| ArgsError::Address {
            env,
            value: v.to_owned(),
            source,
        }),
    };
    let number = |env: &'static str, default: u64| {
        values.get(env).map_or(Ok(default), |v| {
            v.parse().map_err(|source| ArgsError::Number {
                env,
                value: v.clone(),
                source,
            })
        })
    };
    let flag = |env: &'static str| match values.get(env).map(|v| v.to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) if ["1", "true", "yes", "on"].contains(&v.as_str()) => Ok(true),
        Some(v) if ["0", "false", "no", "off", ""].contains(&v.as_str()) => Ok(false),
        Some(value) => Err(ArgsError::Flag { env, value }),
    };

    let defaults = ServerConfig::default();
    let tokens = |env: &str| -> Vec<String> {
        values
            .get(env)
            .map(|t| {
                t.split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let auth_tokens = tokens("GRPC_AUTH_TOKENS");
    let require_auth = flag("GRPC_REQUIRE_AUTH")?;
    if require_auth && auth_tokens.is_empty() {
        return Err(ArgsError::AuthWithoutTokens);
    }
    let mut ws_tokens = tokens("WS_AUTH_TOKENS");
    if ws_tokens.is_empty() && require_auth {
        ws_tokens = auth_tokens.clone();
    }
    let tls = match (values.get("GRPC_TLS_CERT"), values.get("GRPC_TLS_KEY")) {
        (None, None) => None,
        (Some(cert), Some(key)) => {
            let read = |path: &String| {
                std::fs::read(path).map_err(|source| ArgsError::Unreadable {
                    path: path.clone(),
                    source,
                })
            };
            Some((read(cert)?, read(key)?))
        }
        _ => return Err(ArgsError::HalfTls),
    };
    let calls = number("GRPC_CALLS_PER_SEC", defaults.call_rate.per_sec as u64)?.max(1) as f64;
    let config = ServerConfig {
        grpc_addr: addr("GRPC_BIND_ADDRESS", Some(defaults.grpc_addr))?
            .ok_or(ArgsError::GrpcOff)?,
        ws_addr: addr("WS_BIND_ADDRESS", defaults.ws_addr)?,
        metrics_addr: addr("METRICS_BIND_ADDRESS", defaults.metrics_addr)?,
        require_auth,
        auth_tokens,
        ws_tokens,
        limits: server::Limits {
            max_timeout: Duration::from_secs(number("GRPC_MAX_TIMEOUT_SEC", 30)?.max(1)),
            max_memory_bytes: (number("GRPC_MAX_MEMORY_MB", 512)?.max(1) as usize) << 20,
        },
        max_message_bytes: (number("GRPC_MAX_MESSAGE_MB", 16)?.max(1) as usize) << 20,
        call_rate: CallRate {
            per_sec: calls,
            burst: calls * 2.0,
        },
        tls,
    };
    Ok(Command::Serve(Box::new(Args {
        config,
        json_logging: flag("GRPC_JSON_LOGGING")?,
    })))
}

//! `remotemedia-server`: gRPC signaling and pipeline execution, JSON-RPC WebSocket signaling
//! and Prometheus metrics on one peer registry. Flags override the environment.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use remotemedia_signaling::grpc::auth::CallRate;
use remotemedia_signaling::grpc::server::{self, ServerConfig};

const HELP: &str = "remotemedia-server: RemoteMedia gRPC + WebSocket signaling and pipeline execution

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

struct Args {
    config: ServerConfig,
    json_logging: bool,
}

fn parse() -> Result<Args, String> {
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
            return Err(HELP.into());
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f.to_owned(), Some(v.to_owned())),
            None => (arg.clone(), None),
        };
        let (_, env) = names
            .iter()
            .find(|(f, _)| *f == flag)
            .ok_or_else(|| format!("unknown flag {arg:?}\n\n{HELP}"))?;
        let boolean = matches!(flag.as_str(), "--require-auth" | "--json-logging");
        let value = match inline {
            Some(v) => v,
            None if boolean => "true".into(),
            None => args.next().ok_or_else(|| format!("{flag} needs a value"))?,
        };
        values.insert(env, value);
    }

    let addr = |env: &str, default: Option<SocketAddr>| -> Result<Option<SocketAddr>, String> {
        match values.get(env).map(String::as_str) {
            None => Ok(default),
            Some("off") => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|e| format!("{env}={v:?}: not an address like 127.0.0.1:50051 ({e})")),
        }
    };
    let number = |env: &str, default: u64| -> Result<u64, String> {
        values.get(env).map_or(Ok(default), |v| {
            v.parse()
                .map_err(|_| format!("{env}={v:?}: not a whole number"))
        })
    };
    let flag = |env: &str| -> Result<bool, String> {
        match values.get(env).map(|v| v.to_ascii_lowercase()) {
            None => Ok(false),
            Some(v) if ["1", "true", "yes", "on"].contains(&v.as_str()) => Ok(true),
            Some(v) if ["0", "false", "no", "off", ""].contains(&v.as_str()) => Ok(false),
            Some(v) => Err(format!("{env}={v:?}: not true or false")),
        }
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
        return Err("GRPC_REQUIRE_AUTH is set but GRPC_AUTH_TOKENS names no token".into());
    }
    let mut ws_tokens = tokens("WS_AUTH_TOKENS");
    if ws_tokens.is_empty() && require_auth {
        ws_tokens = auth_tokens.clone();
    }
    let tls = match (values.get("GRPC_TLS_CERT"), values.get("GRPC_TLS_KEY")) {
        (None, None) => None,
        (Some(cert), Some(key)) => {
            let read = |p: &String| std::fs::read(p).map_err(|e| format!("cannot read {p}: {e}"));
            Some((read(cert)?, read(key)?))
        }
        _ => return Err("GRPC_TLS_CERT and GRPC_TLS_KEY go together".into()),
    };
    let calls = number("GRPC_CALLS_PER_SEC", defaults.call_rate.per_sec as u64)?.max(1) as f64;
    let config = ServerConfig {
        grpc_addr: addr("GRPC_BIND_ADDRESS", Some(defaults.grpc_addr))?
            .ok_or("GRPC_BIND_ADDRESS cannot be off")?,
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
    Ok(Args {
        config,
        json_logging: flag("GRPC_JSON_LOGGING")?,
    })
}

/// glibc's malloc keeps pages freed by a burst of peers or a large execution; handing them
/// back every few seconds lets the server's memory return to its idle size afterwards.
async fn return_freed_memory() {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: malloc_trim only returns free heap pages to the kernel.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(message) => {
            eprintln!("{message}");
            return if message == HELP {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            };
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    if args.json_logging {
        logs.json().init();
    } else {
        logs.init();
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Manifests this server runs may hand work on to another server, on this same runtime.
    let _ = SERVER_RUNTIME.set(runtime.handle().clone());
    remotemedia_signaling::grpc::remote::install(|| SERVER_RUNTIME.get().cloned());
    runtime.block_on(async move {
        // Listening for SIGTERM and SIGINT starts before the ports are announced, so a stop
        // that follows the announcement at once is not lost (nor fatal).
        let stop = match StopSignals::listen() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("remotemedia-server: cannot listen for signals: {e}");
                return ExitCode::FAILURE;
            }
        };
        let mut running = match server::start(args.config).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("remotemedia-server: cannot start: {e}");
                return ExitCode::FAILURE;
            }
        };
        let show = |a: Option<SocketAddr>| a.map_or("off".to_owned(), |a| a.to_string());
        // Tests and scripts read the bound ports from this line (port 0 picks free ones).
        println!(
            "remotemedia-server listening grpc={} ws={} metrics={}",
            running.grpc_addr,
            show(running.ws_addr),
            show(running.metrics_addr)
        );
        tracing::info!(grpc = %running.grpc_addr, "serving");
        tokio::spawn(return_freed_memory());
        tokio::select! {
            r = running.wait() => match r {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("remotemedia-server: {e}");
                    ExitCode::FAILURE
                }
            },
            signal = stop.wait() => {
                tracing::info!(signal, "stopping: no new connections, open streams get {} s", GRACE.as_secs());
                if tokio::time::timeout(GRACE, running.shutdown()).await.is_err() {
                    tracing::warn!("streams still open after the grace period; exiting anyway");
                }
                ExitCode::SUCCESS
            }
        }
    })
}

/// The server's one tokio runtime, for the remote-pipeline transport's calls.
static SERVER_RUNTIME: std::sync::OnceLock<tokio::runtime::Handle> = std::sync::OnceLock::new();

/// How long open streams may go on after SIGTERM or Ctrl-C before the server exits anyway
/// (Kubernetes gives a pod 30 s between SIGTERM and SIGKILL by default).
const GRACE: Duration = Duration::from_secs(10);

/// Ctrl-C (SIGINT) and SIGTERM (how Kubernetes and systemd stop a service), handled from the
/// moment this is made.
struct StopSignals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn listen() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    async fn wait(mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}

//! `remotemedia-server`: gRPC signaling and pipeline execution, JSON-RPC WebSocket signaling
//! and Prometheus metrics on one peer registry. Flags override the environment.

mod args;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use remotemedia_signaling::grpc::server;

use args::{Command, HELP};

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
    let args = match args::parse() {
        Ok(Command::Serve(a)) => *a,
        Ok(Command::Help) => {
            eprintln!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
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

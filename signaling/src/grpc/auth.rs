//! Bearer-token auth and the per-connection call rate limit, applied to every call of our
//! services before it reaches them (health and reflection stay open for probes and grpcurl).

use remotemedia_runtime::sync::lock;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tonic::service::Interceptor;
use tonic::transport::server::TcpConnectInfo;
use tonic::{Request, Status};

use crate::rate::TokenBucket;
use crate::tokens::Tokens;

/// Calls (unary or new streams) one connection may open per second, and its burst.
#[derive(Clone, Copy, Debug)]
pub struct CallRate {
    pub per_sec: f64,
    pub burst: f64,
}

#[derive(Clone)]
pub struct Gate {
    tokens: Tokens,
    require_auth: bool,
    rate: CallRate,
    buckets: Arc<Mutex<HashMap<SocketAddr, TokenBucket>>>,
}

impl Gate {
    pub fn new(require_auth: bool, tokens: Vec<String>, rate: CallRate) -> Self {
        Self {
            tokens: Tokens::new(tokens),
            require_auth,
            rate,
            buckets: Arc::default(),
        }
    }

    fn check_auth<T>(&self, request: &Request<T>) -> Result<(), Status> {
        if !self.require_auth {
            return Ok(());
        }
        let header = request
            .metadata()
            .get("authorization")
            .ok_or_else(|| Status::unauthenticated("missing 'authorization: Bearer <token>'"))?;
        let token = header
            .as_bytes()
            .strip_prefix(b"Bearer ")
            .ok_or_else(|| Status::unauthenticated("authorization must be 'Bearer <token>'"))?;
        if self.tokens.accepts(token) {
            Ok(())
        } else {
            Err(Status::unauthenticated("invalid token"))
        }
    }

    fn check_rate<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let Some(addr) = request
            .extensions()
            .get::<TcpConnectInfo>()
            .and_then(TcpConnectInfo::remote_addr)
        else {
            return Ok(());
        };
        let allowed = {
            let mut buckets = lock(&self.buckets);
            if buckets.len() > 10_000 {
                // Forget connections whose bucket has refilled: they are idle or gone.
                buckets.retain(|_, b| !b.is_full());
            }
            buckets
                .entry(addr)
                .or_insert_with(|| TokenBucket::new(self.rate.per_sec, self.rate.burst))
                .allow()
        };
        if allowed {
            Ok(())
        } else {
            Err(Status::resource_exhausted(format!(
                "connection {addr} opens calls faster than {} per second; call refused",
                self.rate.per_sec
            )))
        }
    }
}

impl Interceptor for Gate {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        self.check_auth(&request)?;
        self.check_rate(&request)?;
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(rate: f64) -> Gate {
        Gate::new(
            true,
            vec!["alpha".into(), "beta-token".into()],
            CallRate {
                per_sec: rate,
                burst: rate,
            },
        )
    }

    fn with_auth(value: &str) -> Request<()> {
        let mut r = Request::new(());
        r.metadata_mut()
            .insert("authorization", value.parse().unwrap());
        r
    }

    #[test]
    fn tokens_are_checked() {
        let mut g = gate(100.0);
        assert!(g.call(with_auth("Bearer beta-token")).is_ok());
        assert!(g.call(with_auth("Bearer alpha")).is_ok());
        for bad in ["Bearer alph", "Bearer alphaa", "alpha", "Bearer "] {
            let err = g.call(with_auth(bad)).unwrap_err();
            assert_eq!(err.code(), tonic::Code::Unauthenticated, "{bad}");
        }
        assert_eq!(
            g.call(Request::new(())).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
    }

    #[test]
    fn calls_are_rate_limited_per_connection() {
        let mut g = Gate::new(
            false,
            vec![],
            CallRate {
                per_sec: 1.0,
                burst: 3.0,
            },
        );
        let from = |port| {
            let mut r = Request::new(());
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            r.extensions_mut().insert(TcpConnectInfo {
                local_addr: None,
                remote_addr: Some(addr),
            });
            r
        };
        for _ in 0..3 {
            assert!(g.call(from(1000)).is_ok());
        }
        let err = g.call(from(1000)).unwrap_err();
        assert_eq!(err.code(), tonic::Code::ResourceExhausted);
        assert!(
            g.call(from(1001)).is_ok(),
            "another connection is not limited"
        );
    }
}

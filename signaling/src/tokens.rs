//! Bearer tokens, compared in constant time. One type for every door: gRPC calls, the
//! JSON-RPC WebSocket (`?token=`), and the WHIP/WHEP endpoints (`Authorization: Bearer`).

use subtle::ConstantTimeEq;

#[derive(Clone, Debug, Default)]
pub struct Tokens(Vec<Vec<u8>>);

impl Tokens {
    /// The accepted tokens; empty ones are ignored.
    pub fn new<S: AsRef<str>>(tokens: impl IntoIterator<Item = S>) -> Self {
        Self(
            tokens
                .into_iter()
                .map(|t| t.as_ref().trim().as_bytes().to_vec())
                .filter(|t| !t.is_empty())
                .collect(),
        )
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True when `presented` equals one of the tokens. Every token is compared, each in
    /// constant time, so the timing tells nothing about which one nearly matched.
    pub fn accepts(&self, presented: &[u8]) -> bool {
        self.0
            .iter()
            .fold(0u8, |ok, t| ok | t.as_slice().ct_eq(presented).unwrap_u8())
            == 1
    }

    /// Checks an `Authorization` header value (`Bearer <token>`).
    pub fn accepts_bearer(&self, header: Option<&[u8]>) -> bool {
        header
            .and_then(|h| h.strip_prefix(b"Bearer "))
            .is_some_and(|t| self.accepts(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_whole_tokens_pass() {
        let t = Tokens::new(["alpha", "beta-token", ""]);
        assert!(t.accepts(b"alpha") && t.accepts(b"beta-token"));
        for bad in [&b"alph"[..], b"alphaa", b"", b"beta"] {
            assert!(!t.accepts(bad), "{bad:?}");
        }
        assert!(t.accepts_bearer(Some(b"Bearer alpha")));
        assert!(!t.accepts_bearer(Some(b"alpha")) && !t.accepts_bearer(None));
        assert!(Tokens::new([""]).is_empty());
    }
}

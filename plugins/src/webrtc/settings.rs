//! Properties and action signals every WebRTC element has: signaling, ICE, max-peers, and
//! `send-to-peer`, `broadcast`, `disconnect-peer`, `get-peers` and the session signals.

use std::sync::Arc;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

use remotemedia_signaling::Tokens;

use super::channel::Payload;
use super::door::Door;
use super::hub::{HubConfig, PeerHub};
use super::ice::{IceSettings, split_list};
use super::signaling::SignalingConfig;

#[derive(Debug, Clone)]
pub struct CommonSettings {
    pub signaling_host: String,
    pub signaling_port: u32,
    pub signaling_url: String,
    pub peer_id: String,
    pub stun_servers: String,
    pub turn_servers: String,
    pub ice_loopback_only: bool,
    pub max_peers: u32,
    pub connect_to: String,
    pub auth_token: String,
}

impl Default for CommonSettings {
    fn default() -> Self {
        Self {
            signaling_host: "127.0.0.1".into(),
            signaling_port: 8080,
            signaling_url: String::new(),
            peer_id: "remotemedia".into(),
            stun_servers: String::new(),
            turn_servers: String::new(),
            ice_loopback_only: false,
            max_peers: 10,
            connect_to: String::new(),
            auth_token: String::new(),
        }
    }
}

impl CommonSettings {
    pub fn properties() -> Vec<glib::ParamSpec> {
        // The defaults are Default's own, so the two cannot drift apart.
        let d = Self::default();
        vec![
            glib::ParamSpecString::builder("signaling-host")
                .nick("Signaling host")
                .blurb("Address the embedded signaling server and web page listen on (0.0.0.0 for every interface)")
                .default_value(Some(d.signaling_host.as_str()))
                .mutable_ready()
                .build(),
            glib::ParamSpecUInt::builder("signaling-port")
                .nick("Signaling port")
                .blurb("Port of the embedded JSON-RPC WebSocket signaling and web page (0: pick a free port, read back after READY)")
                .maximum(65535)
                .default_value(d.signaling_port)
                .mutable_ready()
                .build(),
            glib::ParamSpecString::builder("signaling-url")
                .nick("Signaling URL")
                .blurb(
                    "External signaling server instead of the embedded one: ws://host:port/path \
                     (JSON-RPC) or grpc://host:port (grpcs:// for TLS), where a remotemedia-server \
                     is reached with reconnection; grpc query parameters: token, max_attempts, \
                     initial_backoff_ms, max_backoff_ms, backoff_multiplier",
                )
                .mutable_ready()
                .build(),
            glib::ParamSpecString::builder("peer-id")
                .nick("Peer id")
                .blurb("Id this element announces; browsers send their offers to it")
                .default_value(Some(d.peer_id.as_str()))
                .mutable_ready()
                .build(),
            glib::ParamSpecString::builder("stun-servers")
                .nick("STUN servers")
                .blurb("Comma-separated stun:host:port URLs (none by default)")
                .mutable_ready()
                .build(),
            glib::ParamSpecString::builder("turn-servers")
                .nick("TURN servers")
                .blurb("Comma-separated turn:user:password@host:port (or turn:host:port:user:password) URLs")
                .mutable_ready()
                .build(),
            glib::ParamSpecBoolean::builder("ice-loopback-only")
                .nick("Loopback ICE only")
                .blurb("Gather and accept loopback ICE candidates only (same-host peers, tests)")
                .default_value(d.ice_loopback_only)
                .mutable_ready()
                .build(),
            glib::ParamSpecUInt::builder("max-peers")
                .nick("Maximum peers")
                .blurb("Peers served at once; the next one gets MAX_PEERS_REACHED")
                .minimum(1)
                .maximum(1000)
                .default_value(d.max_peers)
                .mutable_playing()
                .build(),
            glib::ParamSpecString::builder("auth-token")
                .nick("Auth token")
                .blurb(
                    "Token every door of the embedded signaling port needs: ?token= on the \
                     WebSocket URL, 'Authorization: Bearer' on WHIP/WHEP (empty: open)",
                )
                .mutable_ready()
                .build(),
            glib::ParamSpecString::builder("connect-to")
                .nick("Connect to")
                .blurb(
                    "Comma-separated peer ids this element calls as soon as each is announced, \
                     again when it comes back and after a failed connection (with backoff)",
                )
                .mutable_ready()
                .build(),
        ]
    }

    /// Sets a common property; false when `name` is not one of them.
    pub fn set(&mut self, name: &str, value: &glib::Value) -> bool {
        let string = || {
            value
                .get::<Option<String>>()
                .ok()
                .flatten()
                .unwrap_or_default()
        };
        match name {
            "signaling-host" => self.signaling_host = string(),
            "signaling-port" => self.signaling_port = value.get().unwrap_or(8080),
            "signaling-url" => self.signaling_url = string(),
            "peer-id" => self.peer_id = string(),
            "stun-servers" => self.stun_servers = string(),
            "turn-servers" => self.turn_servers = string(),
            "ice-loopback-only" => self.ice_loopback_only = value.get().unwrap_or(false),
            "max-peers" => self.max_peers = value.get().unwrap_or(10),
            "connect-to" => self.connect_to = string(),
            "auth-token" => self.auth_token = string(),
            _ => return false,
        }
        true
    }

    /// `set`, and a new `max-peers` also reaches the running hub.
    pub fn set_live(
        &mut self,
        name: &str,
        value: &glib::Value,
        hub: Option<&Arc<PeerHub>>,
    ) -> bool {
        if !self.set(name, value) {
            return false;
        }
        if name == "max-peers"
            && let Some(hub) = hub
        {
            hub.set_max_peers(self.max_peers);
        }
        true
    }

    pub fn get(&self, name: &str) -> Option<glib::Value> {
        Some(match name {
            "signaling-host" => self.signaling_host.to_value(),
            "signaling-port" => self.signaling_port.to_value(),
            "signaling-url" => self.signaling_url.to_value(),
            "peer-id" => self.peer_id.to_value(),
            "stun-servers" => self.stun_servers.to_value(),
            "turn-servers" => self.turn_servers.to_value(),
            "ice-loopback-only" => self.ice_loopback_only.to_value(),
            "max-peers" => self.max_peers.to_value(),
            "connect-to" => self.connect_to.to_value(),
            "auth-token" => self.auth_token.to_value(),
            _ => return None,
        })
    }

    pub fn ice(&self) -> IceSettings {
        IceSettings {
            stun_servers: split_list(&self.stun_servers),
            turn_servers: split_list(&self.turn_servers),
            loopback_only: self.ice_loopback_only,
        }
    }

    pub fn hub_config(
        &self,
        element_name: &'static str,
        capabilities: serde_json::Value,
        door: Door,
    ) -> HubConfig {
        HubConfig {
            peer_id: self.peer_id.clone(),
            capabilities,
            element_name,
            signaling: SignalingConfig {
                host: self.signaling_host.clone(),
                port: self.signaling_port as u16,
                url: self.signaling_url.clone(),
                tokens: Tokens::new([&self.auth_token]),
            },
            ice: self.ice(),
            max_peers: self.max_peers,
            connect_to: split_list(&self.connect_to),
            door,
        }
    }
}

/// An element implementation with a running [`PeerHub`] between READY and NULL.
pub trait HubOwner: ObjectSubclass<Type: IsA<glib::Object>> {
    fn hub(&self) -> Option<Arc<PeerHub>>;
}

fn hub_of<T: HubOwner>(value: &glib::Value) -> Option<Arc<PeerHub>> {
    let obj = value.get::<glib::Object>().ok()?;
    let obj = obj.downcast_ref::<T::Type>()?;
    T::from_obj(obj).hub()
}

/// Argument `i` of an action signal as a string; NULL (from C or Python's `None`) is "".
/// Every handler returns a value whatever its arguments: a handler that returned none for a
/// signal with a return type would make GLib abort the process.
fn string_arg(args: &[glib::Value], i: usize) -> String {
    args.get(i)
        .and_then(|v| v.get::<Option<String>>().ok())
        .flatten()
        .unwrap_or_default()
}

/// Argument `i` as bytes; NULL is empty.
fn bytes_arg(args: &[glib::Value], i: usize) -> bytes::Bytes {
    args.get(i)
        .and_then(|v| v.get::<Option<glib::Bytes>>().ok())
        .flatten()
        .map(|b| bytes::Bytes::copy_from_slice(&b))
        .unwrap_or_default()
}

/// A `(session, peer)` action on the hub, returning whether it was done.
fn session_signal<T: HubOwner>(
    name: &'static str,
    action: fn(&PeerHub, &str, &str) -> bool,
) -> glib::subclass::Signal {
    glib::subclass::Signal::builder(name)
        .param_types([String::static_type(), String::static_type()])
        .return_type::<bool>()
        .action()
        .class_handler(move |args| {
            let (a, b) = (string_arg(args, 1), string_arg(args, 2));
            let done = hub_of::<T>(&args[0]).is_some_and(|h| action(&h, &a, &b));
            Some(done.to_value())
        })
        .build()
}

pub fn action_signals<T: HubOwner>() -> Vec<glib::subclass::Signal> {
    vec![
        // Sessions (rooms): create-session(id, metadata JSON object or ""), join-session and
        // leave-session(id, peer), delete-session(id), send-to-session(id, text) -> peers
        // reached, get-sessions() -> JSON array.
        session_signal::<T>("create-session", PeerHub::create_session),
        session_signal::<T>("join-session", PeerHub::join_session),
        session_signal::<T>("leave-session", PeerHub::leave_session),
        glib::subclass::Signal::builder("delete-session")
            .param_types([String::static_type()])
            .return_type::<bool>()
            .action()
            .class_handler(|args| {
                let id = string_arg(args, 1);
                let done = hub_of::<T>(&args[0]).is_some_and(|h| h.delete_session(&id));
                Some(done.to_value())
            })
            .build(),
        glib::subclass::Signal::builder("send-to-session")
            .param_types([String::static_type(), String::static_type()])
            .return_type::<u32>()
            .action()
            .class_handler(|args| {
                let (id, msg) = (string_arg(args, 1), string_arg(args, 2));
                let n = hub_of::<T>(&args[0])
                    .map_or(0, |h| h.send_to_session(&id, &Payload::Text(msg)));
                Some(n.to_value())
            })
            .build(),
        glib::subclass::Signal::builder("get-sessions")
            .return_type::<String>()
            .action()
            .class_handler(|args| {
                let json = hub_of::<T>(&args[0]).map_or_else(|| "[]".into(), |h| h.sessions_json());
                Some(json.to_value())
            })
            .build(),
        // Data channel: send-to-peer(peer, text) and send-to-peer-bytes(peer, GBytes) -> sent;
        // broadcast(text) and broadcast-bytes(GBytes) -> peers reached.
        glib::subclass::Signal::builder("send-to-peer")
            .param_types([String::static_type(), String::static_type()])
            .return_type::<bool>()
            .action()
            .class_handler(|args| {
                let (peer, msg) = (string_arg(args, 1), string_arg(args, 2));
                let sent = hub_of::<T>(&args[0])
                    .is_some_and(|h| h.send_to_peer(&peer, Payload::Text(msg)));
                Some(sent.to_value())
            })
            .build(),
        glib::subclass::Signal::builder("send-to-peer-bytes")
            .param_types([String::static_type(), glib::Bytes::static_type()])
            .return_type::<bool>()
            .action()
            .class_handler(|args| {
                let (peer, data) = (string_arg(args, 1), bytes_arg(args, 2));
                let sent = hub_of::<T>(&args[0])
                    .is_some_and(|h| h.send_to_peer(&peer, Payload::Binary(data)));
                Some(sent.to_value())
            })
            .build(),
        glib::subclass::Signal::builder("broadcast")
            .param_types([String::static_type()])
            .return_type::<u32>()
            .action()
            .class_handler(|args| {
                let msg = Payload::Text(string_arg(args, 1));
                let n = hub_of::<T>(&args[0]).map_or(0, |h| h.broadcast(&msg));
                Some(n.to_value())
            })
            .build(),
        glib::subclass::Signal::builder("broadcast-bytes")
            .param_types([glib::Bytes::static_type()])
            .return_type::<u32>()
            .action()
            .class_handler(|args| {
                let msg = Payload::Binary(bytes_arg(args, 1));
                let n = hub_of::<T>(&args[0]).map_or(0, |h| h.broadcast(&msg));
                Some(n.to_value())
            })
            .build(),
        // disconnect-peer(peer, reason): the peer hears the reason ("" or NULL: a default).
        glib::subclass::Signal::builder("disconnect-peer")
            .param_types([String::static_type(), String::static_type()])
            .return_type::<bool>()
            .action()
            .class_handler(|args| {
                let peer = string_arg(args, 1);
                let reason = Some(string_arg(args, 2))
                    .filter(|r| !r.is_empty())
                    .unwrap_or_else(|| "disconnected by the application".into());
                let known =
                    hub_of::<T>(&args[0]).is_some_and(|h| h.disconnect_peer(&peer, &reason));
                Some(known.to_value())
            })
            .build(),
        glib::subclass::Signal::builder("get-peers")
            .return_type::<glib::StrV>()
            .action()
            .class_handler(|args| {
                let peers = hub_of::<T>(&args[0])
                    .map(|h| h.connected_peers())
                    .unwrap_or_default();
                Some(glib::StrV::from(peers).to_value())
            })
            .build(),
    ]
}

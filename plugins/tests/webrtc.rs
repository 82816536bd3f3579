//! The WebRTC elements' start-up: signaling comes up on READY (also when the application calls
//! from inside its own tokio runtime), its port is free again after NULL, and bad settings fail
//! READY with a message naming them.

use gst::prelude::*;

fn init() {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        gst::init().unwrap();
        gstremotemedia::plugin_register_static().expect("register the plugin");
    });
}

fn ready_error(element: &gst::Element) -> String {
    let bus = gst::Bus::new();
    element.set_bus(Some(&bus));
    assert!(element.set_state(gst::State::Ready).is_err());
    let msg = bus
        .pop_filtered(&[gst::MessageType::Error])
        .expect("an error message");
    match msg.view() {
        gst::MessageView::Error(e) => format!("{} {}", e.error(), e.debug().unwrap_or_default()),
        _ => unreachable!(),
    }
}

#[test]
fn signaling_starts_on_ready_even_inside_a_tokio_runtime() {
    init();
    let app_runtime = tokio::runtime::Runtime::new().unwrap();
    let manifest = r#"{"version": "v1", "nodes": [{"id": "p", "node_type": "PassThrough"}]}"#;
    for factory in [
        "remotemediawebrtcsink",
        "remotemediawebrtcsrc",
        "remotemediawebrtcserver",
    ] {
        let element = gst::ElementFactory::make(factory)
            .property("signaling-port", 0u32)
            .build()
            .unwrap();
        if factory == "remotemediawebrtcserver" {
            element.set_property("manifest-json", manifest);
        }
        app_runtime.block_on(async {
            element.set_state(gst::State::Ready).unwrap();
        });
        let port: u32 = element.property("signaling-port");
        assert!(port > 0, "{factory}: no port");
        let page = std::net::TcpStream::connect(("127.0.0.1", port as u16));
        assert!(page.is_ok(), "{factory}: nothing listens on {port}");
        drop(page);
        element.set_state(gst::State::Null).unwrap();
        // Restarting on the same port works at once.
        element.set_property("signaling-port", port);
        element.set_state(gst::State::Ready).unwrap();
        element.set_state(gst::State::Null).unwrap();
    }
}

#[test]
fn bad_settings_fail_ready_and_say_which() {
    init();
    let turn = gst::ElementFactory::make("remotemediawebrtcsink")
        .property("signaling-port", 0u32)
        .property("turn-servers", "turn:bob:secret-host")
        .build()
        .unwrap();
    let err = ready_error(&turn);
    assert!(
        err.contains("CONFIG_ERROR") && err.contains("TURN"),
        "{err}"
    );
    assert!(!err.contains("secret"), "{err}");

    let host = gst::ElementFactory::make("remotemediawebrtcsrc")
        .property("signaling-host", "not an address")
        .build()
        .unwrap();
    let err = ready_error(&host);
    assert!(
        err.contains("SIGNALING_ERROR") && err.contains("not an address"),
        "{err}"
    );

    let scheme = gst::ElementFactory::make("remotemediawebrtcsink")
        .property("signaling-url", "http://127.0.0.1:1/")
        .build()
        .unwrap();
    let err = ready_error(&scheme);
    assert!(err.contains("ws://"), "{err}");
}

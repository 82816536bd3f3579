//! remotemediaingest's connect timeout and reconnect backoff on the pipeline's clock, driven by
//! a TestClock: each timer fires when the clock reaches it and not before, whatever the wall
//! clock does.

use std::net::UdpSocket;

use gst::prelude::*;
use gst_check::TestClock;

fn init() {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        gst::init().unwrap();
        gstremotemedia::plugin_register_static().expect("register the plugin");
    });
}

/// A UDP port with nobody sending to it.
fn silent_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The next `reconnect` element message or error, without waiting on the wall clock for long:
/// the timers fire on the TestClock, so whatever is due has been posted by now.
fn next_event(bus: &gst::Bus) -> Option<gst::Message> {
    bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(5),
        &[gst::MessageType::Element, gst::MessageType::Error],
    )
}

fn reconnect_fields(msg: &gst::Message) -> (u32, u64, String) {
    let s = msg.structure().expect("a reconnect message has fields");
    assert_eq!(s.name(), "reconnect", "{msg:?}");
    (
        s.get::<u32>("attempt").unwrap(),
        s.get::<u64>("delay-ms").unwrap(),
        s.get::<String>("reason").unwrap(),
    )
}

#[test]
fn connect_timeout_and_backoff_run_on_the_pipeline_clock() {
    init();
    let pipeline = gst::Pipeline::new();
    let ingest = gst::ElementFactory::make("remotemediaingest")
        .property("uri", format!("udp://127.0.0.1:{}", silent_port()))
        .property("connect-timeout-ms", 10_000u32)
        .property("stall-timeout-ms", 2_000u32)
        .property("initial-backoff-ms", 500u32)
        .property("max-backoff-ms", 8_000u32)
        .property("max-attempts", 2u32)
        .build()
        .unwrap();
    pipeline.add(&ingest).unwrap();
    let clock = TestClock::new();
    pipeline.use_clock(Some(&clock));
    let bus = pipeline.bus().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();

    let mut delays = Vec::new();
    for attempt in 1..=3u32 {
        // The attempt's connect timeout is armed on the TestClock, 10 s ahead.
        let armed_at = clock.time();
        let id = clock.wait_for_next_pending_id();
        assert_eq!(
            id.time(),
            armed_at + gst::ClockTime::from_seconds(10),
            "attempt {attempt}: the connect timeout"
        );
        // Nothing happens before the clock gets there.
        assert!(
            bus.pop_filtered(&[gst::MessageType::Element, gst::MessageType::Error])
                .is_none()
        );
        clock.crank();
        let msg = next_event(&bus).expect("an event once the timeout passed");
        if attempt == 3 {
            let gst::MessageView::Error(err) = msg.view() else {
                panic!("attempt 3 should give up: {msg:?}");
            };
            let details = err.details().expect("the error names its code");
            assert_eq!(details.get::<&str>("code").unwrap(), "RECONNECT_FAILED");
            break;
        }
        let (n, delay_ms, reason) = reconnect_fields(&msg);
        assert_eq!(n, attempt);
        assert!(reason.starts_with("no data within 10.0 s"), "{reason}");
        delays.push(delay_ms);
        // The backoff is a clock id too: the next attempt starts when the clock reaches it.
        let before = clock.time();
        let id = clock.wait_for_next_pending_id();
        assert_eq!(
            id.time(),
            before + gst::ClockTime::from_mseconds(delay_ms),
            "attempt {attempt}: the backoff"
        );
        clock.crank();
    }
    assert_eq!(delays, [500, 1000]);
    pipeline.set_state(gst::State::Null).unwrap();
}

//! Which results of a `remotemediapipeline` upstream the sink already sent to its peers.
//!
//! A result reaches the sink twice: as a `remotemedia-result` event and as a
//! `RemoteMediaResultMeta` on a buffer (with `result-meta`, the default). Both carry the same
//! `result-id`; the sink sends whichever comes first and drops the other, so a result goes out
//! once whether an element on the way drops events (a muxer, an appsink/appsrc bridge) or metas
//! (an element that copies none), and whatever the order they come in. An event without the
//! id (a pipeline of an older build, an application's own event) is always sent, as before
//! metas existed.

use std::collections::VecDeque;

use crate::pipeline::result_meta;

/// How many ids are remembered: the two carriers of one result are a buffer or so apart, and a
/// result whose buffer left before it rides on the next one.
const REMEMBERED: usize = 256;

#[derive(Default)]
pub struct Forwarded {
    ids: VecDeque<u64>,
}

impl Forwarded {
    /// Whether `result` (an event's or a meta's structure) is to be sent: it is not known
    /// yet, or it has no id. Remembers it.
    pub fn first_time(&mut self, result: &gst::StructureRef) -> bool {
        let Some(id) = result_meta::id(result) else {
            return true;
        };
        if self.ids.contains(&id) {
            return false;
        }
        if self.ids.len() == REMEMBERED {
            self.ids.pop_front();
        }
        self.ids.push_back(id);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(id: Option<u64>) -> gst::Structure {
        let mut s = gst::Structure::new_empty("remotemedia-result");
        if let Some(id) = id {
            s.set(result_meta::ID_FIELD, id);
        }
        s
    }

    #[test]
    fn a_result_goes_once_and_one_without_an_id_always() {
        gst::init().unwrap();
        let mut f = Forwarded::default();
        assert!(f.first_time(&result(Some(7))));
        assert!(!f.first_time(&result(Some(7))));
        assert!(f.first_time(&result(Some(8))));
        assert!(f.first_time(&result(None)));
        assert!(f.first_time(&result(None)));
    }

    #[test]
    fn old_ids_are_forgotten() {
        gst::init().unwrap();
        let mut f = Forwarded::default();
        for id in 0..=REMEMBERED as u64 {
            assert!(f.first_time(&result(Some(id))));
        }
        assert!(
            f.first_time(&result(Some(0))),
            "0 was pushed out by the last one"
        );
        assert!(!f.first_time(&result(Some(REMEMBERED as u64))));
    }
}

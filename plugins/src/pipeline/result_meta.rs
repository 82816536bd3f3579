//! `RemoteMediaResultMeta`: a result of the graph riding on a buffer, as a custom meta
//! (`gst_meta_register_custom`) whose structure holds the fields of the `remotemedia-result`
//! event: `node-id`, `kind`, `json` (the payload), `pts` and `result-id`. One meta per result;
//! readers iterate (docs/ARCHITECTURE.md, "Results as buffer meta").

use std::ops::Bound;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};

use gst::glib;
use gst::glib::translate::IntoGlib;
use gst::meta::{CustomMeta, MetaTransform, MetaTransformCopy};

/// The meta's name, as readers ask for it (`gst_buffer_get_custom_meta`).
pub const NAME: &glib::GStr = glib::gstr!("RemoteMediaResultMeta");

/// The field that identifies one result: the same on its event, its bus message and its metas.
pub const ID_FIELD: &str = "result-id";

/// Registers the meta; done once, at plugin init.
///
/// Without tags: audioconvert, audioresample, videoconvert, the audio and video encoders and
/// GstBaseTransform's default keep a meta that has no tags, and drop metas with tags they do
/// not know. The transform function copies the result to the copy of its buffer.
pub fn register() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        let mut no_tags = [std::ptr::null::<std::ffi::c_char>()];
        // SAFETY: the name is NUL-terminated and static, the tags a NULL-terminated array that
        // GStreamer copies; `transform` matches GstCustomMetaTransformFunction and needs no
        // user data.
        unsafe {
            gst::ffi::gst_meta_register_custom(
                NAME.as_ptr(),
                no_tags.as_mut_ptr(),
                Some(transform),
                std::ptr::null_mut(),
                None,
            );
        }
    });
}

/// A new result id, unique in the process.
pub fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The id of a result (event, message or meta structure); `None` for one made without it.
pub fn id(result: &gst::StructureRef) -> Option<u64> {
    result.get::<u64>(ID_FIELD).ok()
}

/// Adds `result`'s fields to `buffer` as one meta.
pub fn add(buffer: &mut gst::BufferRef, result: &gst::StructureRef) {
    if let Ok(mut meta) = CustomMeta::add(buffer, NAME) {
        copy_fields(result, meta.mut_structure());
    }
}

/// The results riding on `buffer`, in the order they were added.
pub fn results(buffer: &gst::BufferRef) -> Vec<gst::Structure> {
    buffer
        .iter_meta::<gst::Meta>()
        .filter_map(|meta| {
            meta.try_as_custom_meta()
                .filter(|custom| custom.has_name(NAME))
                .map(|custom| custom.structure().to_owned())
        })
        .collect()
}

fn copy_fields(from: &gst::StructureRef, to: &mut gst::StructureRef) {
    for (field, value) in from.iter() {
        to.set_value(field, value.clone());
    }
}

/// A buffer's meta onto the buffer made from it. A copy of a part of the buffer (an adapter or
/// a splitter cutting it) keeps the result only on the part that starts at its beginning, so
/// each result stays on one buffer. Any other transform (scaling, resampling) keeps it: a
/// result does not depend on the layout of the media.
unsafe extern "C" fn transform(
    dest: *mut gst::ffi::GstBuffer,
    meta: *mut gst::ffi::GstCustomMeta,
    _src: *mut gst::ffi::GstBuffer,
    type_: glib::ffi::GQuark,
    data: glib::ffi::gpointer,
    _user_data: glib::ffi::gpointer,
) -> glib::ffi::gboolean {
    let copied = catch_unwind(AssertUnwindSafe(|| {
        if type_ == MetaTransformCopy::quark().into_glib() && !data.is_null() {
            // SAFETY: a copy transform's data is a GstMetaTransformCopy, which
            // MetaTransformCopy wraps transparently.
            let copy = unsafe { &*(data as *const MetaTransformCopy) };
            if let Some((Bound::Included(offset), _)) = copy.range()
                && offset > 0
            {
                // Not carried on purpose: FALSE would log a failed copy.
                return true;
            }
        }
        // SAFETY: GStreamer passes this meta's own GstCustomMeta and the writable
        // destination buffer, both alive for the call.
        let (from, dest) = unsafe {
            (
                &*(meta as *const CustomMeta),
                gst::BufferRef::from_mut_ptr(dest),
            )
        };
        match CustomMeta::add(dest, NAME) {
            Ok(mut to) => {
                copy_fields(from.structure(), to.mut_structure());
                true
            }
            Err(_) => false,
        }
    }));
    // No panic may unwind into C.
    copied.unwrap_or(false).into_glib()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_their_order() {
        gst::init().unwrap();
        register();
        let mut buffer = gst::Buffer::new();
        for n in 1..=3u64 {
            let mut s = gst::Structure::new_empty("remotemedia-result");
            s.set(ID_FIELD, n);
            add(buffer.get_mut().unwrap(), &s);
        }
        let ids: Vec<Option<u64>> = results(&buffer).iter().map(|r| id(r)).collect();
        assert_eq!(ids, [Some(1), Some(2), Some(3)]);
    }
}

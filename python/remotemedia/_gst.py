"""GStreamer through PyGObject, for the modules that drive our elements (ingest, webrtc)."""


def gst():
    """The Gst module, initialised."""
    import gi

    gi.require_version("Gst", "1.0")
    from gi.repository import Gst

    if not Gst.is_initialized():
        Gst.init(None)
    return Gst


def error_of(msg) -> tuple[str, str]:
    """(code, message) of an ERROR message. Our elements attach a `remotemedia-error` details
    structure with both; another element's error is a PIPELINE_ERROR with its text."""
    err, _ = msg.parse_error()
    details = msg.parse_error_details()
    if details is not None and details.get_name() == "remotemedia-error" and details.has_field("code"):
        return details.get_value("code"), details.get_value("message")
    return "PIPELINE_ERROR", err.message

/* The flagship pipeline built from C: a live source's audio through Silero VAD to every
 * browser that opens http://127.0.0.1:<port>/, with the VAD events printed from the bus.
 *
 *   make && GST_PLUGIN_PATH=../../../target/debug ./flagship rtsp://127.0.0.1:8554/test [port] [manifest]
 */
#include <gst/gst.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  GMainLoop *loop;
  GstElement *convert;
  int status;
} App;

/* remotemediaingest exposes audio_0 once the source is connected. */
static void on_pad_added (G_GNUC_UNUSED GstElement *ingest, GstPad *pad, App *app)
{
  gchar *name = gst_pad_get_name (pad);
  if (g_str_equal (name, "audio_0")) {
    GstPad *sink = gst_element_get_static_pad (app->convert, "sink");
    if (gst_pad_link (pad, sink) != GST_PAD_LINK_OK)
      g_printerr ("cannot link %s\n", name);
    gst_object_unref (sink);
  }
  g_free (name);
}

static gboolean on_message (G_GNUC_UNUSED GstBus *bus, GstMessage *msg, App *app)
{
  switch (GST_MESSAGE_TYPE (msg)) {
    case GST_MESSAGE_ELEMENT: {
      const GstStructure *s = gst_message_get_structure (msg);
      if (gst_structure_has_name (s, "remotemedia")) {
        printf ("%s %s\n", gst_structure_get_string (s, "node-id"), gst_structure_get_string (s, "json"));
        fflush (stdout);
      } else if (gst_structure_has_name (s, "reconnect")) {
        guint attempt = 0;
        gst_structure_get_uint (s, "attempt", &attempt);
        printf ("reconnecting (attempt %u): %s\n", attempt, gst_structure_get_string (s, "reason"));
      } else if (gst_structure_has_name (s, "peer-connected")) {
        printf ("peer connected: %s\n", gst_structure_get_string (s, "peer-id"));
      }
      break;
    }
    case GST_MESSAGE_ERROR: {
      GError *err = NULL;
      gst_message_parse_error (msg, &err, NULL);
      g_printerr ("error from %s: %s\n", GST_OBJECT_NAME (GST_MESSAGE_SRC (msg)), err->message);
      g_error_free (err);
      app->status = 1;
      g_main_loop_quit (app->loop);
      break;
    }
    case GST_MESSAGE_EOS:
      g_main_loop_quit (app->loop);
      break;
    default:
      break;
  }
  return TRUE;
}

static GstElement *make (const char *factory)
{
  GstElement *e = gst_element_factory_make (factory, NULL);
  if (!e) {
    g_printerr ("GStreamer element '%s' is missing: is GST_PLUGIN_PATH set?\n", factory);
    exit (2);
  }
  return e;
}

int main (int argc, char **argv)
{
  App app = { 0 };
  gst_init (&argc, &argv);
  if (argc < 2) {
    g_printerr ("usage: %s URI [SIGNALING_PORT] [MANIFEST]\n", argv[0]);
    return 2;
  }
  GstElement *pipeline = gst_pipeline_new ("flagship");
  GstElement *ingest = make ("remotemediaingest");
  app.convert = make ("audioconvert");
  GstElement *resample = make ("audioresample");
  GstElement *vad = make ("remotemediapipeline");
  GstElement *sink = make ("remotemediawebrtcsink");
  g_object_set (ingest, "uri", argv[1], NULL);
  g_object_set (vad, "manifest", argc > 3 ? argv[3] : "../vad.json", NULL);
  g_object_set (sink, "signaling-port", (guint) (argc > 2 ? atoi (argv[2]) : 8080), NULL);
  if (getenv ("ICE_LOOPBACK_ONLY"))
    g_object_set (sink, "ice-loopback-only", TRUE, NULL);
  gst_bin_add_many (GST_BIN (pipeline), ingest, app.convert, resample, vad, sink, NULL);
  if (!gst_element_link_many (app.convert, resample, vad, sink, NULL)) {
    g_printerr ("cannot link the pipeline\n");
    return 1;
  }
  g_signal_connect (ingest, "pad-added", G_CALLBACK (on_pad_added), &app);

  app.loop = g_main_loop_new (NULL, FALSE);
  GstBus *bus = gst_element_get_bus (pipeline);
  gst_bus_add_watch (bus, (GstBusFunc) on_message, &app);
  if (gst_element_set_state (pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
    g_printerr ("the pipeline did not start (see the error above)\n");
    app.status = 1;
  } else {
    guint port = 0;
    g_object_get (sink, "signaling-port", &port, NULL);
    printf ("open http://127.0.0.1:%u/\n", port);
    fflush (stdout);
    g_main_loop_run (app.loop);
  }
  /* Errors posted while starting are on the bus too. */
  GstMessage *msg;
  while (app.status == 0 && (msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR))) {
    on_message (bus, msg, &app);
    gst_message_unref (msg);
  }
  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (bus);
  gst_object_unref (pipeline);
  g_main_loop_unref (app.loop);
  return app.status;
}

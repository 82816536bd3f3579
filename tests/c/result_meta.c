/* Reads the results of remotemediapipeline from the buffers they ride on, as a C application
 * does: every RemoteMediaResultMeta of every buffer after `tee ! queue ! audioconvert`, one
 * line each: "<buffer pts in ns> <node-id> <kind> <json>".
 *
 *   cc -o result_meta result_meta.c $(pkg-config --cflags --libs gstreamer-1.0)
 *   GST_PLUGIN_PATH=target/debug ./result_meta '<manifest json>'
 */
#include <gst/gst.h>
#include <stdio.h>

static void on_handoff (G_GNUC_UNUSED GstElement *sink, GstBuffer *buffer,
    G_GNUC_UNUSED GstPad *pad, gpointer api)
{
  gpointer state = NULL;
  GstMeta *meta;

  while ((meta = gst_buffer_iterate_meta_filtered (buffer, &state, (GType) GPOINTER_TO_SIZE (api)))) {
    const GstStructure *s = gst_custom_meta_get_structure ((GstCustomMeta *) meta);
    printf ("%" G_GUINT64_FORMAT " %s %s %s\n", GST_BUFFER_PTS (buffer),
        gst_structure_get_string (s, "node-id"), gst_structure_get_string (s, "kind"),
        gst_structure_get_string (s, "json"));
  }
}

int main (int argc, char **argv)
{
  GError *error = NULL;
  GstElement *pipeline, *rm, *out;
  const GstMetaInfo *info;
  GstMessage *msg;
  int status;

  gst_init (&argc, &argv);
  if (argc != 2) {
    g_printerr ("usage: %s <manifest json>\n", argv[0]);
    return 2;
  }
  pipeline = gst_parse_launch ("audiotestsrc num-buffers=50 samplesperbuffer=960 volume=0.5 ! "
      "audio/x-raw,format=F32LE,rate=48000,channels=1 ! remotemediapipeline name=rm ! "
      "tee name=t ! queue ! audioconvert ! audio/x-raw,format=S16LE ! "
      "fakesink name=out signal-handoffs=true sync=false "
      "t. ! queue ! fakesink sync=false", &error);
  if (!pipeline) {
    g_printerr ("%s\n", error->message);
    return 1;
  }
  /* The plugin registers the meta when it loads, which making remotemediapipeline did. */
  info = gst_meta_get_info ("RemoteMediaResultMeta");
  if (!info) {
    g_printerr ("RemoteMediaResultMeta is not registered\n");
    return 1;
  }
  rm = gst_bin_get_by_name (GST_BIN (pipeline), "rm");
  g_object_set (rm, "manifest-json", argv[1], NULL);
  out = gst_bin_get_by_name (GST_BIN (pipeline), "out");
  g_signal_connect (out, "handoff", G_CALLBACK (on_handoff), GSIZE_TO_POINTER (info->api));

  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  msg = gst_bus_timed_pop_filtered (GST_ELEMENT_BUS (pipeline), 30 * GST_SECOND,
      GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  status = !(msg && GST_MESSAGE_TYPE (msg) == GST_MESSAGE_EOS);
  if (msg)
    gst_message_unref (msg);
  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (out);
  gst_object_unref (rm);
  gst_object_unref (pipeline);
  return status;
}

/* The seed's "intelligent VAD" as a WasmNode module: a cheap energy VAD runs in the module on
 * 16 kHz mono f32 audio; only when a 32 ms window is neither clearly loud nor clearly quiet does
 * it ask the remote SileroVADNode ("VoiceActivityDetector" in the node's services) for that
 * window. It writes a JSON result per input buffer:
 *   {"type":"vad","speech":true|false,"source":"energy"|"remote","rms_db":-23.4,
 *    "timestamp_ms":1234,"is_speech_start":true?,"is_speech_end":true?}
 * with a start/end on the transitions (after a hangover), on the stream's own sample clock.
 *
 * Build (scripts/setup.sh does it):
 *   clang --target=wasm32 -O2 -msimd128 -nostdlib -Wl,--no-entry -Wl,--export-dynamic \
 *     -Wl,--allow-undefined -o intelligent_vad.wasm intelligent_vad.c
 */

typedef unsigned int u32;
typedef int i32;

#define EXPORT __attribute__((visibility("default")))
#define IMPORT(name) __attribute__((import_module("env"), import_name(name)))

IMPORT("call_remote_service")
i32 call_remote_service(const char *name, i32 name_len, const void *data, i32 data_len,
                        char *result, u32 *result_len);

#include "bump_alloc.h"

#define RATE 16000
#define WINDOW 512          /* 32 ms: Silero's frame */
#define LOUD_DB (-30.0f)    /* clearly speech above */
#define QUIET_DB (-55.0f)   /* clearly silence below */
#define HANGOVER_MS 300     /* silence that ends speech */
#define MIN_SPEECH_MS 150   /* speech shorter than this is not reported */

static const char SERVICE[] = "VoiceActivityDetector";

static float window[WINDOW];
static int filled;
static unsigned long long samples_seen;
static int speaking, candidate;
static unsigned long long speech_from, last_speech;
static char result[8192];

static float log10_approx(float x) {
    /* ln(x) from the exponent and a short series; plenty for a dB threshold. */
    union { float f; u32 u; } v = {x};
    int e = (int)((v.u >> 23) & 255) - 127;
    v.u = (v.u & 0x007fffff) | 0x3f800000; /* mantissa in [1, 2) */
    float m = v.f, t = (m - 1) / (m + 1), t2 = t * t;
    float ln = 2 * t * (1 + t2 / 3 + t2 * t2 / 5 + t2 * t2 * t2 / 7) + e * 0.69314718f;
    return ln * 0.43429448f;
}

static float rms_db(const float *s, int n) {
    float sum = 0;
    for (int i = 0; i < n; i++) sum += s[i] * s[i];
    float mean = sum / (float)(n ? n : 1);
    return mean < 1e-10f ? -100.0f : 10.0f * log10_approx(mean);
}

/* The first "speech_probability": number in the remote result, or -1. */
static float remote_probability(const char *json, u32 len) {
    static const char key[] = "\"speech_probability\":";
    for (u32 i = 0; i + sizeof key - 1 < len; i++) {
        u32 k = 0;
        while (k < sizeof key - 1 && json[i + k] == key[k]) k++;
        if (k < sizeof key - 1) continue;
        const char *p = json + i + k;
        float whole = 0, frac = 0, scale = 1;
        while (*p >= '0' && *p <= '9') whole = whole * 10 + (*p++ - '0');
        if (*p == '.') for (p++; *p >= '0' && *p <= '9'; p++) frac = frac * 10 + (*p - '0'), scale *= 10;
        if (*p == 'e' || *p == 'E') return 0; /* tiny: 1e-5 and the like */
        return whole + frac / scale;
    }
    return -1;
}

/* Speech in this window? Loud or quiet decides locally; the middle asks the remote VAD. */
static int decide(float db, int *remote) {
    *remote = 0;
    if (db >= LOUD_DB) return 1;
    if (db <= QUIET_DB) return 0;
    u32 cap = sizeof result;
    if (call_remote_service(SERVICE, sizeof SERVICE - 1, window, sizeof window, result, &cap) != 0)
        return db > (LOUD_DB + QUIET_DB) / 2; /* the service failed: the energy's best guess */
    *remote = 1;
    return remote_probability(result, cap) >= 0.5f;
}

static char *put(char *o, const char *s) { while (*s) *o++ = *s++; return o; }

static char *put_uint(char *o, unsigned long long v) {
    char digits[24]; int n = 0;
    do digits[n++] = (char)('0' + v % 10), v /= 10; while (v);
    while (n) *o++ = digits[--n];
    return o;
}

static char *put_db(char *o, float db) {
    if (db < 0) *o++ = '-', db = -db;
    unsigned long long tenths = (unsigned long long)(db * 10 + 0.5f);
    o = put_uint(o, tenths / 10);
    *o++ = '.';
    return put_uint(o, tenths % 10);
}

static unsigned long long ms(unsigned long long sample) { return sample * 1000 / RATE; }

EXPORT i32 process_with_remote(const float *in, i32 in_len, char *out, u32 *out_len) {
    if (*out_len < 256) { *out_len = 256; return -2; }
    int n = in_len / 4, speech = speaking, remote = 0;
    float db = rms_db(in, n);
    char *o = out;
    const char *event = 0;
    unsigned long long at = 0;
    for (int i = 0; i < n; i++) {
        window[filled++] = in[i];
        samples_seen++;
        if (filled < WINDOW) continue;
        filled = 0;
        int used_remote;
        speech = decide(rms_db(window, WINDOW), &used_remote);
        remote |= used_remote;
        unsigned long long end = samples_seen;
        if (speech) {
            if (!speaking && !candidate) candidate = 1, speech_from = end - WINDOW;
            last_speech = end;
            if (!speaking && ms(end - speech_from) >= MIN_SPEECH_MS)
                speaking = 1, candidate = 0, event = "is_speech_start", at = speech_from;
        } else if (candidate && ms(end - last_speech) >= HANGOVER_MS) {
            candidate = 0;
        } else if (speaking && ms(end - last_speech) >= HANGOVER_MS) {
            speaking = 0, event = "is_speech_end", at = last_speech;
        }
    }
    o = put(o, "{\"type\":\"vad\",\"speech\":");
    o = put(o, speaking ? "true" : "false");
    o = put(o, ",\"source\":\"");
    o = put(o, remote ? "remote" : "energy");
    o = put(o, "\",\"rms_db\":");
    o = put_db(o, db);
    o = put(o, ",\"timestamp_ms\":");
    o = put_uint(o, event ? ms(at) : ms(samples_seen - (unsigned long long)n));
    if (event) { o = put(o, ",\""); o = put(o, event); o = put(o, "\":true"); }
    o = put(o, "}");
    *out_len = (u32)(o - out);
    return 0;
}

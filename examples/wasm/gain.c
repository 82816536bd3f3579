/* The smallest audio WasmNode: multiplies every sample by a gain (0.5). The module gets f32
 * samples and writes as many back, which the node hands on with the input's rate, channels and
 * timestamps (output "audio"). B17 in BENCHMARKS.md measures it against the same gain as a
 * native node. Manifest:
 *   {"id": "gain", "node_type": "WasmNode",
 *    "params": {"wasm_path": "target/wasm/gain.wasm", "function_name": "gain"}}
 *
 * The node checks its time limit (timeout_ms) at the head of every loop iteration of the module,
 * so a hot loop should do a good amount of work per iteration: the pragma has clang run eight
 * vectors of four samples per iteration, not one (B17 in BENCHMARKS.md: 1.4x the native node's
 * CPU, against 1.55x for the plain loop). `restrict` tells clang the buffers do not overlap (the
 * host never gives overlapping ones), so it needs no second, scalar copy of the loop.
 *
 * Build (scripts/setup.sh does it; -msimd128 lets clang vectorise the loop as it does for the
 * host):
 *   clang --target=wasm32 -O2 -msimd128 -nostdlib -Wl,--no-entry -Wl,--export-dynamic \
 *     -Wl,--allow-undefined -o gain.wasm gain.c
 */

typedef unsigned int u32;
typedef int i32;

#define EXPORT __attribute__((visibility("default")))
#define GAIN 0.5f

#include "bump_alloc.h"

/* input: len bytes of samples; output: the output buffer, whose capacity is at *output_len
 * (at least the input's size: the node's default), and where the length written goes. */
EXPORT i32 gain(const float *restrict input, i32 len, float *restrict output,
                 u32 *restrict output_len) {
    if (*output_len < (u32)len) {
        *output_len = (u32)len; /* -2: the host retries with this much */
        return -2;
    }
    i32 n = len / 4;
#pragma clang loop interleave_count(8)
    for (i32 i = 0; i < n; i++) output[i] = input[i] * GAIN;
    *output_len = (u32)(n * 4);
    return 0;
}

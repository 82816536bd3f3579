/* The smallest audio WasmNode: multiplies every sample by a gain (0.5). The module gets f32
 * samples and writes as many back, which the node hands on with the input's rate, channels and
 * timestamps (output "audio"). B17 in BENCHMARKS.md measures it against the same gain as a
 * native node. Manifest:
 *   {"id": "gain", "node_type": "WasmNode",
 *    "params": {"wasm_path": "target/wasm/gain.wasm", "function_name": "gain"}}
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
EXPORT i32 gain(const float *input, i32 len, float *output, u32 *output_len) {
    if (*output_len < (u32)len) {
        *output_len = (u32)len; /* -2: the host retries with this much */
        return -2;
    }
    i32 n = len / 4;
    for (i32 i = 0; i < n; i++) output[i] = input[i] * GAIN;
    *output_len = (u32)(n * 4);
    return 0;
}

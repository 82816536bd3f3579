/* The `alloc` export every WasmNode module has: a bump allocator. The host allocates its input and
 * output buffers once and grows them rarely, so nothing is ever freed. Blocks are 16-byte aligned
 * (WASM SIMD loads). Include it once, after defining EXPORT and i32. */

extern unsigned char __heap_base;
static unsigned char *heap = &__heap_base;

EXPORT void *alloc(i32 len) {
    unsigned char *at = (unsigned char *)(((unsigned long)heap + 15) & ~15ul);
    unsigned long end = (unsigned long)(at + len);
    unsigned long have = __builtin_wasm_memory_size(0) * 65536ul;
    if (end > have) {
        unsigned long pages = (end - have + 65535) / 65536;
        if (__builtin_wasm_memory_grow(0, pages) == (unsigned long)-1) return 0;
    }
    heap = (unsigned char *)end;
    return at;
}

/* Byte-at-a-time memcpy and memset for the flash budget, as
 * firmware/src/mem.rs does for the Rust firmware: compiler_builtins'
 * versions in the staticlib copy word by word with unrolled paths (about
 * 1.6 KiB); these loops are a few dozen bytes, and the firmware copies at
 * most a batch buffer at a time. compiler_builtins defines its versions
 * weak, so these take their place at link time, for the library's calls
 * (the __aeabi_ forms) as well as the C code's. */
#include <stddef.h>

/* Keep GCC from turning the loops back into memcpy/memset calls. */
#define PLAIN __attribute__((optimize("no-tree-loop-distribute-patterns"), used))

PLAIN void *memcpy(void *dest, const void *src, size_t n)
{
    unsigned char *d = dest;
    const unsigned char *s = src;
    while (n--) {
        *d++ = *s++;
    }
    return dest;
}

PLAIN void *memset(void *dest, int byte, size_t n)
{
    unsigned char *d = dest;
    while (n--) {
        *d++ = (unsigned char)byte;
    }
    return dest;
}

/* The ARM EABI's forms (declared returning what memcpy does, harmless:
 * r0 is a scratch register): memcpy's argument order; memset with the length
 * before the byte; memclr without the byte. */
void *__aeabi_memcpy(void *dest, const void *src, size_t n) __attribute__((alias("memcpy")));
void *__aeabi_memcpy4(void *dest, const void *src, size_t n) __attribute__((alias("memcpy")));
void *__aeabi_memcpy8(void *dest, const void *src, size_t n) __attribute__((alias("memcpy")));

PLAIN void __aeabi_memset(void *dest, size_t n, int byte)
{
    memset(dest, byte, n);
}
void __aeabi_memset4(void *dest, size_t n, int byte) __attribute__((alias("__aeabi_memset")));
void __aeabi_memset8(void *dest, size_t n, int byte) __attribute__((alias("__aeabi_memset")));

PLAIN void __aeabi_memclr(void *dest, size_t n)
{
    memset(dest, 0, n);
}
void __aeabi_memclr4(void *dest, size_t n) __attribute__((alias("__aeabi_memclr")));
void __aeabi_memclr8(void *dest, size_t n) __attribute__((alias("__aeabi_memclr")));

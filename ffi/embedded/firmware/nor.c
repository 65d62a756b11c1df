/* A NOR flash in RAM that keeps NOR's rules, as firmware/src/nor.rs does:
 * writes only to erased words (all 0xFF), each word once between erases;
 * erases of whole pages back to 0xFF. A write that breaks a rule fails, so
 * the flash queue on it is held to what real NOR flash allows. (The
 * library already checks alignment and bounds before calling.) */
#include "board.h"

#define NOR ((volatile uint8_t *)NOR_BASE)
#define BROKEN_RULE 1
#define OUT_OF_BOUNDS 2

static bool in_bounds(uint32_t offset, size_t len)
{
    return offset <= NOR_BYTES && len <= NOR_BYTES - offset;
}

void nor_erase_all(void)
{
    for (uint32_t i = 0; i < NOR_BYTES; i++) {
        NOR[i] = 0xFF;
    }
}

int32_t nor_read(void *ctx, uint32_t offset, uint8_t *buf, size_t len)
{
    (void)ctx;
    if (!in_bounds(offset, len)) {
        return OUT_OF_BOUNDS;
    }
    for (size_t i = 0; i < len; i++) {
        buf[i] = NOR[offset + i];
    }
    return 0;
}

int32_t nor_write(void *ctx, uint32_t offset, const uint8_t *buf, size_t len)
{
    (void)ctx;
    if (!in_bounds(offset, len)) {
        return OUT_OF_BOUNDS;
    }
    for (size_t i = 0; i < len; i++) {
        if (NOR[offset + i] != 0xFF) {
            return BROKEN_RULE;
        }
    }
    for (size_t i = 0; i < len; i++) {
        NOR[offset + i] = buf[i];
    }
    return 0;
}

int32_t nor_erase(void *ctx, uint32_t from, uint32_t to)
{
    (void)ctx;
    if (to < from || !in_bounds(from, to - from)) {
        return OUT_OF_BOUNDS;
    }
    for (uint32_t i = from; i < to; i++) {
        NOR[i] = 0xFF;
    }
    return 0;
}

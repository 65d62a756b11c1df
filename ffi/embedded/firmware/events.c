/* The events this firmware tracks: Segment-style track calls written by
 * hand (no printf: no libc on this firmware).
 *
 * The messageId is the collector's dedup key, so it must never repeat: it
 * is the device's id and the seq the event is stored under, which the
 * flash queue never hands out twice, across resets and power cuts too. A
 * counter in RAM would start again at 0 on every boot, and the collector
 * would drop each new event as a duplicate of an old one. */
#include "board.h"

/* This device's id (a real device uses its serial number or the MCU's
 * unique id: two devices sharing one would lose each other's events). */
#define DEVICE_ID "cfw-1"

struct writer {
    char *buf;
    size_t len;
};

static void put(struct writer *w, const char *text)
{
    while (*text && w->len < EVENT_MAX) {
        w->buf[w->len++] = *text++;
    }
}

static void put_hex(struct writer *w, uint64_t n)
{
    char digits[17];
    size_t i = sizeof digits - 1;
    digits[i] = 0;
    do {
        digits[--i] = "0123456789abcdef"[n & 0xF];
        n >>= 4;
    } while (n != 0);
    put(w, &digits[i]);
}

char *decimal(uint32_t n, char *buf)
{
    char digits[11];
    size_t i = sizeof digits - 1;
    digits[i] = 0;
    do {
        digits[--i] = (char)('0' + n % 10);
        n /= 10;
    } while (n != 0);
    size_t j = 0;
    while ((buf[j] = digits[i + j]) != 0) {
        j++;
    }
    return buf;
}

size_t track_json(uint64_t seq, uint32_t boot, uint32_t n, bool poison, char *buf)
{
    struct writer w = {buf, 0};
    char number[11];
    put(&w, "{\"type\":\"track\",\"event\":\"tick\",\"anonymousId\":\"" DEVICE_ID
            "\",\"messageId\":\"" DEVICE_ID "-");
    put_hex(&w, seq);
    put(&w, "\",\"properties\":{\"boot\":");
    put(&w, decimal(boot, number));
    put(&w, ",\"n\":");
    put(&w, decimal(n, number));
    if (poison) {
        put(&w, ",\"poison\":true");
    }
    put(&w, "}}");
    return w.len;
}

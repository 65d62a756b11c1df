/* outbox on a Cortex-M4 in QEMU's mps2-an386, from C: the firmware of
 * firmware/src/main.rs written against outbox_embedded.h and linked with
 * liboutbox_embedded.a (the same core, flash queue and serial framing).
 *
 * Tracks EVENTS events (one of them poison) through the device, the flash
 * queue on a NOR flash kept in RAM and the serial link on UART0, which
 * QEMU connects to `outbox gateway --tcp`. Part way, with a batch in
 * flight and events queued, it resets itself (RESET_AT, SYSRESETREQ: a
 * warm reset, which leaves RAM and so the simulated flash as it was) and
 * the second boot restores from the flash and tracks new events. When
 * every event is delivered or rejected it prints the tally through
 * semihosting and exits 0; on a wrong tally, an error or after DEADLINE_MS
 * it exits 1. run.sh runs the whole test. */
#include "board.h"
#include "checks.h"
#include "outbox_embedded.h"

/* Events tracked, over both boots. */
#define EVENTS 300u
/* The first boot resets itself after tracking this many. */
#define RESET_AT 150u
/* The first boot's event the collector refuses (it has a `poison` field). */
#define POISON 100u
/* Give up after this long (QEMU time, about the host's). */
#define DEADLINE_MS 150000u
/* A new event every this many milliseconds. */
#define TRACK_EVERY_MS 5u
#define BATCH_BYTES 2048u

/* The test's tally, which must outlive the reset: RAM above the flash
 * (QEMU zeroes RAM at power-on; a warm reset leaves it). Test bookkeeping:
 * a real device keeps nothing across a reset but its flash. */
struct kept {
    uint32_t magic, boot, delivered, rejected;
};
#define KEPT ((volatile struct kept *)(NOR_BASE + NOR_BYTES))
#define KEPT_MAGIC 0x0b0c5eedu

static OutboxDevice device;
static uint8_t batch_buf[BATCH_BYTES];

/* What the application hears from the device, counted over both boots. */
static void on_note(void *ctx, const OutboxDeviceNote *note)
{
    (void)ctx;
    check_abi_in_callback(&device);
    if (note->kind == OUTBOX_NOTE_KIND_DELIVERED) {
        KEPT->delivered += (uint32_t)(note->last - note->first + 1);
    } else if (note->kind == OUTBOX_NOTE_KIND_REJECTED) {
        KEPT->rejected += 1;
    }
}

static void on_panic(void)
{
    finish(false, "library panic");
}

static OutboxDeviceStats stats(void)
{
    OutboxDeviceStats s = {0};
    if (outbox_device_stats(&device, &s) != OUTBOX_DEVICE_STATUS_OK) {
        finish(false, "no stats");
    }
    return s;
}

/* One line on the host's stdout. */
static void report(uint32_t tracked)
{
    OutboxDeviceStats s = stats();
    const char *names[] = {" boot=", " tracked=", " delivered=", " rejected=", " batches_sent=",
                           " stale_answers="};
    uint32_t values[] = {KEPT->boot, tracked, KEPT->delivered, KEPT->rejected, s.batches_sent,
                         s.stale_answers};
    char number[11];
    host_print("outbox-c-firmware:");
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        host_print(names[i]);
        host_print(decimal(values[i], number));
    }
    host_print("\n");
}

static _Noreturn void reset(void)
{
    __asm__ volatile("dsb" ::: "memory");
    *(volatile uint32_t *)0xE000ED0C = 0x05FA0004u; /* AIRCR: VECTKEY, SYSRESETREQ */
    __asm__ volatile("dsb" ::: "memory");
    for (;;) {
    }
}

int main(void)
{
    clock_start();
    uart_start();
    outbox_device_set_panic_hook(on_panic);
    /* Power-on: nothing kept, the flash blank. A warm reset: both kept. */
    if (KEPT->magic != KEPT_MAGIC) {
        KEPT->boot = 0;
        KEPT->delivered = 0;
        KEPT->rejected = 0;
        KEPT->magic = KEPT_MAGIC;
        nor_erase_all();
    }
    uint32_t boot = ++KEPT->boot;

    const OutboxDeviceConfig config = {
        .nor_bytes = NOR_BYTES,
        .max_event_bytes = 250,
        .max_batch_events = 16,
        .max_batch_bytes = BATCH_BYTES,
        .retry_base_ms = 100,
        .retry_cap_ms = 2000,
        .request_timeout_ms = 5000,
        .overflow = OUTBOX_DEVICE_OVERFLOW_REJECT_NEW,
        .jitter_seed = 0x5eed,
    };
    const OutboxDeviceIo io = {
        .ctx = 0,
        .nor_read = nor_read,
        .nor_write = nor_write,
        .nor_erase = nor_erase,
        .uart_write = uart_write,
        .uart_read = uart_read,
        .now_ms = clock_now_ms,
        .note = on_note,
    };
    check_abi_before_open(&device, &config, &io, batch_buf, sizeof batch_buf);
    if (outbox_device_open(&device, &config, &io, batch_buf, sizeof batch_buf)
        != OUTBOX_DEVICE_STATUS_OK) {
        finish(false, "open failed");
    }

    /* This boot's events; `tracked` is the application's own counter, in
     * RAM, so it starts again at 0 after the reset. */
    uint32_t quota = boot == 1 ? RESET_AT : EVENTS - RESET_AT;
    uint32_t done_before = boot == 1 ? 0 : RESET_AT;
    uint64_t booted = clock_now_ms(0);
    uint64_t next_track = booted;
    uint32_t tracked = 0;
    char payload[EVENT_MAX];
    for (;;) {
        uint64_t now = clock_now_ms(0);
        if (now - booted > DEADLINE_MS) {
            report(tracked);
            finish(false, "deadline passed");
        }
        if (tracked < quota && now >= next_track) {
            /* The seq the event will be stored under names it. */
            uint64_t seq = stats().next_seq;
            size_t len = track_json(seq, boot, tracked, boot == 1 && tracked == POISON, payload);
            uint64_t stored = 0;
            OutboxDeviceStatus status =
                outbox_device_track(&device, (const uint8_t *)payload, len, &stored);
            if (status == OUTBOX_DEVICE_STATUS_OK && stored == seq) {
                tracked++;
                next_track = now + TRACK_EVERY_MS;
            } else if (status == OUTBOX_DEVICE_STATUS_QUEUE_FULL) {
                /* Back-pressure: the same event again a little later. */
                next_track = now + 50;
            } else {
                finish(false, "track failed");
            }
        }
        /* A failed send or read is retried by the device; keep going. */
        (void)outbox_device_poll(&device);
        uint32_t settled = KEPT->delivered + KEPT->rejected;
        bool all_settled = tracked == quota && settled == done_before + tracked;
        if (tracked == quota && boot == 1 && (stats().in_flight_events > 0 || all_settled)) {
            /* With a batch in flight (its answer reaches the next boot, for
             * a frame it never sent) and events queued on the flash. */
            report(tracked);
            reset();
        }
        if (all_settled) {
            break;
        }
    }
    report(tracked);
    /* run.sh checks on the collector that the poison event was the one
     * rejected and every other arrived once (none dropped). */
    bool good = boot == 2 && KEPT->delivered == EVENTS - 1 && KEPT->rejected == 1;
    finish(good, good ? "ok" : "wrong tally");
}

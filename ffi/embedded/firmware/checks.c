/* The C ABI's rules, checked on the target before the test proper: a
 * device that is not open answers NOT_OPEN, NULL answers NULL_ARGUMENT, a
 * configuration the flash cannot hold answers INVALID_CONFIG (and leaves
 * the device closed), and a call from inside a callback answers BUSY (see
 * main.c's note callback). A broken rule ends the run with FAIL. */
#include "board.h"
#include "checks.h"

static void expect(OutboxDeviceStatus got, OutboxDeviceStatus want, const char *what)
{
    if (got != want) {
        finish(false, what);
    }
}

void check_abi_before_open(OutboxDevice *dev, const OutboxDeviceConfig *config,
                           const OutboxDeviceIo *io, uint8_t *buf, size_t len)
{
    OutboxDeviceStats stats;
    const uint8_t event[] = "{}";
    expect(outbox_device_poll(dev), OUTBOX_DEVICE_STATUS_NOT_OPEN, "poll before open");
    expect(outbox_device_stats(dev, &stats), OUTBOX_DEVICE_STATUS_NOT_OPEN, "stats before open");
    expect(outbox_device_poll(0), OUTBOX_DEVICE_STATUS_NULL_ARGUMENT, "poll(NULL)");
    expect(outbox_device_track(dev, 0, 0, 0), OUTBOX_DEVICE_STATUS_NULL_ARGUMENT, "track(NULL)");
    expect(outbox_device_open(dev, 0, io, buf, len), OUTBOX_DEVICE_STATUS_NULL_ARGUMENT,
           "open without config");
    OutboxDeviceIo no_clock = *io;
    no_clock.now_ms = 0;
    expect(outbox_device_open(dev, config, &no_clock, buf, len), OUTBOX_DEVICE_STATUS_NULL_ARGUMENT,
           "open without a clock");
    OutboxDeviceConfig odd = *config;
    odd.nor_bytes = 6000; /* not whole 4 KiB pages */
    expect(outbox_device_open(dev, &odd, io, buf, len), OUTBOX_DEVICE_STATUS_INVALID_CONFIG,
           "open on part of a page");
    expect(outbox_device_open(dev, config, io, buf, 64), OUTBOX_DEVICE_STATUS_BUFFER_TOO_SMALL,
           "open with a 64-byte batch buffer");
    expect(outbox_device_track(dev, event, 2, 0), OUTBOX_DEVICE_STATUS_NOT_OPEN,
           "track after a failed open");
}

void check_abi_in_callback(OutboxDevice *dev)
{
    expect(outbox_device_poll(dev), OUTBOX_DEVICE_STATUS_BUSY, "poll from a callback");
}

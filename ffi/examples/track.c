/* Tracks events through outbox's C ABI and checks they were delivered.
 *
 *   cc track.c -I ffi/include target/debug/liboutbox_ffi.a -lpthread -ldl -lm -o track
 *   ./track http://127.0.0.1:8080 events.db [count]
 *
 * Exit 0 when the collector acknowledged every event, 1 otherwise. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "outbox.h"

static int fail(const char *what, OutboxStatus status) {
    char msg[512];
    outbox_last_error(msg, sizeof msg);
    fprintf(stderr, "track: %s: %s (%s)\n", what, outbox_status_name(status), msg);
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: track ENDPOINT DB [COUNT]\n");
        return 2;
    }
    int count = argc > 3 ? atoi(argv[3]) : 5;

    OutboxConfig config = {0};
    config.path = argv[2];
    config.endpoint = argv[1];
    config.write_key = "c-example-key";
    config.flush_mode = OUTBOX_FLUSH_MODE_MANUAL;

    OutboxClient *client = NULL;
    OutboxStatus st = outbox_open(&config, &client);
    if (st != OUTBOX_STATUS_OK) return fail("open", st);

    uint64_t last_seq = 0;
    for (int i = 0; i < count; i++) {
        char event[256];
        int n = snprintf(event, sizeof event,
                         "{\"event\":\"Button Clicked\",\"userId\":\"c-user\","
                         "\"properties\":{\"n\":%d}}", i);
        st = outbox_track(client, (const uint8_t *)event, (size_t)n, &last_seq);
        if (st != OUTBOX_STATUS_OK) return fail("track", st);
    }

    OutboxFlushReport report = {0};
    st = outbox_flush_and_wait(client, 20000, &report);
    if (st != OUTBOX_STATUS_OK) return fail("flush_and_wait", st);

    /* Notifications by polling: the last event's seq must be delivered. */
    int last_delivered = 0;
    char note[1024];
    size_t len = 0;
    while ((st = outbox_poll(client, 0, (uint8_t *)note, sizeof note, &len)) == OUTBOX_STATUS_OK) {
        printf("note: %s\n", note);
        if (strstr(note, "\"kind\":\"delivered\"")) last_delivered = 1;
    }
    if (st != OUTBOX_STATUS_EMPTY) return fail("poll", st);

    char stats[4096];
    st = outbox_stats(client, (uint8_t *)stats, sizeof stats, &len);
    if (st != OUTBOX_STATUS_OK) return fail("stats", st);
    printf("stats: %s\n", stats);

    st = outbox_close(client, 5000);
    outbox_free(client);
    if (st != OUTBOX_STATUS_OK) return fail("close", st);

    printf("delivered %llu of %d, %u pending, last seq %llu\n",
           (unsigned long long)report.delivered, count, report.pending,
           (unsigned long long)last_seq);
    return report.pending == 0 && last_delivered ? 0 : 1;
}

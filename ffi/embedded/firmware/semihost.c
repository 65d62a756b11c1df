/* Semihosting (ARM's debug calls, which QEMU serves with
 * -semihosting-config enable=on): lines on the host's stdout and the
 * verdict as QEMU's exit code. */
#include "board.h"

#define SYS_WRITE0 0x04
#define SYS_EXIT 0x18
#define ADP_STOPPED_APPLICATION_EXIT 0x20026
#define ADP_STOPPED_RUN_TIME_ERROR 0x20023

static int semihost(int op, const void *arg)
{
    register int r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void host_print(const char *text)
{
    semihost(SYS_WRITE0, text);
}

_Noreturn void finish(bool ok, const char *why)
{
    host_print(ok ? "outbox-c-firmware: PASS " : "outbox-c-firmware: FAIL ");
    host_print(why);
    host_print("\n");
    for (;;) {
        /* On 32-bit ARM, SYS_EXIT takes the reason itself in r1. */
        semihost(SYS_EXIT, (const void *)(uintptr_t)(ok ? ADP_STOPPED_APPLICATION_EXIT
                                                        : ADP_STOPPED_RUN_TIME_ERROR));
    }
}

/* Milliseconds since boot from SysTick (QEMU's mps2 models it), in 64 bits:
 * never wraps. Started 2 s before a 32-bit count of milliseconds would
 * wrap, as firmware/src/clock.rs does, so a clock that wrapped there
 * would fail the test. */
#include "board.h"

#define CPU_HZ 25000000u
#define SYST_CSR (*(volatile uint32_t *)0xE000E010)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018)

static volatile uint64_t millis = 0xFFFFFFFFull - 2000;

void clock_start(void)
{
    SYST_RVR = CPU_HZ / 1000 - 1;
    SYST_CVR = 0;
    SYST_CSR = 0x7; /* core clock, interrupt, enable */
}

void systick_handler(void)
{
    millis = millis + 1;
}

/* A Cortex-M4 reads 64 bits in two loads: with interrupts off. */
uint64_t clock_now_ms(void *ctx)
{
    (void)ctx;
    uint32_t primask;
    __asm__ volatile("mrs %0, primask\n\tcpsid i" : "=r"(primask)::"memory");
    uint64_t now = millis;
    __asm__ volatile("msr primask, %0" ::"r"(primask) : "memory");
    return now;
}

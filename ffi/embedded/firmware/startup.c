/* Reset and the vector table for a Cortex-M4F: copy .data, zero .bss,
 * turn the FPU on (the staticlib is built for thumbv7em-none-eabihf, whose
 * code may use it) and call main. Faults end the run through semihosting. */
#include <stdint.h>

#include "board.h"

extern uint32_t data_start, data_end, data_load, bss_start, bss_end, stack_top;
int main(void);

void reset_handler(void)
{
    const uint32_t *from = &data_load;
    for (uint32_t *to = &data_start; to < &data_end;) {
        *to++ = *from++;
    }
    for (uint32_t *to = &bss_start; to < &bss_end;) {
        *to++ = 0;
    }
    /* CPACR: full access to CP10 and CP11, the FPU. */
    *(volatile uint32_t *)0xE000ED88 |= 0xFu << 20;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    main();
    finish(false, "main returned");
}

static void fault_handler(void)
{
    finish(false, "fault");
}

/* The core's 16 exceptions; the firmware uses no external interrupt. */
__attribute__((section(".vector_table"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))&stack_top, /* initial stack pointer */
    reset_handler,
    fault_handler, /* NMI */
    fault_handler, /* HardFault */
    fault_handler, /* MemManage */
    fault_handler, /* BusFault */
    fault_handler, /* UsageFault */
    0, 0, 0, 0,
    fault_handler, /* SVCall */
    fault_handler, /* DebugMon */
    0,
    fault_handler, /* PendSV */
    systick_handler,
};

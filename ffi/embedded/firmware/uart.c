/* The CMSDK APB UART0 of the mps2-an386 (0x4000_4000), which QEMU connects
 * to `outbox gateway --tcp`: blocking writes, reads that never wait.
 * Registers (ARM DDI0479C): DATA +0x0, STATE +0x4 (bit 0 TX full, bit 1
 * RX full, bits 2/3 overruns, write 1 to clear), CTRL +0x8 (TX, RX
 * enable), BAUDDIV +0x10. */
#include "board.h"

#define UART0 0x40004000u
#define REG(offset) (*(volatile uint32_t *)(UART0 + (offset)))
#define DATA REG(0x0)
#define STATE REG(0x4)
#define CTRL REG(0x8)
#define BAUDDIV REG(0x10)
#define TX_FULL 0x1u
#define RX_FULL 0x2u

void uart_start(void)
{
    BAUDDIV = 25000000u / 115200u;
    STATE = 0xCu;
    CTRL = 0x3u;
}

int32_t uart_write(void *ctx, const uint8_t *buf, size_t len)
{
    (void)ctx;
    for (size_t i = 0; i < len; i++) {
        while (STATE & TX_FULL) {
        }
        DATA = buf[i];
    }
    return 0;
}

int32_t uart_read(void *ctx, uint8_t *buf, size_t cap)
{
    (void)ctx;
    size_t n = 0;
    while (n < cap && (STATE & RX_FULL)) {
        buf[n++] = (uint8_t)DATA;
    }
    return (int32_t)n;
}

/* The board under the C firmware: QEMU's mps2-an386 (Cortex-M4F). Each
 * part in its own file: clock.c (SysTick, 64-bit milliseconds), uart.c
 * (CMSDK UART0 to the gateway), nor.c (a NOR flash kept in RAM),
 * semihost.c (the verdict on the host), events.c (the tracked JSON). */
#ifndef BOARD_H
#define BOARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* clock.c */
void clock_start(void);
uint64_t clock_now_ms(void *ctx);
void systick_handler(void);

/* uart.c */
void uart_start(void);
int32_t uart_write(void *ctx, const uint8_t *buf, size_t len);
int32_t uart_read(void *ctx, uint8_t *buf, size_t cap);

/* nor.c: the simulated flash, NOR_BYTES of RAM above the linker's. */
#define NOR_BASE 0x20040000u
#define NOR_BYTES (64u * 1024u)
void nor_erase_all(void);
int32_t nor_read(void *ctx, uint32_t offset, uint8_t *buf, size_t len);
int32_t nor_write(void *ctx, uint32_t offset, const uint8_t *buf, size_t len);
int32_t nor_erase(void *ctx, uint32_t from, uint32_t to);

/* semihost.c */
void host_print(const char *text);
_Noreturn void finish(bool ok, const char *why);

/* events.c: the track call's JSON for the event stored under `seq`;
 * returns its length (buf holds at least EVENT_MAX bytes). */
#define EVENT_MAX 192
size_t track_json(uint64_t seq, uint32_t boot, uint32_t n, bool poison, char *buf);
/* Decimal digits of n, NUL-terminated, in buf (11 bytes); returns buf. */
char *decimal(uint32_t n, char *buf);

#endif

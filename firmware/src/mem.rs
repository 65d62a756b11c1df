//! Byte-at-a-time `memcpy` and `memset` for the flash budget.
//!
//! compiler_builtins' versions copy word by word with unrolled, aligned
//! and unaligned paths: about 1.6 KiB of flash for the seven entry points
//! the code generator calls. These loops are a few dozen bytes; the
//! firmware copies at most a batch buffer (2 KiB) at a time, so the speed
//! they give up does not matter here. compiler_builtins defines its
//! versions weak, so these take their place at link time. Written in
//! assembly because a Rust loop would be turned back into a `memcpy` call.
//! Nothing calls `memmove` (it would still come from compiler_builtins).

core::arch::global_asm!(
    // memcpy(dest: r0, src: r1, n: r2) -> dest; the __aeabi_ forms share
    // the argument order and need not return anything.
    ".section .text.outbox_memcpy,\"ax\",%progbits",
    ".global memcpy",
    ".global __aeabi_memcpy",
    ".global __aeabi_memcpy4",
    ".global __aeabi_memcpy8",
    ".type memcpy,%function",
    ".type __aeabi_memcpy,%function",
    ".type __aeabi_memcpy4,%function",
    ".type __aeabi_memcpy8,%function",
    ".thumb_func",
    "memcpy:",
    ".thumb_func",
    "__aeabi_memcpy:",
    ".thumb_func",
    "__aeabi_memcpy4:",
    ".thumb_func",
    "__aeabi_memcpy8:",
    "    mov r12, r0",
    "1:  cbz r2, 2f",
    "    ldrb r3, [r1], #1",
    "    strb r3, [r12], #1",
    "    subs r2, r2, #1",
    "    b 1b",
    "2:  bx lr",
    // memset(dest: r0, byte: r1, n: r2) -> dest; __aeabi_memset takes
    // (dest, n, byte) and __aeabi_memclr (dest, n): both swap into place.
    ".section .text.outbox_memset,\"ax\",%progbits",
    ".global memset",
    ".global __aeabi_memset",
    ".global __aeabi_memset4",
    ".global __aeabi_memset8",
    ".global __aeabi_memclr",
    ".global __aeabi_memclr4",
    ".global __aeabi_memclr8",
    ".type memset,%function",
    ".type __aeabi_memset,%function",
    ".type __aeabi_memset4,%function",
    ".type __aeabi_memset8,%function",
    ".type __aeabi_memclr,%function",
    ".type __aeabi_memclr4,%function",
    ".type __aeabi_memclr8,%function",
    ".thumb_func",
    "__aeabi_memclr:",
    ".thumb_func",
    "__aeabi_memclr4:",
    ".thumb_func",
    "__aeabi_memclr8:",
    "    movs r2, #0",
    ".thumb_func",
    "__aeabi_memset:",
    ".thumb_func",
    "__aeabi_memset4:",
    ".thumb_func",
    "__aeabi_memset8:",
    "    mov r3, r1",
    "    mov r1, r2",
    "    mov r2, r3",
    ".thumb_func",
    "memset:",
    "    mov r12, r0",
    "1:  cbz r2, 2f",
    "    strb r1, [r12], #1",
    "    subs r2, r2, #1",
    "    b 1b",
    "2:  bx lr",
);

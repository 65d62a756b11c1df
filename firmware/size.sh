#!/usr/bin/env bash
# The firmware's footprint, from the release ELF's section headers:
#   flash = .vector_table + .text + .rodata + .data (the initial values of
#           .data are stored in flash too)
#   RAM   = .data + .bss (static RAM; the stack comes on top)
# Exits 1 when over budget: 24 KiB of code and constants (.text + .rodata),
# 8 KiB of static RAM. (Storage damage costing one record instead of the
# queue took the code from 24 424 to 27 308 bytes and the budget to 28 KiB
# for a while; cutting duplicated paths and copies brought it back to
# 24 500: see the README's firmware section.)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
elf="$here/target/thumbv7em-none-eabihf/release/outbox-firmware"
size_tool="$(command -v arm-none-eabi-size || command -v llvm-size || true)"
[ -n "$size_tool" ] || { echo "no size tool: apt-get install binutils-arm-none-eabi" >&2; exit 1; }
echo "$ $(basename "$size_tool") -A $elf"
"$size_tool" -A "$elf" | grep -E '^\.(vector_table|text|rodata|data|bss) '
"$size_tool" -A "$elf" | awk '
    $1 == ".vector_table" || $1 == ".text" || $1 == ".rodata" { flash += $2 }
    $1 == ".text" || $1 == ".rodata" { code += $2 }
    $1 == ".data" { flash += $2; ram += $2 }
    $1 == ".bss" { ram += $2 }
    END {
        printf "flash: %d bytes (%.1f KiB; .text + .rodata alone %d bytes), static RAM: %d bytes (%.1f KiB)\n",
            flash, flash / 1024, code, ram, ram / 1024
        if (code > 24 * 1024 || ram > 8 * 1024) {
            printf "OVER BUDGET: .text + .rodata %d > %d or RAM %d > %d\n", code, 24 * 1024, ram, 8 * 1024
            exit 1
        }
    }'

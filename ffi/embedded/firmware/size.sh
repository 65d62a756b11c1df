#!/usr/bin/env bash
# The C firmware's footprint, as firmware/size.sh reports the Rust one's,
# from the ELF's section headers (build.sh builds it):
#   flash = .vector_table + .text + .rodata + .ARM.exidx + .data (the
#           initial values of .data are stored in flash too)
#   RAM   = .data + .bss (static RAM, the OutboxDevice and the batch buffer
#           among it; the stack comes on top)
# Exits 1 over budget: 30 KiB of code and constants, 8 KiB of static RAM.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
elf="$here/build/outbox-c-firmware.elf"
size_tool="$(command -v arm-none-eabi-size || true)"
[ -n "$size_tool" ] || { echo "no size tool: apt-get install binutils-arm-none-eabi" >&2; exit 1; }
echo "$ $(basename "$size_tool") -A $elf"
"$size_tool" -A "$elf" | grep -E '^\.(vector_table|text|rodata|ARM\.exidx|data|bss) '
"$size_tool" -A "$elf" | awk '
    $1 == ".vector_table" || $1 == ".text" || $1 == ".rodata" || $1 == ".ARM.exidx" { flash += $2 }
    $1 == ".text" || $1 == ".rodata" { code += $2 }
    $1 == ".data" { flash += $2; ram += $2 }
    $1 == ".bss" { ram += $2 }
    END {
        printf "flash: %d bytes (%.1f KiB; .text + .rodata alone %d bytes), static RAM: %d bytes (%.1f KiB)\n",
            flash, flash / 1024, code, ram, ram / 1024
        if (code > 30 * 1024 || ram > 8 * 1024) {
            printf "OVER BUDGET: .text + .rodata %d > %d or RAM %d > %d\n", code, 30 * 1024, ram, 8 * 1024
            exit 1
        }
    }'

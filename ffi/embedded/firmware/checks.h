/* checks.c: the C ABI's rules, checked on the target. */
#ifndef CHECKS_H
#define CHECKS_H

#include "outbox_embedded.h"

void check_abi_before_open(OutboxDevice *dev, const OutboxDeviceConfig *config,
                           const OutboxDeviceIo *io, uint8_t *buf, size_t len);
void check_abi_in_callback(OutboxDevice *dev);

#endif

//! The events this firmware tracks: small Segment-style track calls, each
//! with its own messageId, written without core::fmt (it costs flash).
//!
//! The messageId is the collector's dedup key, so it must never repeat:
//! it is made of the device's id and the seq the event is stored under,
//! which the flash queue never hands out twice, across resets and power
//! cuts too. (A counter in RAM starts again at 0 on every boot, and the
//! collector then drops each new event as a duplicate of an old one.)

/// This device's id (a macro, so it is spliced into the JSON's fixed
/// text at compile time). Each device needs its own (a serial number, the
/// MCU's unique id): two devices sharing one would have their events taken
/// for each other's duplicates.
macro_rules! device_id {
    () => {
        "fw-1"
    };
}

/// `{"type":"track","event":"tick","anonymousId":"fw-1","messageId":"fw-1-SEQ","properties":{"boot":B,"n":N}}`
/// with SEQ the seq in hex, and `"poison":true` in the properties of the
/// poison event; returns the bytes written to `buf` (at least 192 bytes).
pub fn track_json(seq: u64, boot: u32, n: u32, poison: bool, buf: &mut [u8]) -> usize {
    let mut w = Writer { buf, len: 0 };
    w.put(
        concat!(
            r#"{"type":"track","event":"tick","anonymousId":""#,
            device_id!(),
            r#"","messageId":""#,
            device_id!(),
            "-"
        )
        .as_bytes(),
    );
    w.put(hex(seq, &mut [0; 16]));
    w.put(b"\",\"properties\":{\"boot\":");
    w.number(boot);
    w.put(b",\"n\":");
    w.number(n);
    if poison {
        w.put(b",\"poison\":true");
    }
    w.put(b"}}");
    w.len
}

/// Writes `n` in lowercase hex to `buf`; returns the digits. (Shifts, not
/// a u64 division, which would pull in a kilobyte of compiler builtins.)
fn hex(n: u64, buf: &mut [u8; 16]) -> &[u8] {
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        buf[i] = b"0123456789abcdef"[(n & 0xF) as usize];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}

struct Writer<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) {
        let room = &mut self.buf[self.len..];
        let take = bytes.len().min(room.len());
        room[..take].copy_from_slice(&bytes[..take]);
        self.len += take;
    }

    fn number(&mut self, n: u32) {
        self.put(decimal(n, &mut [0; 10]));
    }
}

/// Writes `n` in decimal to `buf`; returns the digits. (u32: a u64
/// division would pull in a kilobyte of compiler builtins.)
pub fn decimal(n: u32, buf: &mut [u8; 10]) -> &[u8] {
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}

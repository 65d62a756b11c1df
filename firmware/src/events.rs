//! The events this firmware tracks: small Segment-style track calls, each
//! with its own messageId, written without core::fmt (it costs flash).

/// `{"type":"track","event":"tick","anonymousId":"fw-1","messageId":"fw-1-N","properties":{"n":N}}`,
/// with `"poison":true` in the properties of the poison event; returns the
/// bytes written to `buf` (at least 160 bytes).
pub fn track_json(n: u32, poison: bool, buf: &mut [u8]) -> usize {
    let mut w = Writer { buf, len: 0 };
    w.put(b"{\"type\":\"track\",\"event\":\"tick\",\"anonymousId\":\"fw-1\",\"messageId\":\"fw-1-");
    w.number(n);
    w.put(b"\",\"properties\":{\"n\":");
    w.number(n);
    if poison {
        w.put(b",\"poison\":true");
    }
    w.put(b"}}");
    w.len
}

struct Writer<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) {
        let end = (self.len + bytes.len()).min(self.buf.len());
        let take = end - self.len;
        self.buf[self.len..end].copy_from_slice(&bytes[..take]);
        self.len = end;
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

//! Reads and writes that respect the flash's `READ_SIZE` and `WRITE_SIZE`.
//!
//! Records start on a write-size boundary but their payloads and the
//! caller's buffers are arbitrary, so every access goes through these few
//! functions: they split a request into an aligned middle (read or written
//! in place) and small ends staged in a buffer on the stack. Write and read
//! sizes up to [`MAX_ALIGN`] are supported.

use super::{bisync, NorFlash};

use super::format::{RecordHeader, CRC32, RECORD_HEADER};

/// The largest `READ_SIZE` or `WRITE_SIZE` the queue supports.
pub const MAX_ALIGN: usize = 32;
/// Bytes of the staging buffer (header, one write word, padding, CRC).
const STAGE: usize = 3 * MAX_ALIGN + 32;

#[repr(align(4))]
struct Stage([u8; STAGE]);

/// Read `out.len()` bytes at `addr`, whatever their alignment. The region
/// rounded out to `READ_SIZE` must lie inside the flash.
#[bisync]
pub(crate) async fn read<F: NorFlash>(
    flash: &mut F,
    mut addr: u32,
    out: &mut [u8],
) -> Result<(), F::Error> {
    let r = F::READ_SIZE as u32;
    if r <= 1 {
        return flash.read(addr, out).await;
    }
    let mut stage = Stage([0; STAGE]);
    let mut out = out;
    let mis = addr % r;
    if mis != 0 && !out.is_empty() {
        let word = &mut stage.0[..r as usize];
        flash.read(addr - mis, word).await?;
        let n = out.len().min((r - mis) as usize);
        out[..n].copy_from_slice(&word[mis as usize..mis as usize + n]);
        addr += n as u32;
        out = &mut out[n..];
    }
    let mid = out.len() / r as usize * r as usize;
    if mid > 0 {
        flash.read(addr, &mut out[..mid]).await?;
        addr += mid as u32;
        out = &mut out[mid..];
    }
    if !out.is_empty() {
        let word = &mut stage.0[..r as usize];
        flash.read(addr, word).await?;
        let n = out.len();
        out.copy_from_slice(&word[..n]);
    }
    Ok(())
}

/// Whether `len` bytes from `addr` all read as erased (0xFF).
#[bisync]
pub(crate) async fn is_blank<F: NorFlash>(
    flash: &mut F,
    mut addr: u32,
    len: u32,
) -> Result<bool, F::Error> {
    let mut stage = Stage([0; STAGE]);
    let end = addr + len;
    while addr < end {
        let n = ((end - addr) as usize).min(STAGE);
        read(flash, addr, &mut stage.0[..n]).await?;
        if stage.0[..n].iter().any(|&b| b != 0xFF) {
            return Ok(false);
        }
        addr += n as u32;
    }
    Ok(true)
}

/// Whether the record at `addr` with this header and `payload_len` bytes has
/// a matching CRC; streams the payload through the stage buffer.
#[bisync]
pub(crate) async fn crc_matches<F: NorFlash>(
    flash: &mut F,
    addr: u32,
    header: &[u8; RECORD_HEADER],
    payload_len: u32,
) -> Result<bool, F::Error> {
    let mut stage = Stage([0; STAGE]);
    let mut digest = CRC32.digest();
    digest.update(header);
    let mut at = addr + RECORD_HEADER as u32;
    let end = at + payload_len;
    while at < end {
        let n = ((end - at) as usize).min(STAGE);
        read(flash, at, &mut stage.0[..n]).await?;
        digest.update(&stage.0[..n]);
        at += n as u32;
    }
    let mut stored = [0u8; 4];
    read(
        flash,
        addr + super::format::crc_offset(payload_len),
        &mut stored,
    )
    .await?;
    Ok(digest.finalize() == u32::from_le_bytes(stored))
}

/// Write one record (header, payload, zero padding, CRC, 0xFF padding) at
/// the write-aligned `addr`: the header goes first and the CRC last, in at
/// most three writes.
#[bisync]
pub(crate) async fn write_record<F: NorFlash>(
    flash: &mut F,
    mut addr: u32,
    header: &RecordHeader,
    payload: &[u8],
) -> Result<(), F::Error> {
    let w = F::WRITE_SIZE.max(1);
    let head = header.encode();
    let mut digest = CRC32.digest();
    digest.update(&head);
    digest.update(payload);
    let crc = digest.finalize();

    let mut stage = Stage([0; STAGE]);
    let s = &mut stage.0;
    s[..RECORD_HEADER].copy_from_slice(&head);
    let mut fill = RECORD_HEADER;
    // Top the header up to a whole write word from the payload.
    let top = ((w - fill % w) % w).min(payload.len());
    s[fill..fill + top].copy_from_slice(&payload[..top]);
    fill += top;
    let mut rest = &payload[top..];
    if fill.is_multiple_of(w) {
        flash.write(addr, &s[..fill]).await?;
        addr += fill as u32;
        fill = 0;
        let mid = rest.len() / w * w;
        if mid > 0 {
            flash.write(addr, &rest[..mid]).await?;
            addr += mid as u32;
        }
        rest = &rest[mid..];
    }
    s[fill..fill + rest.len()].copy_from_slice(rest);
    fill += rest.len();
    // Zero padding so the CRC sits on a multiple of 4 from the record start.
    let pad = (4 - (RECORD_HEADER + payload.len()) % 4) % 4;
    s[fill..fill + pad].fill(0);
    fill += pad;
    s[fill..fill + 4].copy_from_slice(&crc.to_le_bytes());
    fill += 4;
    let end = fill.div_ceil(w) * w;
    s[fill..end].fill(0xFF);
    flash.write(addr, &s[..end]).await
}

/// Write one record, stamped when `stamp` is some (feature `expiry`): as
/// [`write_record`], with the 8 bytes of the stamp (little-endian) between
/// the header and the payload, under the same CRC (the header's length
/// counts them).
#[cfg(feature = "expiry")]
#[bisync]
pub(crate) async fn write_stamped<F: NorFlash>(
    flash: &mut F,
    mut addr: u32,
    header: &RecordHeader,
    stamp: Option<u64>,
    payload: &[u8],
) -> Result<(), F::Error> {
    use super::format::STAMP_LEN;
    let Some(stamp) = stamp else {
        return write_record(flash, addr, header, payload).await;
    };
    let w = F::WRITE_SIZE.max(1);
    let head = header.encode();
    let stamp = stamp.to_le_bytes();
    let mut digest = CRC32.digest();
    digest.update(&head);
    digest.update(&stamp);
    digest.update(payload);
    let crc = digest.finalize();

    let mut stage = Stage([0; STAGE]);
    let s = &mut stage.0;
    s[..RECORD_HEADER].copy_from_slice(&head);
    s[RECORD_HEADER..RECORD_HEADER + STAMP_LEN].copy_from_slice(&stamp);
    let mut fill = RECORD_HEADER + STAMP_LEN;
    let top = ((w - fill % w) % w).min(payload.len());
    s[fill..fill + top].copy_from_slice(&payload[..top]);
    fill += top;
    let mut rest = &payload[top..];
    if fill.is_multiple_of(w) {
        flash.write(addr, &s[..fill]).await?;
        addr += fill as u32;
        fill = 0;
        let mid = rest.len() / w * w;
        if mid > 0 {
            flash.write(addr, &rest[..mid]).await?;
            addr += mid as u32;
        }
        rest = &rest[mid..];
    }
    s[fill..fill + rest.len()].copy_from_slice(rest);
    fill += rest.len();
    let pad = (4 - (RECORD_HEADER + STAMP_LEN + payload.len()) % 4) % 4;
    s[fill..fill + pad].fill(0);
    fill += pad;
    s[fill..fill + 4].copy_from_slice(&crc.to_le_bytes());
    fill += 4;
    let end = fill.div_ceil(w) * w;
    s[fill..end].fill(0xFF);
    flash.write(addr, &s[..end]).await
}

/// Write `raw` followed by 0xFF padding to a whole number of write words.
#[bisync]
pub(crate) async fn write_padded<F: NorFlash>(
    flash: &mut F,
    addr: u32,
    raw: &[u8],
) -> Result<(), F::Error> {
    let w = F::WRITE_SIZE.max(1);
    let mut stage = Stage([0xFF; STAGE]);
    stage.0[..raw.len()].copy_from_slice(raw);
    let end = raw.len().div_ceil(w) * w;
    flash.write(addr, &stage.0[..end]).await
}

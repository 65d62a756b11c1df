//! Opening: the state of the queue read back from any flash image.
//!
//! 1. Page headers: the page with the highest lap is the write page; the
//!    pages before it in the ring whose laps count down by one are the
//!    pages in use (the chain). A page whose header fails its checks (or
//!    reads as erased) does not end the chain when a page behind it
//!    continues the count: it is a chain page whose records are lost.
//!    Anything else is free, whatever it holds.
//! 2. A walk over the chain's record headers finds the newest checkpoint
//!    (deletes only grow, so the highest `live_from` is the newest).
//! 3. A walk that checks every event's CRC counts the events at or above
//!    `live_from`, remembers where the oldest one is, and finds where the
//!    write page's records end. A damaged record whose number is readable
//!    raises the seq floor past it; one whose header lost a bit or two is
//!    recovered by the walk (and is not damaged at all). What is left
//!    (issue 16): the newest record with three or more bits of its header
//!    lost, or its header and payload both hit, has a number no byte on
//!    flash tells; the floor may then stay at it and the number be handed
//!    out again.
//! 4. If anything but erased bytes follows them (a write cut by a power
//!    loss), or the write page's header copy fails its checks (its write
//!    was cut), the write page takes no more records: the next append
//!    starts a new page, so no partly written word is ever written again
//!    and no record is kept under a single copy of its page header.
//! 5. The free page after the write page and the one before the chain may
//!    be pages whose erase a power cut interrupted; they are erased again
//!    before use even if they read as erased.
//!
//! Only reads; RAM stays fixed whatever the size of the flash.

use super::error::ScanError;
use super::format::{PageHeader, FORMAT_VERSION};
use super::walk::{page_header, step, Bounds, Cursor, LiveWalk, Pos, Step};
use super::{bisync, io, Geometry, NorFlash, QueueSummary, State, WritePage};

/// The header of `page`, refusing a queue of another format version.
#[bisync]
async fn header<F: NorFlash>(
    flash: &mut F,
    geo: &Geometry,
    page: u32,
) -> Result<Option<PageHeader>, ScanError<F::Error>> {
    match page_header(flash, geo, page).await {
        // A sealed queue reads format 3 alone, an unsealed one never.
        #[cfg(feature = "encryption")]
        Ok(Some(h)) if geo.seal.is_some() != (h.version == super::format::SEALED_VERSION) => {
            Err(ScanError::UnsupportedVersion(h.version))
        }
        #[cfg(feature = "encryption")]
        Ok(Some(h)) if geo.seal.is_some() => Ok(Some(h)),
        Ok(Some(h)) if h.version == 0 || h.version > FORMAT_VERSION => {
            Err(ScanError::UnsupportedVersion(h.version))
        }
        Ok(h) => Ok(h),
        Err(e) => Err(ScanError::Flash(e)),
    }
}

#[bisync]
pub(super) async fn scan<F: NorFlash>(
    flash: &mut F,
    geo: &Geometry,
) -> Result<State, ScanError<F::Error>> {
    // 1. The write page and the chain before it.
    let mut newest: Option<(u32, PageHeader)> = None;
    for page in 0..geo.pages {
        if let Some(h) = header(flash, geo, page).await? {
            if newest.is_none_or(|(_, n)| h.lap > n.lap) {
                newest = Some((page, h));
            }
        }
    }
    let Some((write_page, write_header)) = newest else {
        return Ok(empty(geo));
    };
    let mut chain_start = write_page;
    let mut start_header = write_header;
    let mut chain_len = 1;
    let mut live_from = write_header.live_from;
    let mut floor = write_header.floor;
    let mut back = 1;
    while back < geo.pages {
        let page = (write_page + geo.pages - back) % geo.pages;
        match header(flash, geo, page).await? {
            Some(h) if h.lap.wrapping_add(back) == write_header.lap => {
                live_from = live_from.max(h.live_from);
                floor = floor.max(h.floor);
                chain_start = page;
                start_header = h;
                chain_len = back + 1;
            }
            Some(_) => break,
            // Erased or damaged: a page behind it may still continue the
            // count (pages are opened in ring order, so only a page of
            // this pass can: one in use, or one whose erase was cut, whose
            // records are all deleted).
            None => {}
        }
        back += 1;
    }
    let start = Pos {
        page: chain_start,
        off: geo.header,
        base: start_header.base,
        #[cfg(feature = "encryption")]
        lap: start_header.lap,
    };
    // While scanning, the write page's records end wherever they end.
    let bounds = Bounds {
        write_page: Some(write_page),
        write_end: geo.page_size,
    };

    // 2. The newest checkpoint (and the discard marks, feature
    // `critical`: in the order written, those a delete passed left out).
    let mut pos = start;
    #[cfg(feature = "critical")]
    let mut discards = super::critical::Discards::default();
    loop {
        match step(flash, geo, bounds, &mut pos, false, None)
            .await
            .map_err(ScanError::Flash)?
        {
            Step::Checkpoint(lf) => live_from = live_from.max(lf),
            #[cfg(feature = "critical")]
            Step::Discard(seq) => {
                discards.prune(live_from);
                if seq >= live_from {
                    // (Never full: the queue held these runs and more.)
                    let _ = discards.insert(seq);
                }
            }
            Step::Event(_) | Step::Damaged(_) => {}
            Step::End => break,
        }
    }
    #[cfg(feature = "critical")]
    discards.prune(live_from);
    #[cfg(feature = "critical")]
    let mut newest_critical = None;

    // 3. Count the events and find the oldest.
    let mut walk = LiveWalk::new(Cursor {
        pos: start,
        last: None,
    });
    let mut summary = QueueSummary::default();
    let mut last_len = 0;
    let mut head = None;
    while let Some(r) = walk
        .next(flash, geo, bounds)
        .await
        .map_err(ScanError::Flash)?
    {
        floor = floor.max(r.seq.saturating_add(1));
        if r.seq < live_from {
            continue;
        }
        if head.is_none() {
            head = Some(walk.cursor_before(&r));
            summary.first = Some(r.seq);
        }
        // A discarded event is no event (its number still spans).
        #[cfg(feature = "critical")]
        if discards.contains(r.seq) {
            summary.last = Some(r.seq);
            last_len = 0;
            continue;
        }
        #[cfg(feature = "critical")]
        if r.critical {
            newest_critical = Some(r.seq);
        }
        summary.count = summary.count.saturating_add(1);
        summary.bytes = summary.bytes.saturating_add(u64::from(r.len));
        summary.last = Some(r.seq);
        last_len = r.len;
    }
    floor = floor.max(walk.damaged_floor);
    let end = walk.cursor();
    let write_end = if end.pos.page == write_page {
        end.pos.off
    } else {
        // The chain broke before the write page (only a changing flash
        // does this): take no more records there.
        geo.page_size
    };

    // 4. Erased bytes after the last record, or the page is closed.
    let blank = io::is_blank(
        flash,
        geo.addr(write_page, write_end),
        geo.page_size - write_end,
    )
    .await
    .map_err(ScanError::Flash)?;

    Ok(State {
        write: Some(WritePage {
            page: write_page,
            lap: write_header.lap,
            base: write_header.base,
            off: write_end,
            closed: !blank || end.pos.page != write_page || !write_header.whole,
            has_event: false,
        }),
        chain_start,
        unverified_free: geo.pages - chain_len,
        suspect: if chain_len < geo.pages {
            [Some(geo.next(write_page)), Some(geo.prev(chain_start))]
        } else {
            [None, None]
        },
        live_from,
        floor,
        summary,
        last_len,
        tail_last: end.last,
        head: head.unwrap_or(end),
        scan: None,
        #[cfg(feature = "critical")]
        discards,
        #[cfg(feature = "critical")]
        newest_critical,
    })
}

/// The state of a region with no page in use.
fn empty(geo: &Geometry) -> State {
    State {
        write: None,
        chain_start: 0,
        unverified_free: geo.pages,
        // The first page may be the one whose first erase was cut.
        suspect: [Some(0), None],
        live_from: 0,
        floor: 0,
        summary: QueueSummary::default(),
        last_len: 0,
        tail_last: None,
        head: Cursor {
            pos: Pos {
                page: 0,
                off: geo.header,
                base: 0,
                #[cfg(feature = "encryption")]
                lap: 0,
            },
            last: None,
        },
        scan: None,
        #[cfg(feature = "critical")]
        discards: Default::default(),
        #[cfg(feature = "critical")]
        newest_critical: None,
    }
}

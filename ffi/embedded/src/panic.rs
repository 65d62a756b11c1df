//! The panic handler: the library never panics on anything from outside
//! (every input is checked and answered with a status), so a panic is a bug.
//! Nothing can unwind into C (`panic = "abort"`), so it calls the
//! firmware's hook, which may log and reset, and halts if the hook returns.

use core::panic::PanicInfo;
use core::sync::atomic::{AtomicPtr, Ordering};

/// Called on a panic (a bug in the library) with the Rust source file
/// (`file_len` bytes, not NUL-terminated) and line. It may reset the
/// device; if it returns, the library halts in a loop.
pub type OutboxPanicHook =
    Option<unsafe extern "C" fn(file: *const u8, file_len: usize, line: u32)>;

static HOOK: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// Set (or, with NULL, clear) the panic hook. Without one a panic halts.
#[no_mangle]
pub extern "C" fn outbox_device_set_panic_hook(hook: OutboxPanicHook) {
    let raw = hook.map_or(core::ptr::null_mut(), |f| f as *mut ());
    HOOK.store(raw, Ordering::Release);
}

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    let raw = HOOK.load(Ordering::Acquire);
    // SAFETY: only `outbox_device_set_panic_hook` stores here: NULL or a
    // hook, and NULL is `None`.
    let hook = unsafe { core::mem::transmute::<*mut (), OutboxPanicHook>(raw) };
    if let Some(hook) = hook {
        let (file, line) = info.location().map_or(("", 0), |l| (l.file(), l.line()));
        // SAFETY: the hook's contract (outbox_embedded.h).
        unsafe { hook(file.as_ptr(), file.len(), line) };
    }
    loop {
        core::hint::spin_loop();
    }
}

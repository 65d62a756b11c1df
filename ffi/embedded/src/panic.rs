//! The panic handler: the library never panics on anything from outside
//! (every input is checked and answered with a status), so a panic is a bug.
//! Nothing can unwind into C (`panic = "abort"`), so it calls the
//! firmware's hook, which may log and reset, and halts if the hook returns.

use core::panic::PanicInfo;
use core::sync::atomic::{AtomicPtr, Ordering};

/// Called on a panic (a bug in the library). It may log and reset the
/// device; if it returns, the library halts in a loop. It gets no message
/// or location: reading them keeps the panic messages and their formatting
/// code in the firmware (3 KiB of flash).
pub type OutboxPanicHook = Option<unsafe extern "C" fn()>;

static HOOK: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// Set (or, with NULL, clear) the panic hook. Without one a panic halts.
#[no_mangle]
pub extern "C" fn outbox_device_set_panic_hook(hook: OutboxPanicHook) {
    let raw = hook.map_or(core::ptr::null_mut(), |f| f as *mut ());
    HOOK.store(raw, Ordering::Release);
}

#[panic_handler]
fn panic(_: &PanicInfo) -> ! {
    let raw = HOOK.load(Ordering::Acquire);
    // SAFETY: only `outbox_device_set_panic_hook` stores here: NULL or a
    // hook, and NULL is `None`.
    let hook = unsafe { core::mem::transmute::<*mut (), OutboxPanicHook>(raw) };
    if let Some(hook) = hook {
        // SAFETY: the hook's contract (outbox_embedded.h).
        unsafe { hook() };
    }
    loop {
        core::hint::spin_loop();
    }
}

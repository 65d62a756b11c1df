//! The `outbox` command.

fn main() {
    eprintln!("outbox: the command line is not built yet (see the open issues); the core is in outbox-core");
    std::process::exit(2);
}

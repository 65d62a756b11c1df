//! Deterministic simulation of outbox-core (issue 3: not built yet).

fn main() {
    eprintln!("sim: not built yet");
    std::process::exit(2);
}

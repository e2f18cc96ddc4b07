//! The `chatvault` command; see the `chatvault_cli` crate docs.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    chatvault_cli::main()
}

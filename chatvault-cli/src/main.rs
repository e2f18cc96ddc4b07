//! The `chatvault` command; see the `chatvault_cli` crate docs.
#![forbid(unsafe_code)]

/// mimalloc rather than the system's allocator: an import or a copy allocates from
/// several threads at once (the JSON parser, the runtime, SQLite's worker), where glibc's
/// malloc spent a fifth of the time and contended for its arenas (the import bench of
/// chatvault-archive, which uses the same allocator, measures it).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    chatvault_cli::main()
}

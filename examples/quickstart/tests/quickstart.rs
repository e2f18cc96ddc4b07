//! The quick start does what the README says: it runs on a fresh data directory, and a
//! second run resumes what the first stored. Its code is the README's code.

use std::process::Command;

fn run(data: &std::path::Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_quickstart"))
        .env("CHATVAULT_DATA", data)
        .output()
        .expect("run the quickstart");
    assert!(
        out.status.success(),
        "quickstart failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

#[test]
fn second_run_resumes_the_first() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("does/not/exist/yet");

    let first = run(&data);
    assert!(
        first.contains("user-123 has 0 conversation(s) from earlier runs"),
        "{first}"
    );
    assert!(first.contains("user: Hello!"), "{first}");
    assert!(
        first.contains("assistant: Hi there! How can I help you?"),
        "{first}"
    );
    assert!(first.contains("file document.pdf ("), "{first}");
    assert!(first.contains("file://"), "a file URL is printed: {first}");
    let id = first
        .lines()
        .find_map(|l| l.strip_prefix("resumed "))
        .and_then(|l| l.split_whitespace().next())
        .expect("the first run prints the conversation id")
        .to_owned();

    let second = run(&data);
    assert!(
        second.contains("user-123 has 1 conversation(s) from earlier runs"),
        "{second}"
    );
    assert!(
        second.contains(&format!("  {id} Some(\"Hello!\"), 2 messages")),
        "the second run lists the first run's conversation {id}: {second}"
    );
}

#[test]
fn default_data_directory_is_relative_to_where_it_runs() {
    // What a newcomer does: no CHATVAULT_DATA, a relative ./chatvault-data.
    let dir = tempfile::tempdir().expect("temp dir");
    for expected in ["has 0 conversation(s)", "has 1 conversation(s)"] {
        let out = Command::new(env!("CARGO_BIN_EXE_quickstart"))
            .env_remove("CHATVAULT_DATA")
            .current_dir(dir.path())
            .output()
            .expect("run the quickstart");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "quickstart failed in a fresh directory: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains(expected), "{stdout}");
    }
    assert!(dir.path().join("chatvault-data/messages").is_dir());
    assert!(dir.path().join("chatvault-data/files").is_dir());
}

#[test]
fn readme_quick_start_is_this_example() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("README.md at the workspace root");
    let code = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/main.rs"))
        .expect("the example's source");
    let body = code
        .split_once("use std::path::PathBuf;")
        .map(|(_, rest)| format!("use std::path::PathBuf;{rest}"))
        .expect("the example starts its code with its imports");
    assert!(
        readme.contains(body.trim_end()),
        "the README's quick start must be examples/quickstart/src/main.rs (from its imports on)"
    );
}

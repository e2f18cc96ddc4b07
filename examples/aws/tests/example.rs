//! Runs the example binary: against the emulators, and without them (a clear error).

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_aws-example");

#[test]
fn without_endpoints_it_exits_with_a_clear_error() {
    let out = Command::new(BIN)
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ENDPOINT_URL_S3")
        .env_remove("AWS_ENDPOINT_URL_DYNAMODB")
        .output()
        .expect("run the example");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("scripts/emulators.sh start"),
        "unclear error: {stderr}"
    );
    assert!(out.stdout.is_empty(), "it must stop before doing anything");
}

#[test]
#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
fn against_the_emulators_it_stores_and_resumes_a_conversation() {
    let configured = |name: &str| std::env::var(name).is_ok_and(|v| !v.is_empty());
    // Built to run (the endpoints were set, or CHATVAULT_REQUIRE_AWS=1): without them it
    // must fail, not pass without having run.
    assert!(
        configured("AWS_ENDPOINT_URL")
            || (configured("AWS_ENDPOINT_URL_S3") && configured("AWS_ENDPOINT_URL_DYNAMODB")),
        "the AWS example test needs the emulators: run ./scripts/test.sh, or \
         scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
    );
    let suffix = format!("{:x}", std::process::id());
    let out = Command::new(BIN)
        .env("CHATVAULT_TABLE", format!("aws-example-{suffix}"))
        .env("CHATVAULT_BUCKET", format!("aws-example-{suffix}"))
        .output()
        .expect("run the example");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("user: Hello!"), "{stdout}");
    assert!(stdout.contains("assistant: Hi there! How can I help you?"));
    assert!(stdout.contains("résumé.pdf (application/pdf"));
    assert!(
        stdout.contains("X-Amz-Signature="),
        "a presigned URL: {stdout}"
    );
    assert!(stdout.contains("Some(\"Hello!\")"), "auto-title: {stdout}");
}

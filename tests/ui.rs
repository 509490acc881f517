//! Compile-time behaviour of `#[track_ai_usage]`: what must build without
//! warnings and run (`ui/pass`), and the error users see for each misuse
//! (`ui/fail`, one file per misuse, named for it, with its `.stderr`).
//! Regenerate `.stderr` files with
//! `TRYBUILD=overwrite cargo test -p ai-usage-monitor --test ui`, then read
//! each one: it must show the intended error, not an unrelated one.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}

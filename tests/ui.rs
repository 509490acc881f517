//! Compile-time behaviour of `#[track_ai_usage]`: what must build without
//! warnings (`ui/pass`) and the errors users see for misuse (`ui/fail`).
//! Regenerate `.stderr` files with `TRYBUILD=overwrite cargo test --test ui`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}

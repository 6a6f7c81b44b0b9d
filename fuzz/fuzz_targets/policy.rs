//! `tokenward::fuzzing::policy`: the input format and the property are documented there.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tokenward::fuzzing::policy(data));

//! `tokenward::fuzzing::token_response`: the input format and the property are documented there.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tokenward::fuzzing::token_response(data));

//! SQS message bodies through `worker::message::parse_message`. See `longwave::fuzzing`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = longwave::fuzzing::parse_message_bytes(data);
});

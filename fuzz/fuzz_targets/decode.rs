//! Probe, demux and decode of any bytes through longwave's decode layer (every enabled format,
//! our WAV/Ogg header inspection and MP4 box walker included). See `longwave::fuzzing`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: {
        // libfuzzer-sys aborts on any panic, even one the decoder catches and reports as
        // `DecodeError::DecoderPanic` (handled input). The default hook lets caught panics
        // through; an uncaught one still reaches libfuzzer-sys's catch_unwind and aborts.
        let _ = std::panic::take_hook();
    },
    |data: &[u8]| {
        let _ = longwave::fuzzing::decode_bytes(data);
    }
);

// Reads a waveform file (.dat or .json) with the npm `waveform-data` package, the reader
// peaks.js uses, and prints what it understood as one JSON object on stdout:
// {channels, sample_rate, scale, length, bits, duration, min: [[…] per channel], max: […]}.
// Called by tests/waveform.rs; any error exits non-zero with the reason on stderr.
"use strict";
const fs = require("fs");
const WaveformData = require("waveform-data");

const path = process.argv[2];
if (!path) {
  console.error("usage: node read-waveform.cjs FILE.dat|FILE.json");
  process.exit(2);
}
const bytes = fs.readFileSync(path);
const input = path.endsWith(".json")
  ? JSON.parse(bytes.toString("utf8"))
  : bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
const waveform = WaveformData.create(input);
const min = [];
const max = [];
for (let c = 0; c < waveform.channels; c++) {
  min.push(waveform.channel(c).min_array());
  max.push(waveform.channel(c).max_array());
}
process.stdout.write(
  JSON.stringify({
    channels: waveform.channels,
    sample_rate: waveform.sample_rate,
    scale: waveform.scale,
    length: waveform.length,
    bits: waveform.bits,
    duration: waveform.duration,
    min,
    max,
  }),
);

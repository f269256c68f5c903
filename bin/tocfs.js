#!/usr/bin/env -S node --initial-heap-size=64 --single-threaded-gc
// The daemon's heap is small (~10 MB) while it moves hundreds of MB/s through Buffers; with V8's default
// initial heap it ran a full mark-compact every ~50 ms of a sequential read, about a fifth of its CPU.
// A 64 MB initial heap and a GC on the JS thread alone (no marking threads competing on a small node) cut a
// cold 1 GiB read from ~12 to ~9 CPU-s (bench/gib-throughput.ts). Run this file, not `node` on it, to get them.
// dist/tocfs.mjs is the CLI in one module (scripts/bundle.mjs, built by `npm run build`): the mount shows
// ~0.1 s sooner than with the files tsc writes (445 -> 337 ms, median of 8 starts).
import { runProcess } from '../dist/tocfs.mjs';

process.exitCode = await runProcess(process.argv.slice(2));

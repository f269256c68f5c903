// `tocfs` from the sources, for tests that need a real child process without a build:
//   node --import tsx test/support/tocfs-src.ts ARGS...
import { runProcess } from '../../src/cli/main.js';

process.exitCode = await runProcess(process.argv.slice(2));

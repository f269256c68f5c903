// `tocfs` from the sources, for tests that need a real child process without a build:
//   node --import tsx test/support/tocfs-src.ts ARGS...
import { main } from '../../src/cli/main.js';

process.exitCode = await main(process.argv.slice(2));

// `tocfs ARGS...` from the sources, as a child process (the command line as users run it, without a build).
// Run without arguments (tap given the directory) it is no test: it says so in TAP and exits.
import { runProcess } from '../../src/cli/main.js';

if (process.argv.length <= 2) process.stdout.write('1..0 # SKIP helper for tests that run the CLI, not a test\n');
else process.exitCode = await runProcess(process.argv.slice(2));

/** Wrong words on the command line: reported with the usage exit code (2), never with a stack. */
export class UsageError extends Error {
  override name = 'UsageError';
}

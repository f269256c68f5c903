// Records what src publishes on diagnostics_channel (STYLE.md item 12) while one test runs.
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { Test } from 'tap';

/** Every message published on the named channels from now until `t` ends, in order of publication. */
export function recordChannels<T = unknown>(t: Test, ...names: string[]): T[] {
  const seen: T[] = [];
  const on = (m: unknown): void => void seen.push(m as T);
  for (const name of names) {
    subscribe(name, on);
    t.teardown(() => void unsubscribe(name, on));
  }
  return seen;
}

// The mounted tree against `umoci unpack` of the same image (the oracle of STYLE.md's integration tests).
import type { Test } from 'tap';
import { withoutSingularityAdditions } from './singularity-additions.js';
import { diffSnapshots, type TreeSnapshot } from './tree-snapshot.js';

/**
 * Compares a mounted image root with the oracle. The image root alone also carries tocfs's own figures
 * (`user.tocfs.*`, DESIGN.md §1.4), which umoci cannot have: they are checked for, then left out; so are
 * the Singularity entries tocfs synthesises where the image lacks them.
 */
export function compareWithOracle(t: Test, got: TreeSnapshot, want: TreeSnapshot, what: string): void {
  const root = got[''];
  const figures = Object.keys(root?.xattrs ?? {}).filter((k) => k.startsWith('user.tocfs.'));
  t.ok(figures.includes('user.tocfs.bytes_fetched') && figures.includes('user.tocfs.layers'), `${what}: the image root shows its figures`);
  if (root) {
    const xattrs = Object.fromEntries(Object.entries(root.xattrs).filter(([k]) => !k.startsWith('user.tocfs.')));
    got = { ...got, '': { ...root, xattrs } };
  }
  // Apptainer's metadata and mount points where the image lacks them (DESIGN.md §1.3): checked, then left out.
  const { tree, added } = withoutSingularityAdditions(got, want);
  t.ok(added.includes('.singularity.d/runscript') || '.singularity.d' in want, `${what}: the image root shows /.singularity.d`);
  const diff = diffSnapshots(tree, want);
  t.same(diff, [], `${what}: same paths and fields as umoci unpack (${Object.keys(want).length} paths)`);
}


/**
 * Names that mean something in a layer instead of naming a file of the image. Whiteouts come from the
 * OCI image spec (layer.md, "Whiteouts"): `.wh.NAME` deletes NAME from the layers below, and
 * `.wh..wh..opq` in a directory hides everything below it there. The format artefacts are root-level
 * entries eStargz adds to a layer (the TOC tar entry and the prefetch landmarks, stargz-snapshotter
 * `estargz/types.go`), which no image tree shows. The merged tree, the TOC index, the CVMFS index and
 * the converters all read these names from here, so they cannot drift apart.
 */
export const WHITEOUT_PREFIX = '.wh.';
export const OPAQUE_WHITEOUT = '.wh..wh..opq';

/** The TOC's tar entry name in an eStargz blob. */
export const TOC_TAR_NAME = 'stargz.index.json';
/** Every chunk before this entry is prioritised (fetched first, in one request). */
export const PREFETCH_LANDMARK = '.prefetch.landmark';
/** The layer was converted without a prioritised file list. */
export const NO_PREFETCH_LANDMARK = '.no.prefetch.landmark';

const ARTEFACTS: ReadonlySet<string> = new Set([TOC_TAR_NAME, PREFETCH_LANDMARK, NO_PREFETCH_LANDMARK]);

/** Whether `path`, a cleaned path relative to the layer root, is a format artefact (they live at the root only). */
export function isFormatArtefact(path: string): boolean {
  return ARTEFACTS.has(path);
}

/** Whether `name` (a base name) is a whiteout, the opaque marker included. */
export function isWhiteout(name: string): boolean {
  return name.startsWith(WHITEOUT_PREFIX);
}

/** The name a whiteout `.wh.NAME` deletes. */
export function whitedOutName(whiteout: string): string {
  return whiteout.slice(WHITEOUT_PREFIX.length);
}

/** The whiteout that deletes `name`. */
export function whiteoutFor(name: string): string {
  return `${WHITEOUT_PREFIX}${name}`;
}

/** The path of the opaque marker of directory `dir` ('' for the root). */
export function opaqueMarkerPath(dir: string): string {
  return dir === '' ? OPAQUE_WHITEOUT : `${dir}/${OPAQUE_WHITEOUT}`;
}

/**
 * What a sha256 digest looks like (OCI image-spec descriptor.md): `sha256:` then 64 lower-case hex
 * digits. Checked before a digest becomes a file name (the stores), a TOC checksum or a cache key, so
 * every check must agree on exactly these bytes.
 */
const SHA256_DIGEST = /^sha256:([0-9a-f]{64})$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;

export function isSha256Digest(s: string): boolean {
  return SHA256_DIGEST.test(s);
}

/** The hex part of a sha256 digest; undefined when `digest` is not one. */
export function sha256DigestHex(digest: string): string | undefined {
  return SHA256_DIGEST.exec(digest)?.[1];
}

/** Whether `s` is the hex part alone (a store's file name, a Docker image ID). */
export function isSha256Hex(s: string): boolean {
  return SHA256_HEX.test(s);
}

// The part of fuse-native@2 (CommonJS, no published types) that src/fuse uses. See its index.js.
declare module 'fuse-native' {
  type Callback = (...args: any[]) => void;

  namespace Fuse {
  interface FuseOptions {
    /** Per-op timeout in ms after which fuse-native itself answers ETIMEDOUT; `false` disables it. */
    timeout?: number | false;
    force?: boolean;
    mkdir?: boolean;
    debug?: boolean;
    allowOther?: boolean;
    allowRoot?: boolean;
    autoUnmount?: boolean;
    defaultPermissions?: boolean;
    maxRead?: number;
    fsname?: string;
    subtype?: string;
    kernelCache?: boolean;
    autoCache?: boolean;
    entryTimeout?: number;
    attrTimeout?: number;
    [key: string]: unknown;
  }
  }

  class Fuse {
    constructor(mnt: string, ops: object, opts?: Fuse.FuseOptions);
    readonly mnt: string;
    readonly opts: Fuse.FuseOptions;
    readonly ops: any;
    /** Milliseconds; 0 when disabled. */
    readonly timeout: number;
    mount(cb: (err: Error | null) => void): void;
    unmount(cb: (err: Error | null) => void): void;
    /** The `-oa,b,c` argument handed to fuse_mount/fuse_new, or '' when there are no options. */
    _fuseOptions(): string;
    /** Internals its `_open` hands to the native mount (src/fuse/mount.ts mounts without its dev check). */
    _thread: Buffer;
    _openCallback: (err: Error | null) => void;
    readonly _handlers: unknown[];
    _getImplementedArray(): Uint32Array;
    _malloc(size: number): unknown;
    _open(cb: (err: Error | null) => void): void;
    static unmount(mnt: string, cb: (err: Error | null) => void): void;
  }
  export = Fuse;
}

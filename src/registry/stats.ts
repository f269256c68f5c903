/**
 * The registry client's figures, one set per client (DESIGN.md §1.4 builds `user.tocfs.requests` and
 * `bytes_fetched` from them). Counters only: events go to diagnostics_channel.
 */
import type { RequestFigures } from './figures.js';

export interface RegistryStats {
  /** HTTP requests sent, including pings, token requests and requests to redirect targets. */
  readonly requests: number;
  /** Response body bytes received. */
  readonly bytesReceived: number;
  /** Requests repeated after a transient failure. */
  readonly retries: number;
  readonly tokenFetches: number;
  /** Blob locations resolved (by the GETs sent before a blob's location was known), and resolved again after a refusal. */
  readonly blobResolutions: number;
  readonly reResolutions: number;
  /** Registry quirks met and worked around. */
  readonly quirks: {
    /** A range GET answered 200 with the whole blob. */
    readonly rangeIgnored: number;
    /** A blob HEAD refused or without Content-Length; the size came from a 1-byte range GET. */
    readonly headUnsupported: number;
  };
}

export class ClientFigures implements RequestFigures {
  requests = 0;
  bytesReceived = 0;
  retries = 0;
  tokenFetches = 0;
  blobResolutions = 0;
  reResolutions = 0;
  rangeIgnored = 0;
  headUnsupported = 0;

  snapshot(): RegistryStats {
    return {
      requests: this.requests,
      bytesReceived: this.bytesReceived,
      retries: this.retries,
      tokenFetches: this.tokenFetches,
      blobResolutions: this.blobResolutions,
      reResolutions: this.reResolutions,
      quirks: { rangeIgnored: this.rangeIgnored, headUnsupported: this.headUnsupported },
    };
  }
}

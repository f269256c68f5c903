import type { TarEvent, TarHeader } from '../formats/tar/reader.js';
import { cleanEntryName } from './tar-spool.js';

/** What a layer writer's encoder takes: tar entries with their data, and raw records (global headers). */
export interface TarEncoder {
  entry(header: TarHeader): Promise<void>;
  data(bytes: Uint8Array): Promise<void>;
  entryEnd(): Promise<void>;
  raw(bytes: Uint8Array): Promise<void>;
}

/**
 * Feeds tar events to an encoder, leaving out every entry whose cleaned name `skip` accepts (the files an
 * earlier conversion stored in the tar: a TOC, landmarks), with its data.
 */
export async function feedTar(
  encoder: TarEncoder,
  events: AsyncIterable<TarEvent> | Iterable<TarEvent>,
  skip: (cleanName: string) => boolean,
): Promise<void> {
  let skipping = false;
  for await (const ev of events) {
    switch (ev.kind) {
      case 'entry':
        skipping = skip(cleanEntryName(ev.header.path));
        if (!skipping) await encoder.entry(ev.header);
        break;
      case 'data':
        if (!skipping) await encoder.data(ev.bytes);
        break;
      case 'entry-end':
        if (!skipping) await encoder.entryEnd();
        skipping = false;
        break;
      case 'global':
        await encoder.raw(ev.bytes);
        break;
      case 'end':
        break;
    }
  }
}

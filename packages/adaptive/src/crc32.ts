let table: Uint32Array | undefined;

function crcTable(): Uint32Array {
  if (table !== undefined) return table;
  table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
}

/**
 * Table-driven CRC-32 (IEEE 802.3, as in zip and PNG), continuing from `previous` (the CRC of
 * the bytes before it). Runs anywhere; the Node entry's `crc32` uses zlib's native one when it
 * exists.
 *
 * @example
 * ```ts
 * crc32Portable(new TextEncoder().encode('123456789')); // 0xcbf43926
 * ```
 */
export function crc32Portable(data: Uint8Array, previous = 0): number {
  const t = crcTable();
  let c = ~previous >>> 0;
  for (let i = 0; i < data.length; i++) c = (t[(c ^ (data[i] as number)) & 0xff] as number) ^ (c >>> 8);
  return ~c >>> 0;
}

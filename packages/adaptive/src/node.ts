/**
 * The Node-only part of @mrl/adaptive: index files on disk (read, checksum, atomic write).
 * Everything in the main entry works without it, in a browser too.
 */
export { INDEX_FILE_MAGIC, INDEX_FILE_VERSION, openIndex, saveIndex, updateIndex } from './node/index-file.js';
export type { SaveIndexOptions } from './node/index-file.js';
export { ChunkedIndex } from './node/chunked-index.js';
export type { ChunkedSearchOptions } from './node/chunked-index.js';
export { acquireWriterLock } from './node/lock.js';
export { crc32 } from './node/crc32.js';
export { nativeGemm } from './node/native-gemm.js';
export { PrefixHnsw } from './node/hnsw.js';
export type { HnswQuantization, HnswSearchOptions, PrefixHnswOptions } from './node/hnsw.js';
export {
  checkWorkMem,
  exactSql,
  openVectorDb,
  readDbIndexInfo,
  searchDb,
  twoStageSql,
  writeIndexToDb,
} from './node/pgvector.js';
export type {
  DbIndexInfo,
  DbSearchOptions,
  DbSearchResult,
  SqlClient,
  VectorDb,
  WriteDbOptions,
} from './node/pgvector.js';

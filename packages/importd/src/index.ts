export type { Compression } from './compress/index.js';
export { autoDecompress, compress, DETECT_BYTES, decompress, detectCompression } from './compress/index.js';
export {
  ArchiveError,
  CanceledError,
  CodecUnavailableError,
  DecompressError,
  UnsafeEntryError,
  VerificationError,
} from './errors.js';
export { tarTree } from './export/tree.js';
export type { DevicePolicy, ExtractOptions, ExtractStats } from './extract/extract.js';
export { Extractor } from './extract/extract.js';
export { entryComponents, entryPath } from './extract/paths.js';
export type { Progress } from './io.js';
export { fdSize, fdSource, fileSource, writeSparse, writeStream } from './io.js';
export type { TargetKind, TempImage } from './pool/target.js';
export { commitTempImage, createTempImage, discardTempImage, removeStaleTempImages } from './pool/target.js';
export { fetchSmall, HttpError, httpGet, parseUrl } from './pull/http.js';
export type { PullOptions } from './pull/pull.js';
export { imageNameFromUrl, pullRaw, pullTar } from './pull/pull.js';
export { expectedDigest, KEYRINGS, readKeyring, verifySignature } from './pull/verify.js';
export { convertQcow2, isQcow2, Qcow2Error, readHeader as readQcow2Header } from './qcow2/qcow2.js';
export type { EntryType, TarEntry, Timestamp } from './tar/header.js';
export { BLOCK, decodeHeader, parsePax } from './tar/header.js';
export type { TarReaderOptions, TarSink } from './tar/reader.js';
export { TarReader } from './tar/reader.js';
export { END_OF_ARCHIVE, encodeHeader, paddingFor, paxRecord } from './tar/writer.js';
export type { ExportOptions, ImportOptions, ImportResult } from './transfers.js';
export { exportRaw, exportTar, importFs, importRaw, importTar } from './transfers.js';
export type { ExportFormat, ImageType, ImportVerify, TransferResult, TransferType } from './types.js';
export {
  EXPORT_FORMATS,
  IMAGE_TYPES,
  IMPORT_VERIFY,
  IMPORT1_PATH,
  isTransferType,
  parseExportFormat,
  parseImageType,
  parseTransferType,
  parseVerify,
  TRANSFER_RESULTS,
  TRANSFER_TYPES,
  transferObjectPath,
} from './types.js';

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

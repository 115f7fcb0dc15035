import { SdError } from '@sd/sys';

/** Bad or hostile archive data: the stream cannot be read as what it claims to be. */
export class ArchiveError extends SdError {
  constructor(message: string, options?: ErrorOptions) {
    super('EBADMSG', message, options);
  }
}

/** An archive entry that would leave the target tree or do something the import does not allow. */
export class UnsafeEntryError extends SdError {
  readonly entry: string;
  constructor(entry: string, why: string, options?: ErrorOptions) {
    super('EPERM', `Refusing archive entry ${JSON.stringify(entry)}: ${why}`, options);
    this.entry = entry;
  }
}

/** A compressed stream is broken, truncated or not what its magic bytes said. */
export class DecompressError extends SdError {
  constructor(message: string, options?: ErrorOptions) {
    super('EBADMSG', message, options);
  }
}

/** The transfer was canceled. */
export class CanceledError extends SdError {
  constructor(message = 'Transfer canceled', options?: ErrorOptions) {
    super('ECANCELED', message, options);
  }
}

/** A download failed its checksum or signature check. */
export class VerificationError extends SdError {
  constructor(message: string, options?: ErrorOptions) {
    super('EBADMSG', message, options);
  }
}

/** A host library (liblzma, libzstd, libbz2) is missing or failed. */
export class CodecUnavailableError extends SdError {
  constructor(message: string, options?: ErrorOptions) {
    super('ENOPKG', message, options);
  }
}

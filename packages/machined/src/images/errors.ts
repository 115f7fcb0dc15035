import { SdError } from '@sd/sys';

/**
 * Errors of the image pool. Codes are errno names so that the daemon maps
 * them the way sd-bus maps errnos (ENOENT → NoSuchImage in machined).
 * Every message names the image.
 */

export class ImageError extends SdError {
  readonly image: string;
  constructor(code: string, image: string, message: string, options?: ErrorOptions) {
    super(code, message, options);
    this.image = image;
  }
}

export class ImageNotFoundError extends ImageError {
  constructor(image: string) {
    super('ENOENT', image, `No image '${image}' known`);
  }
}

export class ImageExistsError extends ImageError {
  constructor(image: string, path?: string) {
    super('EEXIST', image, `An image called '${image}' already exists${path ? ` (${path})` : ''}`);
  }
}

export class ImageReadOnlyError extends ImageError {
  constructor(image: string, why: string) {
    super('EROFS', image, `Image '${image}' is read-only: ${why}`);
  }
}

export class ImageBusyError extends ImageError {
  constructor(image: string) {
    super('EBUSY', image, `Image '${image}' is in use by a running machine`);
  }
}

export class ImageNotSupportedError extends ImageError {
  constructor(image: string, what: string) {
    super('EOPNOTSUPP', image, `${what} (image '${image}')`);
  }
}

export { assertImageName, HOST_IMAGE, imageNameIsValid, isHiddenImage } from '@sd/basic';
export type { CloneMethod } from './clone.js';
export { cloneImage, ensurePoolDir } from './clone.js';
export { discoverImages, findImage, hostImage, makeImage, UINT64_MAX } from './discover.js';
export {
  ImageBusyError,
  ImageError,
  ImageExistsError,
  ImageNotFoundError,
  ImageNotSupportedError,
  ImageReadOnlyError,
} from './errors.js';
export {
  imageHostname,
  imageMachineId,
  imageMachineInfo,
  imageOsRelease,
  parseEnvFile,
  readInRoot,
} from './metadata.js';
export type { ImagePoolPaths } from './paths.js';
export { imagePoolPaths, imagePoolPathsFrom } from './paths.js';
export type { ImagePoolOptions } from './pool.js';
export { ImagePool } from './pool.js';
export type { ImageInfo, ImagePool as ImagePoolApi, ImageType } from './types.js';

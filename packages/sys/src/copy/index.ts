export * from './creation.js';
export * from './data.js';
export * from './file.js';
export {
  acquireCopyHelper,
  CopyHelper,
  copyHelpersCpuMs,
  releaseCopyHelper,
  stopCopyHelpers,
} from './helper.js';
export type { JobRunner } from './helper-wire.js';
export * from './remove.js';
export * from './stat.js';
export * from './tree.js';
export * from './xattr.js';

export * from './fs-flags.js';
export * from './ioctl.js';

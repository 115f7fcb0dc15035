export * from './abi.js';
export * from './btrfs.js';
export * from './quota.js';

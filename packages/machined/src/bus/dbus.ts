import { createRequire } from 'node:module';

/**
 * dbus-next, loaded through require: it is CommonJS with ambient typings,
 * and one import site keeps the interop in one place.
 */
export type DBus = typeof import('dbus-next');
export type { Message, MessageBus, Variant } from 'dbus-next';

const require = createRequire(import.meta.url);
export const dbus = require('dbus-next') as DBus;

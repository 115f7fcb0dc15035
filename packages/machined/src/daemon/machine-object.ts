import type { InterfaceSpec } from '../bus/types.js';
import type { Machine } from '../registry/machine.js';
import type { Registry } from '../registry/registry.js';
import { requireRoot } from './auth.js';
import * as ops from './operations.js';

export const MACHINE_INTERFACE = 'org.freedesktop.machine1.Machine';

/** The org.freedesktop.machine1.Machine interface of one machine. */
export function machineInterface(m: Machine, registry: Registry): InterfaceSpec {
  return {
    name: MACHINE_INTERFACE,
    methods: {
      Terminate: {
        handler: async (ctx) => {
          await requireRoot(ctx);
          await registry.terminate(m);
        },
      },
      Kill: {
        in: 'si',
        inNames: ['who', 'signal'],
        handler: async (ctx, who: string, signal: number) => {
          await requireRoot(ctx);
          await registry.kill(m, who, signal);
        },
      },
      GetAddresses: { out: 'a(iay)', outNames: ['addresses'], handler: () => ops.getAddresses(m) },
      GetOSRelease: { out: 'a{ss}', outNames: ['fields'], handler: () => ops.getOsRelease(m) },
      GetUIDShift: { out: 'u', outNames: ['shift'], handler: () => ops.getUidShift(m) },
      OpenPTY: {
        out: 'hs',
        outNames: ['pty', 'pty_path'],
        handler: async (ctx) => {
          await requireRoot(ctx);
          return ops.openPty(m, ctx);
        },
      },
      OpenLogin: {
        out: 'hs',
        outNames: ['pty', 'pty_path'],
        handler: async (ctx) => {
          await requireRoot(ctx);
          return ops.openLogin(m, ctx);
        },
      },
      OpenShell: {
        in: 'ssasas',
        inNames: ['user', 'path', 'args', 'environment'],
        out: 'hs',
        outNames: ['pty', 'pty_path'],
        handler: async (ctx, user: string, path: string, args: string[], env: string[]) => {
          await requireRoot(ctx);
          return ops.openShell(m, ctx, user, path, args, env);
        },
      },
      BindMount: {
        in: 'ssbb',
        inNames: ['source', 'destination', 'read_only', 'mkdir'],
        handler: async (ctx, src: string, dst: string, ro: boolean, mkdir: boolean) => {
          await requireRoot(ctx);
          await ops.bindMount(m, src, dst, ro, mkdir);
        },
      },
      CopyFrom: {
        in: 'ss',
        inNames: ['source', 'destination'],
        handler: async (ctx, src: string, dst: string) => {
          await requireRoot(ctx);
          await ops.copy(m, 'from', src, dst, 0n);
        },
      },
      CopyTo: {
        in: 'ss',
        inNames: ['source', 'destination'],
        handler: async (ctx, src: string, dst: string) => {
          await requireRoot(ctx);
          await ops.copy(m, 'to', src, dst, 0n);
        },
      },
      CopyFromWithFlags: {
        in: 'sst',
        inNames: ['source', 'destination', 'flags'],
        handler: async (ctx, src: string, dst: string, flags: bigint) => {
          await requireRoot(ctx);
          await ops.copy(m, 'from', src, dst, BigInt(flags));
        },
      },
      CopyToWithFlags: {
        in: 'sst',
        inNames: ['source', 'destination', 'flags'],
        handler: async (ctx, src: string, dst: string, flags: bigint) => {
          await requireRoot(ctx);
          await ops.copy(m, 'to', src, dst, BigInt(flags));
        },
      },
      OpenRootDirectory: {
        out: 'h',
        outNames: ['fd'],
        handler: async (ctx) => {
          await requireRoot(ctx);
          return ops.openRootDirectory(m, ctx);
        },
      },
    },
    properties: {
      Name: { type: 's', get: () => m.name, emitsChanged: 'const' },
      Id: { type: 'ay', get: () => m.id, emitsChanged: 'const' },
      Timestamp: { type: 't', get: () => m.timestamp, emitsChanged: 'const' },
      TimestampMonotonic: { type: 't', get: () => m.timestampMonotonic, emitsChanged: 'const' },
      Service: { type: 's', get: () => m.service, emitsChanged: 'const' },
      Unit: { type: 's', get: () => m.unit, emitsChanged: 'const' },
      Leader: { type: 'u', get: () => m.leader, emitsChanged: 'const' },
      Class: { type: 's', get: () => m.class, emitsChanged: 'const' },
      RootDirectory: { type: 's', get: () => m.rootDirectory, emitsChanged: 'const' },
      NetworkInterfaces: { type: 'ai', get: () => m.netif, emitsChanged: 'const' },
      State: { type: 's', get: () => m.state, emitsChanged: 'false' },
    },
  };
}

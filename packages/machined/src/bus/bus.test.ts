import { SdError, SyscallError } from '@sd/sys';
import { describe, expect, it } from 'vitest';
import { BusError, toBusError } from './errors.js';
import { introspectXml } from './introspect.js';
import { splitSignature } from './signature.js';

describe('bus helpers', () => {
  it('splits signatures into complete types', () => {
    expect(splitSignature('sayssusa(sv)')).toEqual(['s', 'ay', 's', 's', 'u', 's', 'a(sv)']);
    expect(splitSignature('a{ss}(ii)h')).toEqual(['a{ss}', '(ii)', 'h']);
    expect(splitSignature('')).toEqual([]);
    expect(() => splitSignature('a')).toThrow();
  });

  it('maps errors to the names sd-bus uses', () => {
    expect(toBusError(new BusError('a.b.C', 'x'))).toEqual({ name: 'a.b.C', message: 'x' });
    expect(toBusError(new SyscallError('open', 2, '/x')).name).toBe(
      'org.freedesktop.DBus.Error.FileNotFound',
    );
    expect(toBusError(new SdError('EINVAL', 'bad')).name).toBe('org.freedesktop.DBus.Error.InvalidArgs');
    expect(toBusError(new SyscallError('x', 16)).name).toBe('System.Error.EBUSY');
    expect(toBusError(new Error('boom')).name).toBe('org.freedesktop.DBus.Error.Failed');
  });

  it('introspects interfaces, annotations and children', () => {
    const xml = introspectXml(
      [
        {
          name: 'a.B',
          methods: { M: { in: 'su', out: 'hs', inNames: ['n'], handler: () => undefined } },
          properties: { P: { type: 't', get: () => 0n, emitsChanged: 'const' } },
          signals: { S: { type: 'so' } },
        },
      ],
      ['child'],
    );
    expect(xml).toContain(
      '<method name="M"><arg type="s" name="n" direction="in"/><arg type="u" direction="in"/>',
    );
    expect(xml).toContain(
      '<property name="P" type="t" access="read"><annotation name="org.freedesktop.DBus.Property.EmitsChangedSignal" value="const"/>',
    );
    expect(xml).toContain('<node name="child"/>');
    expect(xml).toContain('org.freedesktop.DBus.Properties');
  });
});

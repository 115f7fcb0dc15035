import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { defaultSettings } from '../settings/settings.js';
import { locateImage } from './locate.js';

const root = mkdtempSync(join(tmpdir(), 'sd-locate-'));
const [a, b, c] = ['a', 'b', 'c'].map((d) => join(root, d)) as [string, string, string];
for (const d of [a, b, c]) mkdirSync(d);
mkdirSync(join(b, 'tree'));
writeFileSync(join(a, 'disk.raw'), '');
mkdirSync(join(c, 'disk'));
writeFileSync(join(b, 'plain'), '');
symlinkSync(join(b, 'tree'), join(c, 'linked'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const settings = (over: Partial<ReturnType<typeof defaultSettings>>) => ({ ...defaultSettings(), ...over });

describe('locateImage (-M without -D or -i)', () => {
  it('finds a directory by machine name in the search path', () => {
    expect(locateImage(settings({ machine: 'tree' }), [a, b, c]).directory).toBe(join(b, 'tree'));
  });
  it('takes NAME.raw as an image, and the first directory of the path wins', () => {
    const s = locateImage(settings({ machine: 'disk' }), [a, b, c]);
    expect(s.image).toBe(join(a, 'disk.raw'));
    expect(s.directory).toBeUndefined();
  });
  it('follows a link placed in the search path', () => {
    expect(locateImage(settings({ machine: 'linked' }), [a, b, c]).directory).toBe(join(c, 'linked'));
  });
  it('refuses a name with no image, naming the name and the path', () => {
    expect(() => locateImage(settings({ machine: 'plain' }), [a, b])).toThrow(
      /No image for machine 'plain' in /,
    );
  });
  it('uses the current directory with neither -M nor -D, and leaves -D and -i alone', () => {
    expect(locateImage(settings({}), [a], '/srv/x').directory).toBe('/srv/x');
    expect(locateImage(settings({ directory: '/d', machine: 'tree' }), [b])).toMatchObject({
      directory: '/d',
    });
    expect(locateImage(settings({ image: '/i.raw', machine: 'tree' }), [b]).directory).toBeUndefined();
  });
});

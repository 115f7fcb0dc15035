import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { describe, expect, it } from 'vitest';
import {
  cutAtMachineUnit,
  escapeUnitName,
  isMachineScopePath,
  isMachineUnitPath,
  machineScopeName,
  machineScopePath,
  removeEmptyMachineSlices,
} from './units.js';

describe('machine units', () => {
  it('escapes names as systemd-escape does', () => {
    expect(escapeUnitName('debian-12')).toBe('debian\\x2d12');
    expect(escapeUnitName('.x')).toBe('\\x2ex');
    expect(machineScopeName('a.b')).toBe('machine-a.b.scope');
    expect(machineScopePath('m-1')).toBe('machine.slice/machine-m\\x2d1.scope');
  });
  it('finds the machine unit in a path, scope only inside machine.slice', () => {
    expect(isMachineScopePath('sup/machine.slice/machine-a.scope', 'a')).toBe(true);
    expect(isMachineScopePath('machine-a.scope', 'a')).toBe(false);
    expect(isMachineUnitPath('machine.slice/machine-a.scope/init.scope', 'a')).toBe(true);
    expect(isMachineUnitPath('system.slice/systemd-nspawn@a.service/payload', 'a')).toBe(true);
    expect(isMachineUnitPath('user.slice/machine-a.scope', 'a')).toBe(false);
    expect(isMachineUnitPath('machine.slice/machine-b.scope', 'a')).toBe(false);
    expect(cutAtMachineUnit('machine.slice/machine-a.scope/init.scope', 'a')).toBe(
      'machine.slice/machine-a.scope',
    );
    expect(cutAtMachineUnit('x/y', 'a')).toBe('x/y');
  });
  it('removes machine.slice only when it is empty', () => {
    const root = mkdtempSync(`${tmpdir()}/cli-units-`);
    try {
      mkdirSync(`${root}/machine.slice/machine-a.scope`, { recursive: true });
      mkdirSync(`${root}/other`);
      removeEmptyMachineSlices([`${root}/machine.slice/machine-a.scope`, `${root}/other/x`]);
      expect(existsSync(`${root}/machine.slice`)).toBe(true);
      rmSync(`${root}/machine.slice/machine-a.scope`, { recursive: true });
      removeEmptyMachineSlices([`${root}/machine.slice/machine-a.scope`, `${root}/other/x`]);
      expect(existsSync(`${root}/machine.slice`)).toBe(false);
      expect(existsSync(`${root}/other`)).toBe(true);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

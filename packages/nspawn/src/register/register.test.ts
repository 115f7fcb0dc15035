import { describe, expect, it } from 'vitest';
import { registerMachine } from './register.js';

describe('machined registration', () => {
  it('warns and goes on without a bus', async () => {
    const warnings: string[] = [];
    const r = await registerMachine(
      { machine: 'x', uuid: '', leader: process.pid, rootDirectory: '/' },
      { busAddress: 'unix:path=/nonexistent/bus', logger: { warn: (m) => warnings.push(m) } },
    );
    expect(r).toBeUndefined();
    expect(warnings).toEqual([expect.stringMatching(/No system bus .*not registering machine x/)]);
  });
});

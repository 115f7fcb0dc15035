import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { close, F_GETFL, fcntl, O, pipe } from '@sd/sys';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// runMain's end, in fresh node processes: main's status after the 'exit'
// listeners, no wait for a pool thread that is blocked, and Node's own exit
// (which restores stdio) where the program used process.stdin/stdout/stderr.

const RUN = fileURLToPath(new URL('./run.ts', import.meta.url));
const TSX = fileURLToPath(new URL('../../../../node_modules/tsx/dist/loader.mjs', import.meta.url));
let dir = '';

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'sd-runmain-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A program whose main is `body` (it may await; it returns the status), run by runMain. */
function program(name: string, body: string): string {
  const file = join(dir, `${name}.mjs`);
  writeFileSync(
    file,
    `import { runMain } from ${JSON.stringify(RUN)};\nimport * as fs from 'node:fs';\nrunMain('t', async () => {\n${body}\n});\n`,
  );
  return file;
}

function run(file: string, stdin: number | 'ignore' = 'ignore') {
  return spawnSync(process.execPath, ['--conditions=sd-source', '--import', TSX, file], {
    encoding: 'utf8',
    stdio: [stdin, 'pipe', 'pipe'],
    timeout: 10_000,
  });
}

describe('runMain', () => {
  it("ends with main's status once the 'exit' listeners have run, output written", () => {
    const marker = join(dir, 'exit-listener-ran');
    const r = run(
      program(
        'status',
        `process.on('exit', (c) => fs.writeFileSync(${JSON.stringify(marker)}, String(c)));\n` +
          `fs.writeSync(1, 'out\\n');\nreturn 5;`,
      ),
    );
    expect(r.status).toBe(5);
    expect(r.stdout).toBe('out\n');
    expect(existsSync(marker)).toBe(true);
  });

  it('prints a failure as one line and exits 1', () => {
    const r = run(program('fail', "throw new Error('boom');"));
    expect(r.status).toBe(1);
    expect(r.stderr).toBe('t: Error: boom\n');
  });

  it("does not wait for a pool thread that is blocked (Node's own exit would hang)", () => {
    // An open of a FIFO nobody writes blocks one of libuv's pool threads for good.
    const fifo = join(dir, 'fifo');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    const started = Date.now();
    const r = run(program('blocked', `fs.open(${JSON.stringify(fifo)}, () => {});\nreturn 0;`));
    expect(r.error).toBeUndefined();
    expect(r.status).toBe(0);
    expect(Date.now() - started).toBeLessThan(8_000);
  });

  it('leaves a shared stdin pipe blocking again when main used process.stdin', () => {
    // Node sets O_NONBLOCK on a pipe it reads as process.stdin, on the file
    // description it shares with whoever gave it; only its own exit takes it
    // back. An _exit here would leave the caller's pipe non-blocking.
    const [r, w] = pipe();
    try {
      const res = run(program('stdin', 'process.stdin;\nreturn 0;'), r);
      expect(res.status).toBe(0);
      expect(fcntl(r, F_GETFL) & O.NONBLOCK).toBe(0);
    } finally {
      close(r);
      close(w);
    }
  });
});

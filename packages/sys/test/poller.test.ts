import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { close, EPOLL, eventfd, pipe, poller, readToEnd, writeAll } from '../src/index.js';

describe('poller', () => {
  it('calls back on the main thread when an fd becomes readable', async () => {
    const [r, w] = pipe();
    const got = new Promise<number>((resolve) => {
      poller().add(r, (events) => {
        poller().remove(r);
        resolve(events);
      });
    });
    setTimeout(() => writeAll(w, 'x'), 10);
    expect((await got) & EPOLL.IN).toBeTruthy();
    close(r);
    close(w);
    expect(poller().size).toBe(0);
  });

  it('serves many fds at once and reads to EOF', async () => {
    const pipes = Array.from({ length: 20 }, () => pipe());
    const reads = pipes.map(([r]) => readToEnd(r));
    pipes.forEach(([, w], i) => {
      writeAll(w, `pipe ${i}`);
      close(w);
    });
    const out = await Promise.all(reads);
    expect(out.map(String)).toEqual(pipes.map((_, i) => `pipe ${i}`));
    expect(poller().size).toBe(0);
  });

  it('refuses to watch one fd twice', () => {
    const fd = eventfd();
    poller().add(fd, () => {});
    expect(() => poller().add(fd, () => {})).toThrow(/already watched/);
    poller().remove(fd);
    close(fd);
  });

  it('does not keep Node alive once idle', () => {
    const index = fileURLToPath(new URL('../src/index.ts', import.meta.url));
    const script = `
      import { pipe, poller, close, writeAll } from ${JSON.stringify(index)};
      const [r, w] = pipe();
      poller().add(r, () => { poller().remove(r); close(r); close(w); console.log('done'); });
      writeAll(w, 'x');
    `;
    const tsx = fileURLToPath(new URL('../../../node_modules/.bin/tsx', import.meta.url));
    const out = execFileSync(tsx, ['--input-type=module', '-e', script], {
      timeout: 20_000,
      encoding: 'utf8',
    });
    expect(out.trim()).toBe('done');
  });
});

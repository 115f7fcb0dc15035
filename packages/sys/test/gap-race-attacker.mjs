// The attacker of the copy race tests (gap-copy-race.test.ts, machined's
// gap-machine-copy-race.test.ts): a process of its own, since the copy is
// synchronous on the test's thread. It plays whoever owns the tree being
// copied (an image's owner, root in a container): while a copy runs it
// swaps directories for symbolic links to the host (absolute, relative,
// /etc) and for FIFOs and device nodes, files for FIFOs and device nodes,
// and, in a destination it also owns, the directories the copy just made
// for links to the host. A swap is one renameat2(RENAME_EXCHANGE) with a
// decoy kept ready in a stash on the same file system (through koffi:
// Node has no renameat2), so the name is never missing and a swap fits
// between a copy's stat and its open. Each target is flipped an even
// number of times a batch, so the tree is whole between batches. A FIFO
// someone opened for reading gets a marker written into it and is closed:
// a copy blocked in open() goes on (no hang), and the marker shows in the
// copy if it read the FIFO.
//
// Config: argv[2] is JSON {dirs, files, links, fifos, devs, dst?: {parent,
// prefix, dirs, links: [{p, to}]}} (links: decoy symlinks; the dst's on its
// file system, with their targets, made again when a copy removed one). Protocol on stdin, one word a line: "go" starts (answers
// "going"), "stop" ends the current batch and answers the counters as JSON
// (reset), "quit" exits. Test code only: no project imports.
import {
  closeSync,
  constants,
  existsSync,
  lstatSync,
  openSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeSync,
} from 'node:fs';
import { createInterface } from 'node:readline';
import koffi from 'koffi';

const libc = koffi.load('libc.so.6');
const renameat2 = libc.func('int renameat2(int, const char *, int, const char *, unsigned int)');
const AT_FDCWD = -100;
const RENAME_EXCHANGE = 2;
const exchange = (a, b) => renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) === 0;

const cfg = JSON.parse(process.argv[2]);
const MARK = 'GAP-FIFO-MARKER\n';
const decoys = (paths, kind) => paths.map((p) => ({ p, kind }));
const srcDecoys = [...decoys(cfg.links, 'link'), ...decoys(cfg.fifos, 'fifo'), ...decoys(cfg.devs, 'dev')];
const dstDecoys = (cfg.dst?.links ?? []).map(({ p, to }) => ({ p, to, kind: 'link' }));
let counts;
const reset = () => {
  counts = {
    batches: 0,
    dirLinks: 0,
    dirSpecials: 0,
    fileFifos: 0,
    fileDevs: 0,
    dstLinks: 0,
    fifoReaders: 0,
    failed: 0,
  };
};
reset();
let running = false;
const pick = (a) => a[Math.floor(Math.random() * a.length)];

/** A reader on one of our FIFOs: the copy opened it. Give it a marker and an end of file. */
function feedReaders() {
  for (const f of cfg.fifos) {
    let fd;
    try {
      fd = openSync(f, constants.O_WRONLY | constants.O_NONBLOCK);
    } catch {
      continue; // ENXIO: nobody reads it
    }
    counts.fifoReaders++;
    try {
      writeSync(fd, MARK);
    } catch {}
    closeSync(fd);
  }
}

/** The directories of the destination tree being made (its temporary top's name is random). */
function dstDirs() {
  if (!cfg.dst) return [];
  let tops = [];
  try {
    tops = readdirSync(cfg.dst.parent).filter((n) => n.startsWith(cfg.dst.prefix));
  } catch {}
  return tops.flatMap((t) => cfg.dst.dirs.map((d) => `${cfg.dst.parent}/${t}/${d}`));
}

const kindOf = (target, decoy) => {
  if (target.dst) return 'dstLinks';
  if (target.dir) return decoy.kind === 'link' ? 'dirLinks' : 'dirSpecials';
  return decoy.kind === 'fifo' ? 'fileFifos' : 'fileDevs';
};

/**
 * One batch: a few targets, each paired with a decoy, flipped in turn an
 * even number of times (sometimes held swapped a while, for the longer
 * windows: a job waiting in the helper, the end of a copy).
 */
function batch() {
  const dsts = dstDirs();
  // A destination decoy the copy removed (its failed copy's temporary tree went with a swap in place): again.
  for (const d of dstDecoys) {
    let ok = false;
    try {
      ok = lstatSync(d.p).isSymbolicLink();
    } catch {}
    if (ok) continue;
    rmSync(d.p, { recursive: true, force: true });
    symlinkSync(d.to, d.p);
  }
  const busy = [];
  // Never a target below or above another one: a flip must not reach through another's link.
  const free = (p) => !busy.some((b) => p === b || p.startsWith(`${b}/`) || b.startsWith(`${p}/`));
  const pairs = [];
  const fileDecoys = srcDecoys.filter((d) => d.kind !== 'link');
  const unused = new Set([...srcDecoys, ...dstDecoys]);
  for (let i = 0; i < 10; i++) {
    const r = Math.random();
    let target;
    let decoy;
    if (r < 0.4 && cfg.dirs.length > 0) {
      target = { p: pick(cfg.dirs), dir: true };
      // Mostly links: they lead somewhere (a FIFO or device in a directory's place only fails an open).
      decoy = pick(srcDecoys.filter((d) => unused.has(d) && (d.kind === 'link') === Math.random() < 0.7));
    } else if (r < 0.8 && cfg.files.length > 0) {
      target = { p: pick(cfg.files) };
      decoy = pick(fileDecoys.filter((d) => unused.has(d)));
    } else if (dsts.length > 0) {
      // The next directories the copy will make (dst.dirs is in the order of the source's
      // directory listing, the walk's): made while the attacker lurks, swapped at once.
      const p = dsts.find((d) => !busy.includes(d) && !existsSync(d));
      if (p === undefined) continue;
      target = { p, dst: true };
      decoy = pick(dstDecoys.filter((d) => unused.has(d)));
    }
    if (!target || !decoy || !free(target.p)) continue;
    busy.push(target.p);
    unused.delete(decoy);
    pairs.push({
      target,
      decoy,
      flips: 2 * (1 + Math.floor(Math.random() * 20)),
      swapped: false,
      tries: 0,
      until: 0,
    });
  }
  const hold = Math.random() < 0.3;
  for (let round = 0; pairs.some((x) => x.flips > 0 || x.swapped); round++) {
    for (const x of pairs) {
      if (x.flips <= 0 && !x.swapped) continue;
      if (x.until > performance.now()) continue;
      if (!exchange(x.target.p, x.decoy.p)) {
        // A destination directory not made yet: tried again and again (a few ms), so that the
        // swap lands right after the copy's mkdir, before it opens the new directory.
        if (!x.swapped && (!x.target.dst || ++x.tries > 5000)) x.flips = 0;
        if (!x.target.dst) counts.failed++;
        continue;
      }
      x.swapped = !x.swapped;
      x.flips--;
      if (x.swapped) counts[kindOf(x.target, x.decoy)]++;
      // A new destination directory stays swapped a moment: the copy's open comes a few µs after.
      if (x.swapped && x.target.dst) x.until = performance.now() + 0.05;
    }
    if (hold && round === 0) {
      const until = performance.now() + 0.5 + Math.random() * 2;
      while (performance.now() < until);
    }
    if (round > 20_000) break;
  }
  feedReaders();
  counts.batches++;
}

function loop() {
  if (running) for (let i = 0; i < 8; i++) batch();
  else feedReaders();
  // Back to the event loop between rounds, for "stop" on stdin.
  setTimeout(loop, running ? 0 : 2);
}

createInterface({ input: process.stdin }).on('line', (line) => {
  if (line === 'go') {
    reset();
    running = true;
    process.stdout.write('going\n');
  } else if (line === 'stop') {
    running = false;
    process.stdout.write(`${JSON.stringify(counts)}\n`);
  } else if (line === 'quit') {
    process.exit(0);
  }
});
process.stdin.on('end', () => process.exit(0));
loop();

import { InvalidArgumentError, isDigits } from '@sd/sys';

/** Linux's real-time signal range as glibc presents it (SIGRTMIN is 34: glibc keeps 32 and 33). */
export const SIGRTMIN = 34;
export const SIGRTMAX = 64;

/** Node's table of the host's signals, loaded at the first use (node:os is not loaded at start). */
const signals = () => process.getBuiltinModule('node:os').constants.signals;

/**
 * A signal as systemd's signal_from_string() reads it: a name with or
 * without "SIG" (case-insensitive), RTMIN+n / RTMAX-n, or a number 1…64.
 */
export function parseSignal(value: string): number {
  if (isDigits(value)) {
    const n = Number(value);
    if (n >= 1 && n <= SIGRTMAX) return n;
  } else {
    const name = value.toUpperCase().replace(/^SIG/, '');
    const rt = /^RTM(IN|AX)(?:([+-])(\d+))?$/.exec(name);
    if (rt) {
      const base = rt[1] === 'IN' ? SIGRTMIN : SIGRTMAX;
      const off = Number(rt[3] ?? 0) * (rt[2] === '-' ? -1 : 1);
      const n = base + off;
      // RTMIN counts up and RTMAX down, each only inside the range.
      if ((rt[1] === 'IN' ? off >= 0 : off <= 0) && n >= SIGRTMIN && n <= SIGRTMAX) return n;
    } else {
      const n = (signals() as Record<string, number | undefined>)[`SIG${name}`];
      if (n !== undefined) return n;
    }
  }
  throw new InvalidArgumentError(`Unknown signal: ${JSON.stringify(value)}`);
}

/** The name systemd prints for a signal number ("SIGTERM", "SIGRTMIN+3"), or the number. */
export function signalName(n: number): string {
  if (n >= SIGRTMIN && n <= SIGRTMAX) return n === SIGRTMIN ? 'SIGRTMIN' : `SIGRTMIN+${n - SIGRTMIN}`;
  for (const [name, value] of Object.entries(signals())) if (value === n) return name;
  return String(n);
}

/**
 * systemd's bus label escaping, which turns machine and image names into
 * D-Bus object path elements: every byte of the UTF-8 form outside
 * [A-Za-z0-9] — and a digit in the first position — becomes `_` and two
 * lower-case hex digits; the empty string is `_`. Unescaping takes an
 * invalid escape literally, as systemd does.
 */

const isAlpha = (b: number): boolean => (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a);
const isDigit = (b: number): boolean => b >= 0x30 && b <= 0x39;

export function busLabelEscape(text: string): string {
  if (text === '') return '_';
  const bytes = Buffer.from(text, 'utf8');
  let out = '';
  bytes.forEach((b, i) => {
    // Object path elements may start with a digit, but systemd escapes it anyway.
    if (isAlpha(b) || (i > 0 && isDigit(b))) out += String.fromCharCode(b);
    else out += `_${b.toString(16).padStart(2, '0')}`;
  });
  return out;
}

const hexValue = (c: number): number => {
  if (isDigit(c)) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  return -1;
};

export function busLabelUnescape(label: string): string {
  if (label === '_') return '';
  const src = Buffer.from(label, 'utf8');
  const out: number[] = [];
  for (let i = 0; i < src.length; i++) {
    const b = src[i]!;
    if (b === 0x5f /* _ */ && i + 2 < src.length) {
      const hi = hexValue(src[i + 1]!);
      const lo = hexValue(src[i + 2]!);
      if (hi >= 0 && lo >= 0) {
        out.push((hi << 4) | lo);
        i += 2;
        continue;
      }
    }
    out.push(b);
  }
  return Buffer.from(out).toString('utf8');
}

export const MACHINE1_PATH = '/org/freedesktop/machine1';

/** The object path of a machine: /org/freedesktop/machine1/machine/<escaped name>. */
export function machineObjectPath(name: string): string {
  return `${MACHINE1_PATH}/machine/${busLabelEscape(name)}`;
}

/** The object path of an image: /org/freedesktop/machine1/image/<escaped name>. */
export function imageObjectPath(name: string): string {
  return `${MACHINE1_PATH}/image/${busLabelEscape(name)}`;
}

/**
 * The name inside an object path under `prefix` (e.g. MACHINE1_PATH +
 * '/machine'), or undefined when the path is not directly below it.
 */
export function nameFromObjectPath(path: string, prefix: string): string | undefined {
  const start = `${prefix}/`;
  if (!path.startsWith(start)) return undefined;
  const label = path.slice(start.length);
  if (label === '' || label.includes('/')) return undefined;
  return busLabelUnescape(label);
}

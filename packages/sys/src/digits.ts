/**
 * Whether `s` is one or more ASCII digits, as /^\d+$/ says, without a regex:
 * each regex compiles at its first use (~50 µs of a CLI's start), and these
 * checks run at every container start.
 */
export function isDigits(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return false;
  }
  return true;
}

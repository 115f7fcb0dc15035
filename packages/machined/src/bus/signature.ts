/** Splits a D-Bus signature into its complete types ('sa{ss}(ii)' → ['s', 'a{ss}', '(ii)']). */
export function splitSignature(sig: string): string[] {
  const out: string[] = [];
  let i = 0;
  const one = (): void => {
    const c = sig[i];
    if (c === undefined) throw new Error(`truncated signature '${sig}'`);
    i++;
    if (c === 'a') one();
    else if (c === '(' || c === '{') {
      const close = c === '(' ? ')' : '}';
      while (sig[i] !== close) {
        if (i >= sig.length) throw new Error(`unbalanced signature '${sig}'`);
        one();
      }
      i++;
    }
  };
  while (i < sig.length) {
    const start = i;
    one();
    out.push(sig.slice(start, i));
  }
  return out;
}

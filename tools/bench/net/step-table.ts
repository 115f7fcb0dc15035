import { ms, summarize, table } from '../lib/stats.js';

/**
 * Medians of the network setup's step marks over several starts: when
 * each step ended (since the start) and how long it took since the mark
 * before it, in the order the steps first appeared.
 */
export class StepTable {
  private readonly at = new Map<string, number[]>();
  private readonly took = new Map<string, number[]>();
  private readonly order: string[] = [];

  /** One start's marks, relative to its start, ending with `end` (e.g. ['exec', ms]). */
  add(marks: Array<[string, number]>, end?: [string, number]): void {
    let prev = 0;
    for (const [step, t] of end ? [...marks, end] : marks) {
      if (!this.order.includes(step)) this.order.push(step);
      this.at.set(step, [...(this.at.get(step) ?? []), t]);
      this.took.set(step, [...(this.took.get(step) ?? []), t - prev]);
      prev = t;
    }
  }

  format(title: string): string {
    const rows = this.order.map((step) => [
      step,
      ms(summarize(this.at.get(step)!).median),
      ms(summarize(this.took.get(step)!).median),
      String(this.at.get(step)!.length),
    ]);
    return table([title, 'ends at', 'took', 'runs'], rows);
  }
}

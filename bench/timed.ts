// A plan whose accumulators' add and finish are timed in place, so that one run says where its
// stream goes, under whatever load the machine has at the time. Used by bench/families.ts and
// bench/full.ts.
import { performance } from 'node:perf_hooks';
import type { AnalysisPlan } from '../src/engine/analysis/pipeline';
import { mapSpecs } from '../src/engine/analysis/plan';
import type { Accumulator } from '../src/engine/analysis/types';

export interface Spent {
  /** Milliseconds in screen(), add() and finish(), per accumulator name. */
  readonly byName: Map<string, { screen: number; add: number; finish: number }>;
}

export function timedPlan(base: AnalysisPlan): { plan: AnalysisPlan; spent: Spent } {
  const byName = new Map<string, { screen: number; add: number; finish: number }>();
  const timed = (name: string, a: Accumulator<unknown>): Accumulator<unknown> => {
    const t = byName.get(name) ?? { screen: 0, add: 0, finish: 0 };
    byName.set(name, t);
    const screen = a.screen?.bind(a);
    return {
      // Only where the accumulator has one: the pipeline asks whether screen exists.
      ...(screen && {
        screen: async (b) => {
          const t0 = performance.now();
          await screen(b);
          t.screen += performance.now() - t0;
        },
      }),
      add: async (b) => {
        const t0 = performance.now();
        await a.add(b);
        t.add += performance.now() - t0;
      },
      state: () => a.state(),
      finish: async () => {
        const t0 = performance.now();
        const r = await a.finish();
        t.finish += performance.now() - t0;
        return r;
      },
    };
  };
  const plan = mapSpecs(base, (s) => ({
    ...s,
    create: (done) => timed(s.name, s.create(done)),
    restore: (st, done) => timed(s.name, s.restore(st, done)),
  }));
  return { plan, spent: { byName } };
}

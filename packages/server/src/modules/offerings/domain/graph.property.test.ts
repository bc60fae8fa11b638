import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { topologicalOrder, validateSteps } from './graph.js';
import { STEPS_MAX, type StepDefinition } from './offering.js';

/*
 * Random graphs of steps. A DAG is made by giving the steps a hidden rank and letting a step
 * depend only on lower-ranked ones; the steps are then listed in a random order, so the
 * definition order says nothing about the dependencies.
 */

interface Graph {
  readonly steps: StepDefinition[];
  /** Every dependency as [predecessor, step]. */
  readonly edges: [string, string][];
}

const dagArb: fc.Arbitrary<Graph> = fc
  .integer({ min: 1, max: STEPS_MAX })
  .chain((size) =>
    fc.record({
      size: fc.constant(size),
      // For each step (by rank), which lower-ranked steps it comes after.
      dependencies: fc.array(fc.array(fc.boolean(), { minLength: size, maxLength: size }), {
        minLength: size,
        maxLength: size,
      }),
      listing: fc.shuffledSubarray(
        Array.from({ length: size }, (_, i) => i),
        { minLength: size, maxLength: size },
      ),
    }),
  )
  .map(({ size, dependencies, listing }) => {
    const key = (rank: number) => `step-${rank}`;
    const edges: [string, string][] = [];
    const after = Array.from({ length: size }, (_, rank) =>
      Array.from({ length: rank }, (_, lower) => lower)
        .filter((lower) => dependencies[rank]?.[lower])
        .map((lower) => {
          edges.push([key(lower), key(rank)]);
          return key(lower);
        }),
    );
    const steps = listing.map((rank) => ({
      key: key(rank),
      name: `Step ${rank}`,
      capability: 'sewing',
      constraints: {},
      quantityPerUnit: '1',
      after: after[rank] ?? [],
    }));
    return { steps, edges };
  });

/** The steps reachable from `from` by following dependencies forwards, `from` excluded. */
function reachable(graph: Graph, from: string): Set<string> {
  const seen = new Set<string>();
  const stack = [from];
  while (stack.length > 0) {
    const at = stack.pop() as string;
    for (const [predecessor, next] of graph.edges) {
      if (predecessor === at && !seen.has(next)) {
        seen.add(next);
        stack.push(next);
      }
    }
  }
  return seen;
}

describe('the steps graph, on random graphs', () => {
  it('accepts every DAG, and orders it so that every step comes after all of its predecessors', () => {
    fc.assert(
      fc.property(dagArb, (graph) => {
        expect(validateSteps(graph.steps)).toEqual([]);
        const order = topologicalOrder(graph.steps);
        expect([...order].sort()).toEqual(graph.steps.map((step) => step.key).sort());
        const position = new Map(order.map((key, index) => [key, index]));
        for (const [predecessor, step] of graph.edges) {
          expect(position.get(predecessor)).toBeLessThan(position.get(step) as number);
        }
      }),
    );
  });

  it('keeps the definition order among steps that are ready together: the order is the least one', () => {
    fc.assert(
      fc.property(dagArb, (graph) => {
        const order = topologicalOrder(graph.steps);
        const index = new Map(graph.steps.map((step, i) => [step.key, i]));
        const done = new Set<string>();
        for (const key of order) {
          // No step defined earlier was ready (all predecessors done) and still waiting.
          const ready = graph.steps.filter(
            (step) => !done.has(step.key) && step.after.every((predecessor) => done.has(predecessor)),
          );
          const first = ready.reduce((a, b) =>
            (index.get(a.key) as number) < (index.get(b.key) as number) ? a : b,
          );
          expect(key).toBe(first.key);
          done.add(key);
        }
      }),
    );
  });

  it('rejects a DAG with a back-edge added as a cycle, and names a real cycle', () => {
    const withBackEdge = dagArb
      .filter((graph) => graph.edges.length > 0)
      .chain((graph) =>
        fc
          .record({ graph: fc.constant(graph), edge: fc.constantFrom(...graph.edges) })
          .chain(({ graph, edge }) => {
            // Any step reachable from the edge's predecessor, made its predecessor, closes a cycle.
            const targets = [...reachable(graph, edge[0])];
            return fc.record({
              graph: fc.constant(graph),
              from: fc.constant(edge[0]),
              to: fc.constantFrom(...targets),
            });
          }),
      );
    fc.assert(
      fc.property(withBackEdge, ({ graph, from, to }) => {
        // `from` now also comes after `to`, which already comes after `from`.
        const steps = graph.steps.map((step) =>
          step.key === from ? { ...step, after: [...step.after, to] } : step,
        );
        const errors = validateSteps(steps);
        const cycles = errors.filter((error) => error.rule === 'acyclic');
        expect(cycles.length).toBeGreaterThan(0);
        expect(errors.length).toBe(cycles.length);
        const edges = new Set([...graph.edges.map(([a, b]) => `${a}>${b}`), `${to}>${from}`]);
        for (const error of cycles) {
          const named = error.message.replace('forms a cycle: ', '').split(' → ');
          expect(named.length).toBeGreaterThanOrEqual(3);
          expect(named[0]).toBe(named.at(-1));
          for (let i = 0; i + 1 < named.length; i++) {
            expect(edges.has(`${named[i]}>${named[i + 1]}`), error.message).toBe(true);
          }
          // The error points at a dependency that is one of the cycle's own.
          const match = /^\/steps\/(\d+)\/after\/(\d+)$/.exec(error.path);
          expect(match).not.toBeNull();
          const stepAt = steps[Number(match?.[1])] as StepDefinition;
          const predecessor = stepAt.after[Number(match?.[2])] as string;
          expect(edges.has(`${predecessor}>${stepAt.key}`)).toBe(true);
          expect(named).toContain(stepAt.key);
          expect(named).toContain(predecessor);
        }
      }),
    );
  });
});

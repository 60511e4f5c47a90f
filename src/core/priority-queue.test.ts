import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Heap } from "./heap.ts";
import { type Level, PriorityQueue, type QueueEntry } from "./priority-queue.ts";

class Entry implements QueueEntry {
  prev: this | undefined = undefined;
  next: this | undefined = undefined;
  level: Level<this> | undefined = undefined;
  readonly priority: number;
  readonly seq: number;
  constructor(priority: number, seq: number) {
    this.priority = priority;
    this.seq = seq;
  }
}

const byOrder = (a: Entry, b: Entry) => b.priority - a.priority || a.seq - b.seq;

describe("PriorityQueue", () => {
  it("is higher priority first, FIFO within a priority", () => {
    const q = new PriorityQueue<Entry>();
    const entries = [new Entry(0, 0), new Entry(5, 1), new Entry(0, 2), new Entry(5, 3)];
    for (const e of entries) q.push(e);
    expect([q.shift(), q.shift(), q.shift(), q.shift(), q.shift()]).toEqual([
      entries[1],
      entries[3],
      entries[0],
      entries[2],
      undefined,
    ]);
  });

  it("a re-entering entry (a retry) takes its place by seq", () => {
    const q = new PriorityQueue<Entry>();
    const retry = new Entry(0, 1);
    const fresh = [new Entry(0, 5), new Entry(0, 6)];
    for (const e of fresh) q.push(e);
    q.push(retry);
    expect(q.shift()).toBe(retry);
  });

  it("matches a sorted reference under random pushes, removes and shifts", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.record({
              op: fc.constant("push" as const),
              priority: fc.integer({ min: -2, max: 2 }),
            }),
            fc.record({ op: fc.constant("remove" as const), pick: fc.nat() }),
            fc.record({ op: fc.constant("shift" as const) }),
          ),
          { maxLength: 200 },
        ),
        (ops) => {
          const q = new PriorityQueue<Entry>();
          let reference: Entry[] = [];
          let seq = 0;
          for (const op of ops) {
            if (op.op === "push") {
              const e = new Entry(op.priority, seq++);
              q.push(e);
              reference.push(e);
            } else if (op.op === "remove") {
              if (reference.length === 0) continue;
              const e = reference[op.pick % reference.length]!;
              expect(q.remove(e)).toBe(true);
              expect(q.remove(e)).toBe(false);
              reference = reference.filter((r) => r !== e);
            } else {
              reference.sort(byOrder);
              expect(q.shift()).toBe(reference.shift());
            }
            expect(q.size).toBe(reference.length);
          }
          reference.sort(byOrder);
          for (const e of reference) expect(q.shift()).toBe(e);
          expect(q.size).toBe(0);
        },
      ),
    );
  });
});

describe("Heap", () => {
  it("pops in order and removes from the middle", () => {
    type N = { heapIndex: number; v: number };
    fc.assert(
      fc.property(fc.array(fc.integer(), { maxLength: 100 }), fc.nat(), (values, pick) => {
        const heap = new Heap<N>((a, b) => a.v < b.v);
        const nodes = values.map((v) => ({ heapIndex: -1, v }));
        for (const n of nodes) heap.push(n);
        let rest = nodes;
        if (nodes.length > 0) {
          const victim = nodes[pick % nodes.length]!;
          expect(heap.remove(victim)).toBe(true);
          rest = nodes.filter((n) => n !== victim);
        }
        const out: number[] = [];
        for (let n = heap.pop(); n !== undefined; n = heap.pop()) out.push(n.v);
        expect(out).toEqual(rest.map((n) => n.v).sort((a, b) => a - b));
      }),
    );
  });
});

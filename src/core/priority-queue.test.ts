import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Heap } from "./heap.ts";
import { type Level, PriorityQueue, type QueueEntry } from "./priority-queue.ts";

class Entry implements QueueEntry {
  prev: this | undefined = undefined;
  next: this | undefined = undefined;
  level: Level<this> | undefined = undefined;
  heapIndex = -1;
  readonly priority: number;
  readonly seq: number;
  readonly group: number;
  constructor(priority: number, seq: number, group = seq) {
    this.priority = priority;
    this.seq = seq;
    this.group = group;
  }
}

/** An entry that counts every read of its rank: the queue's work, independent of timing. */
let rankReads = 0;
class CountedEntry implements QueueEntry {
  prev: this | undefined = undefined;
  next: this | undefined = undefined;
  level: Level<this> | undefined = undefined;
  heapIndex = -1;
  readonly priority = 0;
  readonly #seq: number;
  constructor(seq: number) {
    this.#seq = seq;
  }
  get seq(): number {
    rankReads++;
    return this.#seq;
  }
  get group(): number {
    rankReads++;
    return this.#seq;
  }
}

const byOrder = (a: Entry, b: Entry) =>
  b.priority - a.priority || a.group - b.group || a.seq - b.seq;

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

  it("re-entering retries cost O(log n) each, not a walk past every waiting retry", () => {
    const q = new PriorityQueue<CountedEntry>();
    const retries = 10_000;
    for (let i = 0; i < 1_000; i++) q.push(new CountedEntry(retries + i));
    // A 429 burst's retries come back in their original order, each behind the ones before it.
    const order = Array.from({ length: retries }, (_, i) => i);
    const shuffled = [...order.slice(0, retries / 2), ...order.slice(retries / 2).reverse()];
    rankReads = 0;
    for (const seq of shuffled) q.push(new CountedEntry(seq));
    // O(log n) per insert: about 2 reads per comparison, ~14 comparisons at most.
    expect(rankReads).toBeLessThan(retries * 60);
    const out: number[] = [];
    for (let e = q.shift(); e !== undefined; e = q.shift()) out.push(e.seq);
    expect(out).toEqual(Array.from({ length: retries + 1_000 }, (_, i) => i));
  });

  it("nested work (a lower group) goes ahead of later fresh entries, FIFO among itself", () => {
    const q = new PriorityQueue<Entry>();
    const outer = [new Entry(0, 0), new Entry(0, 1), new Entry(0, 2)];
    for (const e of outer) q.push(e);
    expect(q.shift()).toBe(outer[0]);
    const children = [new Entry(0, 3, 0), new Entry(0, 4, 0)];
    for (const e of children) q.push(e);
    expect([q.shift(), q.shift(), q.shift(), q.shift()]).toEqual([
      children[0],
      children[1],
      outer[1],
      outer[2],
    ]);
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
            // A retry re-entering with its old rank, or nested work ranked with an older entry.
            fc.record({
              op: fc.constant("reenter" as const),
              pick: fc.nat(),
              priority: fc.integer({ min: -2, max: 2 }),
            }),
          ),
          { maxLength: 200 },
        ),
        (ops) => {
          const q = new PriorityQueue<Entry>();
          let reference: Entry[] = [];
          let seq = 0;
          for (const op of ops) {
            if (op.op === "reenter") {
              const group = seq === 0 ? 0 : op.pick % seq;
              const e = new Entry(op.priority, op.pick % 2 === 0 ? group : seq++, group);
              if (e.seq === group && reference.some((r) => r.seq === group)) continue;
              q.push(e);
              reference.push(e);
            } else if (op.op === "push") {
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

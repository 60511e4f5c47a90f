// A priority queue for waiting items: one FIFO linked list per distinct priority, and a heap over
// the priorities that have entries. Push, peek and remove are O(1) for an existing priority and
// O(log P) when a priority level appears or empties (P = distinct priorities waiting), never
// O(n): no sorted-array splice, no Array.shift. A removed entry leaves at once.
//
// Order: higher priority first; within a priority, ascending `seq`. Fresh entries have the
// highest seq so far and append at the tail. A re-entering entry (a retry keeps its seq) walks in
// from the head; everything it passes is another re-entered retry, since every fresh entry of
// lower seq in the same queue and priority has already left (FIFO), so the walk stays short.

import { Heap, type HeapNode } from "./heap.ts";

export interface QueueEntry {
  readonly priority: number;
  /** Submission order; kept by retries. */
  readonly seq: number;
  // Intrusive links, owned by the queue.
  prev: this | undefined;
  next: this | undefined;
  level: Level<this> | undefined;
}

export class Level<E extends QueueEntry> implements HeapNode {
  heapIndex = -1;
  readonly priority: number;
  head: E | undefined = undefined;
  tail: E | undefined = undefined;
  constructor(priority: number) {
    this.priority = priority;
  }
}

export class PriorityQueue<E extends QueueEntry> {
  readonly #levels = new Map<number, Level<E>>();
  readonly #order = new Heap<Level<E>>((a, b) => a.priority > b.priority);
  #size = 0;
  // The level used last: most queues have one priority, so this skips the map lookup.
  #last: Level<E> | undefined = undefined;

  get size(): number {
    return this.#size;
  }

  /** The first entry, or undefined. */
  peek(): E | undefined {
    return this.#order.peek()?.head;
  }

  push(entry: E): void {
    let level = this.#last;
    if (level === undefined || level.priority !== entry.priority || level.heapIndex < 0) {
      level = this.#levels.get(entry.priority);
      if (level === undefined) {
        level = new Level<E>(entry.priority);
        this.#levels.set(entry.priority, level);
        this.#order.push(level);
      }
      this.#last = level;
    }
    entry.level = level;
    const tail = level.tail;
    if (tail === undefined || tail.seq < entry.seq) {
      entry.prev = tail;
      entry.next = undefined;
      if (tail === undefined) level.head = entry;
      else tail.next = entry;
      level.tail = entry;
    } else {
      let after: E | undefined;
      let before = level.head;
      while (before !== undefined && before.seq < entry.seq) {
        after = before;
        before = before.next;
      }
      entry.prev = after;
      entry.next = before;
      if (after === undefined) level.head = entry;
      else after.next = entry;
      if (before === undefined) level.tail = entry;
      else before.prev = entry;
    }
    this.#size++;
  }

  /** Removes `entry` if it is queued here; returns whether it was. */
  remove(entry: E): boolean {
    const level = entry.level;
    if (level === undefined) return false;
    const { prev, next } = entry;
    if (prev === undefined) level.head = next;
    else prev.next = next;
    if (next === undefined) level.tail = prev;
    else next.prev = prev;
    entry.prev = undefined;
    entry.next = undefined;
    entry.level = undefined;
    this.#size--;
    if (level.head === undefined) {
      this.#levels.delete(level.priority);
      this.#order.remove(level);
    }
    return true;
  }

  /** Removes and returns the first entry. */
  shift(): E | undefined {
    const first = this.peek();
    if (first !== undefined) this.remove(first);
    return first;
  }
}

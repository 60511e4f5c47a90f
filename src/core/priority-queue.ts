// A priority queue for waiting items. Per distinct priority, a level holds a FIFO linked list for
// entries that arrive in order (fresh items: the common case, O(1)) and a heap for entries that
// arrive out of order (retries, which keep their rank, and nested work, which ranks with its
// parent: O(log n)); a heap over the levels orders the priorities. Every operation is O(1) or
// O(log n), never a walk: no sorted-array splice, no Array.shift. A removed entry leaves at once.
//
// Order: higher priority first; within a priority, ascending `group`, then ascending `seq`.

import { Heap, type HeapNode } from "./heap.ts";

export interface QueueEntry extends HeapNode {
  readonly priority: number;
  /** Rank within a priority (see `Item.group`); kept by retries. */
  readonly group: number;
  /** Submission order, the tie-break within a group; kept by retries. */
  readonly seq: number;
  // Intrusive links, owned by the queue (`heapIndex` >= 0: in its level's heap, not its list).
  prev: this | undefined;
  next: this | undefined;
  level: Level<this> | undefined;
}

function entryBefore(a: QueueEntry, b: QueueEntry): boolean {
  return a.group < b.group || (a.group === b.group && a.seq < b.seq);
}

export class Level<E extends QueueEntry> implements HeapNode {
  heapIndex = -1;
  readonly priority: number;
  /** Entries in order, each after the previous one. */
  head: E | undefined = undefined;
  tail: E | undefined = undefined;
  /**
   * Entries that came in ahead of the list's tail; created on first use. Typed by the interface
   * (it only compares ranks), which keeps `Level<Item>` a `Level<QueueEntry>`; it holds only `E`s.
   */
  early: Heap<QueueEntry> | undefined = undefined;
  constructor(priority: number) {
    this.priority = priority;
  }

  first(): E | undefined {
    const head = this.head;
    const early = this.early?.peek() as E | undefined;
    if (early === undefined) return head;
    if (head === undefined) return early;
    return entryBefore(early, head) ? early : head;
  }

  get empty(): boolean {
    return this.head === undefined && (this.early === undefined || this.early.size === 0);
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
    return this.#order.peek()?.first();
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
    if (tail === undefined || entryBefore(tail, entry)) {
      entry.prev = tail;
      entry.next = undefined;
      if (tail === undefined) level.head = entry;
      else tail.next = entry;
      level.tail = entry;
    } else {
      entry.prev = undefined;
      entry.next = undefined;
      level.early ??= new Heap<QueueEntry>(entryBefore);
      level.early.push(entry);
    }
    this.#size++;
  }

  /** Removes `entry` if it is queued here; returns whether it was. */
  remove(entry: E): boolean {
    const level = entry.level;
    if (level === undefined) return false;
    if (entry.heapIndex >= 0) {
      level.early!.remove(entry);
    } else {
      const { prev, next } = entry;
      if (prev === undefined) level.head = next;
      else prev.next = next;
      if (next === undefined) level.tail = prev;
      else next.prev = prev;
      entry.prev = undefined;
      entry.next = undefined;
    }
    entry.level = undefined;
    this.#size--;
    if (level.empty) {
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

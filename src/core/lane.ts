// A lane is one scope's queue: its waiting items in priority order (higher first), FIFO within a
// priority, plus the scope's own cap. The scheduler picks among lanes by head priority, then
// round-robin (the lane served longest ago first), so jobs sharing a scheduler share it fairly.

import type { HeapNode } from "./heap.ts";
import { PriorityQueue, type QueueEntry } from "./priority-queue.ts";

export type { QueueEntry } from "./priority-queue.ts";

export class Lane<E extends QueueEntry = QueueEntry> implements HeapNode {
  heapIndex = -1;
  readonly queue = new PriorityQueue<E>();
  readonly id: number;
  readonly name: string | undefined;
  /** The most attempts of this lane holding a slot at once. */
  cap: number;
  inFlight = 0;
  /** The dispatch tick this lane was last served at (round-robin order). */
  served = 0;
  constructor(id: number, name: string | undefined, cap: number) {
    this.id = id;
    this.name = name;
    this.cap = cap;
  }

  /** Whether the lane has work it may start now (as far as its own cap is concerned). */
  get eligible(): boolean {
    return this.queue.size > 0 && this.inFlight < this.cap;
  }
}

/** Order of eligible lanes: highest head priority, then least recently served, then oldest lane. */
export function laneBefore<E extends QueueEntry>(a: Lane<E>, b: Lane<E>): boolean {
  const pa = a.queue.peek()!.priority;
  const pb = b.queue.peek()!.priority;
  if (pa !== pb) return pa > pb;
  if (a.served !== b.served) return a.served < b.served;
  return a.id < b.id;
}

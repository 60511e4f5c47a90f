// An indexed binary min-heap: push, pop, remove and update in O(log n). Each node records its own
// position (`heapIndex`, -1 when outside any heap), so a cancelled entry leaves at once instead of
// lingering until it reaches the top. A node belongs to at most one heap at a time.

export interface HeapNode {
  heapIndex: number;
}

export class Heap<T extends HeapNode> {
  readonly #items: T[] = [];
  readonly #before: (a: T, b: T) => boolean;

  /** @param before true when `a` must come out before `b`; it must be a strict total order. */
  constructor(before: (a: T, b: T) => boolean) {
    this.#before = before;
  }

  get size(): number {
    return this.#items.length;
  }

  peek(): T | undefined {
    return this.#items[0];
  }

  push(node: T): void {
    node.heapIndex = this.#items.length;
    this.#items.push(node);
    this.#up(node.heapIndex);
  }

  pop(): T | undefined {
    const top = this.#items[0];
    if (top !== undefined) this.remove(top);
    return top;
  }

  /** Removes `node` if it is in this heap; returns whether it was. */
  remove(node: T): boolean {
    const i = node.heapIndex;
    if (i < 0 || this.#items[i] !== node) return false;
    const last = this.#items.pop()!;
    node.heapIndex = -1;
    if (last !== node) {
      this.#items[i] = last;
      last.heapIndex = i;
      this.update(last);
    }
    return true;
  }

  /** Restores the order after `node`'s key changed. */
  update(node: T): void {
    const i = node.heapIndex;
    if (i > 0 && this.#before(node, this.#items[(i - 1) >> 1]!)) this.#up(i);
    else this.#down(i);
  }

  has(node: T): boolean {
    return node.heapIndex >= 0 && this.#items[node.heapIndex] === node;
  }

  #up(i: number): void {
    const items = this.#items;
    const node = items[i]!;
    while (i > 0) {
      const parentIndex = (i - 1) >> 1;
      const parent = items[parentIndex]!;
      if (!this.#before(node, parent)) break;
      items[i] = parent;
      parent.heapIndex = i;
      i = parentIndex;
    }
    items[i] = node;
    node.heapIndex = i;
  }

  #down(i: number): void {
    const items = this.#items;
    const n = items.length;
    const node = items[i]!;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= n) break;
      const right = left + 1;
      const child = right < n && this.#before(items[right]!, items[left]!) ? right : left;
      const childNode = items[child]!;
      if (!this.#before(childNode, node)) break;
      items[i] = childNode;
      childNode.heapIndex = i;
      i = child;
    }
    items[i] = node;
    node.heapIndex = i;
  }
}

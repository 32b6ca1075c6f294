/** A FIFO queue with O(1) push and shift (a ring buffer that grows), for per-client outbound queues. */
export class Deque<T> {
  private items: (T | undefined)[] = new Array<T | undefined>(4);
  private head = 0;
  private count = 0;

  get length(): number {
    return this.count;
  }

  push(item: T): void {
    if (this.count === this.items.length) this.grow();
    this.items[(this.head + this.count) % this.items.length] = item;
    this.count += 1;
  }

  peek(): T | undefined {
    return this.count === 0 ? undefined : this.items[this.head];
  }

  shift(): T | undefined {
    if (this.count === 0) return undefined;
    const item = this.items[this.head];
    this.items[this.head] = undefined;
    this.head = (this.head + 1) % this.items.length;
    this.count -= 1;
    return item;
  }

  /** Removes the first item `predicate` accepts (oldest first) and returns it. */
  removeFirst(predicate: (item: T) => boolean): T | undefined {
    for (let k = 0; k < this.count; k++) {
      const i = (this.head + k) % this.items.length;
      const item = this.items[i];
      if (item === undefined || !predicate(item)) continue;
      // Close the gap by moving the older items one step forward.
      for (let j = k; j > 0; j--) {
        const to = (this.head + j) % this.items.length;
        const from = (this.head + j - 1) % this.items.length;
        this.items[to] = this.items[from];
      }
      this.items[this.head] = undefined;
      this.head = (this.head + 1) % this.items.length;
      this.count -= 1;
      return item;
    }
    return undefined;
  }

  *[Symbol.iterator](): IterableIterator<T> {
    for (let k = 0; k < this.count; k++) {
      const item = this.items[(this.head + k) % this.items.length];
      if (item !== undefined) yield item;
    }
  }

  clear(): void {
    this.items = new Array<T | undefined>(4);
    this.head = 0;
    this.count = 0;
  }

  private grow(): void {
    const next = new Array<T | undefined>(this.items.length * 2);
    for (let k = 0; k < this.count; k++) next[k] = this.items[(this.head + k) % this.items.length];
    this.items = next;
    this.head = 0;
  }
}

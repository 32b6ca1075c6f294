import { describe, expect, it } from 'vitest';
import { Deque } from './deque.ts';
import { TimerWheel, type WheelEntry } from './timer-wheel.ts';

describe('TimerWheel', () => {
  it('fires due entries once; a moved deadline is put back; cancelled entries never fire', () => {
    let now = 1_000_000;
    const wheel = new TimerWheel(100, () => now);
    const fired: string[] = [];
    const entry = (name: string, deadline: number): WheelEntry => ({
      deadline,
      fire: () => fired.push(name),
    });
    const a = entry('a', now + 150);
    const b = entry('b', now + 150);
    const c = entry('c', now + 400);
    [a, b, c].forEach((e) => wheel.schedule(e));
    wheel.cancel(b);
    b.deadline = now + 50; // not scheduled: ignored
    a.deadline = now + 350; // refreshed (keep alive traffic)
    now += 200;
    wheel.tick();
    expect(fired).toEqual([]);
    now += 200;
    wheel.tick();
    expect(fired.sort()).toEqual(['a', 'c']);
    now += 1000;
    wheel.tick();
    expect(fired).toEqual(['a', 'c']);
    expect(wheel.size).toBe(0);
    wheel.stop();
  });
});

describe('TimerWheel with a clock that stands still', () => {
  it('fires an entry whose deadline falls inside a slot once the clock reaches it', () => {
    let now = 1_000_000;
    const wheel = new TimerWheel(100, () => now);
    const fired: number[] = [];
    wheel.schedule({ deadline: now + 1_025, fire: (at) => fired.push(at) });
    now += 1_024;
    wheel.tick();
    expect(fired).toEqual([]);
    now += 1;
    wheel.tick();
    expect(fired).toEqual([now]);
    wheel.stop();
  });
});

describe('Deque', () => {
  it('keeps order across growth and removes the first match', () => {
    const q = new Deque<number>();
    for (let i = 0; i < 10; i++) q.push(i);
    expect(q.shift()).toBe(0);
    q.push(10);
    expect(q.removeFirst((n) => n % 2 === 0)).toBe(2);
    expect([...q]).toEqual([1, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(q.length).toBe(9);
    expect(q.peek()).toBe(1);
  });
});

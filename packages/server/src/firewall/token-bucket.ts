/**
 * A token bucket: `rate` tokens per second, holding at most `burst`. `take(n)` spends n tokens if there are
 * enough and says how long until there would be. Plain numbers only: cheap on the broker's hot path.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;
  constructor(
    private readonly rate: number,
    private readonly burst: number,
    now: number,
  ) {
    this.tokens = burst;
    this.last = now;
  }

  /** 0 when the tokens were spent; otherwise the milliseconds until `n` tokens will be there (nothing spent). */
  take(n: number, now: number): number {
    const elapsed = now - this.last;
    if (elapsed > 0) {
      this.tokens = Math.min(this.burst, this.tokens + (elapsed * this.rate) / 1000);
      this.last = now;
    }
    if (this.tokens >= n) {
      this.tokens -= n;
      return 0;
    }
    return Math.ceil(((n - this.tokens) * 1000) / this.rate);
  }
}

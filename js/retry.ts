// Asking the kernel again for state that did not arrive readable (a missed delta, or binary
// buffers a host dropped: Colab's widget manager is known to lose those sent at creation). One
// request is out at a time, and while answers keep failing the pauses between requests grow, so a
// host that never delivers cannot drive the view and the kernel into a request loop. After
// `maxFailures` failed answers in a row it gives up (each answer can be megabytes), and says so.

import { browserScheduler, type Scheduler } from "./sync";

export class Retry {
  /** Requests made so far. */
  requests = 0;
  /** Failed answers since the last good one. */
  failures = 0;
  private waiting = false;
  private timer: unknown = null;

  constructor(
    private readonly ask: () => void,
    private readonly scheduler: Scheduler = browserScheduler,
    private readonly firstDelayMs = 250,
    private readonly maxDelayMs = 8000,
    private readonly maxFailures = 8,
  ) {}

  /** So many answers failed in a row that asking again is pointless until something changes. */
  get gaveUp(): boolean {
    return this.failures >= this.maxFailures;
  }

  /** We need it: ask, unless a request is already out or a retry is already scheduled. */
  request(): void {
    if (this.waiting || this.timer !== null || this.gaveUp) return;
    this.waiting = true;
    this.requests += 1;
    this.ask();
    // No answer at all (a dropped message) counts as a failure once the longest pause has passed.
    this.timer = this.scheduler.set(() => {
      this.timer = null;
      if (this.waiting) this.failed();
    }, this.maxDelayMs);
  }

  /** A usable answer arrived. */
  succeeded(): void {
    this.waiting = false;
    this.failures = 0;
    this.cancel();
  }

  /** An answer arrived but could not be used: ask again after a pause that doubles each time. */
  failed(): void {
    this.waiting = false;
    this.failures += 1;
    this.cancel();
    if (this.gaveUp) return;
    const delay = Math.min(this.maxDelayMs, this.firstDelayMs * 2 ** (this.failures - 1));
    this.timer = this.scheduler.set(() => {
      this.timer = null;
      this.request();
    }, delay);
  }

  private cancel(): void {
    if (this.timer !== null) this.scheduler.clear(this.timer);
    this.timer = null;
  }

  dispose(): void {
    this.cancel();
  }
}

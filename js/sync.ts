// Edit synchronisation between the text box and the kernel: debounced, latest-wins, monotonic.
//
// The view numbers each edit (a revision). A keystroke after a quiet spell is sent at once (the
// leading edge); keystrokes that follow within `debounceMs` (25 ms) of each other are merged and the
// newest text is sent when they pause. While the kernel is busy with one revision nothing more is
// sent, and when it is done only the newest text typed since goes next. Results are shown only when
// they are at least as new as what is shown, so a late result never replaces a newer picture,
// and the text box is never overwritten by the kernel's echo of an older revision.

export interface Scheduler {
  set(fn: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

export const browserScheduler: Scheduler = {
  set: (fn, ms) => setTimeout(fn, ms),
  clear: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

/** Pause after a keystroke before sending: long enough to merge a burst (auto-repeat, a paste
 * arriving as several events), short enough that one keystroke reaches the kernel at once. */
export const DEBOUNCE_MS = 25;

export class EditSync {
  /** Revision of the text in the box. */
  local: number;
  /** Newest revision sent to the kernel. */
  sent: number;
  /** Newest revision the kernel has finished with (successfully or not). */
  done: number;
  /** Revision of the picture on screen. */
  shown: number;
  private text = "";
  private timer: unknown = null;

  constructor(
    start: number,
    private readonly send: (text: string, revision: number) => void,
    private readonly debounceMs = DEBOUNCE_MS,
    private readonly scheduler: Scheduler = browserScheduler,
  ) {
    this.local = this.sent = this.done = this.shown = start;
  }

  /** The user typed: send now if all is quiet, else once the typing pauses. */
  input(text: string): void {
    this.text = text;
    this.local = Math.max(this.local, this.sent, this.done) + 1;
    const quiet = this.timer === null;
    if (!quiet) this.scheduler.clear(this.timer);
    if (quiet) this.flush();
    this.timer = this.scheduler.set(() => {
      this.timer = null;
      this.flush();
    }, this.debounceMs);
  }

  /** Send the newest text unless the kernel is still busy with an earlier one. */
  flush(): void {
    if (this.busy || this.local <= this.sent) return;
    this.sent = this.local;
    this.send(this.text, this.local);
  }

  get busy(): boolean {
    return this.sent > this.done;
  }

  /** The user has typed something the kernel has not finished with. */
  get dirty(): boolean {
    return this.local > this.done;
  }

  /** The kernel finished `revision`: send what was typed meanwhile. */
  finished(revision: number): void {
    this.done = Math.max(this.done, revision);
    if (this.timer === null) this.flush();
  }

  /** Whether a result computed for `revision` may replace what is shown. */
  accept(revision: number): boolean {
    if (revision < this.shown) return false;
    this.shown = revision;
    return true;
  }

  /**
   * Text set from Python at `revision`: adopt it, unless the user has typed past it or has typing
   * not yet sent. That typing wins: it is renumbered above `revision`, so the kernel takes it as newer.
   */
  external(revision: number): boolean {
    if (revision <= this.local) return false;
    if (this.local > this.sent) {
      this.local = revision + 1;
      return false;
    }
    this.local = this.sent = revision;
    return true;
  }

  dispose(): void {
    if (this.timer !== null) this.scheduler.clear(this.timer);
    this.timer = null;
  }
}

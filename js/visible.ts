// Which columns are on screen, told to the kernel (which computes those first) when that changes:
// after scrolling or resizing settles, and at once before an edit is sent.

/** Quiet time after scrolling or resizing before the view tells the kernel which columns it shows. */
export const VISIBLE_DEBOUNCE_MS = 120;

export class VisibleReporter {
  /** The range last reported ("start,stop"). */
  private reported = "";
  private timer: ReturnType<typeof setTimeout> | null = null;

  constructor(
    /** The columns on screen, or null when there is nothing to report (no picture, no kernel). */
    private readonly onScreen: () => [number, number] | null,
    private readonly send: (start: number, stop: number) => void,
  ) {}

  /** Report now, if the range changed. */
  report(): void {
    this.cancel();
    const range = this.onScreen();
    if (!range) return;
    const key = range.join(",");
    if (key === this.reported) return;
    this.reported = key;
    this.send(range[0], range[1]);
  }

  /** Report once things settle. */
  schedule(): void {
    this.cancel();
    this.timer = setTimeout(() => this.report(), VISIBLE_DEBOUNCE_MS);
  }

  private cancel(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  dispose(): void {
    this.cancel();
  }
}

// Redraws coalesced into the next animation frame: however many changes arrive between two frames,
// the view draws once. Hosts without requestAnimationFrame (a test DOM) get a zero timeout.

export class Frames {
  private handle: number | null = null;
  private scheduled = false;

  constructor(
    private readonly win: (Window & typeof globalThis) | null,
    private readonly draw: () => void,
  ) {}

  request(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    const run = (): void => {
      this.scheduled = false;
      this.handle = null;
      this.draw();
    };
    const handle = this.win?.requestAnimationFrame ? this.win.requestAnimationFrame(run) : (setTimeout(run, 0) as unknown as number);
    if (this.scheduled) this.handle = handle; // a host may run the frame at once
  }

  dispose(): void {
    if (this.handle === null) return;
    if (this.win?.cancelAnimationFrame) this.win.cancelAnimationFrame(this.handle);
    else clearTimeout(this.handle);
    this.handle = null;
    this.scheduled = false;
  }
}

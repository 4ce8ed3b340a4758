import { describe, expect, it } from "vitest";
import { EditSync, type Scheduler } from "./sync";

class ManualClock implements Scheduler {
  now = 0;
  private timers = new Map<number, { at: number; fn: () => void }>();
  private next = 1;
  set(fn: () => void, ms: number): unknown {
    const id = this.next++;
    this.timers.set(id, { at: this.now + ms, fn });
    return id;
  }
  clear(handle: unknown): void {
    this.timers.delete(handle as number);
  }
  advance(ms: number): void {
    this.now += ms;
    for (const [id, t] of [...this.timers].sort((a, b) => a[1].at - b[1].at)) {
      if (t.at <= this.now) {
        this.timers.delete(id);
        t.fn();
      }
    }
  }
}

function setup() {
  const clock = new ManualClock();
  const sent: [string, number][] = [];
  const sync = new EditSync(0, (text, revision) => sent.push([text, revision]), 120, clock);
  return { clock, sent, sync };
}

describe("EditSync", () => {
  it("sends a keystroke after a quiet spell at once", () => {
    const { sent, sync } = setup();
    sync.input("P");
    expect(sent).toEqual([["P", 1]]);
  });

  it("merges a burst and sends its newest text 120 ms after the last keystroke", () => {
    const { clock, sent, sync } = setup();
    sync.input("P");
    sync.finished(1);
    for (const text of ["Pa", "Par", "Pari"]) {
      clock.advance(50);
      sync.input(text);
    }
    clock.advance(119);
    expect(sent).toEqual([["P", 1]]);
    clock.advance(1);
    expect(sent).toEqual([["P", 1], ["Pari", 4]]);
  });

  it("latest wins: while the kernel is busy only the newest text is sent next", () => {
    const { clock, sent, sync } = setup();
    sync.input("a");
    clock.advance(120);
    expect(sent).toEqual([["a", 1]]);
    for (const text of ["ab", "abc", "abcd"]) {
      sync.input(text);
      clock.advance(200);
    }
    expect(sent).toEqual([["a", 1]]);
    expect(sync.busy).toBe(true);
    sync.finished(1);
    expect(sent).toEqual([["a", 1], ["abcd", 4]]);
    sync.finished(4);
    expect(sync.busy).toBe(false);
    expect(sync.dirty).toBe(false);
  });

  it("never accepts a result older than one already shown", () => {
    const { sync } = setup();
    expect(sync.accept(3)).toBe(true);
    expect(sync.accept(2)).toBe(false);
    expect(sync.accept(3)).toBe(true);
    expect(sync.shown).toBe(3);
  });

  it("adopts text set from Python only when the user has not typed past it", () => {
    const { clock, sync } = setup();
    sync.input("typed");
    expect(sync.external(1)).toBe(false);
    sync.input("typed more");
    expect(sync.external(2)).toBe(false);
    clock.advance(120);
    sync.finished(2);
    expect(sync.external(3)).toBe(true);
    expect(sync.local).toBe(3);
    sync.input("typed again");
    expect(sync.local).toBe(4);
  });

  it("typing not yet sent survives a newer text from Python and is sent as newer", () => {
    const { clock, sent, sync } = setup();
    sync.input("a");
    sync.input("ab"); // waiting for its pause
    expect(sync.external(10)).toBe(false);
    sync.finished(10);
    clock.advance(120);
    expect(sent.at(-1)).toEqual(["ab", 11]);
  });

  it("an edit typed while busy is sent even if its timer fired earlier", () => {
    const { clock, sent, sync } = setup();
    sync.input("a");
    clock.advance(120);
    sync.input("ab");
    clock.advance(120);
    sync.finished(1);
    expect(sent.at(-1)).toEqual(["ab", 2]);
  });

  it("dispose cancels a pending send", () => {
    const { clock, sent, sync } = setup();
    sync.input("a");
    sync.finished(1);
    sync.input("ab");
    sync.dispose();
    clock.advance(500);
    expect(sent).toEqual([["a", 1]]);
  });
});

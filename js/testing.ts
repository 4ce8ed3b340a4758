// Test helpers shared by the vitest suites (never bundled: only tests import this).

import type { Scheduler } from "./sync";

/**
 * JSON with binary leaves written as {"b64": …} (tests/payload_fixture.py) → the same structure
 * with DataViews, as anywidget hands binary traits to a view. `offset` places each view inside a
 * larger buffer, as comm messages deliver them.
 */
export function revive(value: unknown, offset = 0): unknown {
  if (Array.isArray(value)) return value.map((v) => revive(v, offset));
  if (value && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>);
    if (entries.length === 1 && entries[0]?.[0] === "b64") {
      const bytes = Uint8Array.from(atob(entries[0][1] as string), (c) => c.charCodeAt(0));
      const padded = new Uint8Array(bytes.length + offset);
      padded.set(bytes, offset);
      return new DataView(padded.buffer, offset, bytes.length);
    }
    return Object.fromEntries(entries.map(([k, v]) => [k, revive(v, offset)]));
  }
  return value;
}

/** A clock the test moves by hand: timers fire in order when their time comes. */
export class ManualClock implements Scheduler {
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

/** A payload as the kernel sends a delta (lens_widget/payload.py to_message): binary leaves become
 * {"$buffer": i} and travel in `buffers`. */
export function toMessage(payload: unknown): { content: unknown; buffers: DataView[] } {
  const buffers: DataView[] = [];
  const strip = (value: unknown): unknown => {
    if (value instanceof DataView) {
      buffers.push(value);
      return { $buffer: buffers.length - 1 };
    }
    if (Array.isArray(value)) return value.map(strip);
    if (value && typeof value === "object") return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, strip(v)]));
    return value;
  };
  return { content: strip(payload), buffers };
}

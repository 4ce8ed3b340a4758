import { afterEach, describe, expect, it, vi } from "vitest";
import { VISIBLE_DEBOUNCE_MS, VisibleReporter } from "./visible";

afterEach(() => vi.useRealTimers());

describe("VisibleReporter", () => {
  it("reports a changed range once things settle, and at once when asked", () => {
    vi.useFakeTimers();
    const sent: number[][] = [];
    let range: [number, number] | null = [0, 10];
    const reporter = new VisibleReporter(() => range, (start, stop) => sent.push([start, stop]));
    reporter.schedule();
    reporter.schedule();
    vi.advanceTimersByTime(VISIBLE_DEBOUNCE_MS + 1);
    expect(sent).toEqual([[0, 10]]);
    reporter.report(); // unchanged: not sent again
    range = [5, 15];
    reporter.report();
    range = null; // nothing to report (no picture, or no kernel)
    reporter.report();
    expect(sent).toEqual([[0, 10], [5, 15]]);
    reporter.schedule();
    reporter.dispose();
    range = [7, 9];
    vi.advanceTimersByTime(VISIBLE_DEBOUNCE_MS * 2);
    expect(sent.length).toBe(2);
  });
});

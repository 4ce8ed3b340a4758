import { afterEach, describe, expect, it, vi } from "vitest";
import { Disposer } from "./disposer";

afterEach(() => vi.useRealTimers());

describe("Disposer", () => {
  it("removes listeners and clears timers, last added first", () => {
    vi.useFakeTimers();
    const d = new Disposer();
    const order: string[] = [];
    const button = document.createElement("button");
    d.listen(button, "click", () => order.push("click"));
    d.add(() => order.push("first"));
    d.add(() => order.push("second"));
    const timer = d.timer();
    timer.set(() => order.push("timer"), 10);
    expect(timer.active).toBe(true);
    button.click();
    d.dispose();
    button.click();
    vi.advanceTimersByTime(20);
    expect(order).toEqual(["click", "second", "first"]);
    expect(timer.active).toBe(false);
  });
});

import { describe, expect, it } from "vitest";
import { Retry } from "./retry";
import { ManualClock } from "./testing";

function setup() {
  const clock = new ManualClock();
  let asked = 0;
  const retry = new Retry(() => (asked += 1), clock, 250, 8000);
  return { clock, retry, asked: () => asked };
}

describe("Retry", () => {
  it("keeps one request out at a time", () => {
    const { retry, asked } = setup();
    retry.request();
    retry.request();
    retry.request();
    expect(asked()).toBe(1);
    retry.succeeded();
    retry.request();
    expect(asked()).toBe(2);
  });

  it("backs off while answers keep failing: a few requests in 2 s, not hundreds", () => {
    const { clock, retry, asked } = setup();
    retry.request();
    // A host that always delivers an unreadable answer at once, polled every 5 ms for 2 s.
    for (let t = 0; t < 2000; t += 5) {
      if (asked() > retry.failures) retry.failed();
      retry.request(); // the view asks again on every bad update; the retry decides
      clock.advance(5);
    }
    expect(asked()).toBeLessThanOrEqual(4); // at 0, 250, 750 and 1750 ms
    expect(asked()).toBeGreaterThanOrEqual(3);
  });

  it("a request with no answer at all counts as failed and is asked again", () => {
    const { clock, retry, asked } = setup();
    retry.request();
    clock.advance(8000);
    expect(retry.failures).toBe(1);
    clock.advance(250);
    expect(asked()).toBe(2);
  });

  it("a good answer resets the pause", () => {
    const { clock, retry, asked } = setup();
    retry.request();
    retry.failed();
    clock.advance(250);
    retry.failed();
    clock.advance(500);
    expect(asked()).toBe(3);
    retry.succeeded();
    expect(retry.failures).toBe(0);
    retry.request();
    expect(asked()).toBe(4);
  });

  it("dispose cancels a scheduled retry", () => {
    const { clock, retry, asked } = setup();
    retry.request();
    retry.failed();
    retry.dispose();
    clock.advance(10_000);
    expect(asked()).toBe(1);
  });
});

describe("Retry gives up", () => {
  it("after maxFailures failed answers in a row, and asks no more", () => {
    const clock = new ManualClock();
    let asked = 0;
    const retry = new Retry(() => (asked += 1), clock, 250, 8000, 3);
    retry.request();
    for (let i = 0; i < 3; i++) {
      retry.failed();
      clock.advance(10_000);
    }
    expect(retry.gaveUp).toBe(true);
    const before = asked;
    retry.request();
    clock.advance(60_000);
    expect(asked).toBe(before);
    expect(asked).toBe(3);
  });
});

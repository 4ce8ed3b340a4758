import { describe, expect, it } from "vitest";
import { Frames } from "./frames";

describe("Frames", () => {
  it("draws once for many requests before a frame, and not at all once disposed", async () => {
    let draws = 0;
    const frames = new Frames(null, () => (draws += 1));
    frames.request();
    frames.request();
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(draws).toBe(1);
    frames.request();
    frames.dispose();
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(draws).toBe(1);
  });
});

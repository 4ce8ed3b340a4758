import { describe, expect, it, vi } from "vitest";
import fixture from "./fixtures/payload_stream.json";
import { MAX_CANVAS_PX, pictureCanvas, stackCanvases } from "./download";
import { applyUpdate, type Payload, TokenStrings, type Vocabulary } from "./payload";
import type { Scene } from "./picture";
import { revive } from "./testing";
import { palette } from "./theme";

const state = applyUpdate(null, revive(fixture.updates[0]) as Payload);

function scene(count: number): Scene {
  return {
    state,
    strings: new TokenStrings(revive(fixture.vocabulary) as Vocabulary),
    infos: [],
    statistic: "entropy",
    diffStatistic: "js",
    mode: "a",
    stride: 1,
    first: 0,
    count,
  } as unknown as Scene;
}

/** happy-dom has no 2D context: a recording one stands in, enough to see what is drawn where. */
function withContext(): { calls: string[] } {
  const calls: string[] = [];
  const ctx = new Proxy({} as Record<string, unknown>, {
    get: (target, key: string) => (key in target ? target[key] : (...args: unknown[]) => {
      calls.push(`${key}(${args.join(",")})`);
      return { width: 7 };
    }),
    set: (target, key: string, value) => ((target[key] = value), true),
  });
  vi.spyOn(HTMLCanvasElement.prototype, "getContext").mockReturnValue(ctx as never);
  return { calls };
}

describe("pictureCanvas", () => {
  it("draws every column of the range at the scale, with the legend under the grid", () => {
    const { calls } = withContext();
    const s = scene(state.nTokens);
    const drawn = pictureCanvas(document, s, palette(false), state.rowLabels, 2)!;
    expect(drawn.columns).toBe(state.nTokens);
    const labelWidth = Math.min(96, 12 + 7 * Math.max(6, ...state.rowLabels.map((l) => l.length)));
    expect(drawn.canvas.width).toBe(2 * (labelWidth + 58 * state.nTokens));
    expect(drawn.canvas.height).toBe(2 * (state.rows.length * 22 + 24 + 28));
    expect(calls).toContain("scale(2,2)");
    expect(calls.some((c) => c.startsWith("translate(0,"))).toBe(true);
    vi.restoreAllMocks();
  });

  it("cuts a grid wider than a browser's canvas at whole columns", () => {
    withContext();
    const labelWidth = Math.min(96, 12 + 7 * Math.max(6, ...state.rowLabels.map((l) => l.length)));
    const scale = MAX_CANVAS_PX / (labelWidth + 58 * 2 + 10); // room for two columns
    const wide = pictureCanvas(document, scene(state.nTokens), palette(false), state.rowLabels, scale)!;
    expect(state.nTokens).toBeGreaterThan(2);
    expect(wide.columns).toBe(2);
    expect(wide.canvas.width).toBeLessThanOrEqual(MAX_CANVAS_PX);
    vi.restoreAllMocks();
  });

  it("draws nothing without a 2D context", () => {
    vi.spyOn(HTMLCanvasElement.prototype, "getContext").mockReturnValue(null);
    expect(pictureCanvas(document, scene(state.nTokens), palette(false), state.rowLabels, 2)).toBeNull();
  });
});

describe("stackCanvases", () => {
  it("puts the trajectory panel under the picture at the picture's scale, or leaves the picture alone", () => {
    const { calls } = withContext();
    const picture = Object.assign(document.createElement("canvas"), { width: 400, height: 100 });
    const panel = Object.assign(document.createElement("canvas"), { width: 150, height: 75 }); // at dpr 1.5
    const out = stackCanvases(document, picture, panel, 2, 1.5);
    expect([out.width, out.height]).toEqual([400, 200]);
    expect(calls.filter((c) => c.startsWith("drawImage")).length).toBe(2);
    expect(stackCanvases(document, picture, null, 2, 1)).toBe(picture);
    vi.restoreAllMocks();
  });
});

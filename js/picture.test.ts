import { describe, expect, it } from "vitest";
import { legendText, makeLayout } from "./heatmap";
import { DIFF, grid, INFOS, K, R, scene, state, STATISTICS, T } from "./testing";
import { choices, columnsShown, legendTitle, markedCount, picture, type Scene, shown, tooltip, valueAt } from "./picture";
import { palette } from "./theme";

describe("the colour scale", () => {
  it("follows the statistic's scale kind when the statistics' infos arrive after the first draw", () => {
    const s = state(grid(0));
    const before = picture(scene(s, { mode: "a", statistic: "rank", infos: [] }), makeLayout(R, T, 600), 0, palette(false), null, false)!;
    const after = picture(scene(s, { mode: "a", statistic: "rank" }), makeLayout(R, T, 600), 0, palette(false), null, false)!;
    expect(before.scale.log).toBe(false); // no infos yet: every statistic is sequential
    expect(after.scale.log).toBe(true); // the same state, now known to be a rank
  });
});

describe("a pinned item", () => {
  it("colours cells by its probability in one model, and by B − A of it in the diff", () => {
    const s = state(grid(1));
    const a = scene(s, { mode: "a", statistic: "pin:dog" });
    expect(shown(a)!.label).toBe("p(dog)");
    expect(choices(a).map((c) => c.key)).toEqual([...STATISTICS, "pin:dog"]);
    expect(valueAt(a, shown(a)!, 1, 2)).toBeCloseTo(0.2, 6); // grid(0)'s row 1 holds log 0.2
    const d = scene(s, { diffStatistic: "delta:pin:dog" });
    expect(shown(d)!.label).toBe("Δ p(dog)");
    expect(valueAt(d, shown(d)!, 1, 2)).toBeCloseTo(0.2 * Math.exp(0.1) - 0.2, 6);
  });
});

describe("fixed scales", () => {
  it("are the same for every state and model, and say so in the legend", () => {
    const layout = makeLayout(R, T, 600);
    const one = picture(scene(state(grid(0)), { mode: "a", colorScale: "fixed" }), layout, 0, palette(false), null, false)!;
    const other = picture(scene(state(grid(5)), { mode: "b", colorScale: "fixed" }), layout, 0, palette(false), null, false)!;
    expect([one.scale.min, one.scale.max]).toEqual([other.scale.min, other.scale.max]);
    expect(one.scale.fixed).toBe(true);
    const own = picture(scene(state(grid(5)), { mode: "b" }), layout, 0, palette(false), null, false)!;
    expect(own.scale.fixed).toBe(false);
    expect(legendText(legendTitle(scene(state(grid(0)), { mode: "a", colorScale: "fixed" })), one.scale)).toBe("Entropy (nats) · base · fixed scale");
    expect(legendText("Rank", { log: true, fixed: false })).toBe("Rank, log scale · this picture's scale");
  });
});

describe("the A/B diff", () => {
  it("B − A of a model with itself is exactly 0, and nothing is marked", () => {
    const sc = scene(state(grid(0)), { diffStatistic: "delta:entropy" });
    const p = picture(sc, makeLayout(R, T, 600), 0, palette(false), null, false)!;
    for (let r = 0; r < R; r++) for (let c = 0; c < T; c++) expect(p.value(r, c)).toBe(0);
    for (let r = 0; r < R; r++) for (let c = 0; c < T; c++) expect(p.marked(r, c)).toBe(false);
    expect(markedCount(sc)).toBe(0);
    expect(p.diverging).toBe(true);
    expect(legendTitle(sc)).toBe("Δ Entropy (B − A, nats)");
  });

  it("B − A of two models is their difference; cells whose top-1 tokens differ are marked", () => {
    const sc = scene(state(grid(1)), { diffStatistic: "delta:entropy" });
    expect(valueAt(sc, shown(sc)!, 1, 2)).toBe(1);
    const p = picture(sc, makeLayout(R, T, 600), 0, palette(false), null, false)!;
    // Rows are drawn top to bottom, the output row (index 2) first; row 0 holds the differing top-1.
    expect(p.marked(2, 0)).toBe(true);
    expect(p.marked(0, 0)).toBe(false);
    expect(p.top1(2, 0)).toBe("<10>→<11>");
    expect(markedCount(sc)).toBe(T); // every column of layer 0
    expect(markedCount({ ...sc, mode: "a" })).toBe(0);
  });

  it("an invalid cell (NaN entropy in either model) is not marked: its top-k ids mean nothing", () => {
    const b = grid(1);
    b.stats[0 * R * T + 0 * T + 1] = NaN; // entropy of row 0, column 1 in model B
    const sc = scene(state(b), { diffStatistic: "delta:entropy" });
    const p = picture(sc, makeLayout(R, T, 600), 0, palette(false), null, false)!;
    expect(p.invalid(2, 1)).toBe(true);
    expect(p.marked(2, 1)).toBe(false);
    expect(markedCount(sc)).toBe(T - 1);
  });

  it("pair statistics come from the kernel's diff, with their own labels and scale", () => {
    const sc = scene(state(grid(1)));
    expect(shown(sc)!.key).toBe("js");
    expect(valueAt(sc, shown(sc)!, 1, 2)).toBeCloseTo((2 * R * T + 1 * T + 2) / 100);
    expect(legendTitle(sc)).toBe("JS(A, B) (nats)");
    expect(choices(sc).map((c) => c.key)).toEqual([...DIFF, ...[...STATISTICS, "pin:dog"].map((n) => `delta:${n}`)]);
  });

  it("modes A and B show each model's own statistic, named in the legend", () => {
    const s = state(grid(1));
    const a = scene(s, { mode: "a" });
    const b = scene(s, { mode: "b" });
    expect(valueAt(b, shown(b)!, 0, 0) - valueAt(a, shown(a)!, 0, 0)).toBe(1);
    expect(legendTitle(b)).toBe("Entropy (nats) · tuned");
  });

  it("the tooltip shows both models' top-k and the pair's statistics", () => {
    const info = tooltip(scene(state(grid(1))), { row: 0, col: 1 }, false)!;
    expect(info.compare!.names).toEqual(["base", "tuned"]);
    expect(info.top).toHaveLength(K);
    expect(info.compare!.top).toHaveLength(K);
    expect(info.compare!.pair.map((p) => p.label)).toEqual(["kl_ab", "kl_ba", "JS(A, B)", "top1_agree"]);
  });
});

describe("the token range", () => {
  it("[start, end] shows those columns; end null runs to the last; [] shows all", () => {
    expect(columnsShown([1, 3], 10)).toEqual({ first: 1, count: 2 });
    expect(columnsShown([2, null], 10)).toEqual({ first: 2, count: 8 });
    expect(columnsShown([], 10)).toEqual({ first: 0, count: 10 });
    expect(columnsShown([8, 20], 5)).toEqual({ first: 5, count: 0 });
  });

  it("drawing and the tooltip use the token positions of the range", () => {
    const sc = scene(state(grid(1)), { mode: "a", first: 2, count: 2 });
    const p = picture(sc, makeLayout(R, 2, 600), 0, palette(false), null, false)!;
    expect(p.value(0, 0)).toBe(valueAt(sc, shown(sc)!, 2, 2));
    expect(tooltip(sc, { row: 0, col: 1 }, false)!.col).toBe(3);
    expect(tooltip(sc, { row: 0, col: 2 }, false)).toBeNull();
  });
});

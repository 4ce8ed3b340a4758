import { describe, expect, it } from "vitest";
import { makeLayout } from "./heatmap";
import type { Cells } from "./cells";
import type { StatisticInfo, ViewState } from "./payload";
import { TokenStrings } from "./payload";
import { choices, columnsShown, legendTitle, markedCount, picture, type Scene, shown, tooltip, valueAt } from "./picture";
import { palette } from "./theme";

const STATISTICS = ["entropy", "cross_entropy", "forward_kl", "max_probability", "rank"];
const DIFF = ["kl_ab", "kl_ba", "js", "top1_agree"];
const INFOS: StatisticInfo[] = [
  { name: "entropy", label: "Entropy", units: "nats", lower_is_better: true, scale: "sequential" },
  { name: "rank", label: "Rank", units: "", lower_is_better: true, scale: "rank" },
  { name: "js", label: "JS(A, B)", units: "nats", lower_is_better: true, scale: "divergence" },
];
const R = 3;
const T = 4;
const K = 2;

/** A grid whose values depend on (stat, row, col) and a per-model `shift`; top-1 = 10 + shift at row 0. */
function grid(shift: number): Cells {
  const stats = new Float32Array(STATISTICS.length * R * T).map((_, i) => (i % 7) + shift);
  const topIds = new Uint32Array(R * T * K).map((_, i) => (i % K === 0 && i < T * K ? 10 + shift : 20 + (i % K)));
  const topProbs = new Float32Array(R * T * K).fill(0.25);
  return { stats, topIds, topProbs };
}

function state(b: Cells): ViewState {
  return {
    header: {
      version: 3, kind: "full", rows: [0, 1, 2], row_labels: ["0", "1", "output"], num_layers: 2, col_start: 0, cell_start: 0, cell_end: T,
      n_tokens: T, total_tokens: T, top_k: K, statistics: STATISTICS, units: STATISTICS.map(() => ""),
      lens: "logit", notice: "", layer_stride: 1, diff: DIFF, seq: 1, base: -1,
      grids: [{ name: "base", ids: "uint16" }, { name: "tuned", ids: "uint16" }],
    },
    rows: [0, 1, 2],
    rowLabels: ["0", "1", "output"],
    nTokens: T,
    grids: [grid(0), b],
    tokenIds: new Uint32Array([1, 2, 3, 4]),
    tokenSpans: new Uint32Array(2 * T),
    diff: new Float32Array(DIFF.length * R * T).map((_, i) => i / 100),
    pending: null,
  };
}

function scene(s: ViewState, extra: Partial<Scene> = {}): Scene {
  return { state: s, strings: new TokenStrings(null), infos: INFOS, mode: "diff", statistic: "entropy", diffStatistic: "js", stride: 1, first: 0, count: T, ...extra };
}

describe("the colour scale", () => {
  it("follows the statistic's scale kind when the statistics' infos arrive after the first draw", () => {
    const s = state(grid(0));
    const before = picture(scene(s, { mode: "a", statistic: "rank", infos: [] }), makeLayout(R, T, 600), 0, palette(false), null, false)!;
    const after = picture(scene(s, { mode: "a", statistic: "rank" }), makeLayout(R, T, 600), 0, palette(false), null, false)!;
    expect(before.scale.log).toBe(false); // no infos yet: every statistic is sequential
    expect(after.scale.log).toBe(true); // the same state, now known to be a rank
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
    expect(choices(sc).map((c) => c.key)).toEqual([...DIFF, ...STATISTICS.map((n) => `delta:${n}`)]);
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

// The trajectory panel's content, pure: one column's items followed across the layers. The kernel
// answers a view's "column" message with every lens each model was read through, ranks included
// (lens_widget/column.py); a saved page has no kernel, so its panel is made from the state's own
// pinned-item and top-k data (the current lens only). Drawing is a function of this data and a size.

import { LINES } from "./constants";
import { isPending, pinAt, type ViewState } from "./payload";
import type { Palette } from "./theme";
import { visibleToken } from "./tokens";

export type YKind = "probability" | "logprob" | "rank";

export interface ColumnLine {
  label: string;
  ids: number[];
  tokens: string[];
  pinned: boolean;
  /** "<model>/<lens>" → the item's log-probability per row (null: invalid or unknown). */
  logp: Record<string, (number | null)[]>;
  rank: Record<string, (number | null)[]>;
}

/** The kernel's answer to {"type": "column"} (controller.py), or the same made from a saved state. */
export interface ColumnAnswer {
  col: number;
  seq: number;
  rows: number[];
  row_labels: string[];
  names: Record<string, string>;
  curves: string[];
  lines: ColumnLine[];
  found: { id: number; text: string; probability: number; row: number }[];
  error: string;
}

/** One drawn series: an item through one model and lens. */
export interface Series {
  name: string;
  color: string;
  dash: number[];
  values: (number | null)[];
}

/** A/B's models read as A and B; the current lens of each is the first of its curves (column.py). */
function style(curve: string, curves: string[]): number[] {
  const [model] = curve.split("/");
  const first = curves.find((c) => c.startsWith(`${model}/`));
  if (curve !== first) return [1, 3]; // another lens: dotted
  return model === "a" ? [] : [6, 4];
}

/** The series to draw for `y`: a colour per item, a dash per model and lens. */
export function seriesOf(answer: ColumnAnswer, y: YKind): Series[] {
  const out: Series[] = [];
  answer.lines.forEach((line, i) => {
    for (const curve of answer.curves) {
      const raw = (y === "rank" ? line.rank : line.logp)[curve];
      if (!raw) continue;
      const values = y === "probability" ? raw.map((v) => (v === null ? null : Math.exp(v))) : raw;
      const [model = "", lens = ""] = curve.split("/");
      const who = answer.curves.length > 1 ? ` · ${model.toUpperCase()}/${lens}` : "";
      out.push({ name: `${line.pinned ? `p(${line.label})` : visibleToken(line.label)}${who}`, color: LINES[i % LINES.length] as string, dash: style(curve, answer.curves), values });
    }
  });
  return out;
}

/** The panel of a column from a saved state: the pinned items (or, with none, the top-1 tokens of
 * the column at any row, where the top-k holds them) through the lens it was saved with. */
export function answerFromState(s: ViewState, col: number, strings: { get(id: number): string }): ColumnAnswer {
  const keys = s.grids.map((_, g) => `${g === 0 ? "a" : "b"}/${s.header.lens}`);
  const names = Object.fromEntries(s.header.grids.map((g, i) => [i === 0 ? "a" : "b", g.name]));
  const base = { col, seq: -1, rows: s.rows, row_labels: s.rowLabels, names, curves: keys, found: [], error: "" };
  if (isPending(s, col)) return { ...base, lines: [] };
  const R = s.rows.length;
  const k = s.header.top_k;
  if (s.header.pins.length) {
    const lines = s.header.pins.map((label, p) => ({
      label,
      ids: [],
      tokens: [],
      pinned: true,
      logp: Object.fromEntries(keys.map((key, g) => [key, s.rows.map((_, r) => finite(pinAt(s, g, p, r, col)))])),
      rank: {},
    }));
    return { ...base, lines };
  }
  const top = new Set<number>();
  s.grids.forEach((g) => s.rows.forEach((_, r) => top.add(g.topIds[(r * s.nTokens + col) * k] as number)));
  const lines = [...top].map((id) => ({
    label: strings.get(id),
    ids: [id],
    tokens: [strings.get(id)],
    pinned: false,
    logp: Object.fromEntries(
      keys.map((key, g) => {
        const grid = s.grids[g]!;
        return [
          key,
          Array.from({ length: R }, (_, r) => {
            const at = (r * s.nTokens + col) * k;
            for (let j = 0; j < k; j++) if (grid.topIds[at + j] === id) return Math.log(grid.topProbs[at + j] as number);
            return null; // outside the saved top-k
          }),
        ];
      }),
    ),
    rank: {},
  }));
  return { ...base, lines };
}

function finite(v: number): number | null {
  return Number.isNaN(v) ? null : v;
}

/** The y range of the series: [0, 1] for probabilities, ranks from 1 (log), log-probabilities up to 0. */
export function yRange(series: Series[], y: YKind): [number, number] {
  if (y === "probability") return [0, 1];
  const values = series.flatMap((s) => s.values).filter((v): v is number => v !== null && Number.isFinite(v));
  if (y === "rank") return [1, Math.max(10, ...values)];
  return [Math.max(-30, Math.min(-1, ...values)), 0];
}

/** Draw the series over the rows (x: bottom row first, as layers count up) with a marked row. */
export function drawPanel(ctx: CanvasRenderingContext2D, width: number, height: number, answer: ColumnAnswer, series: Series[], y: YKind, marked: number | null, palette: Palette): void {
  const left = 44;
  const right = 10;
  const top = 8;
  const bottom = 22;
  const n = answer.rows.length;
  ctx.save();
  ctx.fillStyle = palette.background;
  ctx.fillRect(0, 0, width, height);
  ctx.font = "11px ui-sans-serif, system-ui, sans-serif";
  const [lo, hi] = yRange(series, y);
  const xOf = (r: number): number => left + (n <= 1 ? 0 : (r * (width - left - right)) / (n - 1));
  const yOf = (v: number): number => {
    const t = y === "rank" ? 1 - Math.log(Math.max(1, v)) / Math.log(hi) : (v - lo) / (hi - lo);
    return top + (1 - Math.min(1, Math.max(0, t))) * (height - top - bottom);
  };
  ctx.strokeStyle = palette.grid;
  ctx.fillStyle = palette.muted;
  ctx.textBaseline = "middle";
  ctx.textAlign = "right";
  for (const v of y === "rank" ? [1, Math.round(Math.sqrt(hi)), Math.round(hi)] : [lo, (lo + hi) / 2, hi]) {
    ctx.beginPath();
    ctx.moveTo(left, yOf(v));
    ctx.lineTo(width - right, yOf(v));
    ctx.stroke();
    ctx.fillText(y === "rank" ? String(v) : v.toFixed(y === "probability" ? 1 : 0), left - 4, yOf(v));
  }
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  const every = Math.max(1, Math.ceil((n * 34) / Math.max(1, width - left - right)));
  answer.row_labels.forEach((label, r) => {
    if (r % every === 0 || r === n - 1) ctx.fillText(label === "output" ? "out" : label, xOf(r), height - bottom + 6);
  });
  if (marked !== null && marked >= 0 && marked < n) {
    ctx.strokeStyle = palette.accent;
    ctx.beginPath();
    ctx.moveTo(xOf(marked), top);
    ctx.lineTo(xOf(marked), height - bottom);
    ctx.stroke();
  }
  ctx.lineWidth = 2;
  for (const s of series) {
    ctx.strokeStyle = s.color;
    ctx.setLineDash(s.dash);
    ctx.beginPath();
    let drawing = false;
    s.values.forEach((v, r) => {
      if (v === null || !Number.isFinite(v)) return void (drawing = false);
      if (drawing) ctx.lineTo(xOf(r), yOf(v));
      else ctx.moveTo(xOf(r), yOf(v));
      drawing = true;
    });
    ctx.stroke();
  }
  ctx.restore();
}

// Test helpers shared by the vitest suites (never bundled: only tests import this).

import type { ModelAttribution } from "./attribution";
import type { Cells } from "./cells";
import { type StatisticInfo, TokenStrings, type ViewState } from "./payload";
import type { Scene } from "./picture";
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

// A small A/B state for the pure view functions: 3 rows (the last the output), 4 columns, top-2.
export const STATISTICS = ["entropy", "cross_entropy", "forward_kl", "max_probability", "rank"];
export const DIFF = ["kl_ab", "kl_ba", "js", "top1_agree"];
export const INFOS: StatisticInfo[] = [
  { name: "entropy", label: "Entropy", units: "nats", lower_is_better: true, scale: "sequential" },
  { name: "rank", label: "Rank", units: "", lower_is_better: true, scale: "rank" },
  { name: "js", label: "JS(A, B)", units: "nats", lower_is_better: true, scale: "divergence" },
];
export const R = 3;
export const T = 4;
export const K = 2;

/** A grid whose values depend on (stat, row, col) and a per-model `shift`; top-1 = 10 + shift at row 0. */
export function grid(shift: number): Cells {
  const stats = new Float32Array(STATISTICS.length * R * T).map((_, i) => (i % 7) + shift);
  const topIds = new Uint32Array(R * T * K).map((_, i) => (i % K === 0 && i < T * K ? 10 + shift : 20 + (i % K)));
  const topProbs = new Float32Array(R * T * K).fill(0.25);
  // One pinned item ("dog"): log-probability log(0.1 · (row + 1)) at every column, + shift / 10.
  const pins = new Float32Array(R * T).map((_, i) => Math.log(0.1 * (Math.floor(i / T) + 1)) + shift / 10);
  return { stats, topIds, topProbs, pins };
}

export function state(b: Cells): ViewState {
  return {
    header: {
      version: 4, kind: "full", rows: [0, 1, 2], row_labels: ["0", "1", "output"], num_layers: 2, col_start: 0, cell_start: 0, cell_end: T,
      n_tokens: T, total_tokens: T, top_k: K, statistics: STATISTICS, units: STATISTICS.map(() => ""),
      lens: "logit", notice: "", layer_stride: 1, diff: DIFF, pins: ["dog"], seq: 1, base: -1,
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

export function scene(s: ViewState, extra: Partial<Scene> = {}): Scene {
  return { state: s, strings: new TokenStrings(null), infos: INFOS, mode: "diff", statistic: "entropy", diffStatistic: "js", stride: 1, sublayers: false, colorScale: "view", first: 0, count: T, ...extra };
}

/** One model's attribution of a cell, as the kernel sends it: three blocks of two heads, the last after the row. */
export function modelAttribution(over: Partial<ModelAttribution> = {}): ModelAttribution {
  return {
    model: "a",
    name: "m",
    label: "2",
    token_id: 7,
    token: "<b>x</b>",
    lens: "logit",
    heads: [[0.5, -1.5], [2, 0.25], [null, null]],
    mlps: [1, -0.5, null],
    embedding: 0.125,
    biases: -0.25,
    total: 1.625,
    logit: 1.625,
    frozen: ["final norm scale"],
    ...over,
  };
}

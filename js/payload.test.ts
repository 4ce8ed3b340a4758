import { describe, expect, it } from "vitest";
import casesFile from "./fixtures/payload_cases.json";
import fixture from "./fixtures/payload_stream.json";
import fixtureAB from "./fixtures/payload_stream_ab.json";
import {
  fromMessage,
  applyUpdate,
  diffAt,
  F16_MAX,
  halfToFloat,
  isPending,
  type Payload,
  PayloadError,
  PATCHED,
  readF16,
  statAt,
  TokenStrings,
  topAt,
  VERSION,
  type ViewState,
  type Vocabulary,
} from "./payload";
import { revive, toMessage } from "./testing";

const updates = revive(fixture.updates, 3) as Payload[];
const updatesAB = revive(fixtureAB.updates, 1) as Payload[];

/** A recorded state (tests/payload_fixture.py expected_state): NaN is written "NaN". */
interface Expected {
  rows: number[];
  row_labels: string[];
  n_tokens: number;
  grids: { name: string; stats: (number | string)[]; top_ids: number[]; top_probs: (number | string)[]; pins: (number | string)[] }[];
  diff_names: string[];
  pin_labels: string[];
  diff: (number | string)[] | null;
  token_ids: number[];
  token_spans: number[];
  /** [T]: 1 where a column's cells are still pending. */
  pending: number[];
}

/** Float32 values as comparable JSON: NaN as "NaN", numbers rounded to float32 as the decoder holds them. */
function floats(values: ArrayLike<number>): (number | string)[] {
  return Array.from(values, (x) => (Number.isNaN(x) ? "NaN" : x));
}
function recorded(values: (number | string)[]): (number | string)[] {
  return values.map((x) => (x === "NaN" ? "NaN" : Math.fround(x as number)));
}

function expectState(state: ViewState, expected: Expected): void {
  expect(state.rows).toEqual(expected.rows);
  expect(state.rowLabels).toEqual(expected.row_labels);
  expect(state.header.row_labels).toEqual(expected.row_labels);
  expect(state.nTokens).toBe(expected.n_tokens);
  expect(state.header.grids.map((g) => g.name)).toEqual(expected.grids.map((g) => g.name));
  expect(state.grids.length).toBe(expected.grids.length);
  expected.grids.forEach((want, g) => {
    const grid = state.grids[g]!;
    expect(floats(grid.stats)).toEqual(recorded(want.stats));
    expect(Array.from(grid.topIds)).toEqual(want.top_ids);
    expect(floats(grid.topProbs)).toEqual(recorded(want.top_probs));
    expect(floats(grid.pins)).toEqual(recorded(want.pins));
  });
  expect(state.header.pins).toEqual(expected.pin_labels);
  expect(state.header.diff).toEqual(expected.diff_names);
  if (expected.diff === null) expect(state.diff).toBeNull();
  else expect(floats(state.diff!)).toEqual(recorded(expected.diff));
  expect(Array.from(state.tokenIds)).toEqual(expected.token_ids);
  expect(Array.from(state.tokenSpans)).toEqual(expected.token_spans);
  expect(Array.from(state.pending ?? new Uint8Array(state.nTokens))).toEqual(expected.pending);
}

describe("readF16", () => {
  it("reads every half-precision value as halfToFloat does, in small reads and large ones", () => {
    const all = new DataView(new ArrayBuffer(2 * 0x10000));
    for (let h = 0; h < 0x10000; h++) all.setUint16(2 * h, h, true);
    const small = readF16(new DataView(all.buffer, 2 * 0x3c00, 8), 4, "some");
    const large = readF16(all, 0x10000, "all");
    const wrong = Array.from(large).filter((value, h) => !Object.is(value, Math.fround(halfToFloat(h))));
    expect(wrong).toEqual([]);
    expect(Array.from(small)).toEqual([1, 1 + 1 / 1024, 1 + 2 / 1024, 1 + 3 / 1024]);
  });
});

describe("halfToFloat", () => {
  it("decodes normal, subnormal and special values", () => {
    expect(halfToFloat(0x3c00)).toBe(1);
    expect(halfToFloat(0xc000)).toBe(-2);
    expect(halfToFloat(0x7bff)).toBe(65504);
    expect(halfToFloat(0x0001)).toBeCloseTo(5.96e-8, 10);
    expect(halfToFloat(0x7c00)).toBe(Infinity);
    expect(Number.isNaN(halfToFloat(0x7e00))).toBe(true);
  });
});

describe("applyUpdate", () => {
  it("rebuilds the state Python recorded from the same stream", () => {
    let state: ViewState | null = null;
    for (const update of updates) state = applyUpdate(state, update);
    expect(updates.map((u) => u.header.kind)).toEqual(["full", "columns", "rows", "columns", "columns", "cells", "columns"]);
    expectState(state!, fixture.expected as Expected);
    expect(state!.diff).toBeNull();
  });

  it("rebuilds the A/B state (two grids and their diff) Python recorded from a two-model session", () => {
    let state: ViewState | null = null;
    for (const update of updatesAB) state = applyUpdate(state, update);
    expect(updatesAB.map((u) => u.header.kind)).toEqual(["full", "columns", "rows", "columns", "columns", "cells"]);
    expect(state!.pending!.includes(1) && state!.pending!.includes(0)).toBe(true);
    expectState(state!, fixtureAB.expected as Expected);
    expect(state!.grids.length).toBe(2);
    expect(state!.diff!.length).toBe(state!.header.diff.length * state!.rows.length * state!.nTokens);
  });

  it("reads the A/B diff per cell with diffAt, agreeing with the two grids' top-1", () => {
    let state: ViewState | null = null;
    for (const update of updatesAB) state = applyUpdate(state, update);
    const s = state!;
    const agree = s.header.diff.indexOf("top1_agree");
    const js = s.header.diff.indexOf("js");
    let differ = 0;
    for (let row = 0; row < s.rows.length; row++) {
      for (let col = 0; col < s.nTokens; col++) {
        if (isPending(s, col)) {
          expect(Number.isNaN(diffAt(s, js, row, col)) && Number.isNaN(statAt(s, 0, 0, row, col))).toBe(true);
          continue;
        }
        const same = topAt(s, 0, row, col).ids[0] === topAt(s, 1, row, col).ids[0];
        expect(diffAt(s, agree, row, col)).toBe(same ? 1 : 0);
        expect(diffAt(s, js, row, col)).toBeGreaterThanOrEqual(0);
        expect(diffAt(s, js, row, col)).toBeLessThanOrEqual(Math.LN2 * (1 + 2 ** -10));
        if (!same) differ++;
        expect(statAt(s, 1, 0, row, col)).toBe(s.grids[1]!.stats[row * s.nTokens + col]);
      }
    }
    expect(differ).toBeGreaterThan(0);
    const single = applyUpdate(null, updates[0]!);
    expect(() => diffAt(single, 0, 0, 0)).toThrow(RangeError);
  });

  it("never mutates the previous state", () => {
    const first = applyUpdate(null, updates[0]!);
    const copy = Array.from(first.grids[0]!.stats);
    applyUpdate(first, updates[1]!);
    expect(Array.from(first.grids[0]!.stats)).toEqual(copy);
    // Nor with a "cells" update, unless the state is handed over.
    let before: ViewState | null = null;
    for (const update of updates.slice(0, 5)) before = applyUpdate(before, update);
    const stats = Array.from(before!.grids[0]!.stats);
    const pending = Array.from(before!.pending!);
    expect(updates[5]!.header.kind).toBe("cells");
    applyUpdate(before, updates[5]!);
    expect(Array.from(before!.grids[0]!.stats)).toEqual(stats);
    expect(Array.from(before!.pending!)).toEqual(pending);
  });

  it("fills a handed-over state's arrays with a cells update: a chunk costs its columns, not a copy of the grid", () => {
    let before: ViewState | null = null;
    for (const update of updates.slice(0, 5)) before = applyUpdate(before, update);
    const pure = applyUpdate(before, updates[5]!);
    const arrays = [...before!.grids.flatMap((g) => [g.stats, g.topIds, g.topProbs, g.pins]), before!.pending];
    const filled = applyUpdate(before, updates[5]!, { handOver: true });
    expect([...filled.grids.flatMap((g) => [g.stats, g.topIds, g.topProbs, g.pins]), filled.pending]).toEqual(arrays);
    filled.grids.forEach((g, i) => expect(g.stats).toBe(before!.grids[i]!.stats)); // the same arrays, written
    expect(filled.pending).toBe(before!.pending);
    expect(filled).not.toBe(before); // a new state, so that what was drawn from the old one is redrawn
    expect(Array.from(filled.grids[0]!.stats)).toEqual(Array.from(pure.grids[0]!.stats));
    expect(Array.from(filled.pending!)).toEqual(Array.from(pure.pending!));
    // A columns update still makes new arrays: the state it replaces is never written.
    const next = applyUpdate(filled, updates[6]!, { handOver: true });
    expect(next.grids[0]!.stats).not.toBe(filled.grids[0]!.stats);
  });

  it("refuses a delta without a state, and malformed payloads", () => {
    expect(() => applyUpdate(null, updates[1]!)).toThrow(PayloadError);
    const short = { ...updates[0]!, token_ids: new DataView(new ArrayBuffer(3)) };
    expect(() => applyUpdate(null, short)).toThrow(/token_ids: 3 bytes/);
    const wrongVersion = { ...updates[0]!, header: { ...updates[0]!.header, version: 1 } };
    expect(() => applyUpdate(null, wrongVersion)).toThrow(/payload version 1, expected 4/);
    expect(() => applyUpdate(null, {} as Payload)).toThrow(PayloadError);
  });

  it("decodes a per-update id table for vocabularies beyond uint16", () => {
    const header = { ...updates[0]!.header, rows: [0], row_labels: ["0"], n_tokens: 1, cell_end: 1, top_k: 2, statistics: ["entropy"], units: ["nats"], grids: [{ name: "m", ids: "table" as const }], pins: [] };
    const f16 = (values: number[]) => new Uint16Array(values.map(() => 0x3c00)).buffer;
    const payload: Payload = {
      header,
      grids: [{ stats: f16([1]), top_ids: new Uint16Array([1, 0]).buffer, top_probs: f16([1, 1]), id_table: new Uint32Array([70000, 128255]).buffer, patch: new ArrayBuffer(0), pins: new ArrayBuffer(0) }],
      diff: new ArrayBuffer(0),
      token_ids: new Uint32Array([5]).buffer,
      token_spans: new Uint32Array([0, 1]).buffer,
    };
    expect(Array.from(applyUpdate(null, payload).grids[0]!.topIds)).toEqual([128255, 70000]);
  });
});

describe("constants", () => {
  it("come from lens_widget/constants.json, as the Python module's do", () => {
    expect(VERSION).toBe(4);
    expect([...PATCHED]).toEqual(["cross_entropy", "rank"]);
    expect(F16_MAX).toBe(halfToFloat(0x7bff));
    for (const update of [...updates, ...updatesAB]) expect(update.header.version).toBe(VERSION);
  });
});

/** js/fixtures/payload_cases.json: payloads Python (tests/test_payload.py) must judge alike. */
type Path = (string | number)[];
type Mutation = { set: Path; to: unknown } | { delete: Path };
interface Case {
  name: string;
  /** Payloads applied first: a name, or a name with its own mutations. */
  state: (string | { payload: string; mutations: Mutation[] })[];
  payload: string;
  mutations: Mutation[];
  expected: "refused" | "accepted";
  error?: string;
  rows?: number[];
  n_tokens?: number;
  top_ids?: number[];
  /** [T]: 1 where a column's cells are still pending. */
  pending?: number[];
  notice?: string;
  /** The A/B diff statistics [D][R][T] flattened, NaN written "NaN". */
  diff?: (number | string)[];
  /** Grid 0's pinned items' log-probabilities [P][R][T] flattened. */
  pins?: number[];
}
const shared = casesFile as unknown as { payloads: Record<string, unknown>; cases: Case[] };

/** Fixture JSON → payload: {"u8" | "u16" | "u32": [values]} becomes a little-endian DataView, placed
 * one byte into its buffer (comm messages deliver views at any offset, aligned or not). */
function reviveTyped(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(reviveTyped);
  if (value && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>);
    const [kind, values] = entries[0] ?? [];
    const size = kind === "u8" ? 1 : kind === "u16" ? 2 : kind === "u32" ? 4 : 0;
    if (entries.length === 1 && size && Array.isArray(values)) {
      const view = new DataView(new ArrayBuffer(values.length * size + 1), 1, values.length * size);
      values.forEach((v: number, i) => (size === 1 ? view.setUint8(i, v) : size === 2 ? view.setUint16(2 * i, v, true) : view.setUint32(4 * i, v, true)));
      return view;
    }
    return Object.fromEntries(entries.map(([k, v]) => [k, reviveTyped(v)]));
  }
  return value;
}

function casePayload(base: string, mutations: Mutation[]): Payload {
  const root: Record<string, unknown> = { payload: structuredClone(shared.payloads[base]) };
  for (const mutation of mutations) {
    const path: Path = ["payload", ...("set" in mutation ? mutation.set : mutation.delete)];
    let parent = root as Record<string | number, unknown>;
    for (const key of path.slice(0, -1)) parent = parent[key] as Record<string | number, unknown>;
    const last = path[path.length - 1] as string | number;
    if ("set" in mutation) parent[last] = structuredClone(mutation.to);
    else delete parent[last];
  }
  return reviveTyped(root.payload) as Payload;
}

describe("shared payload cases (the Python decoder judges them alike)", () => {
  it.each(shared.cases.map((c) => [c.name, c] as const))("%s", (_name, c) => {
    let state: ViewState | null = null;
    for (const base of c.state) {
      state = applyUpdate(state, typeof base === "string" ? casePayload(base, []) : casePayload(base.payload, base.mutations));
    }
    const payload = casePayload(c.payload, c.mutations);
    if (c.expected === "refused") {
      let error: unknown = null;
      try {
        applyUpdate(state, payload);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(PayloadError);
      expect((error as PayloadError).message).toContain(c.error);
      return;
    }
    expect(c.expected).toBe("accepted");
    const out = applyUpdate(state, payload);
    expect(out.rows).toEqual(c.rows);
    expect(out.nTokens).toBe(c.n_tokens);
    const R = out.rows.length;
    const T = out.nTokens;
    const k = out.header.top_k;
    expect(out.rowLabels.length).toBe(R);
    expect(out.tokenIds.length).toBe(T);
    expect(out.tokenSpans.length).toBe(2 * T);
    if (c.notice !== undefined) expect(out.header.notice).toBe(c.notice);
    if (c.pending) expect(Array.from(out.pending ?? new Uint8Array(T))).toEqual(c.pending);
    for (const grid of out.grids) {
      expect(grid.stats.length).toBe(out.header.statistics.length * R * T);
      expect(grid.topIds.length).toBe(R * T * k);
      expect(grid.topProbs.length).toBe(R * T * k);
      expect(grid.pins.length).toBe(out.header.pins.length * R * T);
    }
    if (c.pins) expect(Array.from(out.grids[0]!.pins)).toEqual(c.pins.map(Math.fround));
    if (c.top_ids) expect(Array.from(out.grids[0]!.topIds)).toEqual(c.top_ids);
    if (out.header.diff.length) expect(out.diff?.length).toBe(out.header.diff.length * R * T);
    else expect(out.diff).toBeNull();
    if (c.diff) expect(floats(out.diff!)).toEqual(recorded(c.diff));
  });
});

describe("TokenStrings", () => {
  it("decodes UTF-8 lazily and names ids beyond the vocabulary", () => {
    const strings = new TokenStrings(revive(fixture.vocabulary) as Vocabulary);
    expect(strings.size).toBe(400);
    expect(strings.get(10_000)).toBe("<10000>");
    const text = Array.from({ length: 400 }, (_, i) => strings.get(i)).join("");
    expect(text).toContain(" capital");
    expect(text).toContain("é");
  });

  it("comes with every statistic's label, units, direction and scale", () => {
    const vocabulary = revive(fixtureAB.vocabulary) as Vocabulary;
    const names = vocabulary.statistics!.map((info) => info.name);
    expect(names).toEqual([...updatesAB[0]!.header.statistics, ...updatesAB[0]!.header.diff]);
    for (const info of vocabulary.statistics!) {
      expect(typeof info.label).toBe("string");
      expect(typeof info.lower_is_better).toBe("boolean");
      expect(["sequential", "divergence", "probability", "rank"]).toContain(info.scale);
    }
  });
});

describe("fromMessage", () => {
  it("puts a delta's buffers back where the kernel took them out", () => {
    const payload = revive(fixture.updates[1]) as Payload;
    const { content, buffers } = toMessage(payload);
    expect(JSON.stringify(content)).not.toContain("DataView");
    const back = fromMessage(content, buffers) as Payload;
    expect(applyUpdate(applyUpdate(null, revive(fixture.updates[0]) as Payload), back).nTokens).toBe(payload.header.n_tokens);
  });

  it("refuses a message that names a buffer it does not carry", () => {
    const { content } = toMessage(revive(fixture.updates[1]) as Payload);
    expect(() => fromMessage(content, [])).toThrow(PayloadError);
    expect(() => fromMessage({ a: { $buffer: -1 } }, [new DataView(new ArrayBuffer(2))])).toThrow(PayloadError);
    expect(() => fromMessage({ a: { $buffer: 0 } }, [null])).toThrow(PayloadError);
  });

  it("reads buffers sent as base64 text (VS Code's) as the same bytes", () => {
    const payload = revive(fixture.updates[1]) as Payload;
    const { content, buffers } = toMessage(payload);
    const asText = JSON.parse(JSON.stringify(content), (_key, value: unknown) => {
      if (value && typeof value === "object" && "$buffer" in value) {
        const view = buffers[(value as { $buffer: number }).$buffer] as DataView;
        const bytes = new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
        return { $base64: btoa(String.fromCharCode(...bytes)) };
      }
      return value;
    }) as unknown;
    expect(JSON.stringify(asText)).toContain("$base64");
    const back = fromMessage(asText, []) as Payload;
    const state = applyUpdate(null, revive(fixture.updates[0]) as Payload);
    expect(applyUpdate(state, back)).toEqual(applyUpdate(state, fromMessage(content, buffers) as Payload));
  });

  it("refuses what is not canonical base64, as the Python side does", () => {
    for (const bad of ["not base64!", 12, "QUJD="]) {
      expect(() => fromMessage({ a: { $base64: bad } }, [])).toThrow(/is not base64/);
    }
  });
});

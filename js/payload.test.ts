import { describe, expect, it } from "vitest";
import casesFile from "./fixtures/payload_cases.json";
import fixture from "./fixtures/payload_stream.json";
import { applyUpdate, halfToFloat, type Payload, PayloadError, TokenStrings, type ViewState, type Vocabulary } from "./payload";
import { revive } from "./testing";

const updates = revive(fixture.updates, 3) as Payload[];

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
    const expected = fixture.expected;
    expect(state!.rows).toEqual(expected.rows);
    expect(state!.rowLabels).toEqual(expected.row_labels);
    expect(state!.nTokens).toBe(expected.n_tokens);
    const stats = Array.from(state!.grids[0]!.stats, (x) => (Number.isNaN(x) ? "NaN" : x));
    expect(stats).toEqual(expected.stats.map((x) => (x === "NaN" ? "NaN" : Math.fround(x as number))));
    expect(Array.from(state!.grids[0]!.topIds)).toEqual(expected.top_ids);
    expect(Array.from(state!.grids[0]!.topProbs)).toEqual(expected.top_probs.map((x) => Math.fround(x)));
    expect(Array.from(state!.tokenIds)).toEqual(expected.token_ids);
    expect(Array.from(state!.tokenSpans)).toEqual(expected.token_spans);
  });

  it("never mutates the previous state", () => {
    const first = applyUpdate(null, updates[0]!);
    const copy = Array.from(first.grids[0]!.stats);
    applyUpdate(first, updates[1]!);
    expect(Array.from(first.grids[0]!.stats)).toEqual(copy);
  });

  it("refuses a delta without a state, and malformed payloads", () => {
    expect(() => applyUpdate(null, updates[1]!)).toThrow(PayloadError);
    const short = { ...updates[0]!, token_ids: new DataView(new ArrayBuffer(3)) };
    expect(() => applyUpdate(null, short)).toThrow(/token_ids: 3 bytes/);
    const wrongVersion = { ...updates[0]!, header: { ...updates[0]!.header, version: 2 } };
    expect(() => applyUpdate(null, wrongVersion)).toThrow(/version 2/);
    expect(() => applyUpdate(null, {} as Payload)).toThrow(PayloadError);
  });

  it("decodes a per-update id table for vocabularies beyond uint16", () => {
    const header = { ...updates[0]!.header, rows: [0], row_labels: ["0"], n_tokens: 1, top_k: 2, statistics: ["entropy"], units: ["nats"], grids: [{ name: "m", ids: "table" as const }] };
    const f16 = (values: number[]) => new Uint16Array(values.map(() => 0x3c00)).buffer;
    const payload: Payload = {
      header,
      grids: [{ stats: f16([1]), top_ids: new Uint16Array([1, 0]).buffer, top_probs: f16([1, 1]), id_table: new Uint32Array([70000, 128255]).buffer, patch: new ArrayBuffer(0) }],
      token_ids: new Uint32Array([5]).buffer,
      token_spans: new Uint32Array([0, 1]).buffer,
    };
    expect(Array.from(applyUpdate(null, payload).grids[0]!.topIds)).toEqual([128255, 70000]);
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
    for (const grid of out.grids) {
      expect(grid.stats.length).toBe(out.header.statistics.length * R * T);
      expect(grid.topIds.length).toBe(R * T * k);
      expect(grid.topProbs.length).toBe(R * T * k);
    }
    if (c.top_ids) expect(Array.from(out.grids[0]!.topIds)).toEqual(c.top_ids);
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
});

// Decoding of the kernel's binary payload (format: lens_widget/payload.py, mirrored here) and the
// pure state machine that applies updates. No DOM, no canvas: everything here is unit-tested.

export type Bytes = DataView | ArrayBuffer | Uint8Array;

export interface GridMeta {
  name: string;
  ids: "uint16" | "table" | "uint32";
}

export interface Header {
  version: number;
  kind: "full" | "columns" | "rows";
  rows: number[];
  row_labels: string[];
  num_layers: number;
  col_start: number;
  n_tokens: number;
  total_tokens: number;
  top_k: number;
  statistics: string[];
  units: string[];
  lens: string;
  notice: string;
  layer_stride: number;
  grids: GridMeta[];
  /** Added by the widget: order of updates, and the update a delta applies to (-1: none). */
  seq: number;
  base: number;
}

export interface GridBuffers {
  stats: Bytes;
  top_ids: Bytes;
  top_probs: Bytes;
  id_table: Bytes;
  patch: Bytes;
}

export interface Payload {
  header: Header;
  grids: GridBuffers[];
  token_ids: Bytes;
  token_spans: Bytes;
}

/** One model's cells. stats: [S][R][T] flattened; ids/probs: [R][T][k] flattened. */
export interface Grid {
  stats: Float32Array;
  topIds: Uint32Array;
  topProbs: Float32Array;
}

export interface ViewState {
  header: Header;
  rows: number[];
  rowLabels: string[];
  nTokens: number;
  grids: Grid[];
  tokenIds: Uint32Array;
  /** [T][2] flattened: start, end in UTF-16 code units. */
  tokenSpans: Uint32Array;
}

export class PayloadError extends Error {}

const PATCHED = ["cross_entropy", "rank"];

function bytesOf(data: Bytes): Uint8Array {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** Half-precision bits to a number (Float16Array is not in every host's JS engine yet). */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const fraction = h & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 0x1f) return fraction ? NaN : sign * Infinity;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

function littleEndianView(data: Bytes, itemSize: number, count: number, what: string): DataView {
  const bytes = bytesOf(data);
  if (bytes.byteLength !== count * itemSize) {
    throw new PayloadError(`${what}: ${bytes.byteLength} bytes, expected ${count * itemSize}`);
  }
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export function readF16(data: Bytes, count: number, what: string): Float32Array {
  const view = littleEndianView(data, 2, count, what);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = halfToFloat(view.getUint16(2 * i, true));
  return out;
}

export function readU16(data: Bytes, count: number, what: string): Uint32Array {
  const view = littleEndianView(data, 2, count, what);
  const out = new Uint32Array(count);
  for (let i = 0; i < count; i++) out[i] = view.getUint16(2 * i, true);
  return out;
}

export function readU32(data: Bytes, count: number, what: string): Uint32Array {
  const view = littleEndianView(data, 4, count, what);
  const out = new Uint32Array(count);
  for (let i = 0; i < count; i++) out[i] = view.getUint32(4 * i, true);
  return out;
}

export interface DecodedUpdate {
  header: Header;
  grids: Grid[];
  patches: (Float32Array | null)[];
  tokenIds: Uint32Array;
  tokenSpans: Uint32Array;
}

// --- checking a payload before anything is sized or indexed from it -----------------------------
// lens_widget/payload.py makes the same checks, in the same order, with the same messages (up to how
// a value is shown), so that the two decoders refuse exactly the same payloads:
// js/fixtures/payload_cases.json holds both to it (js/payload.test.ts, tests/test_payload.py).

const KINDS = ["full", "columns", "rows"];
const ID_KINDS = ["uint16", "table", "uint32"];
const BUFFERS = ["stats", "top_ids", "top_probs", "id_table", "patch"] as const;

/** A value as an error message shows it: as JSON, which is also how the Python side shows it. */
function show(value: unknown): string {
  if (value === undefined) return "nothing";
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length <= 60 ? text : `${text.slice(0, 57)}...`;
}

/** A JSON object (what Python sees as a dict): not null, not an array, not a binary buffer. */
function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value) && !isBytes(value);
}

function isBytes(value: unknown): value is Bytes {
  return value instanceof ArrayBuffer || ArrayBuffer.isView(value);
}

/**
 * Whole numbers from 0 to Number.MAX_SAFE_INTEGER: a larger one is not held exactly, and Python
 * refuses it too. (JSON cannot tell 3 from 3.0, so neither can the Python side.)
 */
function isWhole(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

function isStrings(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === "string");
}

/**
 * The header with every field checked. Every size, subarray and index the decoder and applyUpdate
 * compute comes from here, so a field that is not what the format says (a row 1.5, a negative
 * col_start) is refused before it can build a state whose nTokens or rows disagree with its arrays.
 */
function checkHeader(header: unknown): Header {
  if (!isObject(header)) throw new PayloadError(`header is not an object: ${show(header)}`);
  if (!isWhole(header.version) || header.version !== 1) throw new PayloadError(`payload version ${show(header.version)}, expected 1`);
  const kind = header.kind;
  if (typeof kind !== "string" || !KINDS.includes(kind)) throw new PayloadError(`unknown update kind ${show(kind)}`);
  for (const [name, least] of [["num_layers", 0], ["col_start", 0], ["n_tokens", 0], ["total_tokens", 0], ["top_k", 1], ["layer_stride", 1]] as const) {
    const value = header[name];
    if (!isWhole(value) || value < least) {
      throw new PayloadError(`header.${name} must be a ${least ? "positive" : "non-negative"} integer, got ${show(value)}`);
    }
  }
  const h = header as unknown as Header;
  if (h.col_start > h.n_tokens) throw new PayloadError(`header.col_start is after n_tokens (${h.col_start} > ${h.n_tokens})`);
  if (kind !== "columns" && h.col_start !== 0) throw new PayloadError(`header.col_start must be 0 in a "${kind}" update, got ${h.col_start}`);
  if (h.total_tokens < h.n_tokens) throw new PayloadError(`header.total_tokens is less than n_tokens (${h.total_tokens} < ${h.n_tokens})`);
  const rows: unknown = header.rows;
  if (!Array.isArray(rows)) throw new PayloadError(`header.rows must be a list of layer indices, got ${show(rows)}`);
  rows.forEach((row: unknown, i) => {
    if (!isWhole(row) || row > h.num_layers) {
      throw new PayloadError(`header.rows[${i}] must be a layer index from 0 to num_layers (${h.num_layers}), got ${show(row)}`);
    }
    if (rows.indexOf(row) < i) throw new PayloadError(`header.rows lists layer ${row} twice`);
  });
  if (!isStrings(header.row_labels) || header.row_labels.length !== rows.length) {
    throw new PayloadError(`header.row_labels must be a list of ${rows.length} strings, one per row`);
  }
  const statistics = header.statistics;
  if (!isStrings(statistics)) throw new PayloadError("header.statistics must be a list of strings");
  if (!isStrings(header.units) || header.units.length !== statistics.length) {
    throw new PayloadError(`header.units must be a list of ${statistics.length} strings, one per statistic`);
  }
  for (const name of ["lens", "notice"] as const) {
    if (typeof header[name] !== "string") throw new PayloadError(`header.${name} must be a string, got ${show(header[name])}`);
  }
  const grids = header.grids;
  if (!Array.isArray(grids)) throw new PayloadError(`header.grids must be a list, got ${show(grids)}`);
  grids.forEach((meta: unknown, g) => {
    if (!(isObject(meta) && typeof meta.name === "string" && typeof meta.ids === "string" && ID_KINDS.includes(meta.ids))) {
      throw new PayloadError(`header.grids[${g}] must be {"name": string, "ids": "uint16" | "table" | "uint32"}`);
    }
  });
  return h;
}

/**
 * Unpack one update, checking the header and every size against it. Anything that does not follow
 * the format throws PayloadError (never a TypeError or RangeError), so the view can tell a bad
 * payload from its own bugs and ask for a full update instead.
 */
export function decodeUpdate(payload: Payload): DecodedUpdate {
  const raw: unknown = payload;
  if (!isObject(raw)) throw new PayloadError(`payload is not an object: ${show(raw)}`);
  const header = checkHeader(raw.header);
  const S = header.statistics.length;
  const R = header.rows.length;
  const C = header.n_tokens - header.col_start;
  const k = header.top_k;
  const buffers: unknown = raw.grids;
  if (!Array.isArray(buffers) || buffers.length !== header.grids.length) {
    throw new PayloadError(`grids must be a list of ${header.grids.length} grid(s), one per header.grids entry`);
  }
  const grids: Grid[] = [];
  const patches: (Float32Array | null)[] = [];
  buffers.forEach((grid: unknown, g) => {
    if (!isObject(grid)) throw new PayloadError(`grids[${g}] must be an object of binary buffers, got ${show(grid)}`);
    for (const name of BUFFERS) {
      if (!isBytes(grid[name])) throw new PayloadError(`grids[${g}].${name} must be a binary buffer, got ${show(grid[name])}`);
    }
    const b = grid as unknown as GridBuffers;
    const meta = header.grids[g] as GridMeta;
    const stats = readF16(b.stats, S * R * C, `grids[${g}].stats`);
    const tableBytes = bytesOf(b.id_table).byteLength;
    let topIds: Uint32Array;
    if (meta.ids === "table") {
      if (tableBytes % 4) throw new PayloadError(`grids[${g}].id_table: ${tableBytes} bytes, not a whole number of uint32`);
      const table = readU32(b.id_table, tableBytes / 4, `grids[${g}].id_table`);
      const index = readU16(b.top_ids, R * C * k, `grids[${g}].top_ids`);
      topIds = new Uint32Array(index.length);
      for (let i = 0; i < index.length; i++) {
        const id = table[index[i] as number];
        if (id === undefined) throw new PayloadError(`grids[${g}].top_ids has an index past the end of id_table`);
        topIds[i] = id;
      }
    } else {
      if (tableBytes) throw new PayloadError(`grids[${g}].id_table must be empty unless header.grids[${g}].ids is "table"`);
      topIds = (meta.ids === "uint16" ? readU16 : readU32)(b.top_ids, R * C * k, `grids[${g}].top_ids`);
    }
    const topProbs = readF16(b.top_probs, R * C * k, `grids[${g}].top_probs`);
    let patch: Float32Array | null = null;
    if (bytesOf(b.patch).byteLength) {
      patch = readF16(b.patch, 2 * R, `grids[${g}].patch`);
      if (!PATCHED.every((name) => header.statistics.includes(name))) {
        throw new PayloadError(`grids[${g}].patch needs header.statistics to name cross_entropy and rank`);
      }
    }
    grids.push({ stats, topIds, topProbs });
    patches.push(patch);
  });
  for (const name of ["token_ids", "token_spans"] as const) {
    if (!isBytes(raw[name])) throw new PayloadError(`${name} must be a binary buffer, got ${show(raw[name])}`);
  }
  return {
    header,
    grids,
    patches,
    tokenIds: readU32(payload.token_ids, C, "token_ids"),
    tokenSpans: readU32(payload.token_spans, 2 * C, "token_spans"),
  };
}

/**
 * The receiver's state after one update; pure (never mutates `state`). A delta must fit the state it
 * is applied to (same grids, statistics and top_k; columns that exist; rows the state has), else
 * PayloadError: a state whose arrays disagree with its header would be drawn wrong, where a refusal
 * makes the widget ask for a full update.
 */
export function applyUpdate(state: ViewState | null, payload: Payload): ViewState {
  const update = decodeUpdate(payload);
  const h = update.header;
  if (h.kind === "full") {
    return {
      header: h,
      rows: [...h.rows],
      rowLabels: [...h.row_labels],
      nTokens: h.n_tokens,
      grids: update.grids,
      tokenIds: update.tokenIds,
      tokenSpans: update.tokenSpans,
    };
  }
  if (state === null) throw new PayloadError(`a "${h.kind}" update needs a state to apply to; send a full update first`);
  if (update.grids.length !== state.grids.length) {
    throw new PayloadError(`header.grids lists ${update.grids.length} grid(s), the state has ${state.grids.length}`);
  }
  const stateStatistics = state.header.statistics;
  if (h.statistics.length !== stateStatistics.length || h.statistics.some((name, i) => name !== stateStatistics[i])) {
    throw new PayloadError("header.statistics differ from the state's");
  }
  if (h.top_k !== state.header.top_k) throw new PayloadError(`header.top_k is ${h.top_k}, the state's is ${state.header.top_k}`);
  return h.kind === "columns" ? applyColumns(state, update) : applyRows(state, update);
}

function applyColumns(state: ViewState, update: DecodedUpdate): ViewState {
  const h = update.header;
  const start = h.col_start;
  const T = h.n_tokens;
  const S = h.statistics.length;
  const k = h.top_k;
  if (start > state.nTokens) throw new PayloadError(`header.col_start (${start}) is past the state's ${state.nTokens} columns`);
  const missing = h.rows.filter((r) => !state.rows.includes(r));
  if (missing.length) {
    throw new PayloadError(`header.rows [${missing.join(", ")}] are not among the state's rows, which a columns update keeps`);
  }
  const keep = h.rows.map((r) => state.rows.indexOf(r));
  const R = h.rows.length;
  const C = T - start;
  const oldT = state.nTokens;
  const patchIndex = PATCHED.map((name) => h.statistics.indexOf(name));
  const grids = state.grids.map((old, g) => {
    const fresh = update.grids[g] as Grid;
    const patch = update.patches[g] ?? null;
    const stats = new Float32Array(S * R * T);
    const topIds = new Uint32Array(R * T * k);
    const topProbs = new Float32Array(R * T * k);
    for (let s = 0; s < S; s++) {
      keep.forEach((oldRow, r) => {
        const dst = (s * R + r) * T;
        stats.set(old.stats.subarray((s * state.rows.length + oldRow) * oldT, (s * state.rows.length + oldRow) * oldT + start), dst);
        stats.set(fresh.stats.subarray((s * R + r) * C, (s * R + r + 1) * C), dst + start);
      });
    }
    if (patch && start > 0) {
      patchIndex.forEach((s, p) => {
        for (let r = 0; r < R; r++) stats[(s * R + r) * T + start - 1] = patch[p * R + r] as number;
      });
    }
    keep.forEach((oldRow, r) => {
      topIds.set(old.topIds.subarray(oldRow * oldT * k, (oldRow * oldT + start) * k), r * T * k);
      topIds.set(fresh.topIds.subarray(r * C * k, (r + 1) * C * k), (r * T + start) * k);
      topProbs.set(old.topProbs.subarray(oldRow * oldT * k, (oldRow * oldT + start) * k), r * T * k);
      topProbs.set(fresh.topProbs.subarray(r * C * k, (r + 1) * C * k), (r * T + start) * k);
    });
    return { stats, topIds, topProbs };
  });
  const tokenIds = new Uint32Array(T);
  tokenIds.set(state.tokenIds.subarray(0, start));
  tokenIds.set(update.tokenIds, start);
  const tokenSpans = new Uint32Array(2 * T);
  tokenSpans.set(state.tokenSpans.subarray(0, 2 * start));
  tokenSpans.set(update.tokenSpans, 2 * start);
  return { header: h, rows: [...h.rows], rowLabels: [...h.row_labels], nTokens: T, grids, tokenIds, tokenSpans };
}

function applyRows(state: ViewState, update: DecodedUpdate): ViewState {
  const h = update.header;
  // col_start is 0: checkHeader saw to it.
  if (h.n_tokens !== state.nTokens) {
    throw new PayloadError(`header.n_tokens (${h.n_tokens}) is not the state's ${state.nTokens}: a rows update covers them all`);
  }
  const rows = [...new Set([...state.rows, ...h.rows])].sort((a, b) => a - b);
  const labels = new Map<number, string>();
  state.rows.forEach((r, i) => labels.set(r, state.rowLabels[i] ?? String(r)));
  h.rows.forEach((r, i) => labels.set(r, h.row_labels[i] ?? String(r)));
  const T = state.nTokens;
  const S = h.statistics.length;
  const k = h.top_k;
  const R = rows.length;
  const grids = state.grids.map((old, g) => {
    const fresh = update.grids[g] as Grid;
    const stats = new Float32Array(S * R * T);
    const topIds = new Uint32Array(R * T * k);
    const topProbs = new Float32Array(R * T * k);
    rows.forEach((row, r) => {
      const inUpdate = h.rows.indexOf(row);
      const src = inUpdate >= 0 ? fresh : old;
      const i = inUpdate >= 0 ? inUpdate : state.rows.indexOf(row);
      const srcR = inUpdate >= 0 ? h.rows.length : state.rows.length;
      for (let s = 0; s < S; s++) {
        stats.set(src.stats.subarray((s * srcR + i) * T, (s * srcR + i + 1) * T), (s * R + r) * T);
      }
      topIds.set(src.topIds.subarray(i * T * k, (i + 1) * T * k), r * T * k);
      topProbs.set(src.topProbs.subarray(i * T * k, (i + 1) * T * k), r * T * k);
    });
    return { stats, topIds, topProbs };
  });
  return {
    ...state,
    header: { ...h, rows, row_labels: rows.map((r) => labels.get(r) ?? String(r)) },
    rows,
    rowLabels: rows.map((r) => labels.get(r) ?? String(r)),
    grids,
  };
}

/** Accessors over the flattened arrays. */
export function statAt(state: ViewState, grid: number, stat: number, row: number, col: number): number {
  const g = state.grids[grid] as Grid;
  return g.stats[(stat * state.rows.length + row) * state.nTokens + col] as number;
}

export function topAt(state: ViewState, grid: number, row: number, col: number): { ids: number[]; probs: number[] } {
  const g = state.grids[grid] as Grid;
  const k = state.header.top_k;
  const base = (row * state.nTokens + col) * k;
  return { ids: Array.from(g.topIds.subarray(base, base + k)), probs: Array.from(g.topProbs.subarray(base, base + k)) };
}

export interface Vocabulary {
  size: number;
  offsets: Bytes;
  utf8: Bytes;
}

/** Token id → text, decoded lazily (a 256k vocabulary is decoded only where it is looked at). */
export class TokenStrings {
  private readonly offsets: Uint32Array;
  private readonly utf8: Uint8Array;
  private readonly cache = new Map<number, string>();
  private readonly decoder = new TextDecoder();

  constructor(vocabulary: Vocabulary | null | undefined) {
    const size = vocabulary?.size ?? 0;
    this.offsets = size ? readU32(vocabulary!.offsets, size + 1, "vocabulary offsets") : new Uint32Array(1);
    this.utf8 = size ? bytesOf(vocabulary!.utf8) : new Uint8Array(0);
  }

  get size(): number {
    return this.offsets.length - 1;
  }

  get(id: number): string {
    const hit = this.cache.get(id);
    if (hit !== undefined) return hit;
    const start = this.offsets[id];
    const end = this.offsets[id + 1];
    const text = start === undefined || end === undefined ? `<${id}>` : this.decoder.decode(this.utf8.subarray(start, end));
    this.cache.set(id, text);
    return text;
  }
}

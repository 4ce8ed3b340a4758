// Decoding of the kernel's binary payload (format: lens_widget/payload.py, mirrored here) and the
// pure state machine that applies updates. No DOM, no canvas: everything here is unit-tested.
//
// One update logic per language: each kind of update is one of cells.ts's edits (spliceColumns,
// mergeRows, padColumns, fillColumns), which mirror cells.py's, the functions the kernel's session
// edits its own cells with.

import { WIRE } from "./constants";
import { type Cells, fillColumns, mergeRows, padColumns, pendingAfter, spliceColumns, statsOnly } from "./cells";
import { byDepth } from "./rows";

/** Payload version: 2 added the A/B diff, 3 pending columns (cell_start, cell_end, "cells"). */
export const VERSION: number = WIRE.version;
/** The statistics a patch carries for column col_start - 1, whose next token changed. */
export const PATCHED: readonly string[] = WIRE.patched;
/** The largest float16: a rank above it is sent as F16_MAX ("at least"). */
export const F16_MAX: number = WIRE.f16_max;
export const KINDS: readonly string[] = WIRE.kinds;
export const ID_KINDS: readonly string[] = WIRE.id_kinds;

export type Bytes = DataView | ArrayBuffer | Uint8Array;

export interface GridMeta {
  name: string;
  ids: "uint16" | "table" | "uint32";
}

export interface Header {
  version: number;
  kind: "full" | "columns" | "rows" | "cells";
  /** Row ids (lens_widget/rows.py): layer indices, num_layers the output, num_layers + ℓ the row "ℓ.attn". */
  rows: number[];
  row_labels: string[];
  num_layers: number;
  col_start: number;
  /** The columns the grids carry cells for: [cell_start, cell_end) (col_start … n_tokens by default). */
  cell_start: number;
  cell_end: number;
  n_tokens: number;
  total_tokens: number;
  top_k: number;
  statistics: string[];
  units: string[];
  lens: string;
  notice: string;
  layer_stride: number;
  grids: GridMeta[];
  /** Names of the A/B diff statistics (statistics.py DIFF_STATISTICS) with two grids; [] otherwise. */
  diff: string[];
  /** Labels of the pinned items whose log-probabilities each grid carries, in their order. */
  pins: string[];
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
  pins: Bytes;
}

export interface Payload {
  header: Header;
  grids: GridBuffers[];
  /** f16 [D][R][C], D = header.diff.length; empty when header.diff is []. */
  diff: Bytes;
  token_ids: Bytes;
  token_spans: Bytes;
}

export interface ViewState {
  header: Header;
  rows: number[];
  rowLabels: string[];
  nTokens: number;
  grids: Cells[];
  tokenIds: Uint32Array;
  /** [T][2] flattened: start, end in UTF-16 code units. */
  tokenSpans: Uint32Array;
  /** A/B diff statistics [D][R][T] flattened, in header.diff order; null with one grid. */
  diff: Float32Array | null;
  /** [T]: 1 where a column's cells are still to come ("cells" updates); null when none is. */
  pending: Uint8Array | null;
}

export class PayloadError extends Error {}

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

/** Every half-precision value, by its bits: a long paste's update carries hundreds of thousands of
 * them, and a lookup is about ten times faster than halfToFloat's arithmetic. Made on the first large
 * read (making it costs about as much as reading 65,536 values the slow way). */
let halves: Float32Array | null = null;
const TABLE_FROM = 0x4000;

export function readF16(data: Bytes, count: number, what: string): Float32Array {
  const view = littleEndianView(data, 2, count, what);
  const out = new Float32Array(count);
  if (count < TABLE_FROM && !halves) {
    for (let i = 0; i < count; i++) out[i] = halfToFloat(view.getUint16(2 * i, true));
    return out;
  }
  if (!halves) {
    halves = new Float32Array(0x10000);
    for (let h = 0; h < 0x10000; h++) halves[h] = halfToFloat(h);
  }
  const table = halves;
  for (let i = 0; i < count; i++) out[i] = table[view.getUint16(2 * i, true)] as number;
  return out;
}

export function readF32(data: Bytes, count: number, what: string): Float32Array {
  const view = littleEndianView(data, 4, count, what);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = view.getFloat32(4 * i, true);
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
  grids: Cells[];
  patches: (Float32Array | null)[];
  tokenIds: Uint32Array;
  tokenSpans: Uint32Array;
  /** [D][R][C] of an A/B update; null when header.diff is []. */
  diff: Float32Array | null;
}

// --- checking a payload before anything is sized or indexed from it -----------------------------
// lens_widget/payload.py makes the same checks, in the same order, with the same messages (up to how
// a value is shown), so that the two decoders refuse exactly the same payloads:
// js/fixtures/payload_cases.json holds both to it (js/payload.test.ts, tests/test_payload.py).

const BUFFERS = ["stats", "top_ids", "top_probs", "id_table", "patch", "pins"] as const;

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
  if (!isWhole(header.version) || header.version !== VERSION) {
    throw new PayloadError(`payload version ${show(header.version)}, expected ${VERSION}`);
  }
  const kind = header.kind;
  if (typeof kind !== "string" || !KINDS.includes(kind)) throw new PayloadError(`unknown update kind ${show(kind)}`);
  for (const [name, least] of [["num_layers", 0], ["col_start", 0], ["n_tokens", 0], ["total_tokens", 0], ["top_k", 1], ["layer_stride", 1]] as const) {
    const value = header[name];
    if (!isWhole(value) || value < least) {
      throw new PayloadError(`header.${name} must be a ${least ? "positive" : "non-negative"} integer, got ${show(value)}`);
    }
  }
  const h = { ...(header as unknown as Header) };
  if (h.col_start > h.n_tokens) throw new PayloadError(`header.col_start is after n_tokens (${h.col_start} > ${h.n_tokens})`);
  if (kind === "cells") {
    if (h.col_start !== h.n_tokens) throw new PayloadError(`header.col_start must be n_tokens in a "cells" update, got ${h.col_start}`);
  } else if (kind !== "columns" && h.col_start !== 0) {
    throw new PayloadError(`header.col_start must be 0 in a "${kind}" update, got ${h.col_start}`);
  }
  for (const [name, fallback] of [["cell_start", h.col_start], ["cell_end", h.n_tokens]] as const) {
    const value: unknown = header[name];
    if (value === undefined) h[name] = fallback;
    else if (!isWhole(value)) throw new PayloadError(`header.${name} must be a non-negative integer, got ${show(value)}`);
  }
  const first = kind === "cells" ? 0 : h.col_start;
  if (!(first <= h.cell_start && h.cell_start <= h.cell_end && h.cell_end <= h.n_tokens)) {
    throw new PayloadError(`header.cell_start … cell_end (${h.cell_start} … ${h.cell_end}) must lie within ${first} … n_tokens (${h.n_tokens})`);
  }
  if (kind === "rows" && (h.cell_start !== 0 || h.cell_end !== h.n_tokens)) {
    throw new PayloadError('a "rows" update carries every column: header.cell_start must be 0 and cell_end n_tokens');
  }
  if (h.total_tokens < h.n_tokens) throw new PayloadError(`header.total_tokens is less than n_tokens (${h.total_tokens} < ${h.n_tokens})`);
  const rows: unknown = header.rows;
  if (!Array.isArray(rows)) throw new PayloadError(`header.rows must be a list of layer indices, got ${show(rows)}`);
  rows.forEach((row: unknown, i) => {
    if (!isWhole(row) || row > 2 * h.num_layers) {
      throw new PayloadError(`header.rows[${i}] must be a row id from 0 to 2 × num_layers (${2 * h.num_layers}), got ${show(row)}`);
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
  const diff = header.diff;
  if (!isStrings(diff)) throw new PayloadError(`header.diff must be a list of strings, got ${show(diff)}`);
  // The diff compares a pair of cells: with any other number of grids there is no pair to compare.
  if (diff.length && grids.length !== 2) throw new PayloadError(`header.diff needs exactly two grids, got ${grids.length}`);
  const pins = header.pins;
  if (!isStrings(pins) || new Set(pins).size !== pins.length) throw new PayloadError(`header.pins must be a list of distinct strings, got ${show(pins)}`);
  return h;
}

/**
 * Unpack one update, checking the header and every size against it. Anything that does not follow
 * the format throws PayloadError (never a TypeError or RangeError), so the view can tell a bad
 * payload from its own bugs and ask for a full update instead.
 */
/** Marks where a binary buffer was taken out of a payload sent as a message (lens_widget/payload.py). */
export const BUFFER_KEY = "$buffer";
export const BASE64_KEY = "$base64";
/** Canonical padded base64, the one form both decoders take (atob and b64decode differ on others). */
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** The payload a kernel message carried: each {"$buffer": i} in `content` becomes buffers[i], each
 * {"$base64": s} the bytes it encodes (what the kernel sends a host that carries binary buffers as
 * JSON number arrays: VS Code). */
export function fromMessage(content: unknown, buffers: readonly unknown[]): unknown {
  if (Array.isArray(content)) return content.map((item) => fromMessage(item, buffers));
  if (!isObject(content)) return content;
  const keys = Object.keys(content);
  if (keys.length === 1 && keys[0] === BUFFER_KEY) {
    const index = content[BUFFER_KEY];
    if (!isWhole(index) || index >= buffers.length || !isBytes(buffers[index])) {
      throw new PayloadError(`the message names buffer ${show(index)} of ${buffers.length} readable ones`);
    }
    return buffers[index];
  }
  if (keys.length === 1 && keys[0] === BASE64_KEY) {
    const encoded = content[BASE64_KEY];
    if (typeof encoded !== "string" || !BASE64.test(encoded)) {
      throw new PayloadError(`the message's base64 buffer ${show(encoded)} is not base64`);
    }
    return fromBase64(encoded);
  }
  return Object.fromEntries(keys.map((key) => [key, fromMessage(content[key], buffers)]));
}

function fromBase64(encoded: string): DataView {
  const text = atob(encoded);
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return new DataView(bytes.buffer);
}

export function decodeUpdate(payload: Payload): DecodedUpdate {
  const raw: unknown = payload;
  if (!isObject(raw)) throw new PayloadError(`payload is not an object: ${show(raw)}`);
  const header = checkHeader(raw.header);
  const S = header.statistics.length;
  const R = header.rows.length;
  const C = header.cell_end - header.cell_start;
  const fresh = header.n_tokens - header.col_start;
  const k = header.top_k;
  const buffers: unknown = raw.grids;
  if (!Array.isArray(buffers) || buffers.length !== header.grids.length) {
    throw new PayloadError(`grids must be a list of ${header.grids.length} grid(s), one per header.grids entry`);
  }
  const grids: Cells[] = [];
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
    const pins = readF32(b.pins, header.pins.length * R * C, `grids[${g}].pins`);
    grids.push({ stats, topIds, topProbs, pins });
    patches.push(patch);
  });
  for (const name of ["token_ids", "token_spans"] as const) {
    if (!isBytes(raw[name])) throw new PayloadError(`${name} must be a binary buffer, got ${show(raw[name])}`);
  }
  if (!isBytes(raw.diff)) throw new PayloadError(`diff must be a binary buffer, got ${show(raw.diff)}`);
  const D = header.diff.length;
  const diff = D ? readF16(raw.diff, D * R * C, "diff") : null;
  if (!D && bytesOf(raw.diff).byteLength) throw new PayloadError("diff must be empty when header.diff is []");
  return {
    header,
    grids,
    patches,
    tokenIds: readU32(payload.token_ids, fresh, "token_ids"),
    tokenSpans: readU32(payload.token_spans, 2 * fresh, "token_spans"),
    diff,
  };
}

// --- the update logic, mirroring payload.py's splice_columns and merge_rows ---------------------

/** How applyUpdate may treat the state it is given. */
export interface ApplyOptions {
  /**
   * The caller hands `state` over and never reads it again (a receiver replacing its state): a
   * "cells" update then writes its columns into `state`'s arrays, which the new state shares, instead
   * of copying the whole grid for a few columns. Checks still come first, so a refused update has
   * written nothing.
   */
  handOver?: boolean;
}

/**
 * The receiver's state after one update; pure (never mutates `state`) unless `options.handOver`. A
 * delta must fit the state it is applied to (same grids, statistics and top_k; columns that exist;
 * rows the state has), else PayloadError: a state whose arrays disagree with its header would be
 * drawn wrong, where a refusal makes the widget ask for a full update.
 */
export function applyUpdate(state: ViewState | null, payload: Payload, options: ApplyOptions = {}): ViewState {
  const update = decodeUpdate(payload);
  const h = update.header;
  if (h.kind === "full") {
    const R = h.rows.length;
    const C = h.cell_end - h.cell_start;
    const size = { statistics: h.statistics.length, topK: h.top_k, pins: h.pins.length };
    return {
      header: h,
      rows: [...h.rows],
      rowLabels: [...h.row_labels],
      nTokens: h.n_tokens,
      grids: update.grids.map((grid) => padColumns(grid, R, C, h.n_tokens, h.cell_start, size)),
      tokenIds: update.tokenIds,
      tokenSpans: update.tokenSpans,
      diff: update.diff && padColumns(statsOnly(update.diff), R, C, h.n_tokens, h.cell_start, { statistics: h.diff.length, topK: 0, pins: 0 }).stats,
      pending: pendingAfter(null, 0, h.n_tokens, h.cell_start, h.cell_end),
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
  const stateDiff = state.header.diff;
  if (h.diff.length !== stateDiff.length || h.diff.some((name, i) => name !== stateDiff[i])) {
    throw new PayloadError("header.diff differs from the state's");
  }
  const statePins = state.header.pins;
  if (h.pins.length !== statePins.length || h.pins.some((label, i) => label !== statePins[i])) {
    throw new PayloadError("header.pins differ from the state's: a change of pins comes as a full update");
  }
  if (h.kind === "columns") return applyColumns(state, update);
  return h.kind === "cells" ? applyCells(state, update, options.handOver === true) : applyRows(state, update);
}

function applyColumns(state: ViewState, update: DecodedUpdate): ViewState {
  const h = update.header;
  const start = h.col_start;
  const T = h.n_tokens;
  if (start > state.nTokens) throw new PayloadError(`header.col_start (${start}) is past the state's ${state.nTokens} columns`);
  const missing = h.rows.filter((r) => !state.rows.includes(r));
  if (missing.length) {
    throw new PayloadError(`header.rows [${missing.join(", ")}] are not among the state's rows, which a columns update keeps`);
  }
  const size = { statistics: h.statistics.length, topK: h.top_k, pins: h.pins.length };
  // A patch implies both patched statistics are named (decodeUpdate checked).
  const patched = PATCHED.map((name) => h.statistics.indexOf(name)).filter((s) => s >= 0);
  const C = T - start;
  const R = h.rows.length;
  const cells = h.cell_end - h.cell_start;
  const at = h.cell_start - start;
  const grids = state.grids.map((old, g) => {
    const fresh = padColumns(update.grids[g] as Cells, R, cells, C, at, size);
    return spliceColumns(old, state.rows, state.nTokens, h.rows, start, fresh, C, size, update.patches[g] ?? null, patched);
  });
  // The diff statistics do not depend on the next token, so they have no patch.
  const diffSize = { statistics: h.diff.length, topK: 0, pins: 0 };
  const diff =
    state.diff && update.diff
      ? spliceColumns(statsOnly(state.diff), state.rows, state.nTokens, h.rows, start, padColumns(statsOnly(update.diff), R, cells, C, at, diffSize), C, diffSize).stats
      : null;
  const tokenIds = new Uint32Array(T);
  tokenIds.set(state.tokenIds.subarray(0, start));
  tokenIds.set(update.tokenIds, start);
  const tokenSpans = new Uint32Array(2 * T);
  tokenSpans.set(state.tokenSpans.subarray(0, 2 * start));
  tokenSpans.set(update.tokenSpans, 2 * start);
  const pending = pendingAfter(state.pending, start, T, h.cell_start, h.cell_end);
  return { header: h, rows: [...h.rows], rowLabels: [...h.row_labels], nTokens: T, grids, tokenIds, tokenSpans, diff, pending };
}

function applyCells(state: ViewState, update: DecodedUpdate, inPlace: boolean): ViewState {
  const h = update.header;
  if (h.n_tokens !== state.nTokens) {
    throw new PayloadError(`header.n_tokens (${h.n_tokens}) is not the state's ${state.nTokens}: cells fill its columns`);
  }
  if (h.rows.length !== state.rows.length || h.rows.some((r, i) => r !== state.rows[i])) {
    throw new PayloadError(`header.rows [${h.rows.join(", ")}] are not the state's rows [${state.rows.join(", ")}], which a cells update fills`);
  }
  const R = state.rows.length;
  const T = state.nTokens;
  const C = h.cell_end - h.cell_start;
  const size = { statistics: h.statistics.length, topK: h.top_k, pins: h.pins.length };
  const grids = state.grids.map((old, g) => fillColumns(old, R, T, h.cell_start, update.grids[g] as Cells, C, size, inPlace));
  const diff =
    state.diff && update.diff
      ? fillColumns(statsOnly(state.diff), R, T, h.cell_start, statsOnly(update.diff), C, { statistics: h.diff.length, topK: 0, pins: 0 }, inPlace).stats
      : null;
  let pending: Uint8Array | null = null;
  if (state.pending) {
    pending = inPlace ? state.pending : state.pending.slice();
    pending.fill(0, h.cell_start, h.cell_end);
    if (!pending.includes(1)) pending = null;
  }
  // The notice is about the whole grid, and the filled cells may change it (non-finite logits).
  return { ...state, header: { ...state.header, notice: h.notice }, grids, diff, pending };
}

function applyRows(state: ViewState, update: DecodedUpdate): ViewState {
  const h = update.header;
  // col_start is 0: checkHeader saw to it.
  if (h.n_tokens !== state.nTokens) {
    throw new PayloadError(`header.n_tokens (${h.n_tokens}) is not the state's ${state.nTokens}: a rows update covers them all`);
  }
  const T = state.nTokens;
  const size = { statistics: h.statistics.length, topK: h.top_k, pins: h.pins.length };
  const L = state.header.num_layers; // the state's rows are ordered by its model's depth
  const grids = state.grids.map((old, g) => mergeRows(old, state.rows, update.grids[g] as Cells, h.rows, T, size, L)[0]);
  const rows = byDepth([...state.rows, ...h.rows], L);
  const diff =
    state.diff && update.diff
      ? mergeRows(statsOnly(state.diff), state.rows, statsOnly(update.diff), h.rows, T, { statistics: h.diff.length, topK: 0, pins: 0 }, L)[0].stats
      : null;
  const labels = new Map<number, string>();
  state.rows.forEach((r, i) => labels.set(r, state.rowLabels[i] ?? String(r)));
  h.rows.forEach((r, i) => labels.set(r, h.row_labels[i] ?? String(r)));
  const rowLabels = rows.map((r) => labels.get(r) ?? String(r));
  return { ...state, header: { ...h, rows, row_labels: rowLabels }, rows, rowLabels: [...rowLabels], grids, diff };
}

/** Whether column `col` of the state has no cells yet. */
export function isPending(state: ViewState, col: number): boolean {
  return state.pending !== null && state.pending[col] === 1;
}

const pendingCounts = new WeakMap<ViewState, number>();

/** How many of the state's columns have no cells yet; counted once per state (the status line and the
 * view's data attributes ask on every message and frame, and a state is never changed once made). */
export function pendingCount(state: ViewState): number {
  let count = pendingCounts.get(state);
  if (count === undefined) pendingCounts.set(state, (count = state.pending?.reduce((n, flag) => n + flag, 0) ?? 0));
  return count;
}

/** Accessors over the flattened arrays. */
export function statAt(state: ViewState, grid: number, stat: number, row: number, col: number): number {
  const g = state.grids[grid] as Cells;
  return g.stats[(stat * state.rows.length + row) * state.nTokens + col] as number;
}

/** A diff statistic (index into header.diff) of the cell pair at (row, col); only when state.diff is set. */
export function diffAt(state: ViewState, stat: number, row: number, col: number): number {
  if (state.diff === null) throw new RangeError("diffAt needs an A/B state (header.diff is [])");
  return state.diff[(stat * state.rows.length + row) * state.nTokens + col] as number;
}

/** A pinned item's log-probability (index into header.pins) at (row, col); NaN where missing. */
export function pinAt(state: ViewState, grid: number, pin: number, row: number, col: number): number {
  const g = state.grids[grid] as Cells;
  return (g.pins[(pin * state.rows.length + row) * state.nTokens + col] as number | undefined) ?? NaN;
}

export function topAt(state: ViewState, grid: number, row: number, col: number): { ids: number[]; probs: number[] } {
  const g = state.grids[grid] as Cells;
  const k = state.header.top_k;
  const base = (row * state.nTokens + col) * k;
  return { ids: Array.from(g.topIds.subarray(base, base + k)), probs: Array.from(g.topProbs.subarray(base, base + k)) };
}

/** How a view shows a statistic (statistics.py STATISTIC_INFO), sent once with the vocabulary. */
export interface StatisticInfo {
  name: string;
  label: string;
  /** Empty for plain numbers (a probability, a rank). */
  units: string;
  /** A view reverses these so that bright always means "confident / close". */
  lower_is_better: boolean;
  scale: "sequential" | "divergence" | "probability" | "rank";
  /** The top of the statistic's fixed scale: 1, ln 2, ln V or V (V: the vocabulary's size). */
  bound?: "one" | "ln_2" | "ln_vocab" | "vocab";
}

export interface Vocabulary {
  size: number;
  offsets: Bytes;
  utf8: Bytes;
  /** Single-model statistics, then diff statistics; absent from a kernel older than payload version 2. */
  statistics?: StatisticInfo[];
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

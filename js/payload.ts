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
  /** Added by the widget: order of updates, the update a delta applies to (-1: none), text revision. */
  seq: number;
  base: number;
  text_revision: number;
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

export function decodeUpdate(payload: Payload): DecodedUpdate {
  const header = payload?.header;
  if (!header || typeof header !== "object") throw new PayloadError("payload has no header");
  if (header.version !== 1) throw new PayloadError(`payload version ${String(header.version)}, expected 1`);
  if (!["full", "columns", "rows"].includes(header.kind)) throw new PayloadError(`unknown update kind ${header.kind}`);
  const S = header.statistics.length;
  const R = header.rows.length;
  const C = header.n_tokens - header.col_start;
  const k = header.top_k;
  if (!(C >= 0)) throw new PayloadError("col_start is after n_tokens");
  if (!Array.isArray(payload.grids) || payload.grids.length !== header.grids.length) {
    throw new PayloadError("grid buffers do not match the header");
  }
  const grids: Grid[] = [];
  const patches: (Float32Array | null)[] = [];
  payload.grids.forEach((buffers, g) => {
    const meta = header.grids[g] as GridMeta;
    const stats = readF16(buffers.stats, S * R * C, "stats");
    let topIds: Uint32Array;
    if (meta.ids === "table") {
      const table = readU32(buffers.id_table, bytesOf(buffers.id_table).byteLength / 4, "id_table");
      const index = readU16(buffers.top_ids, R * C * k, "top_ids");
      topIds = new Uint32Array(index.length);
      for (let i = 0; i < index.length; i++) {
        const id = table[index[i] as number];
        if (id === undefined) throw new PayloadError("top_ids index past the end of id_table");
        topIds[i] = id;
      }
    } else if (meta.ids === "uint16") {
      topIds = readU16(buffers.top_ids, R * C * k, "top_ids");
    } else {
      topIds = readU32(buffers.top_ids, R * C * k, "top_ids");
    }
    const topProbs = readF16(buffers.top_probs, R * C * k, "top_probs");
    const patchBytes = bytesOf(buffers.patch).byteLength;
    patches.push(patchBytes ? readF16(buffers.patch, 2 * R, "patch") : null);
    grids.push({ stats, topIds, topProbs });
  });
  return {
    header,
    grids,
    patches,
    tokenIds: readU32(payload.token_ids, C, "token_ids"),
    tokenSpans: readU32(payload.token_spans, 2 * C, "token_spans"),
  };
}

/** The receiver's state after one update; pure (never mutates `state`). */
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
  if (state === null) throw new PayloadError(`a ${h.kind} update needs a state to apply to`);
  if (update.grids.length !== state.grids.length) throw new PayloadError("grid count changed");
  return h.kind === "columns" ? applyColumns(state, update) : applyRows(state, update);
}

function applyColumns(state: ViewState, update: DecodedUpdate): ViewState {
  const h = update.header;
  const start = h.col_start;
  const T = h.n_tokens;
  const S = h.statistics.length;
  const k = h.top_k;
  if (start > state.nTokens) throw new PayloadError("columns update starts past the state's columns");
  const keep = h.rows.map((r) => {
    const i = state.rows.indexOf(r);
    if (i < 0) throw new PayloadError(`columns update for row ${r} the state does not have`);
    return i;
  });
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
  if (h.col_start !== 0 || h.n_tokens !== state.nTokens) throw new PayloadError("a rows update must cover every column");
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

// Cells: one model's lens cells, and the algebra that edits them (lens_widget/cells.py, in TypeScript).
//
// A receiver applies each kind of update with these four edits (payload.ts), exactly as the kernel's
// session edits its own cells with cells.py, so what a view rebuilds is what the kernel holds. No wire
// format here. Every array is flattened as [lead][rows][columns][trail]: the statistics lead with the
// statistic and trail with 1, the top ids and probabilities lead with 1 and trail with top-k; so each
// edit is written once for all of them.

import { byDepth } from "./rows";

/** stats: [S][R][T] flattened; topIds, topProbs: [R][T][k] flattened; pins: [P][R][T] flattened,
 * each pinned item's log-probability. */
export interface Cells {
  stats: Float32Array;
  topIds: Uint32Array;
  topProbs: Float32Array;
  pins: Float32Array;
}

/** The sizes a flattened block does not carry (cells.py has them in its arrays' shapes). */
export interface CellsSize {
  statistics: number;
  topK: number;
  pins: number;
}

type Flat = Float32Array | Uint32Array;
interface Axes {
  lead: number;
  trail: number;
}
type Name = keyof Cells;
const NAMES: readonly Name[] = ["stats", "topIds", "topProbs", "pins"];
/** Where a missing (pending) cell has NaN rather than 0. */
const FLOATS_MISSING: ReadonlySet<Name> = new Set(["stats", "pins"]);

function axes(name: Name, size: CellsSize): Axes {
  if (name === "stats") return { lead: size.statistics, trail: 1 };
  if (name === "pins") return { lead: size.pins, trail: 1 };
  return { lead: 1, trail: size.topK };
}

function like<A extends Flat>(array: A, length: number): A {
  return (array instanceof Float32Array ? new Float32Array(length) : new Uint32Array(length)) as A;
}

/** Each array of `cells` through `edit`, with its axes. */
function map(cells: Cells, size: CellsSize, edit: <A extends Flat>(array: A, axes: Axes, name: Name) => A): Cells {
  return {
    stats: edit(cells.stats, axes("stats", size), "stats"),
    topIds: edit(cells.topIds, axes("topIds", size), "topIds"),
    topProbs: edit(cells.topProbs, axes("topProbs", size), "topProbs"),
    pins: edit(cells.pins, axes("pins", size), "pins"),
  };
}

/** Statistics without top-k (the A/B diff, topK 0), so that the same edits serve them. */
export function statsOnly(stats: Float32Array): Cells {
  return { stats, topIds: new Uint32Array(0), topProbs: new Float32Array(0), pins: new Float32Array(0) };
}

/**
 * A "columns" update: `old`'s first `start` columns of `rows` (each one of `oldRows`; `old` has
 * `oldColumns` columns), then `fresh`'s `columns` columns; `patch` [patched.length][R] replaces column
 * start - 1 of the `patched` statistics, whose next token changed. Pure: returns new arrays.
 */
export function spliceColumns(
  old: Cells,
  oldRows: readonly number[],
  oldColumns: number,
  rows: readonly number[],
  start: number,
  fresh: Cells,
  columns: number,
  size: CellsSize,
  patch: Float32Array | null = null,
  patched: readonly number[] = [],
): Cells {
  const keep = rows.map((r) => oldRows.indexOf(r));
  const R = rows.length;
  const T = start + columns;
  const out = map(old, size, (array, { lead, trail }, name) => {
    const into = like(array, lead * R * T * trail);
    const added = fresh[name];
    for (let l = 0; l < lead; l++) {
      keep.forEach((from, r) => {
        const at = ((l * R + r) * T) * trail;
        const src = (l * oldRows.length + from) * oldColumns * trail;
        into.set(array.subarray(src, src + start * trail), at);
        const next = (l * R + r) * columns * trail;
        into.set(added.subarray(next, next + columns * trail), at + start * trail);
      });
    }
    return into;
  });
  if (patch && start > 0) {
    patched.forEach((s, p) => {
      for (let r = 0; r < R; r++) out.stats[(s * R + r) * T + start - 1] = patch[p * R + r] as number;
    });
  }
  return out;
}

/**
 * A "rows" update: the rows of both, from the embeddings up (rows.ts byDepth: sub-layer rows sit between
 * the layers of a model of `numLayers`), `fresh`'s replacing `old`'s; both have `columns` columns.
 * Pure: returns new arrays and the merged rows.
 */
export function mergeRows(old: Cells, oldRows: readonly number[], fresh: Cells, freshRows: readonly number[], columns: number, size: CellsSize, numLayers: number): [Cells, number[]] {
  const rows = byDepth([...oldRows, ...freshRows], numLayers);
  const R = rows.length;
  const merged = map(old, size, (array, { lead, trail }, name) => {
    const into = like(array, lead * R * columns * trail);
    const width = columns * trail;
    rows.forEach((row, r) => {
      const inFresh = freshRows.indexOf(row);
      const src = inFresh >= 0 ? fresh[name] : array;
      const i = inFresh >= 0 ? inFresh : oldRows.indexOf(row);
      const srcRows = inFresh >= 0 ? freshRows.length : oldRows.length;
      for (let l = 0; l < lead; l++) into.set(src.subarray((l * srcRows + i) * width, (l * srcRows + i + 1) * width), (l * R + r) * width);
    });
    return into;
  });
  return [merged, rows];
}

/**
 * `cells` (`columns` columns of `rows` rows) placed at column `start` of a block of `total` columns;
 * the other columns are pending placeholders (NaN statistics, top ids 0, top probabilities 0).
 */
export function padColumns(cells: Cells, rows: number, columns: number, total: number, start: number, size: CellsSize): Cells {
  if (start === 0 && columns === total) return cells;
  const placeholders = map(cells, size, (array, { lead, trail }, name) => {
    const into = like(array, lead * rows * total * trail);
    if (FLOATS_MISSING.has(name)) into.fill(NaN);
    return into;
  });
  return writeColumns(placeholders, rows, total, start, cells, columns, size);
}

/** A "cells" update: `old` (`rows` rows, `total` columns) with `columns` columns from `start` replaced by
 * `cells`. A copy, unless `inPlace`: then `old`'s arrays are written and returned, so that filling a
 * few columns costs those columns, not the whole grid (a paste's columns arrive in many chunks). */
export function fillColumns(old: Cells, rows: number, total: number, start: number, cells: Cells, columns: number, size: CellsSize, inPlace = false): Cells {
  const into = inPlace ? { ...old } : map(old, size, (array) => array.slice() as typeof array);
  return writeColumns(into, rows, total, start, cells, columns, size);
}

/** `cells` written over `columns` columns from `start` of `into` (in place), which it returns. */
function writeColumns(into: Cells, rows: number, total: number, start: number, cells: Cells, columns: number, size: CellsSize): Cells {
  for (const name of NAMES) {
    const { lead, trail } = axes(name, size);
    const target = into[name];
    const source = cells[name];
    for (let line = 0; line < lead * rows; line++) {
      target.set(source.subarray(line * columns * trail, (line + 1) * columns * trail), (line * total + start) * trail);
    }
  }
  return into;
}

/** The pending flags once columns keep … total - 1 changed and only [first, end) of them came with cells. */
export function pendingAfter(pending: Uint8Array | null, keep: number, total: number, first: number, end: number): Uint8Array | null {
  const flags = new Uint8Array(total);
  if (pending) flags.set(pending.subarray(0, keep));
  flags.fill(1, keep, first);
  flags.fill(1, end, total);
  return flags.includes(1) ? flags : null;
}

import { describe, expect, it } from "vitest";
import { type Cells, fillColumns, mergeRows, padColumns, pendingAfter, spliceColumns, statsOnly } from "./cells";

describe("spliceColumns and mergeRows", () => {
  // Two statistics, rows [0, 2] (old) with 3 columns, top-k 1: values name their place (s, row, col).
  const old: Cells = {
    stats: Float32Array.from([0, 1, 2, 10, 11, 12, 100, 101, 102, 110, 111, 112]),
    topIds: Uint32Array.from([0, 1, 2, 10, 11, 12]),
    topProbs: Float32Array.from([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]),
    pins: Float32Array.from([-1, -2, -3, -11, -12, -13]),
  };
  const size = { statistics: 2, topK: 1, pins: 1 };

  it("keep the first start columns of the listed rows, then the fresh ones, with the patch at start - 1", () => {
    const fresh: Cells = { stats: Float32Array.from([-1, -2]), topIds: Uint32Array.from([7]), topProbs: Float32Array.from([0.9]), pins: Float32Array.from([-99]) };
    const copy = Array.from(old.stats);
    const out = spliceColumns(old, [0, 2], 3, [2], 2, fresh, 1, size, Float32Array.from([55]), [1]);
    expect(Array.from(out.stats)).toEqual([10, 11, -1, 110, 55, -2]);
    expect(Array.from(out.topIds)).toEqual([10, 11, 7]);
    expect(Array.from(out.pins)).toEqual([-11, -12, -99]);
    expect(Array.from(old.stats)).toEqual(copy);
  });

  it("merge rows in layer order, the fresh rows replacing the old", () => {
    const fresh: Cells = { stats: Float32Array.from([-1, -2, -3, -4, -5, -6]), topIds: Uint32Array.from([7, 8, 9]), topProbs: Float32Array.from([1, 1, 1]), pins: Float32Array.from([-7, -8, -9]) };
    const [out, rows] = mergeRows(old, [0, 2], fresh, [1], 3, size, 2);
    expect(rows).toEqual([0, 1, 2]);
    expect(Array.from(out.stats)).toEqual([0, 1, 2, -1, -2, -3, 10, 11, 12, 100, 101, 102, -4, -5, -6, 110, 111, 112]);
    expect(Array.from(out.topIds)).toEqual([0, 1, 2, 7, 8, 9, 10, 11, 12]);
    expect(Array.from(out.pins)).toEqual([-1, -2, -3, -7, -8, -9, -11, -12, -13]);
  });

  it("serve statistics without top-k (the A/B diff) through statsOnly", () => {
    const [out] = mergeRows(statsOnly(old.stats), [0, 2], statsOnly(Float32Array.from([-1, -2, -3, -4, -5, -6])), [2], 3, { statistics: 2, topK: 0, pins: 0 }, 2);
    expect(Array.from(out.stats)).toEqual([0, 1, 2, -1, -2, -3, 100, 101, 102, -4, -5, -6]);
    expect(out.topIds.length).toBe(0);
  });
});

describe("padColumns, fillColumns and pendingAfter", () => {
  // One statistic, one row, top-k 2; columns 1 … 2 of 4 arrive first.
  const size = { statistics: 1, topK: 2, pins: 0 };
  const part: Cells = { stats: Float32Array.from([5, 6]), topIds: Uint32Array.from([1, 2, 3, 4]), topProbs: Float32Array.from([0.5, 0.25, 0.5, 0.25]), pins: new Float32Array(0) };

  it("pad the missing columns with placeholders, then fill them", () => {
    const padded = padColumns(part, 1, 2, 4, 1, size);
    expect(Array.from(padded.stats)).toEqual([NaN, 5, 6, NaN]);
    expect(Array.from(padded.topIds)).toEqual([0, 0, 1, 2, 3, 4, 0, 0]);
    const rest: Cells = { stats: Float32Array.from([9]), topIds: Uint32Array.from([7, 8]), topProbs: Float32Array.from([1, 0]), pins: new Float32Array(0) };
    const filled = fillColumns(padded, 1, 4, 3, rest, 1, size);
    expect(Array.from(filled.stats)).toEqual([NaN, 5, 6, 9]);
    expect(Array.from(filled.topIds)).toEqual([0, 0, 1, 2, 3, 4, 7, 8]);
    expect(Array.from(padded.stats)).toEqual([NaN, 5, 6, NaN]); // fillColumns copies
  });

  it("mark the changed columns that came without cells", () => {
    expect(pendingAfter(null, 0, 4, 0, 4)).toBeNull();
    const flags = pendingAfter(null, 1, 6, 2, 4);
    expect(Array.from(flags ?? [])).toEqual([0, 1, 0, 0, 1, 1]);
    expect(Array.from(pendingAfter(flags, 2, 3, 2, 3) ?? [])).toEqual([0, 1, 0]);
  });
});

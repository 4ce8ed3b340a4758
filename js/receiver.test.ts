import { describe, expect, it } from "vitest";
import fixture from "./fixtures/payload_stream.json";
import type { Payload } from "./payload";
import { Receiver } from "./receiver";
import { ManualClock, revive, toMessage } from "./testing";

const updates = revive(fixture.updates) as Payload[];

function receiver(): Receiver {
  return new Receiver(() => undefined, new ManualClock());
}

function delta(r: Receiver, payload: Payload): boolean {
  const { content, buffers } = toMessage(payload);
  return r.delta(content, buffers);
}

describe("Receiver", () => {
  it("says which columns changed since a state it had: a cells update its cells, a columns update from col_start - 1", () => {
    const r = receiver();
    expect(r.snapshot(updates[0])).toBe(true);
    const full = r.version;
    expect(r.changedSince(full)).toEqual([0, 0]);
    for (const update of updates.slice(1, 5)) delta(r, update);
    const beforeCells = r.version;
    const cells = updates[5]!.header;
    expect(cells.kind).toBe("cells");
    delta(r, updates[5]!);
    expect(r.changedSince(beforeCells)).toEqual([cells.cell_start, cells.cell_end]);
    const columns = updates[6]!.header;
    expect(columns.kind).toBe("columns");
    delta(r, updates[6]!);
    // The text got shorter: every column from the patched one to the old end changed.
    expect(r.changedSince(r.version - 1)).toEqual([columns.col_start - 1, cells.n_tokens]);
    expect(r.changedSince(beforeCells)).toEqual([Math.min(cells.cell_start, columns.col_start - 1), cells.n_tokens]);
    expect(r.changedSince(full)).toBeNull(); // a rows update in between: any column may differ
    expect(r.changedSince(-1)).toBeNull();
  });

  it("moves columnsSeq with the text, rows and lens, not with pending cells", () => {
    const r = receiver();
    r.snapshot(updates[0]);
    for (const update of updates.slice(1, 5)) delta(r, update);
    const seq = r.columnsSeq;
    expect(seq).toBe(updates[4]!.header.seq);
    delta(r, updates[5]!);
    expect(r.seq).toBe(updates[5]!.header.seq);
    expect(r.columnsSeq).toBe(seq);
    delta(r, updates[6]!);
    expect(r.columnsSeq).toBe(updates[6]!.header.seq);
  });

  it("skips a snapshot it already has without a new version", () => {
    const r = receiver();
    r.snapshot(updates[0]);
    const version = r.version;
    expect(r.snapshot(updates[0])).toBe(false);
    expect(r.version).toBe(version);
  });
});

import { describe, expect, it } from "vitest";
import { columnMarks, coveringRange, type RoleRange, writtenColumns } from "./roles";
import { sceneMarks } from "./picture";
import { grid, scene, state } from "./testing";

const role = (r: string, start: number, end: number, special = false): RoleRange => ({ role: r, start, end, special, message: r === "template" ? null : 0 });

describe("coveringRange", () => {
  it("gives each token the range covering most of it, the first of equals, and -1 to none", () => {
    const ranges = [role("template", 0, 4, true), role("user", 4, 10), role("template", 10, 12), role("assistant", 12, 12)];
    // tokens: [0,4) special; [4,7) user; [3,9) mostly user; [9,11) a tie → user; [12,15) past every range
    const spans = Uint32Array.from([0, 4, 4, 7, 3, 9, 9, 11, 12, 15]);
    expect(Array.from(coveringRange(ranges, spans, 5))).toEqual([0, 1, 1, 1, -1]);
  });

  it("gives a token with no text of its own the range it stands in", () => {
    const ranges = [role("template", 0, 4), role("assistant", 4, 9)];
    // [0,0) an added BOS; [4,4) half a character the model wrote first; [6,6) inside; [9,9) at the text's end
    expect(Array.from(coveringRange(ranges, Uint32Array.from([0, 0, 4, 4, 6, 6, 9, 9]), 4))).toEqual([0, 1, 1, 1]);
    expect(Array.from(coveringRange([role("user", 0, 4), role("template", 4, 6)], Uint32Array.from([4, 4, 7, 7]), 2))).toEqual([1, -1]);
  });

  it("reads only the first n spans (the state's columns)", () => {
    expect(Array.from(coveringRange([role("user", 0, 5)], Uint32Array.from([0, 2, 2, 5]), 1))).toEqual([0]);
  });
});

describe("writtenColumns", () => {
  it("marks the tokens the model wrote at least half of, whatever the ranges' order and extra fields", () => {
    const generated = [[10, 14, 3], [4, 6, 3]];
    const spans = Uint32Array.from([0, 4, 4, 6, 6, 10, 9, 11, 12, 20, 0, 0]);
    expect(Array.from(writtenColumns(generated, spans, 6))).toEqual([0, 1, 0, 1, 0, 0]);
  });

  it("marks a token with no text of its own (half a character) that stands in what the model wrote", () => {
    const spans = Uint32Array.from([5, 5, 14, 14, 15, 15, 2, 2]);
    expect(Array.from(writtenColumns([[4, 6, 3], [10, 14, 3]], spans, 4))).toEqual([1, 1, 0, 0]);
  });
});

describe("columnMarks", () => {
  const s = state(grid(1));
  s.tokenSpans = Uint32Array.from([0, 12, 12, 17, 17, 20, 20, 24]);
  const roles = [role("template", 0, 12, true), role("user", 12, 17), role("template", 17, 20), role("assistant", 20, 24)];

  it("gives each column its role and lists the roles present for the key, the template last", () => {
    const m = columnMarks(s, roles, [[20, 24, 2]]);
    expect([0, 1, 2, 3].map((c) => m.role(c)?.role ?? null)).toEqual(["template", "user", "template", "assistant"]);
    expect(m.role(0)?.special).toBe(true);
    expect(m.role(4)).toBeNull();
    expect(m.key).toEqual(["user", "assistant", "template"]);
    expect([m.any, m.anySpecial, m.anyWritten]).toEqual([true, true, true]);
    expect([0, 1, 2, 3].map((c) => m.written(c))).toEqual([false, false, false, true]);
  });

  it("is computed once per state and pair of traits", () => {
    const generated: number[][] = [];
    expect(columnMarks(s, roles, generated)).toBe(columnMarks(s, roles, generated));
    expect(columnMarks(s, [...roles], generated)).not.toBe(columnMarks(s, roles, generated));
  });

  it("marks a scene's displayed columns, and nothing without roles or written text", () => {
    expect(sceneMarks(scene(s))).toBeNull();
    expect(sceneMarks(scene(s, { roles: [], generated: [] }))).toBeNull();
    const shifted = sceneMarks(scene(s, { roles, first: 1, count: 3 }));
    expect(shifted?.role(0)?.role).toBe("user");
    expect(shifted?.anyWritten).toBe(false);
    expect(sceneMarks(scene(s, { generated: [[20, 24, 2]] }))?.written(3)).toBe(true);
  });
});

import { describe, expect, it } from "vitest";
import { scaleFor } from "./colors";
import { BAND_HEIGHT, cellAt, contentWidth, draw, makeLayout, type Picture, type PictureMarks, roleColor, scrollToShow, visibleColumns } from "./heatmap";
import { palette } from "./theme";

describe("layout", () => {
  const l = makeLayout(13, 256, 600);

  it("spans every column but only draws those in view", () => {
    expect(contentWidth(l)).toBe(l.labelWidth + 256 * l.cellWidth);
    const [first, last] = visibleColumns(l, 0);
    expect(first).toBe(0);
    expect(last).toBe(Math.ceil((600 - l.labelWidth) / l.cellWidth));
    const [f2, l2] = visibleColumns(l, 100 * l.cellWidth + 5);
    expect(f2).toBe(100);
    expect(l2 - f2).toBeLessThanOrEqual(Math.ceil((600 - l.labelWidth) / l.cellWidth) + 1);
    expect(visibleColumns(makeLayout(13, 3, 600), 0)).toEqual([0, 3]);
  });

  it("hit-tests cells, scrolled or not, and nothing on labels or the axis", () => {
    expect(cellAt(l, l.labelWidth + 1, 1, 0)).toEqual({ row: 0, col: 0 });
    expect(cellAt(l, l.labelWidth + l.cellWidth * 2 + 1, l.cellHeight * 12 + 1, 0)).toEqual({ row: 12, col: 2 });
    expect(cellAt(l, l.labelWidth + 1, 1, 10 * l.cellWidth)).toEqual({ row: 0, col: 10 });
    expect(cellAt(l, l.labelWidth - 1, 1, 0)).toBeNull();
    expect(cellAt(l, l.labelWidth + 1, 13 * l.cellHeight + 2, 0)).toBeNull();
  });

  it("scrolls just enough to show a column", () => {
    expect(scrollToShow(l, 0, 0)).toBe(0);
    const visible = 600 - l.labelWidth;
    expect(scrollToShow(l, 50, 0)).toBe(51 * l.cellWidth - visible);
    expect(scrollToShow(l, 3, 10 * l.cellWidth)).toBe(3 * l.cellWidth);
  });
});

/** A 2-D context that records what is drawn (happy-dom has no canvas). */
function recordingContext() {
  const calls: { op: string; args: unknown[] }[] = [];
  const ctx: Record<string, unknown> = {
    measureText: (s: string) => ({ width: s.length * 7 }),
  };
  for (const op of ["save", "restore", "fillRect", "fillText", "strokeRect", "beginPath", "rect", "clip", "moveTo", "lineTo", "stroke", "fill", "closePath"]) {
    ctx[op] = (...args: unknown[]) => calls.push({ op, args });
  }
  return { ctx: ctx as unknown as CanvasRenderingContext2D, calls };
}

function picture(rows: number, cols: number, scrollLeft = 0): Picture {
  return {
    layout: makeLayout(rows, cols, 600),
    scrollLeft,
    rowLabels: Array.from({ length: rows }, (_, i) => (i === 0 ? "output" : String(rows - 1 - i))),
    value: (r, c) => (c === 1 ? NaN : r + c),
    invalid: () => false,
    pending: () => false,
    diverging: false,
    marked: () => false,
    top1: (r, c) => `tok${r}.${c}`,
    inputToken: (c) => `in${c}`,
    scale: scaleFor("entropy", [0, 10]),
    reversed: true,
    palette: palette(false),
    selected: { row: 0, col: 0 },
    pinned: true,
  };
}

describe("draw", () => {
  it("draws every visible cell once, with its top-1 token, and nothing off screen", () => {
    const { ctx, calls } = recordingContext();
    const p = picture(13, 256);
    draw(ctx, p);
    const [first, last] = visibleColumns(p.layout, 0);
    const texts = calls.filter((c) => c.op === "fillText").map((c) => c.args[0] as string);
    expect(texts.filter((t) => t.startsWith("tok")).length).toBe(13 * (last - first));
    expect(texts).toContain("output");
    expect(texts.some((t) => t.startsWith("tok0.200"))).toBe(false);
    expect(calls.some((c) => c.op === "strokeRect")).toBe(true);
  });

  it("cost does not grow with the number of columns", () => {
    const small = recordingContext();
    draw(small.ctx, picture(48, 64));
    const large = recordingContext();
    draw(large.ctx, picture(48, 4096, 2000 * 58));
    expect(large.calls.length).toBeLessThanOrEqual(small.calls.length + 48 * 3);
  });

  it("draws invalid cells hatched and labelled NaN, never coloured like a real value", () => {
    const { ctx, calls } = recordingContext();
    const p = { ...picture(2, 3), invalid: (r: number, c: number) => r === 1 && c === 2 };
    draw(ctx, p);
    const texts = calls.filter((c) => c.op === "fillText").map((c) => c.args[0] as string);
    expect(texts.filter((t) => t === "NaN")).toHaveLength(1);
    expect(texts).not.toContain("tok1.2");
    expect(calls.some((c) => c.op === "stroke")).toBe(true);
  });

  it("draws a pending column's cells blank with an ellipsis, its input token still shown", () => {
    const { ctx, calls } = recordingContext();
    const p = { ...picture(2, 3), pending: (c: number) => c === 2 };
    draw(ctx, p);
    const texts = calls.filter((c) => c.op === "fillText").map((c) => c.args[0] as string);
    expect(texts.filter((t) => t === "…")).toHaveLength(2);
    expect(texts).not.toContain("tok0.2");
    expect(texts).toContain("in2");
  });

  it("marks cells whose top-1 tokens differ with a corner triangle (a shape, not only a colour)", () => {
    const { ctx, calls } = recordingContext();
    const p = { ...picture(2, 3), marked: (r: number, c: number) => r === 0 && c === 1 };
    draw(ctx, p);
    expect(calls.filter((c) => c.op === "closePath")).toHaveLength(1);
    expect(calls.filter((c) => c.op === "fill")).toHaveLength(1);
  });

  it("truncates long tokens to the cell", () => {
    const { ctx, calls } = recordingContext();
    const p = { ...picture(1, 1), top1: () => "a-very-long-token-text" };
    draw(ctx, p);
    const text = calls.find((c) => c.op === "fillText")!.args[0] as string;
    expect(text.endsWith("…")).toBe(true);
    expect(text.length * 7).toBeLessThanOrEqual(p.layout.cellWidth);
  });
});

describe("the roles band", () => {
  /** A context recording each fillRect and fillText with the fill style and font they were drawn in. */
  function styledContext() {
    const calls: { op: string; args: unknown[]; fillStyle: string; font: string }[] = [];
    const ctx: Record<string, unknown> = { fillStyle: "", font: "", measureText: (s: string) => ({ width: s.length * 7 }) };
    for (const op of ["save", "restore", "fillRect", "fillText", "strokeRect", "beginPath", "rect", "clip", "moveTo", "lineTo", "stroke", "fill", "closePath"]) {
      ctx[op] = (...args: unknown[]) => calls.push({ op, args, fillStyle: String(ctx.fillStyle), font: String(ctx.font) });
    }
    return { ctx: ctx as unknown as CanvasRenderingContext2D, calls };
  }
  const roles = [
    { role: "template", start: 0, end: 1, special: true },
    { role: "user", start: 1, end: 2, special: false },
    { role: "assistant", start: 2, end: 3, special: false },
  ];
  const marks: PictureMarks = {
    role: (c) => roles[c] ?? null,
    written: (c) => c === 2,
    key: ["user", "assistant", "template"],
    anySpecial: true,
    anyWritten: true,
  };

  it("adds a band under the input row only when asked", () => {
    const plain = makeLayout(2, 3, 600);
    const banded = makeLayout(2, 3, 600, [], true);
    expect(plain.bandHeight).toBe(0);
    expect(banded.height - plain.height).toBe(BAND_HEIGHT);
  });

  it("colours each column's strip by its role, marks special tokens, keys the roles and writes the model's tokens in italics", () => {
    const { ctx, calls } = styledContext();
    const p = { ...picture(2, 4), layout: makeLayout(2, 4, 600, [], true), marks };
    draw(ctx, p);
    const l = p.layout;
    const stripY = l.rows * l.cellHeight + l.axisHeight;
    const strips = calls.filter((c) => c.op === "fillRect" && c.args[1] === stripY);
    expect(strips.map((c) => c.fillStyle)).toEqual([p.palette.muted, roleColor("user", p.palette), roleColor("assistant", p.palette)]);
    expect(roleColor("template", p.palette)).toBe(p.palette.missing);
    expect(roleColor("narrator", p.palette)).toBe(roleColor("other", p.palette));
    const texts = calls.filter((c) => c.op === "fillText");
    for (const word of ["role", "user", "assistant", "template", "special token", "written by the model"]) expect(texts.map((c) => c.args[0])).toContain(word);
    expect(texts.filter((c) => c.font.startsWith("italic")).map((c) => c.args[0])).toEqual(["in2"]);
  });
});

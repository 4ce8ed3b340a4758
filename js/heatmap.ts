// The heatmap: layout maths (pure) and drawing of the visible cells on a canvas.
// Rows are listed top to bottom (the output row first); only columns in view are drawn, so a
// 48 × 4096 grid costs what fits on screen.

import { LAYOUT, ROLE_COLORS, SCALE_MODES } from "./constants";
import { cssColor, divergingColor, rampColor, type Scale, textOn } from "./colors";
import { type RoleRange, TEMPLATE } from "./roles";
import type { Palette } from "./theme";
import { fitText } from "./tokens";

/** The roles band under the input row: a strip coloured by each column's role, then its key. */
const BAND_STRIP = 8;
const BAND_KEY = 18;
export const BAND_HEIGHT = BAND_STRIP + BAND_KEY + 2;

export interface Layout {
  rows: number;
  cols: number;
  labelWidth: number;
  cellWidth: number;
  cellHeight: number;
  axisHeight: number;
  /** The roles band's height under the input row (0: none, a widget with no roles or written text). */
  bandHeight: number;
  /** CSS pixels of the visible canvas. */
  width: number;
  height: number;
}

export interface Cell {
  row: number;
  col: number;
}

export function makeLayout(rows: number, cols: number, viewportWidth: number, labels: string[] = [], band = false): Layout {
  const longest = labels.reduce((m, s) => Math.max(m, s.length), LAYOUT.label_min_chars);
  const labelWidth = Math.min(LAYOUT.label_width_max, LAYOUT.label_padding + LAYOUT.label_char_width * longest);
  const cellHeight = LAYOUT.cell_height;
  const axisHeight = LAYOUT.axis_height;
  const bandHeight = band ? BAND_HEIGHT : 0;
  return {
    rows,
    cols,
    labelWidth,
    cellWidth: LAYOUT.cell_width,
    cellHeight,
    axisHeight,
    bandHeight,
    width: Math.max(labelWidth + 1, Math.floor(viewportWidth)),
    height: rows * cellHeight + axisHeight + bandHeight,
  };
}

/** Width of the whole grid, which the scroll container spans. */
export function contentWidth(l: Layout): number {
  return l.labelWidth + l.cols * l.cellWidth;
}

/** Columns [first, last) at least partly in view. */
export function visibleColumns(l: Layout, scrollLeft: number): [number, number] {
  const first = Math.max(0, Math.floor(scrollLeft / l.cellWidth));
  const last = Math.min(l.cols, Math.ceil((scrollLeft + l.width - l.labelWidth) / l.cellWidth));
  return [first, Math.max(first, last)];
}

/** The cell under a point of the canvas (CSS pixels), or null (labels, axis, empty space). */
export function cellAt(l: Layout, x: number, y: number, scrollLeft: number): Cell | null {
  if (x < l.labelWidth || y < 0 || y >= l.rows * l.cellHeight || x >= l.width) return null;
  const col = Math.floor((x - l.labelWidth + scrollLeft) / l.cellWidth);
  const row = Math.floor(y / l.cellHeight);
  return col >= 0 && col < l.cols && row >= 0 && row < l.rows ? { row, col } : null;
}

export function cellRect(l: Layout, cell: Cell, scrollLeft: number): { x: number; y: number; w: number; h: number } {
  return { x: l.labelWidth + cell.col * l.cellWidth - scrollLeft, y: cell.row * l.cellHeight, w: l.cellWidth, h: l.cellHeight };
}

/** Scroll position that brings a column fully into view (unchanged when it already is). */
export function scrollToShow(l: Layout, col: number, scrollLeft: number): number {
  const visible = l.width - l.labelWidth;
  const left = col * l.cellWidth;
  if (left < scrollLeft) return left;
  if (left + l.cellWidth > scrollLeft + visible) return left + l.cellWidth - visible;
  return scrollLeft;
}

export interface Picture {
  layout: Layout;
  scrollLeft: number;
  rowLabels: string[];
  /** Statistic of a displayed cell (NaN: missing, e.g. the cross-entropy of the last column). */
  value(row: number, col: number): number;
  /** The cell's distribution is not a distribution (NaN or infinite logits): drawn as invalid. */
  invalid(row: number, col: number): boolean;
  /** The column's cells are still being computed (the kernel sends the columns on screen first). */
  pending(col: number): boolean;
  /** Top-1 token of a cell, already made visible. */
  top1(row: number, col: number): string;
  inputToken(col: number): string;
  scale: Scale;
  /** Lower is better: the ramp runs backwards so bright always means "confident / close". */
  reversed: boolean;
  /** A difference centred at 0, on the blue-white-red ramp. */
  diverging: boolean;
  /** Cells to mark with a corner triangle (A/B: the two models' top-1 tokens differ). */
  marked(row: number, col: number): boolean;
  palette: Palette;
  selected: Cell | null;
  pinned: boolean;
  /** Whose each column is and whether the model wrote it (a chat widget, generation); absent: neither. */
  marks?: PictureMarks;
}

/** A picture's column marks (roles.ts), by displayed column. */
export interface PictureMarks {
  role(col: number): RoleRange | null;
  written(col: number): boolean;
  /** The roles present, for the key. */
  key: string[];
  anySpecial: boolean;
  anyWritten: boolean;
}

/** A role's colour in the band: the template's text is the palette's neutral grey. */
export function roleColor(role: string, palette: Palette): string {
  if (role === TEMPLATE) return palette.missing;
  return (ROLE_COLORS as Record<string, string>)[role] ?? ROLE_COLORS.other;
}

export function colorOf(p: Picture, value: number): [number, number, number] | null {
  const t = p.scale.position(value);
  if (Number.isNaN(t)) return null;
  return rampAt(p, t);
}

function rampAt(p: Pick<Picture, "reversed" | "diverging">, t: number): [number, number, number] {
  const u = p.reversed ? 1 - t : t;
  return p.diverging ? divergingColor(u) : rampColor(u);
}

/** Draw the visible part of the picture; `ctx` is already scaled to CSS pixels. */
export function draw(ctx: CanvasRenderingContext2D, p: Picture): void {
  const l = p.layout;
  ctx.save();
  ctx.fillStyle = p.palette.background;
  ctx.fillRect(0, 0, l.width, l.height);
  ctx.textBaseline = "middle";
  ctx.font = "11px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace";
  const [first, last] = visibleColumns(l, p.scrollLeft);
  ctx.beginPath();
  ctx.rect(l.labelWidth, 0, l.width - l.labelWidth, l.height);
  ctx.clip();
  const measure = (s: string): number => ctx.measureText(s).width;
  for (let col = first; col < last; col++) {
    const x = l.labelWidth + col * l.cellWidth - p.scrollLeft;
    const pending = p.pending(col);
    for (let row = 0; row < l.rows; row++) {
      const y = row * l.cellHeight;
      if (pending) {
        drawPending(ctx, x, y, l, p.palette);
        continue;
      }
      if (p.invalid(row, col)) {
        drawInvalid(ctx, x, y, l, p.palette);
        continue;
      }
      const rgb = colorOf(p, p.value(row, col));
      ctx.fillStyle = rgb ? cssColor(rgb) : p.palette.missing;
      ctx.fillRect(x, y, l.cellWidth - 1, l.cellHeight - 1);
      ctx.fillStyle = rgb ? textOn(rgb) : p.palette.text;
      ctx.textAlign = "center";
      const marked = p.marked(row, col);
      const room = l.cellWidth - (marked ? 12 : 6);
      ctx.fillText(fitText(p.top1(row, col), room, measure), x + (marked ? l.cellWidth / 2 - 3 : l.cellWidth / 2), y + l.cellHeight / 2);
      if (marked) drawMark(ctx, x + l.cellWidth - 1, y, p.palette);
    }
    drawInput(ctx, p, col, x, measure);
    if (p.marks && l.bandHeight > 0) drawRoleStrip(ctx, p.marks.role(col), x, l, p.palette);
  }
  if (p.selected) {
    const r = cellRect(l, p.selected, p.scrollLeft);
    ctx.strokeStyle = p.palette.accent;
    ctx.lineWidth = p.pinned ? 3 : 2;
    ctx.strokeRect(r.x + 1, r.y + 1, r.w - 3, r.h - 3);
  }
  ctx.restore();
  // Row labels stay put while the grid scrolls under them.
  ctx.save();
  ctx.fillStyle = p.palette.background;
  ctx.fillRect(0, 0, l.labelWidth, l.height);
  ctx.font = "11px ui-sans-serif, system-ui, sans-serif";
  ctx.textBaseline = "middle";
  ctx.textAlign = "right";
  ctx.fillStyle = p.palette.muted;
  p.rowLabels.forEach((label, row) => ctx.fillText(label, l.labelWidth - 8, row * l.cellHeight + l.cellHeight / 2));
  ctx.fillText("input", l.labelWidth - 8, l.rows * l.cellHeight + l.axisHeight / 2);
  if (p.marks && l.bandHeight > 0) {
    ctx.fillText("role", l.labelWidth - 8, l.rows * l.cellHeight + l.axisHeight + BAND_STRIP / 2);
    drawRoleKey(ctx, p.marks, l, p.palette);
  }
  ctx.restore();
}

/** The input token under a column; one the model wrote in italics over an accent line. */
function drawInput(ctx: CanvasRenderingContext2D, p: Picture, col: number, x: number, measure: (s: string) => number): void {
  const l = p.layout;
  const y = l.rows * l.cellHeight + l.axisHeight / 2;
  const written = p.marks?.written(col) === true;
  ctx.fillStyle = p.palette.text;
  if (!written) return void ctx.fillText(fitText(p.inputToken(col), l.cellWidth - 6, measure), x + l.cellWidth / 2, y);
  const font = ctx.font;
  ctx.font = `italic ${font}`;
  ctx.fillText(fitText(p.inputToken(col), l.cellWidth - 6, measure), x + l.cellWidth / 2, y);
  ctx.font = font;
  ctx.fillStyle = p.palette.accent;
  ctx.fillRect(x + 4, l.rows * l.cellHeight + l.axisHeight - 4, l.cellWidth - 9, 2);
}

/** A column's part of the roles band: its role's colour; a special token darker, with a diamond. */
function drawRoleStrip(ctx: CanvasRenderingContext2D, role: RoleRange | null, x: number, l: Layout, palette: Palette): void {
  if (!role) return;
  const y = l.rows * l.cellHeight + l.axisHeight;
  ctx.fillStyle = role.special ? palette.muted : roleColor(role.role, palette);
  ctx.fillRect(x, y, l.cellWidth - 1, BAND_STRIP);
  if (role.special) diamond(ctx, x + l.cellWidth / 2, y + BAND_STRIP / 2, palette.background);
}

function diamond(ctx: CanvasRenderingContext2D, cx: number, cy: number, color: string): void {
  ctx.beginPath();
  ctx.moveTo(cx, cy - 3.5);
  ctx.lineTo(cx + 3.5, cy);
  ctx.lineTo(cx, cy + 3.5);
  ctx.lineTo(cx - 3.5, cy);
  ctx.closePath();
  ctx.fillStyle = color;
  ctx.fill();
}

/** The band's key, fixed under it: a swatch and the name of each role present, the special tokens'
 * mark and the written tokens' line. Role names are the messages' own strings: canvas text only. */
function drawRoleKey(ctx: CanvasRenderingContext2D, marks: PictureMarks, l: Layout, palette: Palette): void {
  const y = l.rows * l.cellHeight + l.axisHeight + BAND_STRIP + 2 + BAND_KEY / 2;
  let x = l.labelWidth;
  ctx.textAlign = "left";
  const item = (swatch: () => void, name: string): void => {
    swatch();
    ctx.fillStyle = palette.muted;
    ctx.fillText(name, x + 14, y);
    x += 14 + ctx.measureText(name).width + 12;
  };
  for (const role of marks.key) item(() => ((ctx.fillStyle = roleColor(role, palette)), ctx.fillRect(x, y - 4, 10, 8)), role);
  if (marks.anySpecial) item(() => ((ctx.fillStyle = palette.muted), ctx.fillRect(x, y - 4, 10, 8), diamond(ctx, x + 5, y, palette.background)), "special token");
  if (marks.anyWritten) item(() => ((ctx.fillStyle = palette.accent), ctx.fillRect(x, y + 3, 10, 2)), "written by the model");
}

/** The top-1-differs mark: a triangle in the cell's top-right corner, outlined so that it reads on
 * any colour (a shape, not a colour alone). */
function drawMark(ctx: CanvasRenderingContext2D, right: number, top: number, palette: Palette): void {
  ctx.save();
  ctx.beginPath();
  ctx.moveTo(right - 9, top);
  ctx.lineTo(right, top);
  ctx.lineTo(right, top + 9);
  ctx.closePath();
  ctx.fillStyle = palette.accent;
  ctx.fill();
  ctx.strokeStyle = palette.background;
  ctx.lineWidth = 1;
  ctx.stroke();
  ctx.restore();
}

/** A cell still being computed: blank with a dim ellipsis, so it cannot pass for a value. */
function drawPending(ctx: CanvasRenderingContext2D, x: number, y: number, l: Layout, palette: Palette): void {
  ctx.fillStyle = palette.missing;
  ctx.fillRect(x, y, l.cellWidth - 1, l.cellHeight - 1);
  ctx.fillStyle = palette.muted;
  ctx.textAlign = "center";
  ctx.fillText("…", x + l.cellWidth / 2, y + l.cellHeight / 2);
}

/** An invalid cell: hatched, labelled NaN, so it cannot pass for a confident or a missing one. */
function drawInvalid(ctx: CanvasRenderingContext2D, x: number, y: number, l: Layout, palette: Palette): void {
  ctx.save();
  ctx.fillStyle = palette.missing;
  ctx.fillRect(x, y, l.cellWidth - 1, l.cellHeight - 1);
  ctx.beginPath();
  ctx.rect(x, y, l.cellWidth - 1, l.cellHeight - 1);
  ctx.clip();
  ctx.strokeStyle = palette.invalid;
  ctx.lineWidth = 1;
  for (let d = -l.cellHeight; d < l.cellWidth; d += 6) {
    ctx.moveTo(x + d, y + l.cellHeight);
    ctx.lineTo(x + d + l.cellHeight, y);
  }
  ctx.stroke();
  ctx.fillStyle = palette.text;
  ctx.textAlign = "center";
  ctx.fillText("NaN", x + l.cellWidth / 2, y + l.cellHeight / 2);
  ctx.restore();
}

/** The legend's words: the title, then the kind of scale (lens_widget/export.py writes the same). */
export function legendText(title: string, scale: Pick<Scale, "log" | "fixed">): string {
  return `${title}${scale.log ? ", log scale" : ""} · ${SCALE_MODES[scale.fixed ? "fixed" : "view"]}`;
}

/** The legend: a ramp with the statistic's title (name and units) and range. */
export function drawLegend(ctx: CanvasRenderingContext2D, width: number, title: string, p: Pick<Picture, "scale" | "reversed" | "diverging" | "palette">): void {
  const height = 28;
  ctx.save();
  ctx.fillStyle = p.palette.background;
  ctx.fillRect(0, 0, width, height);
  const x0 = 8;
  const barWidth = Math.max(40, Math.min(240, width - 220));
  for (let i = 0; i < barWidth; i++) {
    const t = i / (barWidth - 1);
    ctx.fillStyle = cssColor(rampAt(p, t));
    ctx.fillRect(x0 + i, 6, 1, 12);
  }
  ctx.fillStyle = p.palette.text;
  ctx.font = "11px ui-sans-serif, system-ui, sans-serif";
  ctx.textBaseline = "middle";
  ctx.textAlign = "left";
  const fmt = (v: number): string => (p.scale.log || Math.abs(v) >= 100 ? Math.round(v).toString() : v.toFixed(2));
  ctx.fillText(`${fmt(p.scale.min)} … ${fmt(p.scale.max)}   ${legendText(title, p.scale)}`, x0 + barWidth + 8, 12);
  ctx.restore();
}

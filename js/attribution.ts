// What wrote a cell's logit (the kernel's direct logit attribution, controller.py): the answer's
// shape, its check, and the heads × layers picture drawn from it. Pure, so the panel (writers.ts)
// and the tests share it. Model strings are drawn as canvas text only.

import { cssColor, divergingColor } from "./colors";
import type { Palette } from "./theme";

/** One model's attribution of one cell, as the kernel sends it (null: a block after the row). */
export interface ModelAttribution {
  model: string;
  name: string;
  label: string;
  token_id: number;
  token: string;
  lens: string;
  heads: (number | null)[][];
  mlps: (number | null)[];
  embedding: number;
  biases: number;
  total: number;
  logit: number;
  frozen: string[];
}

export interface AttributionAnswer {
  type: "attribution";
  view: string;
  seq: number;
  row: number;
  col: number;
  models: ModelAttribution[];
  error: string;
}

/** Whether a kernel message is a well-formed attribution answer (anything else is ignored). */
export function isAttributionAnswer(m: unknown): m is AttributionAnswer {
  const a = m as Partial<AttributionAnswer> | null;
  if (!a || a.type !== "attribution" || typeof a.seq !== "number" || typeof a.error !== "string" || !Array.isArray(a.models)) return false;
  return a.models.every((x) => typeof x?.total === "number" && Array.isArray(x.heads) && Array.isArray(x.mlps) && typeof x.token === "string");
}

/** The largest |value| of any head or MLP over the models: one colour scale for A and B side by side. */
export function attributionScale(models: ModelAttribution[]): number {
  let max = 0;
  for (const m of models) for (const v of [...m.heads.flat(), ...m.mlps]) if (v !== null && Number.isFinite(v)) max = Math.max(max, Math.abs(v));
  return max || 1;
}

/** Sums by kind, for the summary line. */
export function sums(m: ModelAttribution): { heads: number; mlps: number } {
  const add = (xs: (number | null)[]): number => xs.reduce<number>((s, v) => s + (v ?? 0), 0);
  return { heads: add(m.heads.flat()), mlps: add(m.mlps) };
}

const signed = (v: number): string => `${v >= 0 ? "+" : "−"}${Math.abs(v).toFixed(3)}`;

/** The line under a model's picture: what each kind of component wrote, their sum beside the logit. */
export function summaryOf(m: ModelAttribution): string {
  const { heads, mlps } = sums(m);
  const frozen = m.frozen.length ? ` (frozen at this cell: ${m.frozen.join(", ")})` : "";
  return `embedding ${signed(m.embedding)} · heads ${signed(heads)} · MLPs ${signed(mlps)} · biases ${signed(m.biases)} · sum ${m.total.toFixed(3)} · logit ${m.logit.toFixed(3)}${frozen}`;
}

/** Where the picture's cells are: blocks across, heads down, then a gap and the MLP row. */
export interface GridLayout {
  blocks: number;
  heads: number;
  cell: number;
  left: number;
  top: number;
  width: number;
  height: number;
}

const LABEL_W = 34;
const AXIS_H = 14;
const GAP = 4;

export function gridLayout(blocks: number, heads: number, width: number): GridLayout {
  const cell = Math.max(4, Math.min(24, Math.floor((width - LABEL_W) / Math.max(1, blocks))));
  return { blocks, heads, cell, left: LABEL_W, top: 2, width, height: 2 + cell * (heads + 1) + GAP + AXIS_H };
}

/** The component under a point: a head ("L3.H5") or an MLP ("L3.mlp"), with its value. */
export function componentAt(l: GridLayout, m: ModelAttribution, x: number, y: number): { label: string; value: number | null } | null {
  const block = Math.floor((x - l.left) / l.cell);
  if (x < l.left || block < 0 || block >= l.blocks) return null;
  const row = Math.floor((y - l.top) / l.cell);
  if (row >= 0 && row < l.heads) return { label: `L${block}.H${row}`, value: m.heads[block]?.[row] ?? null };
  const mlpTop = l.top + l.cell * l.heads + GAP;
  if (y >= mlpTop && y < mlpTop + l.cell) return { label: `L${block}.mlp`, value: m.mlps[block] ?? null };
  return null;
}

function fill(ctx: CanvasRenderingContext2D, v: number | null, scale: number, colors: Palette): void {
  ctx.fillStyle = v === null || !Number.isFinite(v) ? colors.missing : cssColor(divergingColor(0.5 + v / (2 * scale)));
}

/** Heads × layers in a diverging ramp (red: wrote towards the token, blue: against), MLPs below. */
export function drawAttribution(ctx: CanvasRenderingContext2D, l: GridLayout, m: ModelAttribution, scale: number, colors: Palette): void {
  ctx.fillStyle = colors.background;
  ctx.fillRect(0, 0, l.width, l.height);
  ctx.font = "10px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace";
  ctx.textBaseline = "middle";
  ctx.textAlign = "right";
  const every = Math.ceil(10 / l.cell);
  for (let b = 0; b < l.blocks; b++) {
    for (let h = 0; h < l.heads; h++) {
      fill(ctx, m.heads[b]?.[h] ?? null, scale, colors);
      ctx.fillRect(l.left + b * l.cell, l.top + h * l.cell, l.cell - 1, l.cell - 1);
    }
    fill(ctx, m.mlps[b] ?? null, scale, colors);
    ctx.fillRect(l.left + b * l.cell, l.top + l.heads * l.cell + GAP, l.cell - 1, l.cell - 1);
  }
  ctx.fillStyle = colors.muted;
  for (let h = 0; h < l.heads; h += every) ctx.fillText(`H${h}`, l.left - 4, l.top + (h + 0.5) * l.cell);
  ctx.fillText("MLP", l.left - 4, l.top + (l.heads + 0.5) * l.cell + GAP);
  ctx.textAlign = "center";
  const axis = l.top + (l.heads + 1) * l.cell + GAP + AXIS_H / 2;
  for (let b = 0; b < l.blocks; b += every) ctx.fillText(String(b), l.left + (b + 0.5) * l.cell, axis);
}

// From decoded state and UI state to what is drawn: the heatmap's cells and the tooltip's content.
// Pure: no DOM, no model. One model (mode "a" or "b") shows that model's statistic; the diff mode
// shows B − A of a statistic (computed here from the two grids, so a model diffed with itself is
// exactly 0) or a pair statistic sent by the kernel (divergences, top-1 agreement).

import { fixedScale, type Scale, scaleFor } from "./colors";
import type { Cell, Layout, Picture, PictureMarks } from "./heatmap";
import type { ScaleMode } from "./model";
import { diffAt, isPending, pinAt, type StatisticInfo, statAt, type TokenStrings, topAt, type ViewState } from "./payload";
import { diffChoices, PIN_PREFIX, type Shown, single, singleChoices, title } from "./statistics";
import type { Palette } from "./theme";
import type { TooltipInfo } from "./tooltip";
import { visibleToken } from "./tokens";
import { shownRows } from "./rows";
import { columnMarks, type RoleRange } from "./roles";

export type Mode = "a" | "b" | "diff";

export { shownRows } from "./rows";

export interface Scene {
  state: ViewState;
  strings: TokenStrings;
  infos: StatisticInfo[];
  mode: Mode;
  /** The chosen statistic of the one-model modes, and of the diff mode. */
  statistic: string;
  diffStatistic: string;
  stride: number;
  /** Whether the "ℓ.attn" rows (the residual stream after each attention) are shown, under their layers. */
  sublayers: boolean;
  /** One colour scale per statistic for every lens, model and picture, or this picture's own range. */
  colorScale: ScaleMode;
  /** The token columns shown: [first, first + count) of the state's (all of them by default). */
  first: number;
  count: number;
  /** A chat widget's roles (the `roles` trait): whose each part of the text is. */
  roles?: RoleRange[];
  /** The `generated` trait: [start, end, row] ranges of the text the model wrote. */
  generated?: number[][];
}

/** The band under the input row and the marks on the input tokens, by displayed column; null when
 * there is nothing to mark (no roles, nothing written), so that no band is drawn. */
export function sceneMarks(scene: Scene): PictureMarks | null {
  const roles = scene.roles ?? [];
  const generated = scene.generated ?? [];
  if (!roles.length && !generated.length) return null;
  const m = columnMarks(scene.state, roles, generated);
  if (!m.any && !m.anyWritten) return null;
  const first = scene.first;
  return { role: (col) => m.role(col + first), written: (col) => m.written(col + first), key: m.key, anySpecial: m.anySpecial, anyWritten: m.anyWritten };
}

/** The columns shown for a token_range trait ([start, end], end null: to the last; []: all). */
export function columnsShown(range: (number | null)[] | undefined, nTokens: number): { first: number; count: number } {
  const start = Math.min(nTokens, Math.max(0, Math.floor(range?.[0] ?? 0)));
  const end = range?.[1] === null || range?.[1] === undefined ? nTokens : Math.min(nTokens, Math.floor(range[1]));
  return { first: start, count: Math.max(0, end - start) };
}

export function isAB(state: ViewState): boolean {
  return state.grids.length === 2;
}

export function modelNames(state: ViewState): [string, string] {
  return [state.header.grids[0]?.name ?? "A", state.header.grids[1]?.name ?? "B"];
}

/** The mode actually shown: a one-model state has only "a". */
export function effectiveMode(scene: Scene): Mode {
  return isAB(scene.state) ? scene.mode : "a";
}

/** The statistics the buttons offer in this mode. */
export function choices(scene: Scene): Shown[] {
  const s = scene.state;
  if (effectiveMode(scene) === "diff") return diffChoices(s.header.statistics, s.header.diff ?? [], scene.infos, s.header.pins);
  return singleChoices(s.header.statistics, s.header.pins, scene.infos);
}

/** What is shown: the chosen statistic, or the mode's first when the choice is not offered here. */
export function shown(scene: Scene): Shown | null {
  const all = choices(scene);
  const key = effectiveMode(scene) === "diff" ? scene.diffStatistic : scene.statistic;
  return all.find((c) => c.key === key) ?? all[0] ?? null;
}

/** Indices into state.rows of the rows shown, top to bottom. */
export function rowIndices(scene: Scene): number[] {
  const s = scene.state;
  return shownRows(s.rows, s.header.num_layers, Math.max(1, scene.stride), scene.sublayers).map((r) => s.rows.indexOf(r));
}

/** A single-model statistic, or a pinned item's probability ("pin:<label>"), of one grid's cell. */
function singleAt(s: ViewState, grid: number, key: string, row: number, col: number): number {
  if (key.startsWith(PIN_PREFIX)) return Math.exp(pinAt(s, grid, s.header.pins.indexOf(key.slice(PIN_PREFIX.length)), row, col));
  return statAt(s, grid, s.header.statistics.indexOf(key), row, col);
}

/** The value a cell shows (NaN: missing). */
export function valueAt(scene: Scene, what: Shown, row: number, col: number): number {
  const s = scene.state;
  const mode = effectiveMode(scene);
  if (mode !== "diff") return singleAt(s, mode === "b" ? 1 : 0, what.key, row, col);
  if (what.key.startsWith("delta:")) {
    const key = what.key.slice("delta:".length);
    return singleAt(s, 1, key, row, col) - singleAt(s, 0, key, row, col);
  }
  return diffAt(s, (s.header.diff ?? []).indexOf(what.key), row, col);
}

/** A cell with no distribution (non-finite logits) in the model shown, or in either for the diff. */
export function invalidAt(scene: Scene, row: number, col: number): boolean {
  const s = scene.state;
  if (isPending(s, col)) return false; // a placeholder, not a broken distribution
  const entropy = s.header.statistics.indexOf("entropy");
  if (entropy < 0) return false;
  const mode = effectiveMode(scene);
  const grids = mode === "diff" ? [0, 1] : [mode === "b" ? 1 : 0];
  return grids.some((g) => Number.isNaN(statAt(s, g, entropy, row, col)));
}

/** The most likely token's id, read in place (this runs for every cell of every redraw). */
function top1(scene: Scene, grid: number, row: number, col: number): number {
  const s = scene.state;
  return (s.grids[grid]?.topIds[(row * s.nTokens + col) * s.header.top_k] as number | undefined) ?? 0;
}

/** How many of the cells shown carry the top-1-differs mark (0 outside the diff mode). */
export function markedCount(scene: Scene): number {
  if (effectiveMode(scene) !== "diff") return 0;
  let n = 0;
  for (const i of rowIndices(scene)) {
    for (let c = scene.first; c < scene.first + scene.count; c++) if (top1Differs(scene, i, c)) n++;
  }
  return n;
}

/** The two models' most likely tokens differ here (diff mode only). */
export function top1Differs(scene: Scene, row: number, col: number): boolean {
  // An invalid cell's top-k ids are arbitrary: there is no top-1 to compare.
  return effectiveMode(scene) === "diff" && top1(scene, 0, row, col) !== top1(scene, 1, row, col) && !invalidAt(scene, row, col);
}

export function picture(
  scene: Scene,
  layout: Layout,
  scrollLeft: number,
  palette: Palette,
  selected: Cell | null,
  pinned: boolean,
): Picture | null {
  const what = shown(scene);
  if (!what) return null;
  const s = scene.state;
  const rows = rowIndices(scene);
  const first = scene.first;
  const mode = effectiveMode(scene);
  const label = (row: number, shownCol: number): string => {
    const i = rows[row] as number;
    const col = shownCol + first;
    const a = scene.strings.get(top1(scene, mode === "b" ? 1 : 0, i, col));
    if (!top1Differs(scene, i, col)) return visibleToken(a);
    return `${visibleToken(a)}→${visibleToken(scene.strings.get(top1(scene, 1, i, col)))}`;
  };
  return {
    layout,
    scrollLeft,
    rowLabels: rows.map((i) => s.rowLabels[i] ?? String(s.rows[i])),
    value: (row, col) => valueAt(scene, what, rows[row] as number, col + first),
    invalid: (row, col) => invalidAt(scene, rows[row] as number, col + first),
    pending: (col) => isPending(s, col + first),
    marked: (row, col) => top1Differs(scene, rows[row] as number, col + first),
    top1: label,
    inputToken: (col) => visibleToken(scene.strings.get(s.tokenIds[col + first] ?? 0)),
    scale: sceneScale(scene, what, rows),
    reversed: what.lowerIsBetter,
    diverging: what.scale === "diverging",
    palette,
    selected,
    pinned,
    marks: sceneMarks(scene) ?? undefined,
  };
}

/** Colour scales of the states drawn, per statistic, mode, rows and columns: a scale needs every shown
 * cell's value, which scrolling does not change, so a redraw while scrolling a 48 × 4,096 grid reads
 * them once rather than every frame. States are never changed in place (applyUpdate returns new ones),
 * so the state object is the key. */
const scales = new WeakMap<ViewState, Map<string, Scale>>();

function sceneScale(scene: Scene, what: Shown, rows: number[]): Scale {
  if (scene.colorScale !== "view") return fixedScale(what.scale, what.bound, scene.strings.size);
  const key = `${what.key}|${what.scale}|${effectiveMode(scene)}|${rows.join(",")}|${scene.first}|${scene.count}`;
  let byKey = scales.get(scene.state);
  if (!byKey) scales.set(scene.state, (byKey = new Map()));
  let scale = byKey.get(key);
  if (!scale) {
    const values: number[] = [];
    for (const i of rows) for (let c = scene.first; c < scene.first + scene.count; c++) values.push(valueAt(scene, what, i, c));
    scale = scaleFor(what.scale, values);
    byKey.set(key, scale);
  }
  return scale;
}

/** The legend's title: the statistic with its units, and whose it is in an A/B view (the legend adds
 * the kind of scale). */
export function legendTitle(scene: Scene): string {
  const what = shown(scene);
  if (!what) return "";
  const text = title(what.label, what.units, what.note);
  const mode = effectiveMode(scene);
  const whose = !isAB(scene.state) || mode === "diff" ? "" : ` · ${modelNames(scene.state)[mode === "b" ? 1 : 0]}`;
  return `${text}${whose}`;
}

function nextToken(scene: Scene, grid: number, row: number, col: number) {
  const s = scene.state;
  const ce = statAt(s, grid, s.header.statistics.indexOf("cross_entropy"), row, col);
  const rank = statAt(s, grid, s.header.statistics.indexOf("rank"), row, col);
  const nextId = s.tokenIds[col + 1];
  return nextId === undefined || Number.isNaN(ce) ? null : { text: scene.strings.get(nextId), rank, probability: Math.exp(-ce) };
}

function topList(scene: Scene, grid: number, row: number, col: number) {
  const top = topAt(scene.state, grid, row, col);
  return top.ids.map((id, j) => ({ text: scene.strings.get(id), probability: top.probs[j] ?? 0, id }));
}

/** The tooltip of a shown cell (row: index among the rows shown; col: among the columns shown). */
export function tooltip(scene: Scene, shownCell: Cell, pinned: boolean): TooltipInfo | null {
  const s = scene.state;
  const what = shown(scene);
  const i = rowIndices(scene)[shownCell.row];
  if (!what || i === undefined || shownCell.col >= scene.count) return null;
  const cell = { row: shownCell.row, col: shownCell.col + scene.first };
  const mode = effectiveMode(scene);
  const grid = mode === "b" ? 1 : 0;
  const info: TooltipInfo = {
    invalid: invalidAt(scene, i, cell.col),
    pending: isPending(s, cell.col),
    rowLabel: s.rowLabels[i] ?? String(s.rows[i]),
    col: cell.col,
    statistic: what.label,
    value: valueAt(scene, what, i, cell.col),
    units: what.units,
    input: scene.strings.get(s.tokenIds[cell.col] ?? 0),
    next: nextToken(scene, grid, i, cell.col),
    top: topList(scene, grid, i, cell.col),
    pinned,
  };
  if (mode !== "diff" || info.pending) return info;
  const diff = s.header.diff ?? [];
  info.compare = {
    names: modelNames(s),
    top: topList(scene, 1, i, cell.col),
    next: nextToken(scene, 1, i, cell.col),
    pair: diff.map((name, d) => {
      const pairInfo = single(name, scene.infos);
      return { label: pairInfo.label, value: diffAt(s, d, i, cell.col), units: pairInfo.units };
    }),
  };
  return info;
}

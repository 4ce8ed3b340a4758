// The heatmap's DOM: a scroller holding the canvas (and a spacer as wide as the whole grid, so the
// host's scrollbar spans it), and the legend under it. It sizes both canvases for the device's pixels,
// draws a picture, and hit-tests the pointer, all from one layout.

import { LAYOUT } from "./constants";
import { Disposer } from "./disposer";
import { assign, element } from "./dom";
import { type Cell, cellAt, cellRect, contentWidth, draw, drawLegend, type Layout, makeLayout, scrollToShow, visibleColumns } from "./heatmap";
import type { Picture } from "./heatmap";
import { rowIndices, type Scene, sceneMarks } from "./picture";

export class Board {
  readonly scroller: HTMLDivElement;
  readonly canvas: HTMLCanvasElement;
  private readonly spacer: HTMLDivElement;
  private readonly legend: HTMLCanvasElement;
  /** The width when the scroller last had one: a host restyling (a theme switch) can report 0. */
  private knownWidth = 0;
  private relayoutTries = 0;
  /** What the legend's canvas shows (empty: nothing known). */
  private legendShows = "";
  private readonly relayout: ReturnType<Disposer["timer"]>;
  private readonly disposer = new Disposer();

  constructor(
    doc: Document,
    parent: HTMLElement,
    private readonly requestDraw: () => void,
  ) {
    this.scroller = element(doc, "div", "lw-scroll", parent);
    this.scroller.tabIndex = 0;
    this.scroller.setAttribute("aria-label", "lens heatmap: arrow keys move between cells, Enter pins, Escape unpins");
    // Lumino hosts (Notebook 7, JupyterLab) would take the arrow keys for moving between cells.
    this.scroller.setAttribute("data-lm-suppress-shortcuts", "true");
    this.canvas = element(doc, "canvas", "lw-canvas", this.scroller);
    this.spacer = element(doc, "div", "lw-spacer", this.scroller);
    this.legend = element(doc, "canvas", "lw-legend", parent);
    this.relayout = this.disposer.timer();
    if (typeof ResizeObserver !== "undefined") {
      const resize = new ResizeObserver(() => requestDraw());
      resize.observe(this.scroller);
      this.disposer.add(() => resize.disconnect());
    }
  }

  get scrollLeft(): number {
    return this.scroller.scrollLeft;
  }

  /** Scroll to `left`, first widening the spacer so that a new last column can be scrolled to. */
  scrollTo(s: Scene, left: number): void {
    this.spacer.style.width = `${contentWidth(this.layout(s))}px`;
    this.scroller.scrollLeft = left;
  }

  /** Scroll so that column `col` of the scene shows in full; whether that took a scroll. */
  scrollToColumn(s: Scene, col: number): boolean {
    const left = scrollToShow(this.layout(s), col, this.scrollLeft);
    if (Math.abs(left - this.scrollLeft) < 0.5) return false;
    this.scrollTo(s, left); // the spacer first: a column just added is not in it until the paint
    return true;
  }

  /** The one layout that drawing, hit-testing, the tooltip and the keyboard all use. */
  layout(s: Scene): Layout {
    const labels = rowLabels(s);
    return makeLayout(labels.length, s.count, this.knownWidth || 600, labels, sceneMarks(s) !== null);
  }

  /** Take the scroller's width; with none right now (a host restyling its theme, a hidden tab), keep
   * the last known one and look again shortly, rather than keep a made-up width until the next resize. */
  measure(): void {
    if (this.scroller.clientWidth > 0) {
      this.knownWidth = this.scroller.clientWidth;
      this.relayoutTries = 0;
    } else if (this.scroller.isConnected && !this.relayout.active && this.relayoutTries < 10) {
      this.relayoutTries += 1;
      this.relayout.set(() => this.requestDraw(), 200);
    }
  }

  /** Draw `p` (null: nothing to show) and its legend at the device's pixel ratio. `heatmap` false
   * keeps the heatmap's pixels (the caller knows nothing on it changed: repaint.ts); the legend is
   * drawn only when what it shows changed. */
  paint(p: Picture | null, legendTitle: string, dpr: number, heatmap = true): void {
    if (!p) {
      this.canvas.width = this.canvas.height = 0;
      this.legendShows = "";
      return;
    }
    assign(this.spacer.style, "width", `${contentWidth(p.layout)}px`);
    if (heatmap) sized(this.canvas, p.layout.width, p.layout.height, dpr, (ctx) => draw(ctx, p));
    const { scale, palette, reversed, diverging } = p;
    const legend = [p.layout.width, dpr, legendTitle, scale.min, scale.max, scale.log, scale.fixed, palette.background, reversed, diverging].join("|");
    if (legend === this.legendShows) return;
    this.legendShows = legend;
    sized(this.legend, p.layout.width, LAYOUT.legend_height, dpr, (ctx) => drawLegend(ctx, p.layout.width, legendTitle, p));
  }

  /** The next paint draws the legend whatever it shows (its canvas may have lost its pixels). */
  forget(): void {
    this.legendShows = "";
  }

  /** The cell under the pointer (null: none, or no scene to hit). */
  cellAt(s: Scene | null, event: MouseEvent): Cell | null {
    if (!s) return null;
    const box = this.canvas.getBoundingClientRect();
    return cellAt(this.layout(s), event.clientX - box.left, event.clientY - box.top, this.scrollLeft);
  }

  /** A cell's box relative to `root`'s top-left corner. */
  cellBox(s: Scene, cell: Cell, root: HTMLElement): { x: number; y: number; w: number; h: number } {
    const rect = cellRect(this.layout(s), cell, this.scrollLeft);
    const canvasBox = this.canvas.getBoundingClientRect();
    const rootBox = root.getBoundingClientRect();
    return { ...rect, x: canvasBox.left - rootBox.left + rect.x, y: canvasBox.top - rootBox.top + rect.y };
  }

  /** The scene's token columns on screen, [start, stop). */
  onScreen(s: Scene): [number, number] {
    // Clamped: right after the text shrank, the scroll position can still be the longer text's.
    const [first, last] = visibleColumns(this.layout(s), this.scrollLeft).map((c) => Math.min(c, s.count));
    return [(first as number) + s.first, (last as number) + s.first];
  }

  dispose(): void {
    this.disposer.dispose();
  }
}

export function rowLabels(s: Scene): string[] {
  return rowIndices(s).map((i) => s.state.rowLabels[i] ?? String(s.state.rows[i]));
}

function sized(canvas: HTMLCanvasElement, width: number, height: number, dpr: number, paint: (ctx: CanvasRenderingContext2D) => void): void {
  canvas.style.width = `${width}px`;
  canvas.style.height = `${height}px`;
  canvas.width = Math.round(width * dpr);
  canvas.height = Math.round(height * dpr);
  const ctx = canvas.getContext("2d");
  if (!ctx) return;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  paint(ctx);
}

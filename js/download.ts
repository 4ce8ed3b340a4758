// The "PNG" button: the whole heatmap as an image, drawn the way the view draws it. Every column the
// token range shows is drawn (not only the scrolled-to ones), with the row labels, the input tokens
// and the legend, at `scale` image pixels per CSS pixel. lens_widget/export.py draws the same picture
// in the kernel (widget.to_png), for a cell that cannot wait for a view.

import { LAYOUT } from "./constants";
import { contentWidth, draw, drawLegend, makeLayout } from "./heatmap";
import { legendTitle, picture, rowIndices, type Scene, sceneMarks } from "./picture";
import type { Palette } from "./theme";

/** Browsers refuse canvases much wider than this; a longer grid is cut there (the image says so). */
export const MAX_CANVAS_PX = 32000;
const LEGEND_HEIGHT = LAYOUT.legend_height;

export interface PictureCanvas {
  canvas: HTMLCanvasElement;
  /** Columns drawn; fewer than the scene's when the grid was wider than MAX_CANVAS_PX. */
  columns: number;
}

/** The scene on a new canvas, or null when there is nothing to draw or no 2D context. */
export function pictureCanvas(doc: Document, s: Scene, palette: Palette, labels: string[], scale = 2): PictureCanvas | null {
  const rows = rowIndices(s).length;
  const band = sceneMarks(s) !== null;
  const full = makeLayout(rows, s.count, 1, labels, band);
  const fit = Math.floor((MAX_CANVAS_PX / scale - full.labelWidth) / full.cellWidth);
  const columns = Math.max(0, Math.min(s.count, fit));
  const layout = makeLayout(rows, s.count, full.labelWidth + columns * full.cellWidth, labels, band);
  const p = picture(s, layout, 0, palette, null, false);
  if (!p || columns === 0) return null;
  const canvas = doc.createElement("canvas");
  canvas.width = Math.round(layout.width * scale);
  canvas.height = Math.round((layout.height + LEGEND_HEIGHT) * scale);
  const ctx = canvas.getContext("2d");
  if (!ctx) return null;
  ctx.scale(scale, scale);
  ctx.fillStyle = palette.background;
  ctx.fillRect(0, 0, layout.width, layout.height + LEGEND_HEIGHT);
  draw(ctx, p);
  ctx.translate(0, layout.height);
  drawLegend(ctx, layout.width, legendTitle(s) + (columns < s.count ? ` (first ${columns} of ${s.count} columns)` : ""), p);
  return { canvas, columns: contentWidth(layout) > 0 ? columns : 0 };
}

/** The picture with another canvas (the trajectory panel) under it, drawn at the picture's scale
 * (`scale` image pixels per CSS pixel; `under` has `underDpr` per CSS pixel). */
export function stackCanvases(doc: Document, picture: HTMLCanvasElement, under: HTMLCanvasElement | null, scale: number, underDpr: number): HTMLCanvasElement {
  if (!under || under.width === 0 || under.height === 0) return picture;
  const ratio = scale / underDpr;
  const w = Math.round(under.width * ratio);
  const h = Math.round(under.height * ratio);
  const out = doc.createElement("canvas");
  out.width = Math.max(picture.width, w);
  out.height = picture.height + h;
  const ctx = out.getContext("2d");
  if (!ctx) return picture;
  ctx.drawImage(picture, 0, 0);
  ctx.drawImage(under, 0, picture.height, w, h);
  return out;
}

/** Offer the canvas as a file download; false where the host gives no way to (then say so). */
export function downloadCanvas(doc: Document, canvas: HTMLCanvasElement, fileName: string): boolean {
  const url = doc.defaultView?.URL;
  if (typeof canvas.toBlob !== "function" || !url?.createObjectURL) return false;
  canvas.toBlob((blob) => {
    if (!blob) return;
    const link = doc.createElement("a");
    link.href = url.createObjectURL(blob);
    link.download = fileName;
    link.rel = "noopener";
    doc.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(() => url.revokeObjectURL(link.href), 10_000);
  }, "image/png");
  return true;
}

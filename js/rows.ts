// Row ids, as lens_widget/rows.py defines them: layer rows keep their index (0 … L-1, L the model's
// output), and the sub-layer row "ℓ.attn" (the residual stream after block ℓ-1's attention, on the
// way to row ℓ) is L + ℓ. Ids are not in depth order, so every sort goes through `depth`.

/** Whether `row` is an "ℓ.attn" row. */
export function isSublayer(row: number, numLayers: number): boolean {
  return row > numLayers;
}

/** The sort key from the embeddings up: 2r for layer row r, 2ℓ - 1 for ℓ.attn (between ℓ - 1 and ℓ). */
export function depth(row: number, numLayers: number): number {
  return row > numLayers ? 2 * (row - numLayers) - 1 : 2 * row;
}

/** `rows`, distinct, from the embeddings up to the output. */
export function byDepth(rows: readonly number[], numLayers: number): number[] {
  return [...new Set(rows)].sort((a, b) => depth(a, numLayers) - depth(b, numLayers));
}

/**
 * Rows the stride (and the sub-layers toggle) shows, top to bottom: the output row first. A layer
 * row shows when it is the output or a multiple of the stride; its ℓ.attn row right under it.
 */
export function shownRows(rows: readonly number[], numLayers: number, stride: number, sublayers = false): number[] {
  const layerShown = (r: number): boolean => r === numLayers || r % stride === 0;
  const shows = (r: number): boolean => (isSublayer(r, numLayers) ? sublayers && layerShown(r - numLayers) : layerShown(r));
  return byDepth(rows.filter(shows), numLayers).reverse();
}

/** How many rows the stride (and the toggle) asks for: the view may not have them all yet. */
export function rowsWanted(numLayers: number, stride: number, sublayers = false): number {
  const layers = Math.ceil(numLayers / Math.max(1, stride)) + 1;
  return sublayers && numLayers > 0 ? 2 * layers - 1 : layers;
}

/** How the tuned lens reads the ℓ.attn rows, which have no translators of their own (rows.py TRANSLATOR_NOTE). */
export const SUBLAYER_LENS_NOTE =
  "The tuned lens reads ℓ.attn through layer ℓ's translator, and L.attn (under the output) through none: the logit lens's decoding.";

// Where the tooltip goes: beside its cell, inside the widget. Hosts clip output areas, and the shadow
// DOM of some hosts (marimo) keeps styles from reaching anything placed outside the widget's element,
// so the tooltip never leaves it; the widget grows to fit it instead.

export interface Box {
  x: number;
  y: number;
  w: number;
  h: number;
}

export interface Placement {
  left: number;
  top: number;
  /** The widget's least height while the tooltip shows. */
  minHeight: number;
}

const GAP = 6;

/** `cell` in the widget's coordinates; `tip` the tooltip's size; `width` and `height` the widget's. */
export function placeTooltip(cell: Box, tip: { width: number; height: number }, width: number, height: number): Placement {
  const right = cell.x + cell.w + GAP;
  const left = right + tip.width <= width ? right : Math.max(0, cell.x - tip.width - GAP);
  const minHeight = tip.height + 8;
  const room = Math.max(height, minHeight);
  const top = Math.min(Math.max(0, cell.y - 20), room - tip.height - 4);
  return { left: Math.max(0, left), top: Math.max(0, top), minHeight };
}
